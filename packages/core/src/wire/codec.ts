/**
 * Wire codec of protocol version 1: `WireMessage` <-> frame bytes (docs/protocol.md, "Frames"
 * and "Messages"; the types and limits are in messages.ts).
 *
 * A frame is `[u8 type][body]` and holds exactly one message; the secure session carries one
 * frame per AEAD record, so a frame has no length of its own and ends where the record ends.
 * Integers are big-endian and fixed width; a u64 travels as two u32 halves and must not exceed
 * Number.MAX_SAFE_INTEGER; strings are UTF-8 with a u16 byte-length prefix; fixed-size byte
 * strings (hashes) have no prefix; a payload that ends the frame (DATA bytes, RPC bodies,
 * unknown bodies) has no prefix either: it is the rest of the frame.
 *
 * Encoding throws on any out-of-bounds field (caller misuse, STYLE.md section 5 kind 2).
 * Decoding never throws on any input bytes: it returns `{ ok: false, reason, detail }` and the
 * link layer (peer-link.ts) turns that into GOODBYE(reason) (kind 1). Both directions apply the SAME field rules
 * (the `*Problem` functions below are shared), so the encoding is canonical: every message the
 * encoder accepts decodes to a deep-equal message, and every frame the decoder accepts
 * re-encodes to identical bytes. There is exactly one valid encoding of each message.
 *
 * State: none. Every function here is pure.
 */
import { utf8Encode } from '../bytes.js';
import { invalidArgument } from '../errors.js';
import { FrameDecodeError, FrameReader, malformed } from './frame-reader.js';
import { FrameWriter } from './frame-writer.js';
import {
  GOSSIP_TYPE_CODES,
  Limits,
  MAX_FRAME_BYTES,
  MessageType,
  TransferStatus,
} from './messages.js';
import type {
  ChunkAnnounceMessage,
  ChunkRemoveMessage,
  FetchAssignMessage,
  HelloMessage,
  HttpHeader,
  IndexRange,
  StatusMessage,
  UrlAnswerEntry,
  UrlAnswerMessage,
  WireMessage,
} from './messages.js';
import { ReasonCode } from './reason-codes.js';

/** Bytes of a SHA-256 hash field (chunk hash, content ID). */
export const HASH_BYTES = 32;

/** Bytes before the payload of a DATA frame: type (1) + requestId (4) + offset (8). */
export const DATA_HEADER_BYTES = 13;

/** Largest payload of one DATA frame: MAX_FRAME_BYTES minus the DATA header (65506). */
export const MAX_DATA_BYTES = MAX_FRAME_BYTES - DATA_HEADER_BYTES;

/** The outcome of `decodeMessage`: a message, or why the frame is invalid. */
export type DecodeResult =
  | { readonly ok: true; readonly message: WireMessage }
  | { readonly ok: false; readonly reason: ReasonCode; readonly detail: string };

const U8_MAX = 0xff;
const U16_MAX = 0xffff;
const U32_MAX = 0xffff_ffff;

/** HEARTBEAT's kind byte. */
const HEARTBEAT_PING = 0;
const HEARTBEAT_PONG = 1;

/** Bytes of one encoded IndexRange: u32 start + u32 end. */
const RANGE_BYTES = 8;

const knownTypeCodes: ReadonlySet<number> = new Set(Object.values(MessageType));
const transferStatusValues: ReadonlySet<number> = new Set(Object.values(TransferStatus));

// ---------------------------------------------------------------------------------------------
// Field rules shared by the encoder and the decoder. Each returns a problem or undefined.

function versionProblem(versionMin: number, versionMax: number): string | undefined {
  if (versionMin === 0) return 'version 0 is reserved; versions start at 1';
  if (versionMax < versionMin) return `versionMax ${versionMax} is below versionMin ${versionMin}`;
  return undefined;
}

function dataExtentProblem(offset: number, length: number): string | undefined {
  if (length === 0) return 'a DATA frame carries at least one byte';
  if (offset + length > Number.MAX_SAFE_INTEGER) return 'offset + length exceeds 2^53 - 1';
  return undefined;
}

function transferStatusProblem(status: number): string | undefined {
  return transferStatusValues.has(status) ? undefined : `unknown TransferStatus ${status}`;
}

