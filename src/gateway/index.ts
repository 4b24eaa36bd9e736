/**
 * The PN Gateway role (docs/protocol.md): the public surface only. The facade is gateway.ts (start, close,
 * getters, events; GATEWAY_DEFAULTS in defaults.ts); the behaviour is in one module per concern over one
 * GatewayState (state.ts): upstream + upstream-messages (the server session), pne-session + pne-messages (the
 * PNE authorization table, P1–P3), keys, reports, relay, enrollment, broadcast.
 */

export { enrollAt } from '../protocol/enroll-client.js';
export { GATEWAY_DEFAULTS } from './defaults.js';
export { PnGateway } from './gateway.js';
export type { BroadcastMediumConfig, Credentials, GatewayOptions, GatewayStats } from './types.js';
