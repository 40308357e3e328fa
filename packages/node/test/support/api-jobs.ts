/**
 * Jobs through the daemon's local API for fault tests, over real HTTP: one request helper
 * (`apiRequest`, the one place that adds the API key header), `runJob` for a
 * `POST /api/get` with a file output, read to its end, and `serves` for "the daemon still
 * answers". They report what the daemon said, never throw on a refusal, so a test can assert
 * on every outcome.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { ApiTarget } from '../../src/api-client.js';
import { API_KEY_HEADER } from '../../src/api-guard.js';
import type { JobEvent } from '../../src/download-job.js';

/** An API request, sent (`body` as JSON); the one place that sets the request's headers. */
export function sendApiRequest(
  api: ApiTarget,
  method: string,
  path: string,
  body?: unknown,
): ClientRequest {
  const req = request({
    host: api.host,
    port: api.port,
    method,
    path,
    headers: { 'content-type': 'application/json', [API_KEY_HEADER]: api.apiKey },
  });
  req.end(body === undefined ? undefined : JSON.stringify(body));
  return req;
}

/** One API request's response. Rejects only when the daemon does not answer. */
export function apiRequest(
  api: ApiTarget,
  method: string,
  path: string,
  body?: unknown,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = sendApiRequest(api, method, path, body);
    req.once('response', resolve);
    req.once('error', reject);
  });
}

async function readAll(res: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of res) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

/** How a job ended: refused before it started (with the HTTP status), failed, or done. */
export type JobOutcome =
  | { readonly kind: 'refused'; readonly status: number; readonly message: string }
  | { readonly kind: 'failed'; readonly message: string; readonly events: readonly JobEvent[] }
  | {
      readonly kind: 'done';
      readonly done: Extract<JobEvent, { type: 'done' }>;
      readonly events: readonly JobEvent[];
    };

/** Posts a job (any body: the fuzz sends odd ones) and reads its NDJSON events to the end. */
export async function runJob(api: ApiTarget, job: unknown): Promise<JobOutcome> {
  const res = await apiRequest(api, 'POST', '/api/get', job);
  if (res.statusCode !== 200) {
    const text = await readAll(res);
    let message = text;
    try {
      message = (JSON.parse(text) as { error: string }).error;
    } catch {
      // not JSON: the raw text is the message
    }
    return { kind: 'refused', status: res.statusCode ?? 0, message };
  }
  const events: JobEvent[] = [];
  for (const line of (await readAll(res)).split('\n')) {
    if (line.trim() === '') continue;
    const event = JSON.parse(line) as JobEvent;
    events.push(event);
    if (event.type === 'done') return { kind: 'done', done: event, events };
    if (event.type === 'error') return { kind: 'failed', message: event.message, events };
  }
  return { kind: 'failed', message: 'the event stream ended with no outcome', events };
}

/**
 * Starts a job and resolves once the daemon accepted it (status 200 and its first event) or
 * refused it; `outcome` then reads it to its end.
 */
export async function startJob(
  api: ApiTarget,
  job: unknown,
): Promise<{ accepted: boolean; outcome: Promise<JobOutcome>; cancel(): void }> {
  const res = await apiRequest(api, 'POST', '/api/get', job);
  if (res.statusCode !== 200) {
    const text = await readAll(res);
    return {
      accepted: false,
      outcome: Promise.resolve({ kind: 'refused', status: res.statusCode ?? 0, message: text }),
      cancel: () => undefined,
    };
  }
  const events: JobEvent[] = [];
  let pending = '';
  let firstEvent: () => void = () => undefined;
  const first = new Promise<void>((resolve) => (firstEvent = resolve));
  const outcome = new Promise<JobOutcome>((resolve) => {
    res.on('data', (part: Buffer) => {
      pending += part.toString('utf8');
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const event = JSON.parse(pending.slice(0, newline)) as JobEvent;
        pending = pending.slice(newline + 1);
        events.push(event);
        firstEvent();
        if (event.type === 'done') resolve({ kind: 'done', done: event, events });
        if (event.type === 'error') resolve({ kind: 'failed', message: event.message, events });
      }
    });
    res.on('close', () => {
      firstEvent();
      resolve({ kind: 'failed', message: 'the event stream ended with no outcome', events });
    });
  });
  await first;
  return { accepted: true, outcome, cancel: () => res.destroy() };
}

/** True when the daemon answers `GET /api/peers` with 200. */
export async function serves(api: ApiTarget): Promise<boolean> {
  try {
    const res = await apiRequest(api, 'GET', '/api/peers');
    await readAll(res);
    return res.statusCode === 200;
  } catch {
    return false;
  }
}
