/**
 * The CLI's side of the daemon's local API (daemon.ts serves it on the API port, loopback only).
 * Every call sends the API key (`X-API-Key`, from `api.key` in the data directory; api-guard.ts)
 * and no `Origin`; a daemon that refuses it (403) gives one error that says what to check.
 *
 * - `getPeers()`: `GET /api/peers` → the peer table.
 * - `startGet()`: `POST /api/get` with a JSON job; the answer streams NDJSON `JobEvent`s (for a
 *   file output) or the object's bytes (for `-o -`, with the outcome in the `x-peapod-result`
 *   trailer).
 * - `shareContent()`: `POST /api/share`; `fetchEvents()`: `POST /api/fetch`, NDJSON
 *   `ContentJobEvent`s; `listContents()`: `GET /api/contents`; `removeContent()`:
 *   `DELETE /api/contents/<hex>`; `updateContent()`: `PATCH /api/contents/<hex>`
 *   (`{published}`: `peapod publish` / `unpublish`).
 * A daemon that is not running gives one clear error that says how to start it
 * (`DaemonUnreachable`); a refusal (`ApiError`) carries the daemon's own sentence from its
 * `{"error": "..."}` body, never the raw JSON.
 */
import type { GatewayStats } from './gateway/gateway-service.js';
import { request, type IncomingMessage } from 'node:http';
import { API_KEY_HEADER, ApiRefusalCodes } from './api-guard.js';
import type { ContentJobEvent } from './content-job.js';
import type { JobEvent } from './download-job.js';
import type { StoredContent } from './store/store-api.js';
import type { PeerRow } from './peer-book.js';
import type { GossipAnswer } from './gossip-service.js';

export interface ApiTarget {
  readonly host: string;
  readonly port: number;
  /** The daemon's API key: `DataDir.loadApiKey()` of the daemon's data directory. */
  readonly apiKey: string;
}

export interface GetRequest {
  readonly url: string;
  /** Absolute path, or '-' for the bytes in the response. */
  readonly output: string;
  readonly sha256?: string;
  readonly pool: boolean;
  /** Replace an existing output file (`--force`); without it such a job is refused. */
  readonly force?: boolean;
  readonly headers: ReadonlyArray<{ name: string; value: string }>;
  /** `--strict`: refuse to pool unless a strong ETag or a known digest pins the object. */
  readonly strict?: boolean;
}

/** `POST /api/share`: share a file or directory (absolute path) from the store. */
export interface ShareRequest {
  readonly path: string;
  /** Share names starting with '.' too (`--hidden`). Default false. */
  readonly hidden?: boolean;
  /**
   * Serve it to strangers too (gossip-learnt peers of other pods) and announce its lookup key
   * when broadcasting (`--publish`). Recorded in the store, so it holds across daemon restarts
   * until `PATCH /api/contents/<hex> {published: false}` (`peapod unpublish`). Default false:
   * no change (a new content is served to pod members only; one already published stays so).
   */
  readonly publish?: boolean;
}

/** `PATCH /api/contents/<hex>`: change a stored content's settings. */
export interface ContentUpdate {
  /** Serve it to strangers (and announce it when broadcasting), or stop at once. */
  readonly published: boolean;
}

/** The answer to `POST /api/share`. */
export interface ShareAnswer {
  readonly contentId: string;
  readonly link: string;
  readonly name: string;
  readonly totalBytes: number;
  /** How many files the tree has. */
  readonly files: number;
  /** What the walk skipped and why (symbolic links, special files), one line each. */
  readonly skipped: readonly string[];
  /** Strangers are served it: `--publish` now, or an earlier share or `peapod publish`. */
  readonly published: boolean;
}

