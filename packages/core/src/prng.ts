/**
 * The core's one source of non-cryptographic randomness (STYLE.md section 3): a seeded
 * xoshiro128** generator. The host passes a seed; every decision that needs chance (peer
 * choice, jitter, gossip fan-out) draws from it or from a child stream forked from it, so a
 * simulation run replays exactly from its seed. Key material never comes from here: it comes
 * from the crypto provider's `randomBytes`.
 *
 * Draws are integers (TigerBeetle's rule: no floats in decision paths).
 */
import { invalidArgument } from './errors.js';

/** splitmix32: expands one 32-bit seed into well-mixed state words. */
function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let z = state.value;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * @param seed any integer; equal seeds give equal streams.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `seed` is not a safe integer.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) invalidArgument('seed', `must be a safe integer, got ${seed}`);
    // Fold the high bits in so seeds above 2^32 still differ.
    const mix = { value: (seed ^ Math.floor(seed / 0x1_0000_0000)) | 0 };
    this.s0 = splitmix32(mix);
    this.s1 = splitmix32(mix);
    this.s2 = splitmix32(mix);
    this.s3 = splitmix32(mix);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state is a fixed point
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /**
   * A uniform integer in [0, bound), without modulo bias (rejection sampling).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT unless 1 <= bound <= 2^32.
   */
  nextInt(bound: number): number {
    if (!Number.isInteger(bound) || bound < 1 || bound > 0x1_0000_0000) {
      invalidArgument('bound', `must be an integer in [1, 2^32], got ${bound}`);
    }
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % bound);
    for (;;) {
      const draw = this.nextU32();
      if (draw < limit) return draw % bound;
    }
  }

  /** Picks `count` distinct indices from [0, size) in random order (partial Fisher-Yates). */
  sample(size: number, count: number): number[] {
    const indices = Array.from({ length: size }, (_, i) => i);
    const take = Math.min(count, size);
    for (let i = 0; i < take; i++) {
      const j = i + this.nextInt(size - i);
      const tmp = indices[i]!;
      indices[i] = indices[j]!;
      indices[j] = tmp;
    }
    return indices.slice(0, take);
  }

  /**
   * A child stream: independent of the parent's later draws, determined by the parent's state
   * now. Each subsystem or peer takes its own child (quinn seeds connections this way).
   */
  fork(): Prng {
    return new Prng(this.nextU32() * 0x20_0000 + (this.nextU32() >>> 11));
  }
}
