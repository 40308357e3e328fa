/**
 * The origin of the Node host's pods: a real HTTP server on 127.0.0.1 holding one object, with
 * what the compliance cases need to watch and to break.
 *
 * Theory of operation
 * - One object of random bytes, a strong ETag, `Accept-Ranges: bytes` and its SHA-256 as
 *   `Repr-Digest` (RFC 9530); GET answers one byte range with 206 (`bytes=a-b`, `a-`) or the
 *   whole object with 200. A daemon plans a pooled download from that, and with the digest a
 *   liar is caught for certain (an audit convicts whoever gave bytes that differ).
 * - Pacing: each client source address (every daemon sends its origin traffic from its own
 *   127.0.0.x) has its own budget of `rateBytesPerSec`, shared by its connections, like a
 *   separate internet link; so the requester alone would be slow, and helpers get work. The body
 *   goes out in 64 KiB chunks; after each the sender waits for socket drain and for its budget.
 * - Stalls: a request from a stalled address gets its 206 head and then nothing, until the client
 *   closes the connection (the daemon's scheduler gives up on it and asks someone else).
 * - Watching: `stats(address)` counts requests and body bytes per address; `whenServed(address,
 *   n)` resolves once that address was sent `n` body bytes (the event a "leave mid-download"
 *   waits for).
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PacedOriginOptions {
  readonly sizeBytes: number;
  readonly rateBytesPerSec: number;
  /** Client source addresses whose requests stall after the head. */
  readonly stalled?: ReadonlySet<string>;
}

export interface ClientStats {
  requests: number;
  bodyBytes: number;
}

const CHUNK_BYTES = 64 * 1024;
const PATH = '/object.bin';

export class PacedOrigin {
  /** The object's URL. */
  readonly url: string;
  readonly sha256: string;
  private readonly reprDigest: string;
  private readonly clients = new Map<string, ClientStats>();
  /** When each address's budget next allows a chunk (performance.now() ms). */
  private readonly nextSendMs = new Map<string, number>();
  private readonly served = new EventEmitter();

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    readonly body: Buffer,
    private readonly options: PacedOriginOptions,
  ) {
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}${PATH}`;
    const digest = createHash('sha256').update(body).digest();
    this.sha256 = digest.toString('hex');
    this.reprDigest = `sha-256=:${digest.toString('base64')}:`;
    this.served.setMaxListeners(0);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch(() => res.destroy());
    });
  }

  static async start(options: PacedOriginOptions): Promise<PacedOrigin> {
    const server = createServer({ keepAliveTimeout: 30_000 });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new PacedOrigin(server, randomBytes(options.sizeBytes), options);
  }

  /** Requests and body bytes from one source address so far. */
  stats(address: string): ClientStats {
    return { ...(this.clients.get(address) ?? { requests: 0, bodyBytes: 0 }) };
  }

  /** Resolves once `address` was sent at least `byteCount` body bytes. */
  whenServed(address: string, byteCount: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.stats(address).bodyBytes < byteCount) return;
        this.served.off('bytes', check);
        resolve();
      };
      this.served.on('bytes', check);
      check();
    });
  }

  async close(): Promise<void> {
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const address = (req.socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
    const stats = this.clients.get(address) ?? { requests: 0, bodyBytes: 0 };
    this.clients.set(address, stats);
    stats.requests++;
    if (req.url !== PATH || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    const total = this.body.length;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = total; // exclusive
    if (range !== null) {
      start = Number(range[1]);
      end = range[2] === '' ? total : Math.min(total, Number(range[2]) + 1);
      if (start >= end) {
        res.writeHead(416, { 'content-range': `bytes */${total}` }).end();
        return;
      }
    }
    res.writeHead(range === null ? 200 : 206, {
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
      etag: `"${this.sha256.slice(0, 16)}"`,
      'repr-digest': this.reprDigest,
      'content-length': String(end - start),
      ...(range === null ? {} : { 'content-range': `bytes ${start}-${end - 1}/${total}` }),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    // A probe (`bytes=0-0`) is answered even from a stalled address: only real fetches stall.
    if (this.options.stalled?.has(address) === true && end - start > 1) {
      res.flushHeaders();
      return; // nothing more, until the client gives up and closes
    }
    for (let at = start; at < end && !res.destroyed; at += CHUNK_BYTES) {
      const chunk = this.body.subarray(at, Math.min(end, at + CHUNK_BYTES));
      await this.budget(address, chunk.length);
      if (res.destroyed) return;
      const drained = res.write(chunk);
      stats.bodyBytes += chunk.length;
      this.served.emit('bytes');
      if (!drained) await drainOrClose(res);
    }
    res.end();
  }

  /** Waits until `address` may send `byteCount` more bytes at its rate (a link's pacing). */
  private async budget(address: string, byteCount: number): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, this.nextSendMs.get(address) ?? now);
    this.nextSendMs.set(address, at + (byteCount * 1000) / this.options.rateBytesPerSec);
    if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now));
  }
}

/** Resolves when `res` drains or closes, and forgets both listeners. */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