/** `POST /api/fetch`: fetch a content from the pod into files. */
export interface FetchRequest {
  /** The content ID, 64 lower-case hex digits. */
  readonly id: string;
  /** Absolute: the file (single-file content) or the directory the tree goes under. */
  readonly output?: string;
  /** Without `output`: the absolute directory the default name goes in (the CLI's cwd). */
  readonly directory?: string;
  /** The name from a `peapod://` link: the default output name when the manifest has none. */
  readonly name?: string;
  /** `--only` globs, relative to the tree's root. */
  readonly only?: readonly string[];
  readonly force?: boolean;
}

/**
 * A row of `GET /api/contents`: a stored content without its manifest, with its name and the
 * chunks held as `[start, end)` index ranges.
 */
export type ContentRow = Omit<StoredContent, 'manifest'> & {
  readonly name: string;
  readonly heldRanges: ReadonlyArray<{ readonly start: number; readonly end: number }>;
};

export class DaemonUnreachable extends Error {
  constructor(target: ApiTarget, cause: string) {
    super(
      `no PeaPod daemon answers on ${target.host}:${target.port} (${cause}). ` +
        'Start one with `peapod daemon` (and `peapod init` first on a new device).',
    );
  }
}

/** The daemon answered with an error status; `message` is its sentence. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The `ApiError` for a non-200 answer: the sentence of an `{error}` body, else the text. */
async function apiError(res: IncomingMessage): Promise<ApiError> {
  const text = await readAll(res);
  let message = text.trim();
  try {
    const body = JSON.parse(text) as { error?: unknown };
    if (typeof body.error === 'string') message = body.error;
  } catch {
    // not JSON: the text as it is
  }
  if (message === '') message = `the daemon answered HTTP ${res.statusCode ?? 0} with no reason`;
  return new ApiError(res.statusCode ?? 0, message);
}

/**
 * The daemon refused the caller (403, api-guard.ts). `code` is the body's (`ApiRefusalCodes`):
 * `PEAPOD_ERR_API_KEY` means this data directory's key is not the daemon's.
 */
export class ApiRefused extends Error {
  readonly code: string;

