/**
 * Who may use the gateway's endpoint mode when it serves more than loopback: clients sign their
 * requests with AWS Signature Version 4 (any S3 SDK or CLI, `curl --aws-sigv4`) using an access
 * key the operator issued in the gateway's key file (`peapod daemon --gateway-keys FILE`).
 *
 * Theory of operation
 * - The key file: one `ACCESS_KEY_ID SECRET_ACCESS_KEY` pair per line, `#` comments. Like an SSH
 *   private key it must not be readable by group or others (`chmod 600`), or the daemon refuses
 *   to start.
 * - A request is authenticated as S3 does it, either by its `Authorization` header
 *   (`AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` with `X-Amz-Date`) or by
 *   a presigned query (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
 *   `X-Amz-SignedHeaders`, `X-Amz-Signature`). The canonical request is built from what arrived
 *   (SigV4: the method, the path as sent for S3, the sorted query, the signed header fields,
 *   the declared payload hash; a presigned URL that declares none, UNSIGNED-PAYLOAD as S3's
 *   presigners sign it, else the empty body's hash), signed with the key's secret,
 *   and compared in constant time with the client's signature.
 * - Refused, with S3's error codes: no signature (AccessDenied), an unknown key
 *   (InvalidAccessKeyId), a wrong one (SignatureDoesNotMatch), a date more than 15 minutes off
 *   (RequestTimeTooSkewed), an expired presigned URL (AccessDenied, "Request has expired"),
 *   and a malformed one (AuthorizationHeaderMalformed, AuthorizationQueryParametersError).
 * - Refused too: a signed field that a hop would drop (hop-by-hop, or named in `Connection`),
 *   and any `x-amz-*` field the signature does not cover (as S3 refuses them), so what the
 *   gateway sends on is what was signed.
 * - A body is not checked here against its declared `X-Amz-Content-Sha256`: on S3 routes the
 *   gateway passes a hex digest on in its own signature, so S3 checks the body; on HTTP routes
 *   and for the chunk signatures of a streaming upload, nothing does.
 * - Nothing here throws on a request: any input gets a verdict.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';

/** How far a signature's date may be from this clock (S3's limit). */
const SKEW_MAX_MS = 15 * 60_000;
/** The longest a presigned URL may be valid (S3's limit: 7 days). */
const EXPIRES_MAX_S = 7 * 24 * 3600;
const EMPTY_SHA256 = createHash('sha256').digest('hex');
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 +Credential=([^,\s]+), *SignedHeaders=([^,\s]+), *Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const KEY_ID = /^[A-Za-z0-9_.-]{3,128}$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

export type AuthVerdict =
  | { readonly ok: true; readonly accessKeyId: string }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** Parses a key file's text; @throws Error naming the line of the first bad one. */
export function parseGatewayKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, at) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    const [id, secret] = fields;
    if (fields.length !== 2 || !KEY_ID.test(id!) || secret!.length < 8)
      throw new Error(
        `line ${at + 1}: expected "ACCESS_KEY_ID SECRET_ACCESS_KEY" (an ID of 3-128 letters, digits, _ . -, a secret of 8 or more characters)`,
      );
    if (keys.has(id!)) throw new Error(`line ${at + 1}: access key ${id} is listed twice`);
    keys.set(id!, secret!);
  });
  if (keys.size === 0) throw new Error('no keys: add a line "ACCESS_KEY_ID SECRET_ACCESS_KEY"');
  return keys;
}

/** Reads a key file; @throws Error saying what to fix (readable by others, unreadable, bad line). */
export function loadGatewayKeys(path: string): Map<string, string> {
  // Opened once, then checked and read through that descriptor: no swap between the two.
  const fd = openSync(path, 'r');
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`${path} is not a regular file`);
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid && stat.uid !== 0)
      throw new Error(`${path} belongs to user ${stat.uid}, not to this daemon's user or root`);
    if ((stat.mode & 0o077) !== 0)
      throw new Error(
        `${path} is readable by others (mode ${(stat.mode & 0o777).toString(8)}): run chmod 600 ${path}`,
      );
    try {
      return parseGatewayKeys(readFileSync(fd, 'utf8'));
    } catch (error) {
      throw new Error(`${path}: ${(error as Error).message}`);
    }
  } finally {
    closeSync(fd);
  }
}

