/**
 * The protocol layer shared by the roles (below src/server, src/gateway, src/pne; above core and transport):
 * request/reply plumbing and the one error mapping to wire codes (control.ts), device-side enrollment
 * (enroll-client.ts), the one `key.deliver` builder (key-deliver.ts), and the broadcast Group Key delivery
 * engines (GW broadcaster and its persisted tree state, PNE listener, delivery policy). See docs/architecture.md "Layers".
 */
export * from './control.js';
export * from './enroll-client.js';
export * from './gateway-broadcaster.js';
export * from './gateway-state.js';
export * from './key-deliver.js';
export * from './pne-listener.js';
export * from './policy.js';
