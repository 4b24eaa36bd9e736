import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));

describe('cpns demo (a real process: server, 2 PN GWs, 6 PNEs on loopback)', () => {
  it('members read, the removed PNE and the non-member cannot, keys are updated and erased', async () => {
    const { stdout } = await run(process.execPath, [bin, 'demo'], { timeout: 60_000 });
    const lines = stdout.split('\n');
    const line = (re: RegExp) => lines.find((l) => re.test(l)) ?? '';
    expect(line(/^ {2}console +received and read "round 1 starts now"/)).not.toBe('');
    expect(line(/^ {2}tablet +received and read "round 1 starts now"/)).not.toBe('');
    expect(line(/^ {2}speaker +received nothing$/)).not.toBe('');
    expect(line(/removes tablet -> server updates the Group Key: epoch 2/)).not.toBe('');
    expect(line(/^ {2}console +read "round 2: tablet is out"/)).not.toBe('');
    expect(line(/^ {2}tablet +received nothing/)).not.toBe('');
    expect(line(/tablet +\(removed\) given the captured ciphertext: cannot read it \(UNKNOWN_/)).not.toBe('');
    expect(line(/speaker +\(never a member\) given the captured ciphertext: cannot read it/)).not.toBe('');
    expect(stdout).not.toContain('<-- WRONG');
    expect(lines.filter((l) => /acked epoch 3 {2}lag 0/.test(l)).length).toBe(3);
    expect(stdout.trim().endsWith('done.')).toBe(true);
  });

  it('cpns demo core runs the in-process core demo with broadcast delivery', async () => {
    const { stdout } = await run(process.execPath, [bin, 'demo', 'core'], { timeout: 30_000 });
    expect(stdout).toMatch(/watch +unwraps the Group Key of epoch 3/);
    expect(stdout).toMatch(/camera +cannot unwrap \(NOT_IN_COVER\)/);
    expect(stdout).toMatch(/headset injects under its old key -> tv: cannot read \(EXPIRED_EPOCH\)/);
  });
});
