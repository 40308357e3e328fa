/**
 * An origin that lies, for fault tests: one real HTTP server on 127.0.0.1 whose paths each
 * misbehave in one way. Every object has the same deterministic bytes (`objectBytes`), a
 * strong ETag and honest answers to the daemon's probe (`Range: bytes=0-0`), so downloads are
 * planned as pooled; the lie comes in every later answer (ranged or whole).
 *
 * Paths (any name after the mode works, e.g. `/short/x.bin`):
 * - `/good/`: an honest range server (the control).
 * - `/short/`: the body stops at half its Content-Length, with a clean close (FIN).
 * - `/reset/`: the body stops at half with a TCP reset.
 * - `/wrong-range/`: a 206 names a Content-Range one byte off from what was asked.
 * - `/wrong-total/`: a 206 states a different total length.
 * - `/new-etag/`: every later answer carries another ETag (the object "changed").
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { rawServer } from './http.js';

export const LIES = ['short', 'reset', 'wrong-range', 'wrong-total', 'new-etag'] as const;
export type Lie = (typeof LIES)[number];

/** The bytes of every object of size `sizeBytes`. */
export function objectBytes(sizeBytes: number): Buffer {
  const bytes = Buffer.alloc(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface LyingOrigin {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the origin; every object is `sizeBytes` long. */
export async function startLyingOrigin(sizeBytes: number): Promise<LyingOrigin> {
  const body = objectBytes(sizeBytes);
  const etag = `"${sha256Hex(body).slice(0, 16)}"`;
  return rawServer((req, res) => serve(req, res, body, etag));
}

function serve(req: IncomingMessage, res: ServerResponse, body: Buffer, etag: string): void {
  const mode = (req.url ?? '/').split('/')[1] ?? '';
  const total = body.length;
  const match = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = total; // exclusive
  let status = 200;
  if (match !== null) {
    start = Number(match[1]);
    end = match[2] === '' ? total : Math.min(total, Number(match[2]) + 1);
    status = 206;
  }
  const late = req.headers.range !== 'bytes=0-0'; // every answer but the probe's lies
  const headers: Record<string, string> = {
    'accept-ranges': 'bytes',
    'content-type': 'application/octet-stream',
    etag: mode === 'new-etag' && late ? `"other${etag.slice(1)}` : etag,
    'content-length': String(end - start),
  };
  if (status === 206) {
    const shift = mode === 'wrong-range' && late ? 1 : 0;
    const stated = mode === 'wrong-total' && late ? total + 1 : total;
    headers['content-range'] = `bytes ${start + shift}-${end - 1 + shift}/${stated}`;
  }
  res.writeHead(status, headers);
  const slice = body.subarray(start, end);
  if (mode === 'short' || mode === 'reset') {
    if (req.headers.range === 'bytes=0-0') {
      res.end(slice); // the probe is answered honestly
      return;
    }
    res.write(slice.subarray(0, Math.ceil(slice.length / 2)), () => {
      if (mode === 'short') res.socket?.end();
      else res.socket?.resetAndDestroy();
    });
    return;
  }
  res.end(slice);
}
