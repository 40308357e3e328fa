/**
 * Per-link budget of bad frames (docs/protocol.md section 11).
 *
 * Theory of operation
 * - A frame whose signature does not verify costs the receiver one Ed25519 verification and
 *   proves nothing about its origin, only about the link it came on: a relay that forwards a
 *   forged frame is either the forger or broken. The engine charges such frames to the link they
 *   came on; the `budget`-th one makes `charge` answer true and the engine closes the link.
 * - An honest link may relay a corrupted frame now and then, so the budget is a few frames, and it
 *   counts for the link's lifetime (a link is cheap to reopen but the reopen costs a handshake).
 * - Memory: one number per link that sent a bad frame; entries of links gone from the view are
 *   pruned when the map grows past `pruneAt` (the engine says which links are live).
 */
export const BAD_FRAMES_PER_LINK = 8;

export class LinkBudget {
  private readonly spent = new Map<number, number>();

  constructor(
    readonly budget: number = BAD_FRAMES_PER_LINK,
    private readonly pruneAt = 256,
  ) {}

  /** Charges one bad frame to `linkId`; true once the link has spent its budget (then forgotten). */
  charge(linkId: number, isLive: (linkId: number) => boolean): boolean {
    if (this.spent.size >= this.pruneAt)
      for (const id of [...this.spent.keys()]) if (!isLive(id)) this.spent.delete(id);
    const spent = (this.spent.get(linkId) ?? 0) + 1;
    if (spent >= this.budget) {
      this.spent.delete(linkId);
      return true;
    }
    this.spent.set(linkId, spent);
    return false;
  }

  spentBy(linkId: number): number {
    return this.spent.get(linkId) ?? 0;
  }
}
