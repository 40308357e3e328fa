/**
 * `peapod get URL [-o FILE]`: a pooled download through the local daemon.
 *
 * The daemon does the work (it holds the pod links); this command posts the job, draws the
 * progress line on stderr and prints a summary (`--json`: one JSON object on stdout). With
 * `-o -` the bytes stream to stdout in order, and stderr carries the progress and notes only
 * when it is a terminal (a pipeline's stderr gets errors alone).
 *
 * What a person sees: notes (why not pooled, resuming) as lines of their own above the progress
 * line; a final line that first clears the progress line; errors as one sentence with the next
 * step (error-text.ts). Ctrl-C (SIGINT) closes the job's connection (the daemon then keeps the
 * part file), says where a re-run resumes, and exits 130. Exit statuses: `GET_EXIT_CODES`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ApiError,
  ApiRefused,
  DaemonUnreachable,
  getEvents,
  getStream,
  type ApiTarget,
  type GetRequest,
} from '../api-client.js';
import { explainError } from '../error-text.js';
import { ProgressLine, sourceShares } from '../progress.js';
import { formatBytes } from '../rate-limit.js';

export interface GetOptions {
  readonly output?: string | undefined;
  readonly sha256?: string | undefined;
  readonly pool: boolean;
  readonly json: boolean;
  readonly header?: readonly string[] | undefined;
  readonly quiet: boolean;
  /** Replace an existing output file. */
  readonly force?: boolean;
  /** `--strict`: the daemon refuses to pool without a strong ETag or a known digest. */
  readonly strict?: boolean;
}

/** Exit statuses of `peapod get` (listed in its `--help`). */
export const GET_EXIT_CODES = {
  ok: 0,
  failed: 1,
  usage: 2,
  noDaemon: 3,
  interrupted: 130,
} as const;

/** The exit status table for `--help`. */
export const GET_EXIT_HELP = `Exit status:
  0    downloaded and verified
  1    the download failed (origin, verification, output file, disk); the message says why
  2    usage error (unknown option, bad --header or --sha256)
  3    no daemon answers, or the daemon refused the request
  130  interrupted (Ctrl-C); re-run the same command to resume`;

/** Where human-readable output goes; see the module comment. */
interface Screen {
  readonly progress: ProgressLine;
  /** Notes and progress allowed on stderr. */
  readonly chatty: boolean;
}

export async function runGet(target: ApiTarget, url: string, options: GetOptions): Promise<number> {
  if (!isHttpUrl(url)) {
    throw new UsageError(
      `not an http(s) URL: ${JSON.stringify(url)}; give the whole URL, e.g. https://example.com/file.iso`,
    );
  }
  const headers = (options.header ?? []).map((line) => {
    const colon = line.indexOf(':');
    if (colon <= 0)
      throw new UsageError(`bad --header ${JSON.stringify(line)}: expected "Name: value"`);
    return { name: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() };
  });
  if (options.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(options.sha256)) {
    throw new UsageError(`--sha256 takes 64 hex digits, got ${JSON.stringify(options.sha256)}`);
  }
  const output = options.output ?? defaultName(url);
  const job: GetRequest = {
    url,
    output: output === '-' ? '-' : resolve(output),
    ...(options.sha256 === undefined ? {} : { sha256: options.sha256.toLowerCase() }),
    pool: options.pool,
    force: options.force === true,
    headers,
    ...(options.strict === true ? { strict: true } : {}),
  };
  const toStdout = output === '-';
  const chatty = !options.json && (!toStdout || process.stderr.isTTY === true);
  const screen: Screen = {
    progress: new ProgressLine(process.stderr, { plain: !toStdout }),
    chatty,
  };
  const interrupted = onInterrupt(() => {
    const at = screen.progress.verifiedBytes;
    const from = toStdout ? 0 : checkpointOf(job.output);
    const message = toStdout
      ? 'interrupted; the bytes went to stdout, so a re-run starts over'
      : from > 0
        ? `interrupted at ${formatBytes(Math.max(at, from))}; re-run the same command to resume from ${formatBytes(from)} (the part file is kept)`
        : 'interrupted before the first checkpoint; re-run the same command to start again';
    if (options.json) {
      // With -o - stdout carries the bytes: the summary goes to stderr, as on success.
      (toStdout ? process.stderr : process.stdout).write(
        `${JSON.stringify({ ok: false, url, error: message, interrupted: true })}\n`,
      );
    } else screen.progress.finish(`peapod: ${message}`);
  });
  try {
    return toStdout
      ? await streamToStdout(target, job, options, screen)
      : await toFile(target, job, url, options, screen);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const noDaemon =
      error instanceof DaemonUnreachable ||
      error instanceof ApiError ||
      error instanceof ApiRefused;
    const message = explainError(error instanceof Error ? error.message : String(error));
    if (options.json) {
      (toStdout ? process.stderr : process.stdout).write(
        `${JSON.stringify({ ok: false, url, error: message })}\n`,
      );
    } else screen.progress.finish(`peapod: ${message}`);
    // What the daemon relays about the job itself (409: the output; 502: the origin) is the
    // download failing, not the daemon.
    const jobFailed = error instanceof ApiError && (error.status === 409 || error.status === 502);
    return noDaemon && !jobFailed ? GET_EXIT_CODES.noDaemon : GET_EXIT_CODES.failed;
  } finally {
    interrupted.dispose();
  }
}

