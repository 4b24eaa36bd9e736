// The cluster layer (docs/cluster.md): events between CPNS Server nodes. Imports core only (and @nats-io/*).
export * from './bus.js';
export * from './events.js';
export * from './nats/index.js';
