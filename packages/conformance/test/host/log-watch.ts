/**
 * Watches a daemon's log: `peapod daemon --log-format json` writes one pino JSON object a line
 * on stdout. `until(match)` resolves with the first entry, past or future, that matches; it
 * rejects when the process exits first or the guard timeout passes (which only turns a hang into
 * a failure: nothing here waits for time to pass). Lines that are not JSON are kept for error
 * messages and otherwise ignored.
 */
import type { ChildProcess } from 'node:child_process';

/** One pino log entry: `msg` and the fields the daemon logged with it. */
export type LogEntry = Readonly<Record<string, unknown>> & { readonly msg?: unknown };

interface Waiter {
  readonly match: (entry: LogEntry) => boolean;
  readonly resolve: (entry: LogEntry) => void;
  readonly reject: (error: Error) => void;
}

export class LogWatch {
  readonly entries: LogEntry[] = [];
  private text = '';
  private pending = '';
  private readonly waiters = new Set<Waiter>();
  private exited: string | undefined;

  constructor(
    private readonly label: string,
    child: ChildProcess,
  ) {
    child.stdout?.on('data', (part: Buffer) => this.onData(part.toString('utf8')));
    child.stderr?.on('data', (part: Buffer) => (this.text += part.toString('utf8')));
    child.once('exit', (code, signal) => {
      this.exited = `${label} exited (${signal ?? code})`;
      for (const waiter of this.waiters) waiter.reject(this.failure(this.exited));
      this.waiters.clear();
    });
  }

  /** Everything the process printed so far (for failure messages). */
  get log(): string {
    return this.text;
  }

  /** The first entry that matches, now or later. */
  until(what: string, match: (entry: LogEntry) => boolean, guardMs = 30_000): Promise<LogEntry> {
    const found = this.entries.find(match);
    if (found !== undefined) return Promise.resolve(found);
    if (this.exited !== undefined) return Promise.reject(this.failure(`${what}: ${this.exited}`));
    return new Promise((resolve, reject) => {
      const guard = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(this.failure(`${this.label}: no log entry for ${what} within ${guardMs} ms`));
      }, guardMs);
      const waiter: Waiter = {
        match,
        resolve: (entry) => {
          clearTimeout(guard);
          resolve(entry);
        },
        reject: (error) => {
          clearTimeout(guard);
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }

  private onData(chunk: string): void {
    this.text += chunk;
    this.pending += chunk;
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      let entry: LogEntry;
      try {
        entry = JSON.parse(line) as LogEntry;
      } catch {
        continue;
      }
      if (entry === null || typeof entry !== 'object') continue;
      this.entries.push(entry);
      for (const waiter of [...this.waiters]) {
        if (!waiter.match(entry)) continue;
        this.waiters.delete(waiter);
        waiter.resolve(entry);
      }
    }
  }

  private failure(message: string): Error {
    return new Error(`${message}\n--- ${this.label} log ---\n${this.text.slice(-4000)}`);
  }
}
