/**
 * The gateway's own AWS credentials and its SigV4 signatures for S3 routes (endpoint mode).
 *
 * Theory of operation
 * - Credentials come from where every AWS tool looks, in the same order: the environment
 *   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`), then the shared
 *   credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) under the
 *   profile `AWS_PROFILE` (default `default`). Nothing else (no instance metadata: this machine
 *   must never call out to it).
 * - Signing is AWS's own signer (`@smithy/signature-v4`), service `s3`, the route's region, path
 *   left as the client sent it (`uriEscapePath: false`, as S3 wants). A GET or HEAD is signed
 *   with `UNSIGNED-PAYLOAD`; a request with a body keeps the client's `x-amz-content-sha256`
 *   when it is a hex digest or `UNSIGNED-PAYLOAD`, else it is sent as `UNSIGNED-PAYLOAD`.
 * - The client's own `Authorization`, `X-Amz-Date`, `X-Amz-Security-Token` and presigned query
 *   parameters were for the gateway, not the origin: the caller drops them before signing.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** Where the credentials were found, for `peapod daemon`'s start-up line (never the secret). */
export interface FoundCredentials {
  readonly credentials: AwsCredentials;
  readonly source: string;
}

/**
 * The gateway's credentials, or undefined when none are configured (S3 routes then send
 * requests unsigned, which only a public bucket answers).
 */
export function findAwsCredentials(
  env: NodeJS.ProcessEnv = process.env,
): FoundCredentials | undefined {
  const id = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  if (id !== undefined && id !== '' && secret !== undefined && secret !== '') {
    const token = env.AWS_SESSION_TOKEN;
    return {
      credentials: {
        accessKeyId: id,
        secretAccessKey: secret,
        ...(token === undefined || token === '' ? {} : { sessionToken: token }),
      },
      source: 'the environment (AWS_ACCESS_KEY_ID)',
    };
  }
  const file =
    env.AWS_SHARED_CREDENTIALS_FILE ?? join(env.HOME ?? homedir(), '.aws', 'credentials');
  const profile = env.AWS_PROFILE ?? 'default';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const section = parseIni(text).get(profile);
  const fileId = section?.get('aws_access_key_id');
  const fileSecret = section?.get('aws_secret_access_key');
  if (fileId === undefined || fileSecret === undefined) return undefined;
  const token = section?.get('aws_session_token');
  return {
    credentials: {
      accessKeyId: fileId,
      secretAccessKey: fileSecret,
      ...(token === undefined ? {} : { sessionToken: token }),
    },
    source: `${file} [${profile}]`,
  };
}

/** An INI file's sections (`[name]`, `key = value`; `#` and `;` comments). Never throws. */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (header !== null) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0 && current !== undefined)
      current.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return sections;
}

export interface SignableRequest {
  readonly method: string;
  readonly url: URL;
  /** `url`'s path and query exactly as they go on the wire. */
  readonly path: string;
  /** Lowercase names; what will be sent (no hop-by-hop fields). */
  readonly headers: Readonly<Record<string, string>>;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/** Signs `request` for S3 in `region`; returns the header fields to send (signature included). */
export async function signS3(
  request: SignableRequest,
  region: string,
  credentials: AwsCredentials,
  now: Date,
): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: 's3',
    region,
    credentials,
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
    applyChecksum: false,
  });
  const given = request.headers['x-amz-content-sha256'];
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  const payload =
    hasBody &&
    given !== undefined &&
    (HEX_SHA256.test(given) || given.startsWith('STREAMING-UNSIGNED'))
      ? given
      : 'UNSIGNED-PAYLOAD';
  const query = request.path.indexOf('?');
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: request.url.protocol,
      hostname: request.url.hostname,
      ...(request.url.port === '' ? {} : { port: Number(request.url.port) }),
      path: query < 0 ? request.path : request.path.slice(0, query),
      query: queryBag(query < 0 ? '' : request.path.slice(query + 1)),
      headers: { ...request.headers, host: request.url.host, 'x-amz-content-sha256': payload },
    },
    { signingDate: now },
  );
  return signed.headers as Record<string, string>;
}

/** A query string as the signer takes it (values decoded; repeats as arrays). */
function queryBag(search: string): Record<string, string | string[]> {
  const bag: Record<string, string | string[]> = {};
  for (const [key, value] of new URLSearchParams(search)) {
    const held = bag[key];
    if (held === undefined) bag[key] = value;
    else if (Array.isArray(held)) held.push(value);
    else bag[key] = [held, value];
  }
  return bag;
}
