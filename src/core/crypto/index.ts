export * from './aead.js';
export * from './bytes.js';
export * from './ed25519.js';
export * from './hkdf.js';
export * from './hmac.js';
export * from './keywrap.js';
