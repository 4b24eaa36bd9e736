// Public surface of the core layer (no I/O). Sub-paths are also exported: cpns/core/group, cpns/core/broadcast...
export * as broadcast from './broadcast/index.js';
export * as codec from './codec/index.js';
export * as crypto from './crypto/index.js';
export * from './errors.js';
export * as group from './group/index.js';