export class ClientAuthenticator {
  constructor(
    private readonly keys: ReadonlyMap<string, string>,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** The verdict on `req`'s signature (never throws). */
  verify(req: IncomingMessage): AuthVerdict {
    try {
      const target = splitTarget(req.url ?? '/');
      const authorization = req.headers.authorization;
      if (authorization !== undefined) return this.verifyHeader(req, target, authorization);
      if (target.query.some(([name]) => name === 'X-Amz-Signature'))
        return this.verifyQuery(req, target);
      return refused(
        'AccessDenied',
        'this gateway needs requests signed (AWS SigV4) with a key it issued',
      );
    } catch (error) {
      return refused('AccessDenied', `the signature could not be checked: ${String(error)}`);
    }
  }

  private verifyHeader(req: IncomingMessage, target: Target, authorization: string): AuthVerdict {
    const match = AUTHORIZATION.exec(authorization.trim());
    if (match === null)
      return refused(
        'AuthorizationHeaderMalformed',
        'expected "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."',
      );
    const [, credential, signedHeaders, signature] = match;
    const amzDate = headerValue(req, 'x-amz-date');
    if (amzDate === undefined)
      return refused('AccessDenied', 'a header-signed request needs X-Amz-Date');
    const payloadHash = headerValue(req, 'x-amz-content-sha256') ?? EMPTY_SHA256;
    const dateCheck = this.checkDate(amzDate, 0);
    if (dateCheck !== undefined) return dateCheck;
    return this.check(req, target.path, target.query, {
      credential: credential!,
      signedHeaders: signedHeaders!,
      signature: signature!,
      amzDate,
      payloadHash,
    });
  }

  private verifyQuery(req: IncomingMessage, target: Target): AuthVerdict {
    const param = (name: string): string | undefined =>
      target.query.find(([key]) => key === name)?.[1];
    const algorithm = param('X-Amz-Algorithm');
    const credential = param('X-Amz-Credential');
    const amzDate = param('X-Amz-Date');
    const expiresText = param('X-Amz-Expires') ?? '';
    const expires = /^\d{1,6}$/.test(expiresText) ? Number(expiresText) : Number.NaN;
    const signedHeaders = param('X-Amz-SignedHeaders');
    const signature = param('X-Amz-Signature');
    if (
      algorithm !== 'AWS4-HMAC-SHA256' ||
      credential === undefined ||
      amzDate === undefined ||
      signedHeaders === undefined ||
      signature === undefined ||
      !/^[0-9a-f]{64}$/.test(signature) ||
      !Number.isInteger(expires) ||
      expires < 1 ||
      expires > EXPIRES_MAX_S
    )
      return refused(
        'AuthorizationQueryParametersError',
        'a presigned URL needs X-Amz-Algorithm=AWS4-HMAC-SHA256, X-Amz-Credential, X-Amz-Date, X-Amz-Expires (1 to 604800), X-Amz-SignedHeaders and X-Amz-Signature',
      );
    const dateCheck = this.checkDate(amzDate, expires);
    if (dateCheck !== undefined) return dateCheck;
    const query = target.query.filter(([key]) => key !== 'X-Amz-Signature');
    const signed = { credential, signedHeaders, signature, amzDate };
    const declared = param('X-Amz-Content-Sha256');
    if (declared !== undefined)
      return this.check(req, target.path, query, { ...signed, payloadHash: declared });
    // S3's presigners sign UNSIGNED-PAYLOAD; a generic SigV4 presigner, the empty body's hash.
    const unsigned = this.check(req, target.path, query, {
      ...signed,
      payloadHash: 'UNSIGNED-PAYLOAD',
    });
    if (unsigned.ok || unsigned.code !== 'SignatureDoesNotMatch') return unsigned;
    return this.check(req, target.path, query, { ...signed, payloadHash: EMPTY_SHA256 });
  }

  /** Undefined when `amzDate` is well formed and now (within its `expiresS` after it). */
  private checkDate(amzDate: string, expiresS: number): AuthVerdict | undefined {
    const date = AMZ_DATE.exec(amzDate);
    if (date === null)
      return refused('AccessDenied', `X-Amz-Date "${amzDate}" is not YYYYMMDDTHHMMSSZ`);
    const [, y, mo, d, h, mi, s] = date.map(Number);
    const signedMs = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
    const now = this.nowMs();
    if (signedMs - now > SKEW_MAX_MS || (expiresS === 0 && now - signedMs > SKEW_MAX_MS))
      return refused(
        'RequestTimeTooSkewed',
        "the request was signed more than 15 minutes from this gateway's clock: check the client's time",
      );
    if (expiresS > 0 && now > signedMs + expiresS * 1000)
      return refused('AccessDenied', 'Request has expired');
    return undefined;
  }

  private check(
    req: IncomingMessage,
    path: string,
    query: readonly (readonly [string, string])[],
    signed: {
      credential: string;
      signedHeaders: string;
      signature: string;
      amzDate: string;
      payloadHash: string;
    },
  ): AuthVerdict {
    const scope = signed.credential.split('/');
    const [accessKeyId, day, region, service, terminator] = scope;
    if (scope.length !== 5 || terminator !== 'aws4_request' || day !== signed.amzDate.slice(0, 8))
      return refused(
        'AuthorizationHeaderMalformed',
        "the credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request, its date the request's",
      );
    const secret = this.keys.get(accessKeyId!);
    if (secret === undefined)
      return refused(
        'InvalidAccessKeyId',
        `access key ${accessKeyId} is not one this gateway issued`,
      );
    const names = signed.signedHeaders.split(';');
    if (!names.includes('host') || names.some((name) => !HEADER_NAME.test(name)))
      return refused(
        'AuthorizationHeaderMalformed',
        'SignedHeaders must be lowercase names and include host',
      );
    // A field the signature covers must reach the origin as signed: none may be dropped on the
    // way as hop-by-hop (a `Connection` token would strip it), and, as S3 requires, no x-amz-*
    // field may go unsigned (the gateway would sign it upstream with its own credentials).
    const dropped = new Set([...HOP_BY_HOP, ...connectionTokens(req)]);
    const hop = names.find((name) => dropped.has(name));
    if (hop !== undefined)
      return refused(
        'AccessDenied',
        `the signed header ${hop} is hop-by-hop or named in Connection`,
      );
    const unsigned = Object.keys(req.headersDistinct).find(
      (name) => name.startsWith('x-amz-') && !names.includes(name),
    );
    if (unsigned !== undefined)
      return refused(
        'AccessDenied',
        `there were headers present in the request which were not signed: ${unsigned}`,
      );
    const canonicalHeaders: string[] = [];
    for (const name of names) {
      const value = headerValue(req, name);
      if (value === undefined)
        return refused('SignatureDoesNotMatch', `the signed header ${name} is missing`);
      canonicalHeaders.push(`${name}:${value}\n`);
    }
    const canonicalRequest = [
      req.method ?? 'GET',
      canonicalPath(path, service!),
      canonicalQuery(query),
      canonicalHeaders.join(''),
      signed.signedHeaders,
      signed.payloadHash,
    ].join('\n');
    const stringToSign = [
      'AWS4-HMAC-SHA256',
      signed.amzDate,
      scope.slice(1).join('/'),
      createHash('sha256').update(canonicalRequest).digest('hex'),
    ].join('\n');
    let key: Buffer = Buffer.from(`AWS4${secret}`);
    for (const part of [day!, region!, service!, 'aws4_request'])
      key = createHmac('sha256', key).update(part).digest();
    const expected = createHmac('sha256', key).update(stringToSign).digest();
    const given = Buffer.from(signed.signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return refused(
        'SignatureDoesNotMatch',
        'the signature does not match this request signed with that key: check the secret',
      );
    return { ok: true, accessKeyId: accessKeyId! };
  }
}

interface Target {
  readonly path: string;
  /** Decoded names and values, in arrival order. */
  readonly query: readonly (readonly [string, string])[];
}

function splitTarget(url: string): Target {
  const at = url.indexOf('?');
  const path = at === -1 ? url : url.slice(0, at);
  const raw = at === -1 ? '' : url.slice(at + 1);
  const query = raw
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair): [string, string] => {
      // `+` is a space, as the forwarded query is read (URLSearchParams) and S3 reads it.
      const decode = (text: string) => decodeURIComponent(text.replace(/\+/g, ' '));
      const eq = pair.indexOf('=');
      return eq === -1
        ? [decode(pair), '']
        : [decode(pair.slice(0, eq)), decode(pair.slice(eq + 1))];
    });
  return { path, query };
}

/** SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as %XX (uppercase). */
function awsEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The canonical path: for S3 the path as the client sent it (S3 signs the encoded path once,
 * as the SDKs do); for other services each segment of it encoded again, as SigV4 does there.
 */
function canonicalPath(path: string, service: string): string {
  return service === 's3' ? path : path.split('/').map(awsEncode).join('/');
}

function canonicalQuery(query: readonly (readonly [string, string])[]): string {
  return query
    .map(([name, value]) => [awsEncode(name), awsEncode(value)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

/** A header's values as SigV4 canonicalizes them: trimmed, spaces collapsed, joined by commas. */
function headerValue(req: IncomingMessage, name: string): string | undefined {
  const values = req.headersDistinct[name];
  if (values === undefined) return undefined;
  return values.map((value) => value.trim().replace(/\s+/g, ' ')).join(',');
}

/** Fields a hop may drop (RFC 9110 7.6.1), so none a signature covers may be one. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

function connectionTokens(req: IncomingMessage): string[] {
  return (req.headersDistinct.connection ?? []).flatMap((value) =>
    value.split(',').map((token) => token.trim().toLowerCase()),
  );
}

function refused(code: string, message: string): AuthVerdict {
  return { ok: false, code, message };
}
