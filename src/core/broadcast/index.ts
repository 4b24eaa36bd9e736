export {
  computeCover,
  decodeSubsetId,
  encodeSubsetId,
  findSubsetIndex,
  isAllSubset,
  SUBSET_ALL,
  SUBSET_ID_BYTES,
  type Subset,
  subsetContains,
} from './cover.js';
export { type OpenBroadcastOptions, type OpenedGroupKey, openBroadcast } from './device.js';
export { type BuildBroadcastParams, buildBroadcast } from './gateway.js';
export { GKDK_VERSION, type Gkdk, gkdkSize, MAX_GKDK_BYTES, parseGkdk, serializeGkdk } from './gkdk.js';
export { deriveKek, KEK_BYTES, type KekContext, kekInfo } from './kek.js';
export {
  buildGkdkLabels,
  deriveAllKey,
  deriveRootLabel,
  gkdkLabelCount,
  gkdkLabelIndex,
  subsetKeyFromGkdkLabels,
  subsetKeyFromRootLabel,
  walkDown,
} from './labels.js';
export { depthOf, isAncestorOrSelf, log2Capacity, MAX_CAPACITY, MAX_LOG2_CAPACITY } from './nodes.js';
export { aesG, aesG3, CountingPrg, LABEL_BYTES, type SdPrg } from './prg.js';
export { MAX_PNE_ID_BYTES, SdTree, type SdTreeCreateOptions } from './tree.js';
export {
  BROADCAST_REASONS,
  BROADCAST_VERSION,
  type BroadcastEntry,
  type BroadcastHeader,
  type BroadcastReason,
  ENTRY_BYTES,
  encodeBody,
  GROUP_KEY_BYTES,
  HEADER_BYTES,
  MAX_DATAGRAM_BYTES,
  MAX_ENTRIES_PER_DATAGRAM,
  MAX_FRAGMENTS,
  type ParsedBroadcast,
  parseBroadcast,
  SIGNATURE_CONTEXT,
  signedMessage,
} from './wire.js';
