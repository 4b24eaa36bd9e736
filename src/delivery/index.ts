export * from './gateway-broadcaster.js';
export * from './gateway-state.js';
export * from './pne-listener.js';
export * from './policy.js';