/**
 * Where a re-run resumes: the verified prefix the part file's sidecar records (output-file.ts
 * names it `FILE.peapod-part.json`), 0 when there is none yet.
 */
function checkpointOf(output: string): number {
  try {
    const sidecar = JSON.parse(readFileSync(`${output}.peapod-part.json`, 'utf8')) as {
      verifiedBytes?: unknown;
    };
    return Number.isSafeInteger(sidecar.verifiedBytes) ? (sidecar.verifiedBytes as number) : 0;
  } catch {
    return 0;
  }
}

/** A bad option value: the CLI prints it and exits 2. */
export class UsageError extends Error {}

/** On SIGINT: `say` (once), then exit 130; the closed socket tells the daemon to stop the job. */
function onInterrupt(say: () => void): { dispose(): void } {
  const handler = () => {
    say();
    process.exit(GET_EXIT_CODES.interrupted);
  };
  process.once('SIGINT', handler);
  return { dispose: () => process.off('SIGINT', handler) };
}

async function toFile(
  target: ApiTarget,
  job: GetRequest,
  url: string,
  options: GetOptions,
  screen: Screen,
): Promise<number> {
  const { progress, chatty } = screen;
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
        if (event.note !== '' && chatty) progress.note(`peapod: ${event.note}`);
        if (event.resumeOffset > 0 && chatty) {
          progress.note(`peapod: resuming at ${formatBytes(event.resumeOffset)}`);
        }
        break;
      case 'progress':
        if (chatty && !options.quiet)
          progress.update(event.verifiedBytes, event.totalBytes, event.bySource, event.sourceNames);
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
              `(${formatBytes(rate)}/s, ${event.servedFrom === 'pod' ? 'from the pod' : event.pooled ? 'pooled' : 'single source'})`,
          );
          if (event.revalidation !== undefined)
            progress.note(`peapod: revalidated with the origin: ${event.revalidation}`);
          progress.note(`peapod: pinning: ${event.pinning.level}: ${event.pinning.guarantee}`);
          progress.note(
            `peapod: sha256 ${event.sha256}; verified: ${event.verified.length > 0 ? event.verified.join(', ') : unverifiedNote(event)}`,
          );
          if (event.pooled || event.servedFrom === 'pod')
            progress.note(`peapod: sources: ${sourceShares(event.bySource, event.sourceNames)}`);
        }
        return GET_EXIT_CODES.ok;
      }
      case 'error': {
        const message = explainError(event.message);
        if (options.json)
          process.stdout.write(
            `${JSON.stringify({ ok: false, url, error: message, note: notes.join('; ') })}\n`,
          );
        else progress.finish(`peapod: download failed: ${message}`);
        return GET_EXIT_CODES.failed;
      }
    }
  }
  throw new Error(
    'the daemon closed the connection before the download ended (did it stop? `peapod peers` tells whether it runs)',
  );
}

/** What stood in for a digest when none was known: true for each way a download is made. */
function unverifiedNote(event: { readonly servedFrom?: 'pod'; readonly pooled: boolean }): string {
  if (event.servedFrom === 'pod')
    return 'no digest known (a 16 KiB sample checked against the origin)';
  return event.pooled ? 'no digest known (pod helpers spot-checked)' : 'no digest known';
}

async function streamToStdout(
  target: ApiTarget,
  job: GetRequest,
  options: GetOptions,
  screen: Screen,
): Promise<number> {
  const res = await getStream(target, job);
  let bytes = 0;
  const draw = screen.chatty && !options.quiet;
  const total = Number(res.headers['x-peapod-total-bytes']);
  res.on('data', (part: Buffer) => {
    bytes += part.length;
    if (draw) screen.progress.update(bytes, Number.isSafeInteger(total) ? total : undefined, {});
  });
  try {
    await pipeline(res, process.stdout, { end: false });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPIPE') throw error;
    // `peapod get URL -o - | head`: the reader left; as curl, say so and fail.
    screen.progress.finish(
      'peapod: stdout was closed before the download ended (the reading program exited)',
    );
    return GET_EXIT_CODES.failed;
  }
  const result = res.trailers['x-peapod-result'] ?? 'error: the daemon did not say how it ended';
  if (result.startsWith('ok')) {
    if (options.json)
      process.stderr.write(`${JSON.stringify({ ok: true, url: job.url, result })}\n`);
    else if (screen.chatty)
      screen.progress.finish(`peapod: -: ${formatBytes(bytes)} to stdout; ${result.slice(3)}`);
    return GET_EXIT_CODES.ok;
  }
  screen.progress.finish(
    `peapod: download failed: ${explainError(result.replace(/^error: /, ''))}`,
  );
  return GET_EXIT_CODES.failed;
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
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
