/**
 * The local API's request and answer format (daemon.ts serves it behind api-guard.ts): the body
 * of `POST /api/get` read with a size bound and validated into a `GetRequest` (from the local
 * CLI, still checked like any input: a bad field is an error naming it, never a throw from
 * deeper down), and JSON answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GetRequest } from './api-client.js';

/** A job request is a few hundred bytes; this bounds what a client can make the daemon hold. */
const BODY_BYTES_MAX = 1 << 20;

/** The request body as UTF-8 text; rejects a body over 1 MiB. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const part of req) {
    length += (part as Buffer).length;
    if (length > BODY_BYTES_MAX) throw new Error('request body over 1 MiB');
    parts.push(part as Buffer);
  }
  // Decoded once, whole: a character split across two chunks stays one character.
  return Buffer.concat(parts).toString('utf8');
}

/** Validates a `POST /api/get` body (from the local CLI, still checked like any input). */
export function parseGetRequest(text: string): GetRequest {
  let value: Partial<GetRequest>;
  try {
    value = JSON.parse(text) as Partial<GetRequest>;
  } catch {
    throw new Error('the body is not JSON');
  }
  if (typeof value.url !== 'string' || !/^https?:\/\//i.test(value.url)) {
    throw new Error('url must be an http:// or https:// URL');
  }
  if (typeof value.output !== 'string' || (value.output !== '-' && !value.output.startsWith('/'))) {
    throw new Error('output must be an absolute path or "-"');
  }
  if (value.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(value.sha256)) {
    throw new Error('sha256 must be 64 lowercase hex digits');
  }
  const headers = Array.isArray(value.headers) ? value.headers : [];
  for (const header of headers) {
    if (typeof header?.name !== 'string' || typeof header.value !== 'string') {
      throw new Error('headers must be [{name, value}]');
    }
  }
  return {
    url: value.url,
    output: value.output,
    ...(value.sha256 === undefined ? {} : { sha256: value.sha256 }),
    pool: value.pool !== false,
    force: value.force === true,
    headers,
    strict: value.strict === true,
  };
}

/** Answers `status` with `body` as JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
