/**
 * The tracker client: what a daemon calls to register, discover and report (docs/tracker.md).
 *
 * Every call that changes state is signed by the device key (`signer`): the body names the
 * device's public key and the wall-clock time, and an Ed25519 signature covers the method, the
 * path and the body (signed-request.ts), so nobody can register, refresh or remove another
 * device, and a captured request cannot be replayed (the tracker refuses a timestamp outside
 * +-30 s, or not above the last one it accepted from this device: this client makes its
 * timestamps strictly increasing, so send one signed request at a time per device).
 * Bootstrap registrations carry the device's own signed peer record (core gossip/peer-record.ts,
 * broadcast and bootstrap flags set), which the tracker verifies and hands out verbatim: a
 * tracker cannot invent or move a peer's address either. Answers are checked for shape; the
 * records in them are bytes the caller verifies (`openPeerRecord`) before using.
 *
 * Errors: a 4xx/5xx answer is a `TrackerError` with the status, the tracker's sentence and its
 * `code` (e.g. "stale-timestamp"); no answer (unreachable, timeout) or an unreadable one is a
 * `TrackerError` with status 0 and code "unreachable", "timeout" or "bad-answer".
 */
import { createHash } from 'node:crypto';
import { SIGNATURE_HEADER, signedRequestMessage } from './signed-request.js';

