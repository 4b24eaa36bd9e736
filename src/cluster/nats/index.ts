export { type JetStreamBus, type JetStreamBusOptions, openJetStreamBus } from './bus.js';
export { NATS_BUS_DEFAULTS, type NatsBusLimits } from './defaults.js';
