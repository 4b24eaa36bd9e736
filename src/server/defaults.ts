/**
 * Every default, limit and timeout of the CPNS Server in one place. The first group can be changed per server
 * (ServerOptions, same names); the rest are fixed by the protocol or by the server's own resource bounds.
 * (A module of its own, not server.ts: the concern modules read it, and server.ts imports them.)
 */
import { MAX_LIST } from '../core/codec/index.js';

export const SERVER_DEFAULTS = {
  // ------------------------------------------------------------------ ServerOptions defaults
  /** Listen address of both listeners. */
  host: '127.0.0.1',
  /** GW session listener and enrollment listener ports: ephemeral. */
  port: 0,
  enrollPort: 0,
  /** Node name in the server identity `urn:cpns:server:<name>`. */
  serverName: 'node1',
  /** Grace of the previous epoch after a leave-type update: the leaver stops at once. */
  leaveGraceSec: 0,
  /** Grace of the previous epoch after a periodic or operator update. */
  periodicGraceSec: 10,
  /** How often relay marks are flushed to the store. */
  relayMarkFlushMs: 250,
  /** Periodic updates are distributed this far ahead of their activation: 0 = immediate. */
  periodicLeadSec: 0,
  /** Joins within this window share one Group Key update (backward secrecy on join). */
  joinUpdateDelayMs: 20,
  /** Most PNEs one GW session may name in pne.attach (rule A2). */
  maxPnesPerGw: 10_000,
  /**
   * Accepted acks (PNEs' and GWs') are written to the store in batches (delivery-writer.ts): a batch goes as soon as it has
   * `deliveryBatchMax` rows, else `deliveryBatchMs` after its first row, and at close. A crash loses at most the
   * rows not yet written (docs/store.md "Delivery tracking"); key rotation is not batched.
   */
  deliveryBatchMax: 512,
  deliveryBatchMs: 10,
  /**
   * This long after a key update, the members online here that have not acked it are logged (warn, with the
   * update's id: docs/operator.md "Following a key update"). 0 turns it off.
   */
  ackReportMs: 30_000,

  // ------------------------------------------------------------------ fixed
  /** An enrollment session (anonymous TLS) is closed after this long. */
  enrollSessionMs: 30_000,
  /** Most PNE tunnels multiplexed over one GW session. */
  maxTunnelsPerGwSession: 1024,
  /** Largest message on a PNE's tunnel. */
  tunnelMaxMessageBytes: 1024 * 1024,
  /** Epochs per SG whose key.deliver targets a GW session remembers, to check that GW's acks (rule K2). */
  sentEpochsKept: 4,
  /** Caps of the lists in one message (the codec's list limit): replay anchors, targets, signers. */
  maxAnchors: MAX_LIST,
  maxTargets: MAX_LIST,
  maxSigners: MAX_LIST,
  /** Lifetime of an enrollment token created by the operator without a ttl. */
  tokenTtlSec: 3600,
  /** Validity of an issued GW / PNE certificate. */
  certValidityDays: 365,
  /** At close: how long the session and enrollment listeners wait for their peers. */
  closeSessionsMs: 500,
  closeEnrollMs: 200,
  /** After gw.deregister, the session closes this much later (the reply goes out first). */
  deregisterCloseMs: 50,
} as const;