/** Signs with the device's Ed25519 key. */
export interface TrackerSigner {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export interface TrackerClientOptions {
  /** Per request; default 10 s. */
  readonly timeoutMs?: number;
  /** Wall clock (Unix ms); default Date.now. */
  readonly now?: () => number;
  /** Sent as `Authorization: Bearer` on every request (a tracker run with --cluster-token-file). */
  readonly clusterToken?: string;
}

/** A cluster node as the control plane lists it. */
export interface TrackerNode {
  readonly deviceIdHex: string;
  /** Its signed peer record (verifiable by the caller). */
  readonly record: Uint8Array;
  readonly lastHeartbeatMs: number;
  readonly expiresAtMs: number;
}

/** A 4xx/5xx answer (or none): the status (0 without an answer), the sentence and a code. */
export class TrackerError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The tracker's refusal code, or "unreachable" / "timeout" / "bad-answer" (status 0). */
    readonly code: string = 'http-error',
  ) {
    super(message);
    this.name = 'TrackerError';
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

function unbase64(text: unknown): Uint8Array {
  if (typeof text !== 'string' || !BASE64.test(text)) throw badAnswer('a record is not base64');
  return new Uint8Array(Buffer.from(text, 'base64'));
}

function badAnswer(detail: string): TrackerError {
  return new TrackerError(
    0,
    `The tracker's answer is not what the API promises: ${detail}.`,
    'bad-answer',
  );
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw badAnswer(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function integer(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw badAnswer(`${what} is not an integer`);
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw badAnswer(`${what} is not a string`);
  return value;
}

export class TrackerClient {
  private lastTimestampMs = 0;

  constructor(
    readonly baseUrl: string,
    readonly signer: TrackerSigner,
    readonly options: TrackerClientOptions = {},
  ) {}

  /** The bootstrap nodes the tracker holds (signed records) and the address it sees us at. */
  async discover(limit?: number): Promise<{ records: Uint8Array[]; observedAddress: string }> {
    const query = limit === undefined ? '' : `?limit=${encodeURIComponent(String(limit))}`;
    const answer = object(
      await this.request('GET', `/api/v1/bootstrap/discover${query}`),
      'the answer',
    );
    if (!Array.isArray(answer['records'])) throw badAnswer('records is not an array');
    return {
      records: answer['records'].map(unbase64),
      observedAddress: text(answer['observedAddress'], 'observedAddress'),
    };
  }

  /** Registers (or refreshes) this device as a bootstrap node; `record` must broadcast. */
  async register(record: Uint8Array): Promise<{ expiresAtMs: number; observedAddress: string }> {
    const answer = object(
      await this.request('POST', '/api/v1/bootstrap/register', { record: base64(record) }),
      'the answer',
    );
    return {
      expiresAtMs: integer(answer['expiresAtMs'], 'expiresAtMs'),
      observedAddress: text(answer['observedAddress'], 'observedAddress'),
    };
  }

  /** Removes this device's bootstrap registration (already gone counts as done). */
  async unregister(): Promise<void> {
    try {
      await this.signedRequest('POST', '/api/v1/bootstrap/unregister', {});
    } catch (error) {
      if (error instanceof TrackerError && error.code === 'not-registered') return;
      throw error;
    }
  }

  /** Control plane: register (or refresh) a cluster node with its signed record. */
  async registerNode(record: Uint8Array): Promise<{ expiresAtMs: number }> {
    const answer = object(
      await this.request('POST', '/api/v1/nodes', { record: base64(record) }),
      'the answer',
    );
    return { expiresAtMs: integer(answer['expiresAtMs'], 'expiresAtMs') };
  }

  /** Control plane: heartbeat, with the contents this node holds (replaces the last list). */
  async heartbeat(contentIds: readonly Uint8Array[]): Promise<{ expiresAtMs: number }> {
    const deviceIdHex = createHash('sha256').update(this.signer.publicKey).digest('hex');
    const answer = object(
      await this.signedRequest('PUT', `/api/v1/nodes/${deviceIdHex}/heartbeat`, {
        contentIds: contentIds.map(hex),
      }),
      'the answer',
    );
    return { expiresAtMs: integer(answer['expiresAtMs'], 'expiresAtMs') };
  }

  /** Control plane: live cluster nodes. */
  async nodes(): Promise<TrackerNode[]> {
    const answer = object(await this.request('GET', '/api/v1/nodes'), 'the answer');
    if (!Array.isArray(answer['nodes'])) throw badAnswer('nodes is not an array');
    return answer['nodes'].map((entry: unknown) => {
      const node = object(entry, 'a node');
      const deviceIdHex = text(node['deviceIdHex'], 'deviceIdHex');
      if (!HEX64.test(deviceIdHex)) throw badAnswer('deviceIdHex is not 64 hex characters');
      return {
        deviceIdHex,
        record: unbase64(node['record']),
        lastHeartbeatMs: integer(node['lastHeartbeatMs'], 'lastHeartbeatMs'),
        expiresAtMs: integer(node['expiresAtMs'], 'expiresAtMs'),
      };
    });
  }

  /** Control plane: which live nodes hold each content (hex content ID -> hex Device IDs). */
  async chunkLocations(contentIds: readonly Uint8Array[]): Promise<Map<string, string[]>> {
    const answer = object(
      await this.request('POST', '/api/v1/chunks/locations', { contentIds: contentIds.map(hex) }),
      'the answer',
    );
    const locations = object(answer['locations'], 'locations');
    const result = new Map<string, string[]>();
    for (const [contentId, holders] of Object.entries(locations)) {
      if (
        !Array.isArray(holders) ||
        !holders.every((id) => typeof id === 'string' && HEX64.test(id))
      )
        throw badAnswer(`the holders of ${contentId.slice(0, 16)} are not hex device IDs`);
      result.set(contentId, holders as string[]);
    }
    return result;
  }

  /** A strictly increasing wall-clock timestamp (the tracker refuses one not above the last). */
  private nextTimestampMs(): number {
    const now = Math.floor((this.options.now ?? Date.now)());
    this.lastTimestampMs = Math.max(now, this.lastTimestampMs + 1);
    return this.lastTimestampMs;
  }

  private async signedRequest(
    method: 'POST' | 'PUT',
    path: string,
    fields: object,
  ): Promise<unknown> {
    const timestampMs = this.nextTimestampMs();
    const body = Buffer.from(
      JSON.stringify({ publicKey: hex(this.signer.publicKey), timestampMs, ...fields }),
    );
    const signature = this.signer.sign(signedRequestMessage(method, path, timestampMs, body));
    return this.send(method, path, body, { [SIGNATURE_HEADER]: hex(signature) });
  }

  private async request(method: 'GET' | 'POST', path: string, json?: object): Promise<unknown> {
    return this.send(
      method,
      path,
      json === undefined ? undefined : Buffer.from(JSON.stringify(json)),
      {},
    );
  }

  private async send(
    method: string,
    path: string,
    body: Buffer | undefined,
    headers: Record<string, string>,
  ): Promise<unknown> {
    const url = `${this.baseUrl.replace(/\/+$/, '')}${path}`;
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.options.clusterToken === undefined
            ? {}
            : { authorization: `Bearer ${this.options.clusterToken}` }),
          ...headers,
        },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const name = error instanceof Error ? error.name : '';
      if (name === 'TimeoutError')
        throw new TrackerError(
          0,
          `The tracker at ${this.baseUrl} did not answer within ${timeoutMs} ms.`,
          'timeout',
        );
      const cause =
        error instanceof Error && error.cause instanceof Error
          ? error.cause.message
          : String(error);
      throw new TrackerError(
        0,
        `The tracker at ${this.baseUrl} is unreachable (${cause}).`,
        'unreachable',
      );
    }
    let answer: unknown;
    try {
      answer = await response.json();
    } catch {
      throw new TrackerError(
        response.ok ? 0 : response.status,
        `The tracker at ${this.baseUrl} answered ${response.status} without JSON.`,
        'bad-answer',
      );
    }
    if (!response.ok) {
      const refusal =
        typeof answer === 'object' && answer !== null ? (answer as Record<string, unknown>) : {};
      throw new TrackerError(
        response.status,
        typeof refusal['error'] === 'string'
          ? refusal['error']
          : `The tracker answered ${response.status}.`,
        typeof refusal['code'] === 'string' ? refusal['code'] : 'http-error',
      );
    }
    return answer;
  }
}
