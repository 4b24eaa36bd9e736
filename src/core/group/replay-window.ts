/**
 * Sliding replay window for one sender instance (RFC 4303 §3.4.3 style, as Group OSCORE uses per sender).
 * `top` is the highest counter accepted; bit (c mod size) records whether counter c in (top-size, top] was seen.
 * `check` is separate from `commit` so the window moves only after the message authenticated: a forged
 * message with a huge counter must not slide the window and lock the real sender out.
 */
export class ReplayWindow {
  readonly size: number;
  private top = -1;
  private readonly bits: Uint32Array;

  constructor(size = 256) {
    if (!Number.isInteger(size) || size < 32 || size > 65536 || size % 32 !== 0) {
      throw new RangeError('replay window size must be a multiple of 32 in [32, 65536]');
    }
    this.size = size;
    this.bits = new Uint32Array(size / 32);
  }

  /** Treat every counter <= floor as already seen (replay anchor from the server, see docs/replay.md). */
  static anchoredAt(floor: number, size = 256): ReplayWindow {
    const w = new ReplayWindow(size);
    w.top = floor;
    w.bits.fill(0xffffffff);
    return w;
  }

  get highest(): number {
    return this.top;
  }

  /** True when `counter` is new (not seen and not older than the window). */
  check(counter: number): boolean {
    if (counter > this.top) return true;
    if (counter <= this.top - this.size) return false;
    const i = counter % this.size;
    return (this.bits[i >>> 5]! & (1 << (i & 31))) === 0;
  }

  /** Record `counter` as seen. Call only after `check` returned true and the message authenticated. */
  commit(counter: number): void {
    if (counter > this.top) {
      const shift = counter - this.top;
      if (shift >= this.size) {
        this.bits.fill(0);
      } else {
        for (let c = this.top + 1; c < counter; c++) {
          const i = c % this.size;
          this.bits[i >>> 5]! &= ~(1 << (i & 31));
        }
      }
      this.top = counter;
    }
    const i = counter % this.size;
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }
}
