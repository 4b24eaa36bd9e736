import { randomBytes } from 'node:crypto';
import { Suite } from '../../../src/core/crypto/aead.js';
import { CpnsError } from '../../../src/core/errors.js';
import { GroupKeyRing, GroupReceiver, GroupSender } from '../../../src/core/group/index.js';

export const SG = Buffer.from('5a1d0c0e7f3b4c2a9e6d8b1f0a2c4e6d', 'hex');
export const ALICE = Buffer.from('a11ce000000000000000000000000001', 'hex');
export const BOB = Buffer.from('b0b00000000000000000000000000002', 'hex');

export function setup(opts: { suite?: Suite; epoch?: number; key?: Buffer; sourceAuth?: boolean } = {}) {
  let now = 1_000_000;
  const clock = () => now;
  const suite = opts.suite ?? Suite.AES_256_GCM;
  const epoch = opts.epoch ?? 1;
  const key = opts.key ?? randomBytes(32);
  const ring = new GroupKeyRing(clock);
  ring.install(SG, epoch, key, suite, { sourceAuth: opts.sourceAuth ?? false });
  const receiver = new GroupReceiver({ keyRing: ring });
  const sender = new GroupSender({ senderId: ALICE });
  return {
    ring,
    receiver,
    sender,
    key,
    suite,
    epoch,
    advance: (ms: number) => {
      now += ms;
    },
    gk: () => ring.current(SG)!,
  };
}

/** The CpnsError code `fn` throws, or 'OK' when it returns. */
export function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof CpnsError) return e.code;
    throw e;
  }
  return 'OK';
}
