/**
 * The PNE device SDK (docs/protocol.md): the public surface only. The facade is client.ts (PneClient: connect,
 * close, the SG API, events; PNE_DEFAULTS in defaults.ts); the behaviour is in one module per concern over one
 * PneState (state.ts): connection (GW session, reconnect), tunnel (server tunnel, what the server may send over
 * it), groups (SG API, waitForKey), keys (unicast delivery, staging, signers), broadcast (GKDK, listener, drops),
 * messages (send/open, pending on UNKNOWN_EPOCH), gw-messages (what the GW may send).
 */
export type { OpenedMessage } from '../core/group/receiver.js';
export type { Credentials } from '../protocol/enroll-client.js';
export { PneClient } from './client.js';
export { PNE_DEFAULTS } from './defaults.js';
export type { CreateGroupOptions, GroupMessageEvent, PneConnectOptions } from './types.js';
