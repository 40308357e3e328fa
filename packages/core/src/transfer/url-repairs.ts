/**
 * The repair ledger of a pooled URL download (url-download.ts): who gave each accepted piece,
 * which devices are distrusted, which pieces are suspect and who is refetching them, and the
 * audit after an end-to-end mismatch. Pure bookkeeping: the download carries out what it
 * decides (withdrawing pieces from delivery, starting refetches, reading the output back).
 *
 * Repair on ban. A spot check does not catch a corruption outside its sample, so a sparse liar
 * passes some. Every accepted piece remembers its source (`pieceSource`, one small integer per
 * piece). When a helper is banned (by a spot check of this download or for any other reason
 * while it runs; or caught with certainty after its link already closed), `distrust` makes
 * every piece accepted from it *suspect*. Suspects are refetched before any new piece (at most
 * `REPAIRS_INFLIGHT_MAX` at a time, one per source, held pieces first, then delivered ones,
 * lowest offset first; each from the fastest usable source that has not failed it).
 *
 * Audit. With a known SHA-256 of the object, the ledger also keeps the SHA-256 of every piece a
 * helper gave (32 bytes per helper piece; without a digest nothing could ever call for an
 * audit, so nothing is hashed). When the end-to-end digest differs, `startAudit` (once) makes
 * every helper piece a suspect that only this device may refetch, ordered so that helpers take
 * turns (a liar is found early); `auditMatches` compares the refetched copy with the helper's
 * hash. A difference convicts the helper (the download bans and distrusts it).
 *
 * `repairedDelivered`: a delivered range was (or, after an audit, may have been) overwritten,
 * so the running digest of the delivered bytes no longer describes the output.
 */
import type { CryptoProvider } from '../crypto-provider.js';
import { equalBytes } from '../bytes.js';
import { SELF_SOURCE, type SourceId } from './scheduler.js';

/**
 * Suspect pieces being refetched at once (one per source). Repairs of delivered ranges lie
 * outside the memory window, so this bounds what they add to it: 4 pieces (16 MiB by default).
 */
export const REPAIRS_INFLIGHT_MAX = 4;

/** A piece accepted from a distrusted helper, until a checked copy replaces it. */
export interface Suspect {
  readonly piece: number;
  /** Already delivered: the copy goes out as a repair; else into the reorder buffer. */
  readonly emitted: boolean;
  /** The source refetching or spot checking it. */
  holder: SourceId | undefined;
  /** Sources that failed to give it (they are not asked again). */
  readonly excluded: Set<SourceId>;
  /** An audit's refetch: only a copy that differs from the helper's (`sha256`) is a repair. */
  readonly audit?: { readonly sha256: Uint8Array; readonly helper: string; readonly order: number };
}

export class RepairLedger {
  /** Per piece: 0 for self (or not accepted), else 1 + index into `helperNames`. */
  private readonly pieceSource: Int32Array;
  private readonly helperNames: string[] = [];
  private readonly helperIndex = new Map<string, number>();
  /** Devices caught lying (banned): nothing more is taken from them. */
  private readonly distrusted = new Set<string>();
  private readonly suspects = new Map<number, Suspect>();
  /** SHA-256 of each accepted helper piece (only with a known object digest). */
  private readonly helperPieceHashes = new Map<number, Uint8Array>();
  private auditStarted = false;
  private repaired = false;

  constructor(
    private readonly crypto: CryptoProvider,
    private readonly pieceCount: number,
    /** Whether an audit can happen (the object's SHA-256 is known): keep piece hashes. */
    private readonly auditable: boolean,
  ) {
    this.pieceSource = new Int32Array(pieceCount);
  }

  /** True once a delivered range was overwritten (or an audit began): the running digest is void. */
  get repairedDelivered(): boolean {
    return this.repaired;
  }

  get audited(): boolean {
    return this.auditStarted;
  }

  markRepairedDelivered(): void {
    this.repaired = true;
  }

  isDistrusted(deviceIdHex: string): boolean {
    return this.distrusted.has(deviceIdHex);
  }

  /** A piece was put in place, from 'self' or a helper (its Device ID in hex). */
  accepted(piece: number, sourceName: string, bytes: Uint8Array): void {
    this.pieceSource[piece] = this.sourceIndex(sourceName);
    if (!this.auditable) return;
    if (sourceName === 'self') this.helperPieceHashes.delete(piece);
    else this.helperPieceHashes.set(piece, this.crypto.sha256(bytes));
  }

