/**
 * The run's trace: a running hash of everything that happened (for the determinism test: the same
 * seed must give the same hash) and a ring buffer of the last entries (printed with a failure).
 *
 * Theory of operation
 * - `record` takes an event's time, kind, node and one number; `note` takes a free-form line
 *   (a Core event such as peer:connect). Both fold into a 32-bit FNV-1a hash over the numbers
 *   and the characters of the kind, and overwrite the oldest slot of the ring. No string is
 *   formatted until `lines()` is asked for, so tracing costs little per event.
 */

interface Entry {
  atMs: number;
  kind: string;
  node: number;
  arg: number;
  text: string | undefined;
}

const FNV_PRIME = 0x01000193;

export class Trace {
  private readonly ring: Entry[];
  private next = 0;
  private count = 0;
  private state = 0x811c9dc5;

  constructor(readonly capacity = 50) {
    this.ring = Array.from({ length: capacity }, () => ({
      atMs: 0,
      kind: '',
      node: 0,
      arg: 0,
      text: undefined,
    }));
  }

  /** Records one event. */
  record(atMs: number, kind: string, node: number, arg: number): void {
    this.fold(Math.round(atMs * 1000));
    this.foldString(kind);
    this.fold(node);
    this.fold(arg);
    this.put(atMs, kind, node, arg, undefined);
  }

  /** Records a line of text (a Core event, a fault). */
  note(atMs: number, node: number, text: string): void {
    this.fold(Math.round(atMs * 1000));
    this.fold(node);
    this.foldString(text);
    this.put(atMs, 'note', node, 0, text);
  }

  /** The hash of everything recorded so far, as 8 hex digits. */
  get hash(): string {
    return (this.state >>> 0).toString(16).padStart(8, '0');
  }

  /** The last entries, oldest first, formatted. */
  lines(): string[] {
    const out: string[] = [];
    const n = Math.min(this.count, this.capacity);
    for (let i = 0; i < n; i++) {
      const e = this.ring[(this.next - n + i + this.capacity) % this.capacity]!;
      const at = `${e.atMs.toFixed(3).padStart(12)} ms`;
      const who = e.node < 0 ? '      ' : `n${String(e.node).padEnd(4)} `;
      out.push(`${at} ${who}${e.text ?? `${e.kind} ${e.arg}`}`);
    }
    return out;
  }

  private put(
    atMs: number,
    kind: string,
    node: number,
    arg: number,
    text: string | undefined,
  ): void {
    const slot = this.ring[this.next]!;
    slot.atMs = atMs;
    slot.kind = kind;
    slot.node = node;
    slot.arg = arg;
    slot.text = text;
    this.next = (this.next + 1) % this.capacity;
    this.count++;
  }

  private fold(value: number): void {
    // Fold the low and the high 32 bits (values may exceed 2^32 for large offsets).
    let h = foldWord(this.state, value | 0);
    h = foldWord(h, Math.floor(value / 0x1_0000_0000) | 0);
    this.state = h;
  }

  private foldString(text: string): void {
    let h = this.state;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i) & 0xff;
      h = Math.imul(h, FNV_PRIME);
    }
    this.state = h;
  }
}

function foldWord(state: number, word: number): number {
  let h = state;
  h = Math.imul(h ^ (word & 0xff), FNV_PRIME);
  h = Math.imul(h ^ ((word >>> 8) & 0xff), FNV_PRIME);
  h = Math.imul(h ^ ((word >>> 16) & 0xff), FNV_PRIME);
  return Math.imul(h ^ (word >>> 24), FNV_PRIME);
}
