import { type InferShape, type Schema, type Shape, s } from './schema.js';

/**
 * The CPNS control messages: body schema per message type `t`. The envelope fields (`v`, `t`, `id`) are added
 * by `messageSchemas` below. Bounds are chosen so that the worst case of every message fits the default codec
 * limits (checked by test/core/codec/bounds.test.ts).
 */

const UINT32_MAX = 0xffff_ffff;

/** Largest list in one message. */
export const MAX_LIST = 4096;

// Reusable field schemas.
const uuid = s.str({ min: 36, max: 36, format: 'uuid' });
const sgId = uuid;
const pneId = s.str({ min: 49, max: 49, format: 'pneId' });
const gwId = s.str({ min: 48, max: 48, format: 'gwId' });
/** Group Key epoch: uint32, increases by one at every update. */
const epoch = s.uint({ max: UINT32_MAX });
/** Request id (envelope `id`) or the id a reply refers to (`ref`). */
const requestId = s.uint();
/** Milliseconds since the Unix epoch. */
const timestampMs = s.uint();
const seconds = s.uint({ max: UINT32_MAX });
const groupKey = s.bytes({ len: 32 });
const pem = 8 * 1024;

export const suites = ['aes-256-gcm', 'chacha20-poly1305'] as const;
export const media = ['wifi', 'bt', 'ble', 'eth', 'usb'] as const;
/** A medium a PNE reaches its PN GW over (and a GW broadcasts on): one type for every role. */
export type Medium = (typeof media)[number];
export const deliveryMethods = ['unicast', 'broadcast', 'fallback'] as const;
export const rekeyReasons = [
  'create',
  'leave',
  'remove',
  'periodic',
  'operator',
  'detach',
  'revoke',
  // A member joined (backward secrecy, docs/protocol.md). Append only: the broadcast wire codes follow this order.
  'join',
] as const;

const suite = s.enum(suites);
/** Operator delivery policy (seed §5.3.3: the PN GW selects unicast or broadcast by operator policy). */
const deliveryPolicyShape = {
  broadcast: s.bool(),
  /** Broadcast when at least this many member PNEs of the SG are in the PN and can receive it. */
  broadcastThreshold: s.uint({ min: 1, max: 65536 }),
  /** Re-send by unicast to members that did not ack a broadcast within this time. */
  ackTimeoutMs: s.uint({ min: 10, max: 600_000 }),
};
const deliveryPolicy = s.object(deliveryPolicyShape);
const medium = s.enum(media);
const method = s.enum(deliveryMethods);
const mediaList = s.array(medium, { max: 8 });

const enrollRequest = {
  /** One-time enrollment token created by the operator. */
  token: s.str({ min: 1, max: 128, format: 'token' }),
  role: s.enum(['gw', 'pne']),
  csr: s.str({ min: 1, max: pem, format: 'pemCsr' }),
} satisfies Shape;

/** Replay floor for one sender instance: receivers drop counters below `counter` for (sender, instance). */
const senderAnchor = s.object({
  sender: s.bytes({ len: 16 }),
  instance: s.bytes({ len: 8 }),
  counter: s.uint(),
});