  /**
   * Distrusts `deviceIdHex` and makes every piece accepted from it suspect (`isEmitted` says
   * which were delivered already). Returns those pieces, or undefined when it was distrusted
   * before.
   */
  distrust(deviceIdHex: string, isEmitted: (piece: number) => boolean): number[] | undefined {
    if (this.distrusted.has(deviceIdHex)) return undefined;
    this.distrusted.add(deviceIdHex);
    const index = this.helperIndex.get(deviceIdHex);
    if (index === undefined) return [];
    const pieces: number[] = [];
    for (let piece = 0; piece < this.pieceCount; piece++) {
      if (this.pieceSource[piece] !== index) continue;
      pieces.push(piece);
      this.pieceSource[piece] = 0;
      this.suspects.set(piece, {
        piece,
        emitted: isEmitted(piece),
        holder: undefined,
        excluded: new Set(),
      });
    }
    return pieces;
  }

  get suspectCount(): number {
    return this.suspects.size;
  }

  suspect(piece: number): Suspect | undefined {
    return this.suspects.get(piece);
  }

  /** The lowest suspect piece (what a stalled download waits for), if any. */
  lowestSuspect(): number | undefined {
    return this.suspects.size === 0 ? undefined : Math.min(...this.suspects.keys());
  }

  /** A checked copy replaced the suspect: it is no longer one. */
  resolve(piece: number): void {
    this.suspects.delete(piece);
  }

  /** A suspect goes back to wait for a source; `exclude` (a helper) is not asked again. */
  requeue(suspect: Suspect, exclude: SourceId | undefined): void {
    suspect.holder = undefined;
    if (exclude !== undefined && exclude !== SELF_SOURCE) suspect.excluded.add(exclude);
  }

  /** Repairs in flight at `source`. */
  repairLoad(source: SourceId): number {
    let load = 0;
    for (const suspect of this.suspects.values()) if (suspect.holder === source) load++;
    return load;
  }

  /**
   * Starts refetches: held suspects first (they block delivery), then delivered ones, lowest
   * offset first (audits in their turn order); at most `REPAIRS_INFLIGHT_MAX` at once, one per
   * source, each to the first of `sources` (best first) that is free, has not failed it, and
   * may take it (audits: only self). `start` carries one out; false means the source could not
   * take it (it is excluded for that piece).
   */
  assign(sources: readonly SourceId[], start: (piece: number, source: SourceId) => boolean): void {
    if (this.suspects.size === 0) return;
    let inflight = 0;
    const waiting: Suspect[] = [];
    const busy = new Set<SourceId>();
    for (const suspect of this.suspects.values()) {
      if (suspect.holder === undefined) waiting.push(suspect);
      else {
        inflight++;
        busy.add(suspect.holder);
      }
    }
    if (waiting.length === 0 || inflight >= REPAIRS_INFLIGHT_MAX) return;
    waiting.sort(
      (a, b) =>
        Number(a.emitted) - Number(b.emitted) ||
        (a.audit?.order ?? -1) - (b.audit?.order ?? -1) ||
        a.piece - b.piece,
    );
    for (const suspect of waiting) {
      if (inflight >= REPAIRS_INFLIGHT_MAX) break;
      const source = sources.find(
        (s) =>
          !busy.has(s) &&
          !suspect.excluded.has(s) &&
          (suspect.audit === undefined || s === SELF_SOURCE),
      );
      if (source === undefined) continue;
      if (!start(suspect.piece, source)) {
        suspect.excluded.add(source);
        continue;
      }
      suspect.holder = source;
      busy.add(source);
      inflight++;
    }
  }

  /**
   * The end-to-end digest failed: every piece a helper gave becomes an audit suspect (see the
   * module header). Once per download; false when there is nothing to audit.
   */
  startAudit(): boolean {
    if (this.auditStarted || this.helperPieceHashes.size === 0) return false;
    this.auditStarted = true;
    this.repaired = true; // the output is read back again after the audit
    const turns = new Map<number, number>();
    for (const [piece, sha256] of this.helperPieceHashes) {
      const index = this.pieceSource[piece]!;
      const turn = turns.get(index) ?? 0;
      turns.set(index, turn + 1);
      this.suspects.set(piece, {
        piece,
        emitted: true,
        holder: undefined,
        excluded: new Set(),
        audit: {
          sha256,
          helper: this.helperNames[index - 1]!,
          order: turn * this.pieceCount + piece,
        },
      });
    }
    return true;
  }

  /** Whether this device's own copy of an audited piece equals what the helper gave. */
  auditMatches(suspect: Suspect, bytes: Uint8Array): boolean {
    return (
      suspect.audit !== undefined && equalBytes(this.crypto.sha256(bytes), suspect.audit.sha256)
    );
  }

  /** 0 for self, else 1 + the helper's index in `helperNames` (added on first use). */
  private sourceIndex(sourceName: string): number {
    if (sourceName === 'self') return 0;
    let index = this.helperIndex.get(sourceName);
    if (index === undefined) {
      index = this.helperNames.length + 1;
      this.helperNames.push(sourceName);
      this.helperIndex.set(sourceName, index);
    }
    return index;
  }
}
