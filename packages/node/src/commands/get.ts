/**
 * `peapod get URL [-o FILE]`: a pooled download through the local daemon.
 *
 * The daemon does the work (it holds the pod links); this command posts the job, draws the
 * progress line on stderr and prints a summary (`--json`: one JSON object on stdout). With
 * `-o -` the bytes stream to stdout in order. Exit status: 0 done and verified, 1 failed.
 */
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { getEvents, getStream, type ApiTarget, type GetRequest } from '../api-client.js';
import { ProgressLine } from '../progress.js';
import { formatBytes } from '../rate-limit.js';

export interface GetOptions {
  readonly output: string | undefined;
  readonly sha256: string | undefined;
  readonly pool: boolean;
  readonly json: boolean;
  readonly header: readonly string[];
  readonly quiet: boolean;
  /** `--strict`: the daemon refuses to pool without a strong ETag or a known digest. */
  readonly strict?: boolean;
}

export async function runGet(target: ApiTarget, url: string, options: GetOptions): Promise<number> {
  const headers = options.header.map((line) => {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`bad --header ${JSON.stringify(line)}: expected "Name: value"`);
    return { name: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() };
  });
  if (options.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(options.sha256)) {
    throw new Error(`--sha256 takes 64 hex digits, got ${JSON.stringify(options.sha256)}`);
  }
  const output = options.output ?? defaultName(url);
  const job: GetRequest = {
    url,
    output: output === '-' ? '-' : resolve(output),
    ...(options.sha256 === undefined ? {} : { sha256: options.sha256.toLowerCase() }),
    pool: options.pool,
    headers,
    ...(options.strict === true ? { strict: true } : {}),
  };
  if (output === '-') return streamToStdout(target, job, options);
  const progress = new ProgressLine(process.stderr, 'peapod');
  // Why the download is not pooled, or restarted, or could not resume: one line each, on
  // stderr, and in the --json summary (`note`), since a script needs the reason too.
  const notes: string[] = [];
  let resumeOffset: number | undefined; // from the first start event (a restart begins at 0)
  let startOffset = 0; // where the last (re)start began: the rate counts the bytes from there
  for await (const event of getEvents(target, job)) {
    switch (event.type) {
      case 'start':
        if (event.note !== '') notes.push(event.note);
        resumeOffset ??= event.resumeOffset;
        startOffset = event.resumeOffset;
        if (event.note !== '' && !options.json) process.stderr.write(`peapod: ${event.note}\n`);
        if (event.resumeOffset > 0 && !options.json) {
          process.stderr.write(`peapod: resuming at ${formatBytes(event.resumeOffset)}\n`);
        }
        break;
      case 'progress':
        if (!options.json && !options.quiet)
          progress.update(event.verifiedBytes, event.totalBytes, event.bySource);
        break;
      case 'done': {
        if (options.json) {
          process.stdout.write(
            `${JSON.stringify({ ok: true, url, output: job.output, ...event, note: notes.join('; '), resumeOffset })}\n`,
          );
        } else {
          // This run's bytes only: a resumed download's earlier part took no time now.
          const rate = (event.totalBytes - startOffset) / Math.max(0.001, event.seconds);
          progress.finish(
            `peapod: ${job.output}: ${formatBytes(event.totalBytes)} in ${event.seconds.toFixed(1)} s ` +
              `(${formatBytes(rate)}/s, ${event.pooled ? 'pooled' : 'single source'}); ` +
              `sha256 ${event.sha256}; verified: ${event.verified.length > 0 ? event.verified.join(', ') : 'no digest known (pod helpers spot-checked)'}`,
          );
          if (!options.quiet)
            process.stderr.write(
              `peapod: pinning: ${event.pinning.level}: ${event.pinning.guarantee}\n`,
            );
        }
        return 0;
      }
      case 'error':
        if (options.json)
          process.stdout.write(
            `${JSON.stringify({ ok: false, url, error: event.message, note: notes.join('; ') })}\n`,
          );
        else progress.finish(`peapod: download failed: ${event.message}`);
        return 1;
    }
  }
  const message = 'the daemon closed the connection before the download ended (did it stop?)';
  if (options.json) process.stdout.write(`${JSON.stringify({ ok: false, url, error: message })}\n`);
  else process.stderr.write(`peapod: ${message}\n`);
  return 1;
}

async function streamToStdout(target: ApiTarget, job: GetRequest, options: GetOptions) {
  const res = await getStream(target, job);
  await pipeline(res, process.stdout, { end: false });
  const result = res.trailers['x-peapod-result'] ?? 'error: the daemon did not say how it ended';
  if (result.startsWith('ok')) {
    if (options.json)
      process.stderr.write(`${JSON.stringify({ ok: true, url: job.url, result })}\n`);
    return 0;
  }
  process.stderr.write(`peapod: download failed: ${result}\n`);
  return 1;
}

function defaultName(url: string): string {
  let name = '';
  try {
    name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  } catch {
    // not a URL the daemon will accept either; it says so
  }
  return name === '' || name === '.' || name === '..'
    ? 'download.bin'
    : name.replace(/[/\\]/g, '_');
}