export const bodies = {
  // Enrollment (a PNE enrolls through its GW, which relays the request unchanged).
  'enroll.request': enrollRequest,
  'enroll.response': {
    cert: s.str({ min: 1, max: pem, format: 'pemCert' }),
    caCert: s.str({ min: 1, max: pem, format: 'pemCert' }),
  },
  'enroll.relay': { request: s.object(enrollRequest) },

  // Registry.
  'gw.register': {
    capabilities: s.optional(s.object({ media: mediaList, broadcast: s.optional(s.bool()) })),
  },
  'gw.deregister': {},
  'pne.attach': { pneId, media: mediaList },
  'pne.detach': { pneId },
  /** A PNE's session to its GW went up or down; it stays in the PN. */
  'pne.status': { pneId, online: s.bool() },
  /** PNE -> server (tunnel): the Ed25519 public key this PNE signs its SG messages with (source authentication). */
  'pne.signkey': { key: s.bytes({ len: 32 }) },
  /** Server -> GW -> member PNEs: signing keys of the members of a source-authenticated SG (full list). */
  'sg.signers': { sgId, signers: s.array(s.object({ pneId, key: s.bytes({ len: 32 }) }), { max: MAX_LIST }) },
  registered: { ok: s.bool() },

  // Service Groups.
  'sg.create': {
    name: s.str({ min: 1, max: 64, format: 'text' }),
    joinPolicy: s.enum(['open', 'invite']),
    suite,
    sourceAuth: s.bool(),
    rekeyIntervalSec: s.optional(s.uint({ min: 1, max: UINT32_MAX })),
  },
  'sg.created': { sgId, epoch },
  'sg.delete': { sgId },
  'sg.join': { sgId },
  'sg.leave': { sgId },
  'sg.invite': { sgId, pneId },
  'sg.remove': { sgId, pneId },
  /** Notification: the SG is gone, erase its keys. */
  'sg.deleted': { sgId },

  // Key management.
  'key.deliver': {
    sgId,
    epoch,
    key: groupKey,
    suite,
    reason: s.enum(rekeyReasons),
    /** Absolute activation time, ms since the Unix epoch. */
    activateAt: s.optional(timestampMs),
    /** Relative activation delay in seconds from receipt (for receivers without a trusted clock). */
    activateIn: s.optional(seconds),
    /** How long the previous epoch stays accepted after this one activates. */
    graceSec: seconds,
    previousEpoch: s.optional(epoch),
    senderAnchors: s.optional(s.array(senderAnchor, { max: MAX_LIST })),
    /** Server -> GW: which member PNEs of this GW get the key. */
    targets: s.optional(s.array(pneId, { max: MAX_LIST })),
    /** Server -> GW: this Service Group's delivery policy, overriding the GW-wide `gw.policy`. */
    policy: s.optional(deliveryPolicy),
    /** The SG requires an Ed25519 signature of its sender on every message (source authentication). */
    sourceAuth: s.optional(s.bool()),
    /** Server -> GW: the id of the key update (its cause), for the GW's logs. */
    updateId: s.optional(uuid),
  },
  'key.ack': { sgId, epoch, pneId: s.optional(pneId), method: s.optional(method) },
  /** Catch-up: ask for the current key (intermediate epochs are skipped, never replayed). */
  'key.fetch': { sgId, haveEpoch: s.optional(epoch) },
  'key.delivery.report': {
    sgId,
    epoch,
    entries: s.array(s.object({ pneId, method, ackedAt: timestampMs }), { max: MAX_LIST }),
  },

  // Broadcast provisioning (Subset-Difference GKDK set of one PNE).
  'gkdk.issue': {
    gwId,
    treeId: uuid,
    treeVersion: s.uint({ max: UINT32_MAX }),
    leaf: s.uint({ max: UINT32_MAX }),
    gkdk: s.bytes({ min: 1, max: 8 * 1024 }),
    /** The GW's Ed25519 broadcast-signing public key (raw 32 bytes), delivered over the authenticated session. */
    signKey: s.bytes({ len: 32 }),
    /** Broadcast media the GW sends on: UDP multicast group and port per medium. */
    media: s.array(
      s.object({
        name: medium,
        group: s.str({ min: 7, max: 15, format: 'text' }),
        port: s.uint({ min: 1, max: 65535 }),
      }),
      { max: 8 },
    ),
  },
  'gkdk.ack': { treeId: uuid, treeVersion: s.uint({ max: UINT32_MAX }) },
  /** Operator delivery policy pushed by the server to GWs (seed §5.3.3: the GW selects unicast/broadcast). */
  'gw.policy': deliveryPolicyShape,

  // Session.
  error: {
    code: s.str({ min: 1, max: 64, format: 'errorCode' }),
    message: s.str({ max: 256, format: 'text' }),
    field: s.optional(s.str({ max: 128, format: 'text' })),
    ref: s.optional(requestId),
    /** Server -> GW only: the refused group message was sent by this PNE (the GW tells that PNE). */
    pneId: s.optional(pneId),
  },
  ok: { ref: requestId },
} as const satisfies Record<string, Shape>;

