/**
 * The PNE device SDK (docs/protocol.md): the public surface only. The facade is client.ts (PneClient: connect,
 * close, the SG API, events; PNE_DEFAULTS in defaults.ts).
 */
export type { OpenedMessage } from '../core/group/receiver.js';
export type { Credentials } from '../gateway/index.js';
export { PneClient } from './client.js';
export { PNE_DEFAULTS } from './defaults.js';
export type { CreateGroupOptions, GroupMessageEvent, PneConnectOptions } from './types.js';
