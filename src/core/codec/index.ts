export { decodeMessage, encodeMessage, isMessageType, validateMessage } from './codec.js';
export { type FormatName, formats } from './formats.js';
export { type CodecOptions, type LimitName, type Limits, limits, resolveLimits } from './limits.js';
export {
  type ControlMessage,
  type ControlMessageInit,
  deliveryMethods,
  MAX_LIST,
  type Medium,
  type MessageOf,
  type MessageType,
  media,
  messageInfo,
  messageSchemas,
  messageTypes,
  PROTOCOL_VERSION,
  rekeyReasons,
  suites,
} from './messages.js';
export { MAX_KEY_BYTES, type ScanLimits, scanCbor } from './scan.js';
export {
  type Bound,
  type Infer,
  type InferShape,
  type Optional,
  type ParseContext,
  type Schema,
  type SchemaInfo,
  type Shape,
  s,
} from './schema.js';
