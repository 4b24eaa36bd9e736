/**
 * The Service Group API over the end-to-end tunnel to the server (the GW cannot read it): create, join, leave,
 * invite, remove, delete, and the Group Key catch-up (key.fetch). createGroup/joinGroup wait for the unicast
 * delivery of the key (waitForKey) and fetch it over the tunnel only if it does not come in time.
 */
import { ErrorCode } from '../core/errors.js';
import { fail, toPneIdentity } from '../protocol/control.js';
import { PNE_DEFAULTS } from './defaults.js';
import { currentEpoch, forget, installKey } from './keys.js';
import type { PneState } from './state.js';
import { serverControl } from './tunnel.js';
import type { CreateGroupOptions } from './types.js';

export async function createGroup(
  st: PneState,
  o: CreateGroupOptions,
): Promise<{ sgId: string; epoch: number }> {
  const r = await (await serverControl(st)).request({
    t: 'sg.create',
    name: o.name,
    joinPolicy: o.joinPolicy ?? 'invite',
    suite: o.suite ?? 'aes-256-gcm',
    sourceAuth: o.sourceAuth ?? false,
    rekeyIntervalSec: o.rekeyIntervalSec,
  });
  if (r.t !== 'sg.created') fail(ErrorCode.UNEXPECTED_MESSAGE);
  await waitKey(st, r.sgId, r.epoch);
  return { sgId: r.sgId, epoch: r.epoch };
}

export async function joinGroup(st: PneState, sgId: string): Promise<void> {
  await (await serverControl(st)).request({ t: 'sg.join', sgId });
  await waitKey(st, sgId, 1);
}

export async function leaveGroup(st: PneState, sgId: string): Promise<void> {
  await (await serverControl(st)).request({ t: 'sg.leave', sgId });
  forget(st, sgId);
}

export async function invite(st: PneState, sgId: string, pne: string): Promise<void> {
  await (await serverControl(st)).request({ t: 'sg.invite', sgId, pneId: toPneIdentity(pne) });
}

export async function removeMember(st: PneState, sgId: string, pne: string): Promise<void> {
  await (await serverControl(st)).request({ t: 'sg.remove', sgId, pneId: toPneIdentity(pne) });
}

export async function deleteGroup(st: PneState, sgId: string): Promise<void> {
  await (await serverControl(st)).request({ t: 'sg.delete', sgId });
  forget(st, sgId);
}

/** Asks the server for the current Group Key (catch-up: intermediate epochs are skipped). */
export async function fetchKey(st: PneState, sgId: string): Promise<number> {
  const have = currentEpoch(st, sgId);
  const r = await (await serverControl(st)).request({ t: 'key.fetch', sgId, haveEpoch: have });
  if (r.t !== 'key.deliver') fail(ErrorCode.UNEXPECTED_MESSAGE);
  installKey(st, r);
  return r.epoch;
}

/**
 * Resolves once a Group Key of `sgId` (epoch >= minEpoch) is installed; after `timeoutMs` (default keyWaitMs)
 * without one it fetches the current key over the tunnel (NOT_MEMBER / NOT_FOUND reject).
 */
export async function waitKey(
  st: PneState,
  sgId: string,
  minEpoch: number,
  timeoutMs?: number,
): Promise<void> {
  if ((currentEpoch(st, sgId) ?? 0) >= minEpoch) return;
  const got = await new Promise<boolean>((resolve) => {
    const t = setTimeout(
      () => {
        st.events.off('key', on);
        resolve(false);
      },
      timeoutMs ?? st.opts.keyWaitMs ?? PNE_DEFAULTS.keyWaitMs,
    );
    const on = (e: { sgId: string; epoch: number }): void => {
      if (e.sgId === sgId && e.epoch >= minEpoch) {
        clearTimeout(t);
        st.events.off('key', on);
        resolve(true);
      }
    };
    st.events.on('key', on);
  });
  if (!got) await fetchKey(st, sgId);
}
