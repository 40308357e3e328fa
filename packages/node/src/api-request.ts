/**
 * The local API's request and answer format (daemon.ts serves it behind api-guard.ts): the bodies
 * of `POST /api/get`, `/api/share`, `/api/fetch` and `PATCH /api/contents/<hex>` read with a
 * size bound and validated into requests, and the content ID of `/api/contents/<hex>` (from the
 * local CLI, still checked like any input: a bad field is an error naming it, never a throw
 * from deeper down), and JSON answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ContentUpdate, FetchRequest, GetRequest, ShareRequest } from './api-client.js';

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

/** The body as a JSON object; `what` names the request in the error. */
function jsonObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** An absolute path without NUL (the file system refuses one anyway, less clearly). */
function isAbsolutePath(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('/') && !value.includes('\0');
}

/** Most `--only` globs one fetch takes, and the longest one (a tree path is at most 4096). */
const ONLY_GLOBS_MAX = 256;
const ONLY_GLOB_CHARS_MAX = 4096;

/** Validates a `POST /api/share` body: `{path}`, absolute. */
export function parseShareRequest(text: string): ShareRequest {
  const value = jsonObject(text);
  if (!isAbsolutePath(value['path'])) throw new Error('path must be an absolute path');
  const hidden = value['hidden'];
  if (hidden !== undefined && typeof hidden !== 'boolean') {
    throw new Error('hidden must be a boolean');
  }
  const publish = value['publish'];
  if (publish !== undefined && typeof publish !== 'boolean') {
    throw new Error('publish must be a boolean');
  }
  return {
    path: value['path'],
    ...(hidden === true ? { hidden } : {}),
    ...(publish === true ? { publish } : {}),
  };
}

/** Validates a `PATCH /api/contents/<hex>` body: `{published}`, a boolean, and nothing else. */
export function parseContentUpdate(text: string): ContentUpdate {
  const value = jsonObject(text);
  const unknown = Object.keys(value).filter((key) => key !== 'published');
  if (unknown.length > 0) {
    throw new Error(
      `unknown field ${JSON.stringify(unknown[0])}: a content update takes only published`,
    );
  }
  const published = value['published'];
  if (typeof published !== 'boolean') throw new Error('published must be true or false');
  return { published };
}

/** Validates a `POST /api/fetch` body: `{id, output?, directory?, name?, only?, force?}`. */
export function parseFetchRequest(text: string): FetchRequest {
  const value = jsonObject(text);
  const { id, output, directory, name, only, force } = value;
  if (typeof id !== 'string' || !/^[0-9a-f]{64}$/.test(id)) {
    throw new Error('id must be a content ID: 64 lower-case hex digits');
  }
  if (output !== undefined && !isAbsolutePath(output)) {
    throw new Error('output must be an absolute path');
  }
  if (directory !== undefined && !isAbsolutePath(directory)) {
    throw new Error('directory must be an absolute path');
  }
  if (output === undefined && directory === undefined) {
    throw new Error('give output, or directory for the default name');
  }
  if (name !== undefined && (typeof name !== 'string' || name.length > 255)) {
    throw new Error('name must be a string of at most 255 characters');
  }
  if (
    only !== undefined &&
    (!Array.isArray(only) ||
      only.length === 0 ||
      only.length > ONLY_GLOBS_MAX ||
      !only.every(
        (glob) => typeof glob === 'string' && glob !== '' && glob.length <= ONLY_GLOB_CHARS_MAX,
      ))
  ) {
    throw new Error(`only must be 1 to ${ONLY_GLOBS_MAX} non-empty glob strings`);
  }
  if (force !== undefined && typeof force !== 'boolean')
    throw new Error('force must be true or false');
  return {
    id,
    ...(output === undefined ? {} : { output }),
    ...(directory === undefined ? {} : { directory: directory as string }),
    ...(name === undefined ? {} : { name }),
    ...(only === undefined ? {} : { only: only as string[] }),
    force: force === true,
  };
}

/** The content ID of a `/api/contents/<hex>` path, or undefined when it names none. */
export function contentIdOfPath(pathname: string): string | undefined {
  const match = /^\/api\/contents\/([0-9a-f]{64})$/.exec(pathname);
  return match?.[1];
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
