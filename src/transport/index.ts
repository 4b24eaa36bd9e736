/** Transport layer: CPNS CA, secure sessions (CPNS TS §5.3.2), frames, the GW tunnel, the broadcast medium. */
export * from './backoff.js';
export * from './ca.js';
export * from './connect-session.js';
export * from './errors.js';
export * from './failover.js';
export * from './framing.js';
export * from './message-socket.js';
export * from './reconnecting-client.js';
export * from './secure-server.js';
export * from './session.js';
export * from './tunnel-mux.js';
export * from './tunnel-relay.js';
export * from './tunnel-stream.js';
export * from './tunnel-tls.js';
export * from './udp.js';
