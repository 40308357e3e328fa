/**
 * Verifies an AWS SigV4 `Authorization` header the way S3 does, with AWS's own signer
 * (`@smithy/signature-v4`) and a known secret: the request is signed again over exactly the
 * headers the client says it signed, at the client's `x-amz-date`, and the two signatures must
 * match. For test origins that must refuse a wrong or missing signature (issue 13: s3rver checks
 * none). Not checked: the date's distance from now, and a body's hash (GET and HEAD only).
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,]+)\/(\d{8})\/([^/,]+)\/([^/,]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** Whether `req` carries a valid SigV4 signature by a key of `secrets` (access key -> secret). */
export async function sigV4Valid(
  req: IncomingMessage,
  secrets: Readonly<Record<string, string>>,
): Promise<boolean> {
  const match = AUTHORIZATION.exec(String(req.headers.authorization ?? ''));
  const date = AMZ_DATE.exec(String(req.headers['x-amz-date'] ?? ''));
  if (match === null || date === null) return false;
  const [, accessKeyId, day, region, service, signedList, signature] = match;
  const secretAccessKey = secrets[accessKeyId!];
  if (secretAccessKey === undefined || !`${date[1]}${date[2]}${date[3]}`.startsWith(day!))
    return false;
  const signed = signedList!.split(';');
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = req.headers[name];
    if (typeof value !== 'string') return false;
    headers[name] = value;
  }
  const url = new URL(req.url ?? '/', 'http://origin');
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of url.searchParams) {
    const held = query[key];
    query[key] =
      held === undefined ? value : Array.isArray(held) ? [...held, value] : [held, value];
  }
  const signer = new SignatureV4({
    service: service!,
    region: region!,
    credentials: { accessKeyId: accessKeyId!, secretAccessKey },
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: service !== 's3',
    applyChecksum: false,
  });
  const again = await signer.sign(
    {
      method: req.method ?? 'GET',
      protocol: 'http:',
      hostname: url.hostname,
      path: url.pathname,
      query,
      headers,
    },
    {
      signingDate: new Date(
        Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!, +date[4]!, +date[5]!, +date[6]!),
      ),
      signableHeaders: new Set(signed),
    },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(again.headers.authorization))?.[1];
  return expected !== undefined && timingSafeEqual(Buffer.from(expected), Buffer.from(signature!));
}
