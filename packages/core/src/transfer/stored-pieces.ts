/**
 * The pieces of one content download that the host holds and the core does not: verified
 * beyond the reorder window (stored with `store-chunk`, bytes dropped) or held by this device
 * before ('self'). Each is read back (`read-chunk`) when the delivery point comes near; this
 * table tracks which are stored, under which source name, and which reads are out, so the
 * download delivers each read-back once and counts its bytes in memory while it is read.
 */
export class StoredPieces {
  /** Piece -> the source name its bytes are credited to. */
  private readonly stored = new Map<number, string>();
  /** Read ID -> piece. */
  private readonly reads = new Map<number, number>();
  private readonly reading = new Set<number>();

  /** `piece` is stored, credited to `sourceName`. */
  add(piece: number, sourceName: string): void {
    this.stored.set(piece, sourceName);
  }

  /** Whether some stored piece has no read out yet. */
  get anyUnread(): boolean {
    return this.stored.size > this.reading.size;
  }

  /** Whether `piece` is stored and not being read yet. */
  isUnread(piece: number): boolean {
    return this.stored.has(piece) && !this.reading.has(piece);
  }

  /** A read went out for a stored piece. */
  readStarted(readId: number, piece: number): void {
    this.reads.set(readId, piece);
    this.reading.add(piece);
  }

  /**
   * A read was answered: the piece is no longer stored here (delivered, or fetched again).
   * Returns it with its source name, or undefined for a read this table does not know.
   */
  answered(readId: number): { piece: number; sourceName: string } | undefined {
    const piece = this.reads.get(readId);
    if (piece === undefined) return undefined;
    this.reads.delete(readId);
    this.reading.delete(piece);
    const sourceName = this.stored.get(piece);
    this.stored.delete(piece);
    return sourceName === undefined ? undefined : { piece, sourceName };
  }

  /** Forgets the stored pieces `match` picks that are not being read; returns them. */
  drop(match: (piece: number) => boolean): number[] {
    const dropped: number[] = [];
    for (const piece of this.stored.keys()) {
      if (this.reading.has(piece) || !match(piece)) continue;
      this.stored.delete(piece);
      dropped.push(piece);
    }
    return dropped;
  }

  /** The pieces being read. */
  readingPieces(): IterableIterator<number> {
    return this.reading.values();
  }

  clear(): void {
    this.stored.clear();
    this.reads.clear();
    this.reading.clear();
  }
}
