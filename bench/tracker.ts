/**
 * Tracker throughput (issue 12 item 6): registrations and discover queries per second, and p99
 * latency, against `peapod tracker` with SQLite and then with PostgreSQL, each next to a
 * ceiling measured in the same run: a bare node:http server (another child process) that reads
 * the body and answers a fixed JSON, with no validation, signature or database.
 *
 * Every server is its own child process; the load comes from this process (autocannon), so
 * client and server compete for the machine's cores the way two processes on one host do.
 * Registrations: each request is a distinct device's freshly signed peer record (a pool of
 * `--registrations` keys signed before the run, one request each, so every request is a real
 * first registration, verified and written). Discover: GET ?limit=20 against the table the
 * registration run filled. The tracker runs with `--rate-limit 0` (every request here comes
 * from one address; per-key limits stay on and never bind, each key registers once).
 *
 * Usage: npm run bench:tracker [-- --seconds 10 --connections 32 --registrations 30000]
 * PostgreSQL: PEAPOD_TEST_POSTGRES, else postgres://peapod:peapod@127.0.0.1:5432/peapod_test
 * (`.ci/run` creates it); skipped with a sentence when neither answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { buildPeerRecord } from '@peapod/core';
import { createNodeCryptoProvider } from '@peapod/node';

interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  '2xx': number;
  duration: number;
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (options: {
  url: string;
  connections: number;
  duration?: number;
  amount?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  requests?: (AutocannonRequest & {
    setupRequest?: (request: AutocannonRequest) => AutocannonRequest;
  })[];
}) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const CLI = fileURLToPath(new URL('../../packages/node/dist/src/cli.js', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const LOCAL_POSTGRES = 'postgres://peapod:peapod@127.0.0.1:5432/peapod_test';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name}: a positive integer`);
  return value;
}

/** Child mode: the ceiling, a server that reads the body and answers a fixed JSON. */
function runBaselineServer(): void {
  const answer = JSON.stringify({ expiresAtMs: 1_800_000_000_000, observedAddress: '127.0.0.1' });
  const server = createServer((request, response) => {
    request.on('data', () => undefined);
    request.on('end', () => {
      response.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(answer),
      });
      response.end(answer);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address() as { port: number };
    console.log(JSON.stringify({ msg: 'ready', url: `http://127.0.0.1:${address.port}` }));
  });
}

/** Spawns a server process and resolves with its URL once it logs "ready". */
async function startServer(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'ready' && typeof entry.url === 'string') resolve(entry.url);
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  return { child, url };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/**
 * `count` registration bodies, each a distinct device's record. They are issued 25 s ahead of
 * now, so the tracker takes them from 5 s before now until 55 s after (its window is +-30 s):
 * signing and one registration run must fit in that.
 */
function signRegistrations(count: number): string[] {
  const crypto = createNodeCryptoProvider({ cachePrivateKeys: false });
  const issuedAtMs = Date.now() + 25_000;
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    const record = buildPeerRecord(crypto, crypto.ed25519GenerateKeyPair(), {
      issuedAtMs,
      broadcast: true,
      bootstrap: true,
      leaving: false,
      capabilities: 0,
      listenPort: 9000,
      deviceName: `bench-${i}`,
      addresses: ['127.0.0.1'], // the requests come from 127.0.0.1: a record carries its source
    });
    bodies.push(JSON.stringify({ record: Buffer.from(record).toString('base64') }));
  }
  return bodies;
}

interface Row {
  readonly name: string;
  readonly result: AutocannonResult;
  readonly baseline?: AutocannonResult;
}

const rows: Row[] = [];
const notes: string[] = [];

