/**
 * Request validators: bytes and JSON from a client in, a typed value or a `Refusal` out. They
 * never throw on any input (validators.test.ts feeds them arbitrary values), and they are
 * strict: a body is one JSON object with exactly the fields an endpoint names, each of the
 * named type and range, so a typo is refused with a sentence instead of silently ignored.
 */
import { PeerRecordLimits } from '@peapod/core';
import { accepted, refused, type Checked } from './refusal.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const RECORD_BASE64_CHARS_MAX = Math.ceil(PeerRecordLimits.recordBytes / 3) * 4;

export type JsonObject = Readonly<Record<string, unknown>>;

/** Fields every signed request carries (signed-request.ts). */
export interface SignedFields {
  readonly publicKey: Uint8Array;
  readonly timestampMs: number;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** The body as one JSON object. */
export function parseJsonObject(body: Uint8Array): Checked<JsonObject> {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return refused('bad-json', 'The body is not UTF-8: send a JSON object encoded as UTF-8.');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : 'unreadable';
    return refused('bad-json', `The body is not JSON (${detail}): send one JSON object.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return refused('bad-json', `The body is ${describe(value)}: send one JSON object.`);
  return accepted(value as JsonObject);
}

/** Refuses a field outside `allowed` and a missing one. */
export function checkFields(body: JsonObject, allowed: readonly string[]): Checked<JsonObject> {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key))
      return refused(
        'bad-request',
        `Unknown field ${JSON.stringify(key.slice(0, 40))}: this endpoint takes ${allowed.join(', ')}.`,
      );
  }
  for (const key of allowed) {
    if (!Object.hasOwn(body, key))
      return refused(
        'bad-request',
        `Missing field "${key}": this endpoint takes ${allowed.join(', ')}.`,
      );
  }
  return accepted(body);
}

/** A standard (padded) base64 peer record, decoded. */
export function parseRecordField(value: unknown): Checked<Uint8Array> {
  if (typeof value !== 'string')
    return refused(
      'bad-request',
      `"record" is ${describe(value)}: send the signed peer record in base64.`,
    );
  if (value.length === 0 || value.length > RECORD_BASE64_CHARS_MAX)
    return refused(
      'bad-request',
      `"record" is ${value.length} characters: a peer record in base64 is 1 to ${RECORD_BASE64_CHARS_MAX}.`,
    );
  if (!BASE64.test(value))
    return refused(
      'bad-request',
      '"record" is not standard base64 (A-Z a-z 0-9 + /, padded with =).',
    );
  const bytes = Buffer.from(value, 'base64');
  // Canonical only: unused low bits set in the last character would give a second spelling of
  // the same bytes.
  if (bytes.toString('base64') !== value)
    return refused('bad-request', '"record" is not canonical base64 (nonzero padding bits).');
  return accepted(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
}

/** A 32-byte value as 64 lowercase hex characters. */
export function parseHex32(name: string, value: unknown): Checked<Uint8Array> {
  if (typeof value !== 'string' || !HEX64.test(value))
    return refused(
      'bad-request',
      `"${name}" must be 64 lowercase hex characters (32 bytes); got ${describe(value)}` +
        (typeof value === 'string' ? ` of ${value.length} characters.` : '.'),
    );
  return accepted(new Uint8Array(Buffer.from(value, 'hex')));
}

/** Wall-clock milliseconds: a non-negative safe integer. */
export function parseTimestamp(value: unknown): Checked<number> {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    return refused(
      'bad-request',
      `"timestampMs" must be an integer number of milliseconds since 1970 (Date.now()); got ${describe(value)}.`,
    );
  return accepted(value);
}

/** `publicKey` and `timestampMs` of a signed request body. */
export function parseSignedFields(body: JsonObject): Checked<SignedFields> {
  const publicKey = parseHex32('publicKey', body['publicKey']);
  if (!publicKey.ok) return publicKey;
  const timestampMs = parseTimestamp(body['timestampMs']);
  if (!timestampMs.ok) return timestampMs;
  return accepted({ publicKey: publicKey.value, timestampMs: timestampMs.value });
}

/** A list of distinct content IDs (64 lowercase hex each), at most `max`. */
export function parseContentIds(
  value: unknown,
  max: number,
  allowEmpty: boolean,
): Checked<string[]> {
  if (!Array.isArray(value))
    return refused(
      'bad-request',
      `"contentIds" must be an array of hex content IDs; got ${describe(value)}.`,
    );
  if (value.length > max)
    return refused(
      'bad-request',
      `"contentIds" lists ${value.length}: at most ${max} per request.`,
    );
  if (value.length === 0 && !allowEmpty)
    return refused('bad-request', '"contentIds" is empty: name at least one content ID.');
  const seen = new Set<string>();
  for (const [index, id] of value.entries()) {
    if (typeof id !== 'string' || !HEX64.test(id))
      return refused(
        'bad-request',
        `"contentIds"[${index}] must be 64 lowercase hex characters (a content ID).`,
      );
    if (seen.has(id))
      return refused(
        'bad-request',
        `"contentIds"[${index}] repeats ${id.slice(0, 16)}...: list each once.`,
      );
    seen.add(id);
  }
  return accepted([...seen]);
}

/** The `PeaPod-Signature` header: 128 lowercase hex characters. */
export function parseSignatureHeader(value: string | string[] | undefined): Checked<Uint8Array> {
  if (value === undefined)
    return refused(
      'unsigned',
      'This request must be signed: send the PeaPod-Signature header (docs/tracker.md, "Signed requests").',
    );
  if (typeof value !== 'string' || !HEX128.test(value))
    return refused(
      'unsigned',
      'PeaPod-Signature must be one header of 128 lowercase hex characters.',
    );
  return accepted(new Uint8Array(Buffer.from(value, 'hex')));
}

/** A `limit` query parameter: absent means `fallback`; else an integer 1..max. */
export function parseLimit(query: URLSearchParams, fallback: number, max: number): Checked<number> {
  const values = query.getAll('limit');
  if (values.length === 0) return accepted(fallback);
  const text = values[0]!;
  if (values.length > 1 || !/^[0-9]{1,4}$/.test(text) || Number(text) < 1 || Number(text) > max)
    return refused('bad-request', `"limit" must be one integer from 1 to ${max}.`);
  return accepted(Number(text));
}

/** Refuses any query parameter but `allowed`. */
export function checkQuery(
  query: URLSearchParams,
  allowed: readonly string[],
): Checked<URLSearchParams> {
  for (const key of query.keys()) {
    if (!allowed.includes(key))
      return refused(
        'bad-request',
        `Unknown query parameter ${JSON.stringify(key.slice(0, 40))}` +
          (allowed.length === 0
            ? ': this endpoint takes none.'
            : `: this endpoint takes ${allowed.join(', ')}.`),
      );
  }
  return accepted(query);
}
