/**
 * Reading a request body under the size limit. The declared Content-Length is checked before
 * any byte is read, and the running total while reading, so an oversized body costs at most
 * `bytesMax` bytes of memory and is refused with 413 (the server then closes the connection
 * rather than drain the rest). A body must be `application/json` (charset, if named, UTF-8).
 */
import type { IncomingMessage } from 'node:http';
import { accepted, refused, type Checked } from './refusal.js';

/** Refuses a Content-Type other than application/json. */
export function checkContentType(request: IncomingMessage): Checked<true> {
  const type = request.headers['content-type'];
  const [media = '', ...parameters] = (type ?? '')
    .split(';')
    .map((part) => part.trim().toLowerCase());
  const charsetOk = parameters.every(
    (parameter) => !parameter.startsWith('charset=') || /^charset="?utf-8"?$/.test(parameter),
  );
  if (media !== 'application/json' || !charsetOk)
    return refused(
      'unsupported-media-type',
      `The body must be JSON: send Content-Type: application/json (got ${JSON.stringify((type ?? 'none').slice(0, 60))}).`,
    );
  return accepted(true);
}

/** The whole body, or a refusal; `undefined` when the client went away mid-body. */
export function readBody(
  request: IncomingMessage,
  bytesMax: number,
): Promise<Checked<Uint8Array> | undefined> {
  const tooLarge = refused<Uint8Array>(
    'too-large',
    `The body is over ${bytesMax} bytes, the tracker's limit: send less (docs/tracker.md, "Limits").`,
  );
  const declared = request.headers['content-length'];
  if (declared !== undefined && Number(declared) > bytesMax) return Promise.resolve(tooLarge);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const settle = (result: Checked<Uint8Array> | undefined): void => {
      if (settled) return;
      settled = true;
      request.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > bytesMax) return settle(tooLarge);
      chunks.push(chunk);
    };
    request.on('data', onData);
    request.on('end', () => {
      const body = Buffer.concat(chunks, total);
      settle(accepted(new Uint8Array(body.buffer, body.byteOffset, body.length)));
    });
    request.on('error', () => settle(undefined));
    request.on('close', () => settle(undefined));
  });
}
