/**
 * The CLI's side of the daemon's local API (daemon.ts serves it on the API port, loopback only).
 *
 * - `getPeers()`: `GET /api/peers` → the peer table.
 * - `startGet()`: `POST /api/get` with a JSON job; the answer streams NDJSON `JobEvent`s (for a
 *   file output) or the object's bytes (for `-o -`, with the outcome in the `x-peapod-result`
 *   trailer).
 * A daemon that is not running gives one clear error that says how to start it.
 */
import { request, type IncomingMessage } from 'node:http';
import type { JobEvent } from './download-job.js';
import type { PeerRow } from './daemon.js';

export interface ApiTarget {
  readonly host: string;
  readonly port: number;
}

export interface GetRequest {
  readonly url: string;
  /** Absolute path, or '-' for the bytes in the response. */
  readonly output: string;
  readonly sha256?: string;
  readonly pool: boolean;
  readonly headers: ReadonlyArray<{ name: string; value: string }>;
  /** `--strict`: refuse to pool unless a strong ETag or a known digest pins the object. */
  readonly strict?: boolean;
}

export class DaemonUnreachable extends Error {
  constructor(target: ApiTarget, cause: string) {
    super(
      `no PeaPod daemon answers on ${target.host}:${target.port} (${cause}). ` +
        'Start one with `peapod daemon` (and `peapod init` first on a new device).',
    );
  }
}

function call(target: ApiTarget, method: string, path: string, body?: unknown) {
  return new Promise<IncomingMessage>((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: target.host,
        port: target.port,
        method,
        path,
        headers: text === undefined ? {} : { 'content-type': 'application/json' },
      },
      resolve,
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      reject(new DaemonUnreachable(target, error.code ?? error.message)),
    );
    req.end(text);
  });
}

async function readAll(res: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of res) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

export async function getPeers(target: ApiTarget): Promise<{ deviceId: string; peers: PeerRow[] }> {
  const res = await call(target, 'GET', '/api/peers');
  const text = await readAll(res);
  if (res.statusCode !== 200) throw new Error(`the daemon answered ${res.statusCode}: ${text}`);
  return JSON.parse(text) as { deviceId: string; peers: PeerRow[] };
}

/** Starts a job; for a file output, yields its events as they come. */
export async function* getEvents(target: ApiTarget, job: GetRequest): AsyncGenerator<JobEvent> {
  const res = await call(target, 'POST', '/api/get', job);
  if (res.statusCode !== 200) {
    throw new Error(`the daemon refused the download: ${await readAll(res)}`);
  }
  let pending = '';
  for await (const part of res) {
    pending += (part as Buffer).toString('utf8');
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() !== '') yield JSON.parse(line) as JobEvent;
    }
  }
}

/** Starts a job whose bytes come back in the response (`-o -`). */
export async function getStream(target: ApiTarget, job: GetRequest): Promise<IncomingMessage> {
  const res = await call(target, 'POST', '/api/get', job);
  if (res.statusCode !== 200) {
    throw new Error(`the daemon refused the download: ${await readAll(res)}`);
  }
  return res;
}
