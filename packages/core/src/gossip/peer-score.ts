/**
 * A gossip peer's score: how often it is heard, and how well links to it performed.
 *
 * Theory of operation
 * - Availability: time since the peer was first heard is cut into heartbeat intervals (slots);
 *   a slot counts as heard when any verified message of the peer's (heartbeat, announcement,
 *   content availability, answer) arrived in it. Availability = heard slots / elapsed slots, so a
 *   peer that heartbeats every interval stays at 1, one heard once an hour drifts toward 0, and
 *   no peer can raise it above 1 by sending faster (one count per slot).
 * - Performance: exponentially weighted averages (weight 1/8) of the RTT and throughput the Core
 *   measured (`observe`). RTT maps to 100 ms / (100 ms + rtt), throughput to b / (b + 1 MB/s):
 *   both in (0, 1], 0.5 at the reference point. Performance is the mean of the known ones, 0.5
 *   when nothing was measured (neither rewarded nor punished).
 * - Score = (availability + performance) / 2, computed in integer per-mille (decisions compare
 *   integers, STYLE.md section 3) and shown as a fraction in [0, 1].
 */
const PERMILLE = 1000;
const RTT_REFERENCE_MS = 100;
const THROUGHPUT_REFERENCE_BYTES_PER_SECOND = 1_000_000;
const UNKNOWN_PERFORMANCE = PERMILLE / 2;

export class PeerScore {
  private heardSlots = 1;
  private lastSlot = 0;
  private rttMs: number | undefined = undefined;
  private bytesPerSecond: number | undefined = undefined;

  constructor(readonly firstHeardMs: number) {}

  /** A verified message of this peer arrived at `nowMs`. */
  heard(nowMs: number, intervalMs: number): void {
    const slot = Math.floor((nowMs - this.firstHeardMs) / intervalMs);
    if (slot > this.lastSlot) {
      this.lastSlot = slot;
      this.heardSlots++;
    }
  }

  observe(sample: { readonly rttMs?: number; readonly bytesPerSecond?: number }): void {
    if (sample.rttMs !== undefined) this.rttMs = average(this.rttMs, sample.rttMs);
    if (sample.bytesPerSecond !== undefined)
      this.bytesPerSecond = average(this.bytesPerSecond, sample.bytesPerSecond);
  }

  availabilityPermille(nowMs: number, intervalMs: number): number {
    const elapsedSlots = Math.max(0, Math.floor((nowMs - this.firstHeardMs) / intervalMs)) + 1;
    return Math.min(PERMILLE, Math.floor((this.heardSlots * PERMILLE) / elapsedSlots));
  }

  performancePermille(): number {
    const parts: number[] = [];
    if (this.rttMs !== undefined)
      parts.push(Math.floor((RTT_REFERENCE_MS * PERMILLE) / (RTT_REFERENCE_MS + this.rttMs)));
    if (this.bytesPerSecond !== undefined)
      parts.push(
        Math.floor(
          (this.bytesPerSecond * PERMILLE) /
            (this.bytesPerSecond + THROUGHPUT_REFERENCE_BYTES_PER_SECOND),
        ),
      );
    if (parts.length === 0) return UNKNOWN_PERFORMANCE;
    return Math.floor(parts.reduce((a, b) => a + b, 0) / parts.length);
  }

  /** 0..1000. */
  permille(nowMs: number, intervalMs: number): number {
    return Math.floor(
      (this.availabilityPermille(nowMs, intervalMs) + this.performancePermille()) / 2,
    );
  }
}

/** Score of a peer first heard now with nothing measured (what a newcomer competes with). */
export const NEW_PEER_SCORE_PERMILLE = (PERMILLE + UNKNOWN_PERFORMANCE) / 2;

export function permilleToScore(permille: number): number {
  return permille / PERMILLE;
}

function average(previous: number | undefined, sample: number): number {
  const value = Math.max(0, sample);
  return previous === undefined ? value : Math.round((previous * 7 + value) / 8);
}
