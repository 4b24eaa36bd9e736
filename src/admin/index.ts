export { buildAdminApp } from './app.js';
export { ApiError, type ErrorBody, toHttpError } from './errors.js';
export { sanitizeEvent } from './events.js';
export { loadOrCreateAdminToken } from './token.js';
export type { AdminAppOptions, ChangeEvent, ServerAdmin } from './types.js';
