/**
 * `peapod tracker`: runs the bootstrap tracker and cluster control plane (@peapod/tracker,
 * docs/tracker.md) until SIGINT/SIGTERM, logging with pino as the daemon does (readable lines
 * on a terminal, JSON lines with --json or when piped).
 *
 * Storage: embedded SQLite by default (`tracker.db` in the data directory), another SQLite file
 * with `--db PATH`, or PostgreSQL with `--db postgres://...`, where several trackers may share
 * one database. The tracker keeps no state a restart loses except its rate-limit buckets.
 */
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { PeapodError } from '@peapod/core';
import { LOG_FORMATS, type LogFormat } from '../log-format-names.js';

interface TrackerFlags {
  port: string;
  host: string;
  db?: string;
  ttl: string;
  nodeTtl: string;
  rateLimit: string;
  trustProxy?: boolean;
  clusterTokenFile?: string;
  maxConnections: string;
  json?: boolean;
  logLevel: string;
  logFormat?: LogFormat;
}

function fail(message: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', message);
}

/** The flag's duration in ms, or a sentence naming the flag. */
async function durationFlag(flag: string, text: string): Promise<number> {
  const { parseDuration } = await import('@peapod/tracker');
  const ms = parseDuration(text);
  if (ms === undefined) fail(`${flag}: cannot read ${JSON.stringify(text)} (try 1h, 30m or 90s)`);
  return ms;
}

/** Where the password of a postgres:// URL would show in a log, it shows as "***". */
function printableDb(db: string): string {
  return db.replace(/^(postgres(?:ql)?:\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

/** The cluster token in `path`: its text without surrounding whitespace, at least 16 characters. */
async function readClusterToken(path: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    fail(`--cluster-token-file: cannot read ${path}: ${(error as Error).message}`);
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token))
    fail('--cluster-token-file: the file must hold one token of at least 16 characters, no spaces');
  return token;
}

/** Adds `peapod tracker` to `program`. */
export function registerTrackerCommand(program: Command): void {
  program
    .command('tracker')
    .description('run a bootstrap tracker and cluster control plane (docs/tracker.md)')
    .option('--port <port>', 'TCP port of the REST API', '8090')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option(
      '--db <path|url>',
      'SQLite file, ":memory:", or postgres://user:password@host/db to share one database ' +
        'between several trackers (default: tracker.db in the data directory)',
    )
    .option('--ttl <duration>', 'how long a bootstrap registration lives', '1h')
    .option('--node-ttl <duration>', 'how long a cluster node lives after a heartbeat', '2m')
    .option('--rate-limit <n>', 'requests per second per source address (0: no limit)', '20')
    .option(
      '--trust-proxy',
      'take the client address from the last X-Forwarded-For entry (only behind your own load balancer)',
    )
    .option(
      '--cluster-token-file <path>',
      'require this bearer token (the file holds it) on the control-plane endpoints',
    )
    .option('--max-connections <n>', 'most open connections at once (0: no cap)', '10000')
    .option('--json', 'log JSON lines (the default when stdout is not a terminal)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .addOption(
      new Option('--log-format <format>', 'json, or pretty').choices(LOG_FORMATS).hideHelp(),
    )
    .addHelpText(
      'after',
      `
Examples:
  $ peapod tracker
  $ peapod tracker --host 0.0.0.0 --port 8090 --ttl 30m
  $ peapod tracker --db postgres://tracker:secret@db.internal/peapod --json`,
    )
    .action(async (options: TrackerFlags) => {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) fail('--port: 0 to 65535');
      const rate = Number(options.rateLimit);
      if (!Number.isFinite(rate) || rate < 0)
        fail('--rate-limit: a number of requests per second, 0 for none');
      const ttlMs = await durationFlag('--ttl', options.ttl);
      const nodeTtlMs = await durationFlag('--node-ttl', options.nodeTtl);
      const [{ createTracker }, { createLogger }, { DataDir }, { stopOnSignals }] =
        await Promise.all([
          import('@peapod/tracker'),
          import('../log-format.js'),
          import('../data-dir.js'),
          import('../stop-on-signals.js'),
        ]);
      const clusterToken =
        options.clusterTokenFile === undefined
          ? undefined
          : await readClusterToken(options.clusterTokenFile);
      const maxConnections = Number(options.maxConnections);
      if (!Number.isInteger(maxConnections) || maxConnections < 0)
        fail('--max-connections: a whole number, 0 for no cap');
      const db = options.db ?? join((await DataDir.open()).path, 'tracker.db');
      const logger = createLogger(
        options.logLevel,
        options.json === true ? 'json' : options.logFormat,
      );
      const tracker = createTracker({
        db,
        ttlMs,
        nodeTtlMs,
        logger,
        rateLimits: { addressRatePerSecond: rate, addressBurst: Math.max(1, Math.ceil(rate * 2)) },
        trustProxy: options.trustProxy === true,
        maxConnections,
        ...(clusterToken === undefined ? {} : { clusterToken }),
      });
      try {
        await tracker.listen(port, options.host);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        fail(
          `cannot start the tracker on ${options.host}:${port} with ${printableDb(db)}: ${message}`,
        );
      }
      logger.info(
        {
          url: tracker.url,
          db: printableDb(db),
          ttlMs,
          nodeTtlMs,
          trustProxy: options.trustProxy === true,
          clusterToken: clusterToken !== undefined,
          maxConnections,
        },
        'ready',
      );
      stopOnSignals(logger, () => tracker.close());
    });
}
