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
    // The joins update the key (backward secrecy on join; joins at once share one update): epoch J.
    const joined =
      /join -> the server updates the Group Key \(a joiner cannot read earlier messages\): epoch (\d+)/.exec(
        stdout,
      );
    expect(joined).not.toBeNull();
    const j = Number(joined?.[1]);
    expect(j).toBeGreaterThanOrEqual(2);
    const removal = j + 1;
    const operator = j + 2;
    expect(line(/^ {2}console +received and read "round 1 starts now"/)).not.toBe('');
    expect(line(/^ {2}tablet +received and read "round 1 starts now"/)).not.toBe('');
    expect(line(/^ {2}speaker +received nothing$/)).not.toBe('');
    expect(line(/removes tablet from the Service Group -> the server updates the Group Key/)).not.toBe('');
    expect(line(new RegExp(`epoch ${removal} now held by watch, tv, console only`))).not.toBe('');
    // broadcast delivery (GKEK) in PN "home"; the non-member there hears it and cannot open it
    expect(
      line(
        new RegExp(
          `\\[gw-home\\] +epoch ${removal} by broadcast \\(GKEK\\): \\d+ signed datagram\\(s\\), \\d+ bytes on wifi, for (watch, tv|tv, watch)$`,
        ),
      ),
    ).not.toBe('');
    expect(
      line(/speaker +heard the home broadcast on wifi but is outside the cover: [1-9]\d* datagram/),
    ).not.toBe('');
    expect(line(new RegExp(`^ {2}console +acked epoch ${operator} {2}lag 0 {2}via unicast`))).not.toBe('');
    expect(line(/^ {2}console +read "round 2: tablet is out"/)).not.toBe('');
    expect(line(/^ {2}tablet +received nothing/)).not.toBe('');
    expect(line(/tablet +\(removed\) given the captured ciphertext: cannot read it \(UNKNOWN_/)).not.toBe('');
    expect(line(/speaker +\(never a member\) given the captured ciphertext: cannot read it/)).not.toBe('');
    expect(stdout).not.toContain('<-- WRONG');
    expect(lines.filter((l) => new RegExp(`acked epoch ${operator} {2}lag 0`).test(l)).length).toBe(3);
    expect(
      lines.filter((l) => new RegExp(`acked epoch ${operator} {2}lag 0 {2}via broadcast`).test(l)).length,
    ).toBe(2);
    expect(stdout.trim().endsWith('done.')).toBe(true);
  });

  it('cpns demo core runs the in-process core demo with broadcast delivery', async () => {
    const { stdout } = await run(process.execPath, [bin, 'demo', 'core'], { timeout: 30_000 });
    expect(stdout).toMatch(/watch +unwraps the Group Key of epoch 3/);
    expect(stdout).toMatch(/camera +cannot unwrap \(NOT_IN_COVER\)/);
    expect(stdout).toMatch(/headset injects under its old key -> tv: cannot read \(EXPIRED_EPOCH\)/);
  });
});