function print(): void {
  const header = [
    'scenario',
    'req/s',
    'p99 ms',
    'mean ms',
    'requests',
    'non-2xx',
    'errors',
    'x ceiling',
  ];
  const lines = rows.map(({ name, result, baseline }) => [
    name,
    result.requests.average.toFixed(0),
    result.latency.p99.toFixed(1),
    result.latency.average.toFixed(2),
    String(result.requests.total),
    String(result.non2xx),
    String(result.errors + result.timeouts),
    baseline === undefined
      ? '1.00'
      : (result.requests.average / baseline.requests.average).toFixed(2),
  ]);
  const widths = header.map((cell, i) =>
    Math.max(cell.length, ...lines.map((line) => line[i]!.length)),
  );
  for (const line of [header, ...lines])
    console.log(
      line
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('  '),
    );
  for (const { name, result } of rows) {
    const statuses = Object.entries(result.statusCodeStats ?? {})
      .map(([status, { count }]) => `${status} x${count}`)
      .join(', ');
    if (result.non2xx > 0) console.log(`${name}: answers ${statuses}`);
  }
  for (const note of notes) console.log(note);
}

async function postgresUrl(): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  const base = process.env['PEAPOD_TEST_POSTGRES'] ?? LOCAL_POSTGRES;
  const client = new pg.Client({ connectionString: base, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (error) {
    notes.push(
      `PostgreSQL skipped: nothing answers at ${base} (${(error as Error).message}); run .ci/run.`,
    );
    return undefined;
  }
  const schema = `bench_${randomBytes(6).toString('hex')}`;
  await client.query(`CREATE SCHEMA ${schema}`);
  const url = `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  return {
    url,
    drop: async () => {
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

async function main(): Promise<void> {
  const seconds = option('seconds', 10);
  const connections = option('connections', 32);
  const registrations = option('registrations', 20_000);
  console.log(
    `tracker bench: ${cpus().length} cores, ${connections} connections, load from this process ` +
      `(autocannon), each server a child process, ${seconds} s per scenario; a pool of ` +
      `${registrations} signed records per database`,
  );
  const sample = signRegistrations(1)[0]!;
  const baseline = await startServer([SELF, '--baseline-server']);
  const ceilingGet = await autocannon({ url: `${baseline.url}/`, connections, duration: seconds });
  const ceilingPost = await autocannon({
    url: `${baseline.url}/`,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: sample,
  });
  await stop(baseline.child);
  rows.push({ name: 'ceiling: bare node:http, GET fixed JSON', result: ceilingGet });
  rows.push({ name: `ceiling: bare node:http, POST ${sample.length} B body`, result: ceilingPost });

  const dir = await mkdtemp(join(tmpdir(), 'peapod-tracker-bench-'));
  const postgres = await postgresUrl();
  const databases: [string, string][] = [['sqlite', join(dir, 'tracker.db')]];
  if (postgres !== undefined) databases.push(['postgres', postgres.url]);
  try {
    for (const [name, db] of databases) {
      const bodies = signRegistrations(registrations);
      const tracker = await startServer([
        CLI,
        'tracker',
        '--port',
        '0',
        '--json',
        '--rate-limit',
        '0',
        '--db',
        db,
      ]);
      try {
        let next = 0;
        const register = await autocannon({
          url: tracker.url,
          connections,
          duration: seconds,
          requests: [
            {
              method: 'POST',
              path: '/api/v1/bootstrap/register',
              headers: { 'content-type': 'application/json' },
              setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length]! }),
            },
          ],
        });
        if (register.requests.total > bodies.length)
          notes.push(
            `${name}: the pool of ${bodies.length} records ran out (re-sent ones are 409).`,
          );
        rows.push({
          name: `${name}: register (fresh signed record)`,
          result: register,
          baseline: ceilingPost,
        });
        const discover = await autocannon({
          url: `${tracker.url}/api/v1/bootstrap/discover?limit=20`,
          connections,
          duration: seconds,
        });
        rows.push({
          name: `${name}: discover ?limit=20 (${register['2xx']} rows)`,
          result: discover,
          baseline: ceilingGet,
        });
      } finally {
        await stop(tracker.child);
      }
    }
  } finally {
    await postgres?.drop();
    await rm(dir, { recursive: true, force: true });
  }
  print();
}

if (process.argv.includes('--baseline-server')) runBaselineServer();
else await main();
