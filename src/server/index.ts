/**
 * The CPNS Server role (docs/protocol.md): the public surface only. The facade is server.ts (start, close,
 * composition, SERVER_DEFAULTS in defaults.ts); the behaviour is in one module per concern over one ServerState
 * (state.ts): enrollment, gw-session + gw-messages (the GW authorization table), pne-tunnel + pne-messages (the
 * PNE authorization table), attachment, groups, keys, relay, acks, revocation, admin, startup, events.
 */
export { Control, uuidToBytes } from '../protocol/control.js';
export { CpnsServer } from './server.js';
export type {
  CreateGroupInput,
  GroupPolicyPatch,
  GroupSummary,
  ServerAdmin,
  ServerOptions,
  WireSuite,
} from './types.js';