function rangeProblem(start: number, end: number, previousEnd: number): string | undefined {
  if (end <= start) return `end ${end} must be greater than start ${start}`;
  if (start < previousEnd) {
    return `start ${start} is below the previous range's end ${previousEnd} (ranges must be sorted and must not overlap)`;
  }
  return undefined;
}

function fetchRangeProblem(rangeStart: number, rangeEnd: number): string | undefined {
  return rangeEnd > rangeStart
    ? undefined
    : `rangeEnd ${rangeEnd} must be greater than rangeStart ${rangeStart}`;
}

/** RFC 9110 section 5.6.2 `token`: the characters a header name may use. */
function isTokenChar(code: number): boolean {
  return (
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x30 && code <= 0x39) || // 0-9
    "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code))
  );
}

function headerNameProblem(name: string): string | undefined {
  for (let i = 0; i < name.length; i++) {
    if (!isTokenChar(name.charCodeAt(i))) return 'not an HTTP token (RFC 9110 section 5.6.2)';
  }
  return undefined;
}

/**
 * A header value must not carry control characters other than HTAB (RFC 9110 section 5.5): a CR
 * or LF would let the sender inject extra header lines into the helper's origin request.
 */
function headerValueProblem(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) {
      return `contains control character 0x${code.toString(16).padStart(2, '0')}`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Encoder-side argument checks. Each throws PEAPOD_ERR_INVALID_ARGUMENT naming the field.

function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (value instanceof Uint8Array) return `a Uint8Array of ${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  return `a value of type ${typeof value}`;
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalidArgument(field, `must be an integer in [${min}, ${max}], got ${describe(value)}`);
  }
  return value;
}

function checkU64(field: string, value: unknown): number {
  return checkInteger(field, value, 0, Number.MAX_SAFE_INTEGER);
}

function checkBytes(field: string, value: unknown, minBytes: number, maxBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    invalidArgument(field, `must be a Uint8Array, got ${describe(value)}`);
  }
  if (value.length < minBytes || value.length > maxBytes) {
    const bounds = minBytes === maxBytes ? `exactly ${minBytes}` : `${minBytes} to ${maxBytes}`;
    invalidArgument(field, `must be ${bounds} bytes, got ${value.length}`);
  }
  return value;
}

/** A lone UTF-16 surrogate has no UTF-8 form; TextEncoder would silently replace it. */
const loneSurrogate = /\p{Surrogate}/u;

/** Returns the UTF-8 bytes of a string field after checking its type and byte length. */
function checkString(
  field: string,
  value: unknown,
  minBytes: number,
  maxBytes: number,
): Uint8Array {
  if (typeof value !== 'string') invalidArgument(field, `must be a string, got ${describe(value)}`);
  if (loneSurrogate.test(value)) {
    invalidArgument(field, 'contains a lone UTF-16 surrogate, which has no UTF-8 encoding');
  }
  const bytes = utf8Encode(value);
  if (bytes.length < minBytes) {
    invalidArgument(field, `must be at least ${minBytes} UTF-8 bytes, got ${bytes.length}`);
  }
  if (bytes.length > maxBytes) {
    invalidArgument(field, `must be at most ${maxBytes} UTF-8 bytes, got ${bytes.length}`);
  }
  return bytes;
}

function checkRule(field: string, problem: string | undefined): void {
  if (problem !== undefined) invalidArgument(field, problem);
}

function checkFrameSize(field: string, size: number): void {
  if (size > MAX_FRAME_BYTES) {
    invalidArgument(
      field,
      `the frame would be ${size} bytes, above MAX_FRAME_BYTES (${MAX_FRAME_BYTES})`,
    );
  }
}

/** `minCount`: 0 for CHUNK_ANNOUNCE (no ranges: interest only, docs/protocol.md 6.8), else 1. */
function checkRanges(field: string, value: unknown, minCount: number): readonly IndexRange[] {
  if (!Array.isArray(value)) invalidArgument(field, `must be an array, got ${describe(value)}`);
  const ranges = value as readonly unknown[];
  if (ranges.length < minCount || ranges.length > Limits.announceRanges) {
    invalidArgument(
      field,
      `must hold ${minCount} to ${Limits.announceRanges} ranges, got ${ranges.length}`,
    );
  }
  let previousEnd = 0;
  for (let i = 0; i < ranges.length; i++) {
    const range = ranges[i] as Partial<IndexRange> | null | undefined;
    if (typeof range !== 'object' || range === null) {
      invalidArgument(`${field}[${i}]`, `must be an object, got ${describe(range)}`);
    }
    const start = checkInteger(`${field}[${i}].start`, range.start, 0, U32_MAX);
    const end = checkInteger(`${field}[${i}].end`, range.end, 0, U32_MAX);
    checkRule(`${field}[${i}]`, rangeProblem(start, end, previousEnd));
    previousEnd = end;
  }
  return value as readonly IndexRange[];
}

interface EncodedHeader {
  readonly name: Uint8Array;
  readonly value: Uint8Array;
}

function checkHeaders(field: string, value: unknown): EncodedHeader[] {
  if (!Array.isArray(value)) invalidArgument(field, `must be an array, got ${describe(value)}`);
  const headers = value as readonly unknown[];
  if (headers.length > Limits.headerCount) {
    invalidArgument(
      field,
      `must hold at most ${Limits.headerCount} headers, got ${headers.length}`,
    );
  }
  return headers.map((item, i) => {
    const header = item as Partial<HttpHeader> | null | undefined;
    if (typeof header !== 'object' || header === null) {
      invalidArgument(`${field}[${i}]`, `must be an object, got ${describe(header)}`);
    }
    const name = checkString(`${field}[${i}].name`, header.name, 1, Limits.headerNameBytes);
    checkRule(`${field}[${i}].name`, headerNameProblem(header.name as string));
    const encodedValue = checkString(
      `${field}[${i}].value`,
      header.value,
      0,
      Limits.headerValueBytes,
    );
    checkRule(`${field}[${i}].value`, headerValueProblem(header.value as string));
    return { name, value: encodedValue };
  });
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/**
 * Encodes a DATA frame with one allocation: the hot path of every chunk and range transfer.
 * Equivalent to `encodeMessage({ type: 'data', requestId, offset, bytes })`.
 * @param requestId the request the bytes belong to (u32).
 * @param offset byte offset of `bytes[0]` within the request's payload (docs/protocol.md, DATA).
 * @param bytes 1 to MAX_DATA_BYTES bytes; copied into the frame.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT naming the field when `requestId` is not a
 * u32, `offset` is not an integer in [0, 2^53 - 1], `bytes` is empty or longer than
 * MAX_DATA_BYTES, or `offset + bytes.length` exceeds 2^53 - 1.
 * @example
 * const frame = encodeDataFrame(7, 0, new Uint8Array([1, 2, 3]));
 * // frame = 11 00000007 0000000000000000 010203
 */
export function encodeDataFrame(requestId: number, offset: number, bytes: Uint8Array): Uint8Array {
  checkInteger('data.requestId', requestId, 0, U32_MAX);
  checkU64('data.offset', offset);
  checkBytes('data.bytes', bytes, 0, MAX_DATA_BYTES);
  checkRule('data.bytes', dataExtentProblem(offset, bytes.length));
  const writer = new FrameWriter(DATA_HEADER_BYTES + bytes.length);
  writer.u8(MessageType.data);
  writer.u32(requestId);
  writer.u64(offset);
  writer.bytes(bytes);
  return writer.finish();
}

function encodeRangesMessage(
  message: ChunkAnnounceMessage | ChunkRemoveMessage,
  code: number,
): Uint8Array {
  const contentId = checkBytes(
    `${message.type}.contentId`,
    message.contentId,
    HASH_BYTES,
    HASH_BYTES,
  );
  const minCount = message.type === 'chunk-announce' ? 0 : 1;
  const ranges = checkRanges(`${message.type}.ranges`, message.ranges, minCount);
  const writer = new FrameWriter(1 + HASH_BYTES + 2 + ranges.length * RANGE_BYTES);
  writer.u8(code);
  writer.bytes(contentId);
  writer.u16(ranges.length);
  for (const range of ranges) {
    writer.u32(range.start);
    writer.u32(range.end);
  }
  return writer.finish();
}

function encodeUrlAnswer(message: UrlAnswerMessage): Uint8Array {
  const queryId = checkInteger('url-answer.queryId', message.queryId, 0, U32_MAX);
  if (!Array.isArray(message.entries)) {
    invalidArgument('url-answer.entries', `must be an array, got ${describe(message.entries)}`);
  }
  const entries = message.entries as readonly unknown[];
  if (entries.length > Limits.urlAnswerEntries) {
    invalidArgument(
      'url-answer.entries',
      `must hold at most ${Limits.urlAnswerEntries} entries, got ${entries.length}`,
    );
  }
  const encoded = entries.map((item, i) => {
    const entry = item as Partial<UrlAnswerEntry> | null | undefined;
    if (typeof entry !== 'object' || entry === null) {
      invalidArgument(`url-answer.entries[${i}]`, `must be an object, got ${describe(entry)}`);
    }
    const field = `url-answer.entries[${i}]`;
    return {
      validator: checkString(`${field}.validator`, entry.validator, 0, Limits.validatorBytes),
      contentId: checkBytes(`${field}.contentId`, entry.contentId, HASH_BYTES, HASH_BYTES),
    };
  });
  let size = 1 + 4 + 1;
  for (const entry of encoded) size += 2 + entry.validator.length + HASH_BYTES;
  const writer = new FrameWriter(size);
  writer.u8(MessageType.urlAnswer);
  writer.u32(queryId);
  writer.u8(encoded.length);
  for (const entry of encoded) {
    writer.prefixed16(entry.validator);
    writer.bytes(entry.contentId);
  }
  return writer.finish();
}

function encodeFetchAssign(message: FetchAssignMessage): Uint8Array {
  const requestId = checkInteger('fetch-assign.requestId', message.requestId, 0, U32_MAX);
  const url = checkString('fetch-assign.url', message.url, 1, Limits.urlBytes);
  const rangeStart = checkU64('fetch-assign.rangeStart', message.rangeStart);
  const rangeEnd = checkU64('fetch-assign.rangeEnd', message.rangeEnd);
  checkRule('fetch-assign.rangeEnd', fetchRangeProblem(rangeStart, rangeEnd));
  const validator = checkString(
    'fetch-assign.validator',
    message.validator,
    0,
    Limits.validatorBytes,
  );
  const headers = checkHeaders('fetch-assign.headers', message.headers);
  let size = 1 + 4 + 2 + url.length + 8 + 8 + 2 + validator.length + 1;
  for (const header of headers) size += 2 + header.name.length + 2 + header.value.length;
  checkFrameSize('fetch-assign', size);
  const writer = new FrameWriter(size);
  writer.u8(MessageType.fetchAssign);
  writer.u32(requestId);
  writer.prefixed16(url);
  writer.u64(rangeStart);
  writer.u64(rangeEnd);
  writer.prefixed16(validator);
  writer.u8(headers.length);
  for (const header of headers) {
    writer.prefixed16(header.name);
    writer.prefixed16(header.value);
  }
  return writer.finish();
}

/**
 * Encodes one message as one frame, `[u8 type][body]` (docs/protocol.md lists every layout).
 * The result is canonical: `decodeMessage` returns a deep-equal message, and a frame that
 * `decodeMessage` accepts re-encodes to identical bytes.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT, naming the field (e.g. `hello.deviceName`),
 * when a field has the wrong type or is out of bounds: an integer outside its wire width, a u64
 * above 2^53 - 1, a string over its Limits entry or holding a lone surrogate, a hash that is
 * not 32 bytes, ranges empty, unsorted, overlapping or with end <= start, more than
 * `Limits.urlAnswerEntries` URL_ANSWER entries, a header that is not
 * an HTTP token / holds control characters, versionMin 0 or above versionMax, an unknown
 * TransferStatus, an empty DATA payload, an `unknown` message whose code is a known type, or a
 * frame that would exceed MAX_FRAME_BYTES.
 * @example
 * encodeMessage({ type: 'heartbeat', isReply: false, id: 1 }); // 02 00 00000001
 */
export function encodeMessage(message: WireMessage): Uint8Array {
  if (typeof message !== 'object' || message === null) {
    invalidArgument('message', `must be a WireMessage object, got ${describe(message)}`);
  }
  switch (message.type) {
    case 'hello': {
      const versionMin = checkInteger('hello.versionMin', message.versionMin, 0, U8_MAX);
      const versionMax = checkInteger('hello.versionMax', message.versionMax, 0, U8_MAX);
      checkRule('hello.versionMin', versionProblem(versionMin, versionMax));
      const capabilities = checkInteger('hello.capabilities', message.capabilities, 0, U32_MAX);
      const listenPort = checkInteger('hello.listenPort', message.listenPort, 0, U16_MAX);
      const deviceName = checkString(
        'hello.deviceName',
        message.deviceName,
        0,
        Limits.deviceNameBytes,
      );
      const writer = new FrameWriter(1 + 1 + 1 + 4 + 2 + 2 + deviceName.length);
      writer.u8(MessageType.hello);
      writer.u8(versionMin);
      writer.u8(versionMax);
      writer.u32(capabilities);
      writer.u16(listenPort);
      writer.prefixed16(deviceName);
      return writer.finish();
    }
    case 'heartbeat': {
      if (typeof message.isReply !== 'boolean') {
        invalidArgument('heartbeat.isReply', `must be a boolean, got ${describe(message.isReply)}`);
      }
      const id = checkInteger('heartbeat.id', message.id, 0, U32_MAX);
      const writer = new FrameWriter(1 + 1 + 4);
      writer.u8(MessageType.heartbeat);
      writer.u8(message.isReply ? HEARTBEAT_PONG : HEARTBEAT_PING);
      writer.u32(id);
      return writer.finish();
    }
    case 'goodbye': {
      const reason = checkInteger('goodbye.reason', message.reason, 0, U16_MAX);
      const text = checkString('goodbye.message', message.message, 0, Limits.goodbyeMessageBytes);
      const writer = new FrameWriter(1 + 2 + 2 + text.length);
      writer.u8(MessageType.goodbye);
      writer.u16(reason);
      writer.prefixed16(text);
      return writer.finish();
    }
    case 'chunk-request': {
      const requestId = checkInteger('chunk-request.requestId', message.requestId, 0, U32_MAX);
      const hash = checkBytes('chunk-request.chunkHash', message.chunkHash, HASH_BYTES, HASH_BYTES);
      const priority = checkInteger('chunk-request.priority', message.priority, 0, U8_MAX);
      const writer = new FrameWriter(1 + 4 + HASH_BYTES + 1);
      writer.u8(MessageType.chunkRequest);
      writer.u32(requestId);
      writer.bytes(hash);
      writer.u8(priority);
      return writer.finish();
    }
    case 'data':
      return encodeDataFrame(message.requestId, message.offset, message.bytes);
    case 'cancel': {
      const requestId = checkInteger('cancel.requestId', message.requestId, 0, U32_MAX);
      const writer = new FrameWriter(1 + 4);
      writer.u8(MessageType.cancel);
      writer.u32(requestId);
      return writer.finish();
    }
    case 'status': {
      const requestId = checkInteger('status.requestId', message.requestId, 0, U32_MAX);
      const status = checkInteger('status.status', message.status, 0, U8_MAX);
      checkRule('status.status', transferStatusProblem(status));
      const length = checkU64('status.length', message.length);
      const text = checkString('status.message', message.message, 0, Limits.statusMessageBytes);
      const writer = new FrameWriter(1 + 4 + 1 + 8 + 2 + text.length);
      writer.u8(MessageType.status);
      writer.u32(requestId);
      writer.u8(status);
      writer.u64(length);
      writer.prefixed16(text);
      return writer.finish();
    }
    case 'chunk-announce':
      return encodeRangesMessage(message, MessageType.chunkAnnounce);
    case 'chunk-remove':
      return encodeRangesMessage(message, MessageType.chunkRemove);
    case 'url-query': {
      const queryId = checkInteger('url-query.queryId', message.queryId, 0, U32_MAX);
      const url = checkString('url-query.url', message.url, 1, Limits.urlBytes);
      const writer = new FrameWriter(1 + 4 + 2 + url.length);
      writer.u8(MessageType.urlQuery);
      writer.u32(queryId);
      writer.prefixed16(url);
      return writer.finish();
    }
    case 'url-answer':
      return encodeUrlAnswer(message);
    case 'fetch-assign':
      return encodeFetchAssign(message);
    case 'rpc-request': {
      const callId = checkInteger('rpc-request.callId', message.callId, 0, U32_MAX);
      const method = checkString('rpc-request.method', message.method, 1, Limits.rpcMethodBytes);
      const body = checkBytes('rpc-request.body', message.body, 0, MAX_FRAME_BYTES);
      const size = 1 + 4 + 2 + method.length + body.length;
      checkFrameSize('rpc-request.body', size);
      const writer = new FrameWriter(size);
      writer.u8(MessageType.rpcRequest);
      writer.u32(callId);
      writer.prefixed16(method);
      writer.bytes(body);
      return writer.finish();
    }
    case 'rpc-response': {
      const callId = checkInteger('rpc-response.callId', message.callId, 0, U32_MAX);
      const body = checkBytes('rpc-response.body', message.body, 0, MAX_FRAME_BYTES);
      const size = 1 + 4 + body.length;
      checkFrameSize('rpc-response.body', size);
      const writer = new FrameWriter(size);
      writer.u8(MessageType.rpcResponse);
      writer.u32(callId);
      writer.bytes(body);
      return writer.finish();
    }
    case 'rpc-error': {
      const callId = checkInteger('rpc-error.callId', message.callId, 0, U32_MAX);
      const code = checkInteger('rpc-error.code', message.code, 0, U16_MAX);
      const text = checkString(
        'rpc-error.message',
        message.message,
        0,
        Limits.rpcErrorMessageBytes,
      );
      const writer = new FrameWriter(1 + 4 + 2 + 2 + text.length);
      writer.u8(MessageType.rpcError);
      writer.u32(callId);
      writer.u16(code);
      writer.prefixed16(text);
      return writer.finish();
    }
    case 'gossip': {
      const code = checkInteger('gossip.code', message.code, 0, U8_MAX);
      if (!GOSSIP_TYPE_CODES.has(code)) {
        invalidArgument('gossip.code', `0x${code.toString(16)} is not a gossip type code`);
      }
      const body = checkBytes('gossip.body', message.body, 0, MAX_FRAME_BYTES);
      checkFrameSize('gossip.body', 1 + body.length);
      const writer = new FrameWriter(1 + body.length);
      writer.u8(code);
      writer.bytes(body);
      return writer.finish();
    }
    case 'unknown': {
      const code = checkInteger('unknown.code', message.code, 0, U8_MAX);
      if (knownTypeCodes.has(code)) {
        invalidArgument(
          'unknown.code',
          `0x${code.toString(16)} is a known type; encode that message instead`,
        );
      }
      const body = checkBytes('unknown.body', message.body, 0, MAX_FRAME_BYTES);
      checkFrameSize('unknown.body', 1 + body.length);
      const writer = new FrameWriter(1 + body.length);
      writer.u8(code);
      writer.bytes(body);
      return writer.finish();
    }
    default: {
      const unexpected: never = message;
      return invalidArgument(
        'message.type',
        `unknown message type ${JSON.stringify((unexpected as { type?: unknown }).type)}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding. Each function reads one body; the reader throws FrameDecodeError on any violation.

function checkDecoded(field: string, problem: string | undefined): void {
  if (problem !== undefined) malformed(`${field}: ${problem}`);
}

function decodeHello(reader: FrameReader): HelloMessage {
  const versionMin = reader.u8('hello.versionMin');
  const versionMax = reader.u8('hello.versionMax');
  checkDecoded('hello.versionMin', versionProblem(versionMin, versionMax));
  const capabilities = reader.u32('hello.capabilities');
  const listenPort = reader.u16('hello.listenPort');
  const deviceName = reader.string16('hello.deviceName', 0, Limits.deviceNameBytes);
  return { type: 'hello', versionMin, versionMax, capabilities, listenPort, deviceName };
}

function decodeStatus(reader: FrameReader): StatusMessage {
  const requestId = reader.u32('status.requestId');
  const status = reader.u8('status.status');
  checkDecoded('status.status', transferStatusProblem(status));
  const length = reader.u64('status.length');
  const message = reader.string16('status.message', 0, Limits.statusMessageBytes);
  return { type: 'status', requestId, status: status as TransferStatus, length, message };
}

function decodeRanges(reader: FrameReader, field: string, minCount: number): IndexRange[] {
  const count = reader.u16(`${field} count`);
  if (count < minCount || count > Limits.announceRanges) {
    malformed(`${field}: count ${count} is outside ${minCount} to ${Limits.announceRanges}`);
  }
  reader.need(field, count * RANGE_BYTES); // before building the array
  const ranges: IndexRange[] = [];
  let previousEnd = 0;
  for (let i = 0; i < count; i++) {
    const start = reader.u32(`${field}[${i}].start`);
    const end = reader.u32(`${field}[${i}].end`);
    checkDecoded(`${field}[${i}]`, rangeProblem(start, end, previousEnd));
    ranges.push({ start, end });
    previousEnd = end;
  }
  return ranges;
}

function decodeUrlAnswer(reader: FrameReader): UrlAnswerMessage {
  const queryId = reader.u32('url-answer.queryId');
  const count = reader.u8('url-answer.entries count');
  if (count > Limits.urlAnswerEntries) {
    malformed(`url-answer.entries: count ${count} exceeds the limit ${Limits.urlAnswerEntries}`);
  }
  reader.need('url-answer.entries', count * (2 + HASH_BYTES)); // before building the array
  const entries: UrlAnswerEntry[] = [];
  for (let i = 0; i < count; i++) {
    const field = `url-answer.entries[${i}]`;
    const validator = reader.string16(`${field}.validator`, 0, Limits.validatorBytes);
    const contentId = reader.copy(`${field}.contentId`, HASH_BYTES);
    entries.push({ validator, contentId });
  }
  return { type: 'url-answer', queryId, entries };
}

function decodeFetchAssign(reader: FrameReader): FetchAssignMessage {
  const requestId = reader.u32('fetch-assign.requestId');
  const url = reader.string16('fetch-assign.url', 1, Limits.urlBytes);
  const rangeStart = reader.u64('fetch-assign.rangeStart');
  const rangeEnd = reader.u64('fetch-assign.rangeEnd');
  checkDecoded('fetch-assign.rangeEnd', fetchRangeProblem(rangeStart, rangeEnd));
  const validator = reader.string16('fetch-assign.validator', 0, Limits.validatorBytes);
  const count = reader.u8('fetch-assign.headers count');
  if (count > Limits.headerCount) {
    malformed(`fetch-assign.headers: count ${count} exceeds the limit ${Limits.headerCount}`);
  }
  reader.need('fetch-assign.headers', count * 4); // two u16 prefixes per header, at least
  const headers: HttpHeader[] = [];
  for (let i = 0; i < count; i++) {
    const field = `fetch-assign.headers[${i}]`;
    const name = reader.string16(`${field}.name`, 1, Limits.headerNameBytes);
    checkDecoded(`${field}.name`, headerNameProblem(name));
    const value = reader.string16(`${field}.value`, 0, Limits.headerValueBytes);
    checkDecoded(`${field}.value`, headerValueProblem(value));
    headers.push({ name, value });
  }
  return { type: 'fetch-assign', requestId, url, rangeStart, rangeEnd, validator, headers };
}

function decodeBody(code: number, reader: FrameReader): WireMessage {
  switch (code) {
    case MessageType.hello:
      return decodeHello(reader);
    case MessageType.heartbeat: {
      const kind = reader.u8('heartbeat.kind');
      if (kind !== HEARTBEAT_PING && kind !== HEARTBEAT_PONG) {
        malformed(`heartbeat.kind: ${kind} is neither 0 (ping) nor 1 (pong)`);
      }
      const id = reader.u32('heartbeat.id');
      return { type: 'heartbeat', isReply: kind === HEARTBEAT_PONG, id };
    }
    case MessageType.goodbye: {
      const reason = reader.u16('goodbye.reason');
      const message = reader.string16('goodbye.message', 0, Limits.goodbyeMessageBytes);
      return { type: 'goodbye', reason, message };
    }
    case MessageType.chunkRequest: {
      const requestId = reader.u32('chunk-request.requestId');
      const chunkHash = reader.copy('chunk-request.chunkHash', HASH_BYTES);
      const priority = reader.u8('chunk-request.priority');
      return { type: 'chunk-request', requestId, chunkHash, priority };
    }
    case MessageType.data: {
      const requestId = reader.u32('data.requestId');
      const offset = reader.u64('data.offset');
      const bytes = reader.rest();
      checkDecoded('data.bytes', dataExtentProblem(offset, bytes.length));
      return { type: 'data', requestId, offset, bytes };
    }
    case MessageType.cancel:
      return { type: 'cancel', requestId: reader.u32('cancel.requestId') };
    case MessageType.status:
      return decodeStatus(reader);
    case MessageType.chunkAnnounce: {
      const contentId = reader.copy('chunk-announce.contentId', HASH_BYTES);
      const ranges = decodeRanges(reader, 'chunk-announce.ranges', 0);
      return { type: 'chunk-announce', contentId, ranges };
    }
    case MessageType.chunkRemove: {
      const contentId = reader.copy('chunk-remove.contentId', HASH_BYTES);
      const ranges = decodeRanges(reader, 'chunk-remove.ranges', 1);
      return { type: 'chunk-remove', contentId, ranges };
    }
    case MessageType.urlQuery: {
      const queryId = reader.u32('url-query.queryId');
      const url = reader.string16('url-query.url', 1, Limits.urlBytes);
      return { type: 'url-query', queryId, url };
    }
    case MessageType.urlAnswer:
      return decodeUrlAnswer(reader);
    case MessageType.fetchAssign:
      return decodeFetchAssign(reader);
    case MessageType.rpcRequest: {
      const callId = reader.u32('rpc-request.callId');
      const method = reader.string16('rpc-request.method', 1, Limits.rpcMethodBytes);
      return { type: 'rpc-request', callId, method, body: reader.rest() };
    }
    case MessageType.rpcResponse: {
      const callId = reader.u32('rpc-response.callId');
      return { type: 'rpc-response', callId, body: reader.rest() };
    }
    case MessageType.rpcError: {
      const callId = reader.u32('rpc-error.callId');
      const errorCode = reader.u16('rpc-error.code');
      const message = reader.string16('rpc-error.message', 0, Limits.rpcErrorMessageBytes);
      return { type: 'rpc-error', callId, code: errorCode, message };
    }
    default:
      // The gossip layer decodes and verifies its own bodies (gossip/gossip-codec.ts).
      if (GOSSIP_TYPE_CODES.has(code)) return { type: 'gossip', code, body: reader.rest() };
      // Unknown (or reserved, e.g. 0x46-0x4f) type: receivers ignore it.
      return { type: 'unknown', code, body: reader.rest() };
  }
}

/**
 * Decodes one frame. Never throws, whatever the bytes: a malformed frame yields
 * `{ ok: false, reason, detail }` (reason `frameTooLarge` for a frame above MAX_FRAME_BYTES,
 * otherwise `protocolError`; `detail` names the field). Rejected: an empty frame, a truncated
 * field, bytes after the last field (a frame is exactly one message), a length prefix above its
 * limit or above the bytes remaining (checked before anything is sliced or allocated), invalid
 * UTF-8, a u64 above 2^53 - 1, an out-of-range enum, and every rule `encodeMessage` enforces.
 * A frame of an unknown type code decodes to `{ type: 'unknown', code, body }`.
 *
 * Zero-copy: DATA `bytes`, RPC `body` and unknown `body` are views into `frame`, so the caller
 * must not reuse `frame`'s memory while it holds them. Hashes and strings are copies.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT only when `frame` is not a Uint8Array (a
 * caller bug); never for any content of the bytes.
 * @example
 * const result = decodeMessage(fromHex('020000000001')!);
 * // result = { ok: true, message: { type: 'heartbeat', isReply: false, id: 1 } }
 */
export function decodeMessage(frame: Uint8Array): DecodeResult {
  if (!(frame instanceof Uint8Array)) invalidArgument('frame', 'must be a Uint8Array');
  if (frame.length === 0) {
    return { ok: false, reason: ReasonCode.protocolError, detail: 'empty frame' };
  }
  if (frame.length > MAX_FRAME_BYTES) {
    return {
      ok: false,
      reason: ReasonCode.frameTooLarge,
      detail: `frame is ${frame.length} bytes, above MAX_FRAME_BYTES (${MAX_FRAME_BYTES})`,
    };
  }
  const code = frame[0]!;
  const reader = new FrameReader(frame, 1);
  try {
    const message = decodeBody(code, reader);
    reader.end(message.type);
    return { ok: true, message };
  } catch (error) {
    if (error instanceof FrameDecodeError) {
      return { ok: false, reason: error.reason, detail: error.detail };
    }
    // Anything else is a bug in this codec (STYLE.md section 5, kind 3): let it surface.
    throw error;
  }
}
