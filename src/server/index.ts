/**
 * The CPNS Server role (docs/protocol.md). The public surface only; the facade is server.ts, the behaviour is in
 * one module per concern (docs/architecture.md).
 */
export { Control, uuidToBytes } from '../roles/control.js';
export { CpnsServer } from './server.js';
export type {
  CreateGroupInput,
  GroupPolicyPatch,
  GroupSummary,
  ServerAdmin,
  ServerOptions,
  WireSuite,
} from './types.js';