  constructor(target: ApiTarget, body: string) {
    let reason = body.trim();
    let code = 'PEAPOD_ERR_API_REFUSED';
    try {
      const parsed = JSON.parse(body) as { error?: unknown; code?: unknown };
      if (typeof parsed.error === 'string') reason = parsed.error;
      if (typeof parsed.code === 'string') code = parsed.code;
    } catch {
      // not JSON: keep the text as it came
    }
    super(
      code === ApiRefusalCodes.key
        ? `the PeaPod daemon on ${target.host}:${target.port} refused this device's API key: ` +
            'it runs with another data directory, or api.key changed after it started. Set ' +
            "PEAPOD_HOME to the daemon's data directory, or restart the daemon."
        : `the PeaPod daemon on ${target.host}:${target.port} refused this request: ${reason}.`,
    );
    this.code = code;
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
        headers: {
          [API_KEY_HEADER]: target.apiKey,
          ...(text === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (res) => {
        if (res.statusCode !== 403) return resolve(res);
        readAll(res).then(
          (body) => reject(new ApiRefused(target, body)),
          (error: Error) => reject(new DaemonUnreachable(target, error.message)),
        );
      },
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

/**
 * `GET /api/peers`; `refused` is absent from daemons that do not report it, `gossip` from
 * daemons that run without gossip.
 */
export interface PeersAnswer {
  readonly deviceId: string;
  readonly deviceName?: string;
  readonly pod?: string;
  readonly peers: PeerRow[];
  readonly refused?: ReadonlyArray<{
    address: string;
    reason: string;
    lastAt: string;
    count: number;
  }>;
  readonly gossip?: GossipAnswer;
}

export async function getPeers(target: ApiTarget): Promise<PeersAnswer> {
  const res = await call(target, 'GET', '/api/peers');
  if (res.statusCode !== 200) throw await apiError(res);
  return JSON.parse(await readAll(res)) as PeersAnswer;
}

/** Starts a job; for a file output, yields its events as they come. */
export async function* getEvents(target: ApiTarget, job: GetRequest): AsyncGenerator<JobEvent> {
  const res = await call(target, 'POST', '/api/get', job);
  if (res.statusCode !== 200) throw await apiError(res);
  yield* ndjson<JobEvent>(res);
}

/** Starts a job whose bytes come back in the response (`-o -`). */
export async function getStream(target: ApiTarget, job: GetRequest): Promise<IncomingMessage> {
  const res = await call(target, 'POST', '/api/get', job);
  if (res.statusCode !== 200) throw await apiError(res);
  return res;
}

/** Yields the NDJSON lines of a 200 answer as objects. */
async function* ndjson<T>(res: IncomingMessage): AsyncGenerator<T> {
  let pending = '';
  for await (const part of res) {
    pending += (part as Buffer).toString('utf8');
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() !== '') yield JSON.parse(line) as T;
    }
  }
}

/** `POST /api/share`. */
export async function shareContent(target: ApiTarget, job: ShareRequest): Promise<ShareAnswer> {
  const res = await call(target, 'POST', '/api/share', job);
  if (res.statusCode !== 200) throw await apiError(res);
  return JSON.parse(await readAll(res)) as ShareAnswer;
}

/** `POST /api/fetch`: yields the job's events as they come. */
export async function* fetchEvents(
  target: ApiTarget,
  job: FetchRequest,
): AsyncGenerator<ContentJobEvent> {
  const res = await call(target, 'POST', '/api/fetch', job);
  if (res.statusCode !== 200) throw await apiError(res);
  yield* ndjson<ContentJobEvent>(res);
}

/** `GET /api/contents`. */
export async function listContents(target: ApiTarget): Promise<ContentRow[]> {
  const res = await call(target, 'GET', '/api/contents');
  if (res.statusCode !== 200) throw await apiError(res);
  return (JSON.parse(await readAll(res)) as { contents: ContentRow[] }).contents;
}

/** `DELETE /api/contents/<hex>`: whether the store held it. */
export async function removeContent(target: ApiTarget, contentIdHex: string): Promise<boolean> {
  const res = await call(target, 'DELETE', `/api/contents/${contentIdHex}`);
  if (res.statusCode === 404) {
    await readAll(res);
    return false;
  }
  if (res.statusCode !== 200) throw await apiError(res);
  return (JSON.parse(await readAll(res)) as { removed: boolean }).removed;
}

/** `PATCH /api/contents/<hex>`: whether the store held it (then the update took effect). */
export async function updateContent(
  target: ApiTarget,
  contentIdHex: string,
  update: ContentUpdate,
): Promise<boolean> {
  const res = await call(target, 'PATCH', `/api/contents/${contentIdHex}`, update);
  if (res.statusCode === 404) {
    await readAll(res);
    return false;
  }
  if (res.statusCode !== 200) throw await apiError(res);
  await readAll(res);
  return true;
}

/** One cached object, as `GET /api/cache` lists it. */
export interface CacheRow {
  readonly key: string;
  readonly contentId: string;
  readonly bytes: number;
  readonly hits: number;
  readonly private: boolean;
  readonly etag: string | null;
  readonly storedAt: string;
  readonly lastUsedAt: string;
}

export interface CacheAnswer {
  /** False when the daemon runs without `--gateway`. */
  readonly running: boolean;
  readonly stats?: GatewayStats;
  readonly objects?: readonly CacheRow[];
}

/** `GET /api/cache`: the gateway cache's figures and objects. */
export async function getCache(target: ApiTarget): Promise<CacheAnswer> {
  const res = await call(target, 'GET', '/api/cache');
  if (res.statusCode !== 200) throw await apiError(res);
  return JSON.parse(await readAll(res)) as CacheAnswer;
}

/** `POST /api/cache/evict {prefix}`: how many objects were evicted. */
export async function evictCache(target: ApiTarget, prefix: string): Promise<number> {
  const res = await call(target, 'POST', '/api/cache/evict', { prefix });
  if (res.statusCode !== 200) throw await apiError(res);
  return (JSON.parse(await readAll(res)) as { evicted: number }).evicted;
}
