/**
 * A minimal HTTP origin for bench/pooled.ts, run as its own process inside the bench's origin
 * network namespace (`ip netns exec pp-origin node bench/dist/pooled-origin.js ...`).
 *
 * It serves one deterministic object from memory: `--size` bytes of AES-256-CTR keystream under a
 * fixed key (fast to make, incompressible, the same in every run). `GET`/`HEAD` of `/<name>` with
 * - a strong ETag (the first 32 hex digits of the object's SHA-256), `Accept-Ranges: bytes`,
 *   `Repr-Digest: sha-256=:BASE64:` (RFC 9530, the whole object, also on a 206), so PeaPod
 *   verifies the download end to end;
 * - single `Range: bytes=A-B`, `bytes=A-` and `bytes=-N` (206 with `Content-Range`; 416 when
 *   unsatisfiable; several ranges get the whole object, as RFC 9110 allows);
 * - `If-Range` (a range only while the ETag matches, else 200 with everything) and `If-Match`
 *   (412 when it does not match).
 * No rate limit: the bench shapes each device's link with `tc tbf`.
 *
 * Once listening it prints one JSON line on stdout: `{"url", "sizeBytes", "sha256", "etag"}`.
 * SIGTERM/SIGINT close it.
 *
 * Usage: node bench/dist/pooled-origin.js --host 10.97.0.1 --port 8000 --size 268435456
 *   [--name pooled.bin]
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

interface OriginOptions {
  readonly host: string;
  readonly port: number;
  readonly sizeBytes: number;
  readonly name: string;
}

function parseArgs(argv: readonly string[]): OriginOptions {
  const value = (flag: string, fallback?: string): string => {
    const index = argv.indexOf(flag);
    const text = index < 0 ? fallback : argv[index + 1];
    if (text === undefined) throw new Error(`${flag} is required`);
    return text;
  };
  const port = Number(value('--port', '8000'));
  const sizeBytes = Number(value('--size'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port: 0 to 65535');
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new Error('--size: bytes > 0');
  return {
    host: value('--host', '127.0.0.1'),
    port,
    sizeBytes,
    name: value('--name', 'pooled.bin'),
  };
}

/** `sizeBytes` of AES-256-CTR keystream under a fixed key: deterministic and incompressible. */
function makeObject(sizeBytes: number): Buffer {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 0x50), Buffer.alloc(16, 0));
  const object = Buffer.allocUnsafe(sizeBytes);
  const zeros = Buffer.alloc(Math.min(sizeBytes, 16 * 2 ** 20));
  for (let offset = 0; offset < sizeBytes; offset += zeros.length) {
    const part = cipher.update(zeros.subarray(0, Math.min(zeros.length, sizeBytes - offset)));
    part.copy(object, offset);
  }
  return object;
}

/** The single range a `Range` header asks for: [start, end] inclusive, 'unsatisfiable' or 'whole'. */
function parseRange(header: string | undefined, size: number): [number, number] | 'whole' | 'bad' {
  if (header === undefined) return 'whole';
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return 'whole'; // several ranges or another unit: the whole object
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return 'whole';
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'bad';
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || end < start) return 'bad';
  return [start, end];
}

function serve(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  object: Buffer,
  etag: string,
  reprDigest: string,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  if (req.url !== path) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const ifMatch = req.headers['if-match'];
  if (
    ifMatch !== undefined &&
    ifMatch.trim() !== '*' &&
    !ifMatch.split(',').some((t) => t.trim() === etag)
  ) {
    res.writeHead(412, { etag }).end();
    return;
  }
  const ifRange = req.headers['if-range'];
  const rangeHeader =
    ifRange === undefined || String(ifRange).trim() === etag ? req.headers.range : undefined;
  const range = parseRange(rangeHeader, object.length);
  const common = {
    'accept-ranges': 'bytes',
    etag,
    'repr-digest': reprDigest,
    'content-type': 'application/octet-stream',
  };
  if (range === 'bad') {
    res.writeHead(416, { ...common, 'content-range': `bytes */${object.length}` }).end();
    return;
  }
  const [start, end] = range === 'whole' ? [0, object.length - 1] : range;
  const headers = { ...common, 'content-length': String(end - start + 1) };
  if (range === 'whole') res.writeHead(200, headers);
  else
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${object.length}` });
  if (req.method === 'HEAD') res.end();
  else res.end(object.subarray(start, end + 1));
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const object = makeObject(options.sizeBytes);
  const digest = createHash('sha256').update(object).digest();
  const sha256 = digest.toString('hex');
  const etag = `"${sha256.slice(0, 32)}"`;
  const reprDigest = `sha-256=:${digest.toString('base64')}:`;
  const path = `/${options.name}`;
  const server = createServer((req, res) => serve(req, res, path, object, etag, reprDigest));
  server.listen(options.port, options.host, () => {
    const { port } = server.address() as { port: number };
    const url = `http://${options.host}:${port}${path}`;
    process.stdout.write(`${JSON.stringify({ url, sizeBytes: object.length, sha256, etag })}\n`);
  });
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
