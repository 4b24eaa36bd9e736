/**
 * A V8 CPU profile of this process over a window the bench chooses (`cpns bench rekey --cpu-prof DIR`): the
 * measured updates only, not the minutes of setup that `node --cpu-prof` would fold into the same file. The file
 * is Chrome DevTools' `.cpuprofile` format (open it in DevTools or speedscope). Internal: bench tooling only.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

export class CpuProfile {
  readonly #session: Session;

  private constructor(session: Session) {
    this.#session = session;
  }

  /** Starts sampling (V8's default interval, about 1 ms). */
  static async start(): Promise<CpuProfile> {
    const session = new Session();
    session.connect();
    const p = new CpuProfile(session);
    await p.#post('Profiler.enable');
    await p.#post('Profiler.start');
    return p;
  }

  /** Stops sampling and writes the profile to `file` (mode 0600: it names source paths, nothing secret). */
  async stop(file: string): Promise<void> {
    try {
      const r = (await this.#post('Profiler.stop')) as { profile: object };
      writeFileSync(file, JSON.stringify(r.profile), { mode: 0o600 });
    } finally {
      this.#session.disconnect();
    }
  }

  #post(method: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#session.post(method, (err, result) => (err ? reject(err) : resolve(result)));
    });
  }
}