/** Direction and purpose of each message type (for docs, logs and tools). */
export const messageInfo: {
  readonly [T in keyof typeof bodies]: { readonly dir: string; readonly doc: string };
} = {
  'enroll.request': {
    dir: 'GW → server',
    doc: 'Enroll with a one-time token and a CSR; answered by enroll.response.',
  },
  'enroll.response': { dir: 'server → GW/PNE', doc: 'The issued certificate and the CPNS CA certificate.' },
  'enroll.relay': { dir: 'GW → server', doc: "A PNE's enroll.request body, relayed unchanged by its GW." },
  'gw.register': { dir: 'GW → server', doc: 'Register the GW of this session; answered by registered.' },
  'gw.deregister': { dir: 'GW → server', doc: 'Orderly shutdown of the GW.' },
  'pne.attach': { dir: 'GW → server', doc: 'A PNE joined this PN, reachable over the listed media.' },
  'pne.detach': { dir: 'GW → server', doc: 'A PNE left this PN.' },
  'pne.status': { dir: 'GW → server', doc: 'A PNE of this PN went online or offline (it stays in the PN).' },
  'pne.signkey': { dir: 'PNE → server (tunnel)', doc: "The PNE's Ed25519 key for signing SG messages." },
  'sg.signers': {
    dir: 'server → GW → PNE',
    doc: 'Signing keys of the members of a source-authenticated SG.',
  },
  registered: { dir: 'server → GW', doc: 'Acknowledges gw.register.' },
  'sg.create': { dir: 'PNE → server', doc: 'Create a Service Group; answered by sg.created.' },
  'sg.created': { dir: 'server → PNE', doc: 'The new SG id and its first epoch.' },
  'sg.delete': { dir: 'PNE → server', doc: 'Delete a Service Group.' },
  'sg.join': { dir: 'PNE → server', doc: 'Join an open SG (or accept an invitation).' },
  'sg.leave': { dir: 'PNE → server', doc: 'Leave an SG; the server updates the key at once.' },
  'sg.invite': { dir: 'PNE → server', doc: 'Invite a PNE into an invite-only SG.' },
  'sg.remove': { dir: 'PNE → server', doc: 'Remove a member; the server updates the key at once.' },
  'sg.deleted': { dir: 'server → GW → PNE', doc: 'The SG is gone: erase its keys.' },
  'key.deliver': {
    dir: 'server → GW, GW → PNE',
    doc: 'A Group Key epoch. targets: member PNEs of this GW (server → GW only).',
  },
  'key.ack': { dir: 'PNE → GW, GW → server', doc: 'Key epoch received; the GW adds pneId and method.' },
  'key.fetch': {
    dir: 'PNE → GW → server',
    doc: 'Catch-up: ask for the current key; answered by key.deliver.',
  },
  'key.delivery.report': { dir: 'GW → server', doc: 'Which member PNEs confirmed an epoch, how and when.' },
  'gw.policy': {
    dir: 'server → GW',
    doc: 'Operator delivery policy: when to broadcast, ack timeout before unicast fallback.',
  },
  'gkdk.issue': {
    dir: 'GW → PNE',
    doc: "The PNE's Subset-Difference label set (GKDK) for broadcast delivery.",
  },
  'gkdk.ack': { dir: 'PNE → GW', doc: 'GKDK set stored.' },
  error: {
    dir: 'either',
    doc: 'A request failed: stable code, fixed text, field, ref = request id; pneId = sender of a refused group message.',
  },
  ok: { dir: 'either', doc: 'A request (ref = its id) succeeded with nothing else to return.' },
};

type Bodies = typeof bodies;
export type MessageType = keyof Bodies;

/** Protocol version carried in every envelope. */
export const PROTOCOL_VERSION = 1;

const envelope = { v: s.literal(PROTOCOL_VERSION), id: s.optional(requestId) };

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** One decoded control message of type `T`. */
export type MessageOf<T extends MessageType> = Simplify<{ v: 1; t: T; id?: number } & InferShape<Bodies[T]>>;

/** Any control message, discriminated by `t`. */
export type ControlMessage = { [T in MessageType]: MessageOf<T> }[MessageType];

/** What encodeMessage accepts: a ControlMessage whose `v` may be left out. */
export type ControlMessageInit = {
  [T in MessageType]: Simplify<Omit<MessageOf<T>, 'v'> & { v?: 1 }>;
}[MessageType];

/** Every message type name, in definition order. */
export const messageTypes = Object.freeze(Object.keys(bodies) as MessageType[]);

function build(): { readonly [T in MessageType]: Schema<MessageOf<T>> } {
  const out: Record<string, Schema<unknown>> = {};
  for (const t of messageTypes) {
    // Envelope first so encoded maps start with v, t, id.
    out[t] = s.object({ v: envelope.v, t: s.literal(t), id: envelope.id, ...bodies[t] });
  }
  return out as { readonly [T in MessageType]: Schema<MessageOf<T>> };
}

/** Full schema (envelope + body) of each message type. */
export const messageSchemas = Object.freeze(build());
