export * from './activation.js';
export * from './header.js';
export * from './keyring.js';
export * from './message-key.js';
export * from './receiver.js';
export * from './replay-window.js';
export * from './sender.js';
