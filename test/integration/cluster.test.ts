/**
 * Two CPNS Server nodes on one PostgreSQL database and a real 3-node NATS JetStream cluster (docs/cluster.md):
 * PN GW 1 is served by node A, PN GW 2 by node B, and one Service Group spans both PNs. A Group Key epoch
 * committed on either node reaches the members behind the other node's GW (outbox → bus → the other node reads
 * the sealed key from PostgreSQL and delivers it). A member removed on node A gets no key from node B: B reloads
 * the membership from the store before it delivers.
 *
 * Needs CPNS_TEST_PG_URL and nats-server (a private NATS cluster is started here). Without them: skipped with the
 * reason, except with CI=true, where it fails.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JetStreamBus, openJetStreamBus } from '../../src/cluster/index.js';
import { Suite } from '../../src/core/crypto/aead.js';
import { GroupSender } from '../../src/core/group/sender.js';
import { uuidOf, uuidToBytes } from '../../src/core/ids.js';
import { PnGateway } from '../../src/gateway/index.js';
import { type GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { type PrivateCluster, startPrivateCluster } from '../cluster/private-cluster.js';
import { BACKOFF, enrollPne, inbox, sleep, startGateway, startServer, tempDir, until } from './helpers.js';
import { dropSchemas, failInCiIfSkipped, PG_URL, skipReason } from './pg-env.js';

const SKIP = skipReason({ nats: true });
const schema = `cpns_cl_${randomBytes(6).toString('hex')}`;
const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await dropSchemas([schema]);
  tmp.cleanup();
});

failInCiIfSkipped(SKIP);

describe.skipIf(SKIP !== undefined)(`two server nodes${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let a: CpnsServer;
  let b: CpnsServer;
  let p1: PneClient; // behind GW 1, node A
  let p2: PneClient; // behind GW 2, node B
  let p3: PneClient; // behind GW 2, node B
  let nats: PrivateCluster;
  let busA: JetStreamBus;
  const inboxes = new Map<PneClient, GroupMessageEvent[]>();
  const connect = async (server: CpnsServer, gw: PnGateway) => {
    const c = await PneClient.connect({
      gwUrl: gw.url,
      credentials: await enrollPne(server, gw),
      heartbeat: false,
      reconnect: BACKOFF,
    });
    closers.push(() => c.close());
    inboxes.set(c, inbox(c));
    return c;
  };
  const said = (p: PneClient, text: string) =>
    inboxes.get(p)!.filter((m) => m.plaintext.toString() === text).length;

  beforeAll(async () => {
    nats = await startPrivateCluster();
    closers.push(() => nats.stop());
    const bus = async (name: string): Promise<JetStreamBus> => {
      const bb = await openJetStreamBus({
        servers: nats.urls,
        connectionName: name,
        maxStreamBytes: 64 * 1024 * 1024, // the private cluster's servers have 256 MB of file store each
      });
      closers.push(() => bb.close());
      return bb;
    };
    const dirA = join(tmp.dir, 'a');
    const dirB = join(tmp.dir, 'b');
    const pgOpts = { storeUrl: PG_URL as string, storeSchema: schema };
    busA = await bus('a');
    a = await startServer(dirA, { ...pgOpts, cluster: { bus: busA, nodeId: 'a' } });
    closers.push(() => a.close());
    mkdirSync(dirB, { recursive: true, mode: 0o700 });
    copyFileSync(join(dirA, 'master.key'), join(dirB, 'master.key')); // every node holds the same master key
    b = await startServer(dirB, { ...pgOpts, cluster: { bus: await bus('b'), nodeId: 'b' } });
    closers.push(() => b.close());
    expect(b.caPem).toBe(a.caPem);
    const gw1 = await startGateway(a);
    const gw2 = await startGateway(b);
    closers.push(
      () => gw1.close(),
      () => gw2.close(),
    );
    p1 = await connect(a, gw1);
    p2 = await connect(b, gw2);
    p3 = await connect(b, gw2);
  }, 60_000);

  it('an epoch committed on one node reaches the members behind the other; a removed member gets nothing', async () => {
    const { sgId } = await p1.createGroup({ name: 'spans both nodes', joinPolicy: 'open' });
    // Node B learns of the group from its sg.created event; until then a join through B is NOT_FOUND.
    for (const p of [p2, p3]) {
      await until(
        () =>
          p.joinGroup(sgId).then(
            () => true,
            () => false,
          ),
        15_000,
        'join through node B',
      );
    }
    // The joins committed on node B (update on join: one update for joins within its window); node A delivers
    // that epoch to p1 behind GW 1.
    const top = async () => (await a.admin.listGroups()).find((g) => g.sgId === sgId)?.currentEpoch ?? 0;
    await until(
      async () => {
        const e = await top();
        return e >= 2 && [p1, p2, p3].every((p) => p.currentEpoch(sgId) === e);
      },
      20_000,
      'every member at the epoch of the last join',
    );

    // Removed on node A: node A rotates; node B delivers the new epoch to p2 only, and tells p3 it was removed.
    const p3Epochs: number[] = [];
    p3.on('key', (e: { sgId: string; epoch: number }) => e.sgId === sgId && p3Epochs.push(e.epoch));
    const told = new Promise<void>((r) => p3.on('removed', (e: { sgId: string }) => e.sgId === sgId && r()));
    const before = p3.currentEpoch(sgId) ?? 0;
    await a.admin.removeMember(sgId, p3.identity);
    const removed = await top();
    expect(removed).toBe(before + 1);
    await until(
      () => p1.currentEpoch(sgId) === removed && p2.currentEpoch(sgId) === removed,
      20_000,
      'the epoch after the removal at both nodes',
    );
    await told; // sg.remove, from node B, for a removal committed on node A

    // And the other way: a rekey on node B reaches p1 behind node A.
    const { epoch } = await b.admin.rekey(sgId);
    await until(
      () => p1.currentEpoch(sgId) === epoch && p2.currentEpoch(sgId) === epoch,
      20_000,
      'rekey at B',
    );
    expect(p3Epochs).toEqual([]); // no key after its removal, from either node

    // Relay across nodes: p1 (GW 1, node A) to p2 (GW 2, node B) and back, each message once; the removed p3,
    // behind the same GW as p2, reads nothing.
    await until(
      () => {
        p1.send(sgId, 'from A');
        return said(p2, 'from A') > 0;
      },
      10_000,
      'a message from node A at node B',
    );
    p2.send(sgId, 'from B');
    await until(() => said(p1, 'from B') === 1, 10_000, 'a message from node B at node A');
    const n = said(p2, 'from A');
    p1.send(sgId, 'once');
    await until(() => said(p2, 'once') === 1, 10_000, 'one more message');
    await sleep(300);
    expect(said(p2, 'once')).toBe(1);
    expect(said(p2, 'from A')).toBe(n);
    expect(said(p3, 'from A') + said(p3, 'from B') + said(p3, 'once')).toBe(0);
    // The server's own message to the SG, sent on node B, reaches p1 behind node A.
    await b.sendToGroup(sgId, 'from the server');
    await until(() => said(p1, 'from the server') === 1, 10_000, "the server's message across nodes");
  }, 120_000);

  it('a member added on one node without update on join gets the current key through the other', async () => {
    const { sgId } = await a.admin.createGroup({
      name: 'no join update',
      members: [p1.identity],
      updateOnJoin: false,
    });
    await until(() => p1.currentEpoch(sgId) === 1, 10_000, 'epoch 1 at p1');
    await until(
      () =>
        b.admin.groupStatus(sgId).then(
          () => true,
          () => false,
        ),
      10_000,
      'the SG at node B',
    );
    await a.admin.addMember(sgId, p2.identity);
    await until(() => p2.currentEpoch(sgId) === 1, 10_000, 'the current key at p2, through node B');
    expect((await a.admin.listGroups()).find((g) => g.sgId === sgId)?.currentEpoch).toBe(1);
  }, 60_000);

  it('a policy change and a deletion on one node reach the other', async () => {
    const seenAtB: { kind: string; sgId?: string }[] = [];
    b.events.on('change', (e: { kind: string; sgId?: string }) => seenAtB.push(e));
    const { sgId } = await a.admin.createGroup({ name: 'to delete', members: [p1.identity, p2.identity] });
    await until(() => p2.currentEpoch(sgId) === 1, 10_000, 'epoch 1 at p2');
    await a.admin.updatePolicy(sgId, { joinPolicy: 'open' });
    // Node B applies the new join policy: p3 can join through node B without an invitation.
    await until(
      () =>
        p3.joinGroup(sgId).then(
          () => true,
          () => false,
        ),
      10_000,
      'an open join through node B',
    );
    await until(() => p3.currentEpoch(sgId) === 2, 10_000, 'the join update at p3');
    const gone = new Promise<void>((r) =>
      p2.on('group-deleted', (e: { sgId: string }) => e.sgId === sgId && r()),
    );
    await a.admin.deleteGroup(sgId);
    await gone; // node B told GW 2, which told p2
    await until(
      () =>
        b.admin.groupStatus(sgId).then(
          () => false,
          (e) => e.code === 'NOT_FOUND',
        ),
      10_000,
      'the SG gone at node B',
    );
    // Node B's change stream (its console, SSE) shows the changes made on node A.
    const kinds = seenAtB.filter((e) => e.sgId === sgId).map((e) => e.kind);
    for (const k of ['sg.create', 'key.update', 'sg.policy', 'member.add', 'sg.delete'])
      expect(kinds).toContain(k);
  }, 60_000);

  it('source authentication: a signer behind node A is verified by a member behind node B', async () => {
    const { sgId } = await a.admin.createGroup({
      name: 'signed across nodes',
      sourceAuth: true,
      members: [p1.identity, p2.identity],
    });
    await until(() => p1.currentEpoch(sgId) === 1 && p2.currentEpoch(sgId) === 1, 10_000, 'keys');
    await until(
      () => {
        p1.send(sgId, 'signed at A');
        return said(p2, 'signed at A') > 0;
      },
      10_000,
      'a signed message from node A verified at node B',
    );
    expect(inboxes.get(p2)!.find((m) => m.plaintext.toString() === 'signed at A')!.sender).toBe(p1.identity);
  }, 60_000);

  it('frames injected on cpns.relay.* by any NATS client: a non-member insider, a replay, an oversized blob, a false origin reach nobody behind node B', async () => {
    const { sgId } = await a.admin.createGroup({ name: 'injected', members: [p1.identity, p2.identity] });
    await until(() => p1.currentEpoch(sgId) === 1 && p2.currentEpoch(sgId) === 1, 10_000, 'keys');
    let raw: Buffer | undefined;
    await until(
      () => {
        raw = p1.send(sgId, 'genuine');
        return said(p2, 'genuine') > 0;
      },
      10_000,
      'a genuine message across nodes',
    );
    await sleep(500); // the loop's other sends still in flight arrive first
    const genuine = said(p2, 'genuine');
    // An insider who holds the Group Key but is not a member (p3's id as the sender): valid MAC, refused by rule R1.
    const k = (await a.store.getCurrentKey(sgId))!;
    const forged = new GroupSender({ senderId: uuidToBytes(uuidOf(p3.identity)) }).protect(
      uuidToBytes(sgId),
      { epoch: k.epoch, key: k.key, suite: Suite.AES_256_GCM },
      Buffer.from('from a non-member'),
    );
    k.key.fill(0);
    busA.relay('a', forged);
    busA.relay('x', raw!); // a replay of the genuine message, from a node that does not exist
    busA.nc.publish('cpns.relay.a', Buffer.alloc(100 * 1024)); // above maxRelayBytes
    busA.nc.publish('cpns.relay.b', forged); // "from node B itself": B ignores its own subject
    expect(() => busA.relay('a', Buffer.alloc(100 * 1024))).toThrow(/too large/);
    await sleep(700);
    expect(said(p2, 'from a non-member')).toBe(0);
    expect(said(p2, 'genuine')).toBe(genuine);
    p1.send(sgId, 'still relayed');
    await until(() => said(p2, 'still relayed') === 1, 10_000, 'the relay after the injection');
  }, 60_000);

  it('revoking a PNE on one node cuts it off at the other; the GW lease names the node that holds each GW', async () => {
    const revoked = new Promise<void>((r) => p3.once('revoked', () => r()));
    await a.admin.revoke(p3.identity);
    await revoked; // p3's tunnel and GW 2's hold on it were on node B
    const leases = await a.store.listGwLeases();
    expect(leases.map((l) => l.nodeId).sort()).toEqual(['a', 'b']);
    for (const l of leases) expect(l.generation).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('a second session of one GW on another node takes the lease: the older holder closes its stale session', async () => {
    // The same GW credentials on both nodes (a GW that failed over while its old session is half-open, or a
    // clone): each registration takes the lease with a higher generation, and the node left with the older one
    // closes its session. Without that, both nodes would act for the GW at once.
    const creds = await PnGateway.enroll({
      enrollUrl: a.enrollUrl,
      caPem: a.caPem,
      token: await a.admin.createToken('gw'),
    });
    const x = await PnGateway.start({
      serverUrl: a.url,
      credentials: creds,
      heartbeat: false,
      reconnect: BACKOFF,
    });
    closers.push(() => x.close());
    let regs = 0;
    x.on('registered', () => regs++);
    const first = (await a.store.getGwLease(x.identity))!;
    expect(first.nodeId).toBe('a');
    const clone = await PnGateway.start({
      serverUrl: b.url,
      credentials: creds,
      heartbeat: false,
      reconnect: BACKOFF,
    });
    // B's lease makes A close x's session; x registers at A again (a newer lease still), and so on.
    await until(() => regs >= 1, 15_000, "node A closing x's stale session, x registering again");
    const later = (await a.store.getGwLease(x.identity))!;
    expect(later.generation).toBeGreaterThanOrEqual(first.generation + 2);
    await clone.close();
    await until(
      async () => {
        const l = await a.store.getGwLease(x.identity);
        const pn = (await a.store.listPns()).find((p) => p.gwId === x.identity);
        return l?.nodeId === 'a' && pn?.online === true && x.connected;
      },
      15_000,
      'x at node A, its PN online',
    );
  }, 60_000);

  it('the NATS stream leader killed: an epoch committed meanwhile reaches the other node after the election', async () => {
    const { sgId } = await a.admin.createGroup({ name: 'leader loss', members: [p1.identity, p2.identity] });
    await until(() => p2.currentEpoch(sgId) === 1, 10_000, 'epoch 1 at p2');
    const leader = (await busA.jsm.streams.info('CPNS_EVENTS')).cluster?.leader;
    expect(leader).toMatch(/^n[123]$/);
    const t0 = Date.now();
    nats.kill(leader!);
    const { epoch } = await a.admin.rekey(sgId); // committed in PostgreSQL at once; its event waits for a leader
    await until(() => p2.currentEpoch(sgId) === epoch, 30_000, 'the epoch at node B after the election');
    const pause = Date.now() - t0;
    await until(
      () => {
        p1.send(sgId, 'after the leader loss');
        return said(p2, 'after the leader loss') > 0;
      },
      20_000,
      'relay across nodes after the leader loss',
    );
    console.log(
      `[cluster] NATS stream leader ${leader} killed: epoch ${epoch} from node A at p2 behind node B after ${pause} ms; ` +
        `relay across nodes resumed ${Date.now() - t0} ms after the kill`,
    );
  }, 90_000);
});
