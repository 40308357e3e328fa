/**
 * `peapod fetch ID|LINK [-o PATH] [--only GLOB]... [--force]`: a content from the pod, through
 * the local daemon, into files.
 *
 * The daemon does the work (content-api.ts): it finds the manifest (its store, or the pod),
 * checks the output, fetches every chunk from the members that hold it (each verified before
 * it is written) and writes the file, or the tree under PATH. This command draws the progress
 * line on stderr as `peapod get` does (progress.ts) and prints a summary (`--json`: one JSON
 * object on stdout). Ctrl-C stops the fetch; what was verified is in the daemon's store, so
 * the same command again reads it back from there instead of fetching it. Exit statuses as
 * `get`'s: 0 done, 1 failed (the message says why), 2 usage, 3 no daemon, 130 interrupted.
 */
import { resolve } from 'node:path';
import {
  ApiError,
  ApiRefused,
  DaemonUnreachable,
  fetchEvents,
  type ApiTarget,
  type FetchRequest,
} from '../api-client.js';
import { parseContentRef } from '../content-link.js';
import { printable } from '../printable.js';
import { ProgressLine, sourceShares } from '../progress.js';
import { formatBytes } from '../rate-limit.js';
import { GET_EXIT_CODES, UsageError } from './get.js';

export interface FetchOptions {
  readonly output?: string | undefined;
  readonly only?: readonly string[] | undefined;
  readonly force: boolean;
  readonly json: boolean;
  readonly quiet: boolean;
}

/** The exit status table for `--help`. */
export const FETCH_EXIT_HELP = `Exit status:
  0    fetched, every chunk verified
  1    the fetch failed (no member holds what is missing, the output, the disk); the message says why
  2    usage error (not an ID or link, a bad option)
  3    no daemon answers, or the daemon refused the request
  130  interrupted (Ctrl-C); re-run the same command to resume`;

export async function runFetch(
  target: ApiTarget,
  reference: string,
  options: FetchOptions,
): Promise<number> {
  const ref = parseContentRef(reference);
  if (ref === undefined) {
    throw new UsageError(
      `not a content ID or peapod:// link: ${JSON.stringify(reference)}; ` +
        '`peapod share` prints both, `peapod ls` lists what this device holds',
    );
  }
  const request: FetchRequest = {
    id: ref.contentIdHex,
    ...(options.output === undefined
      ? { directory: process.cwd() }
      : { output: resolve(options.output) }),
    ...(ref.name === undefined ? {} : { name: ref.name }),
    ...(options.only === undefined || options.only.length === 0 ? {} : { only: options.only }),
    force: options.force,
  };
  const progress = new ProgressLine(process.stderr);
  const chatty = !options.json;
  const say = (line: string) => (chatty ? progress.finish(`peapod: ${line}`) : undefined);
  const summary = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const onInterrupt = () => {
    const message =
      'interrupted; what was verified is kept in the store: re-run the same command to resume';
    if (options.json)
      summary({ ok: false, contentId: request.id, error: message, interrupted: true });
    else say(message);
    process.exit(GET_EXIT_CODES.interrupted);
  };
  process.once('SIGINT', onInterrupt);
  let output = options.output ?? '';
  try {
    for await (const event of fetchEvents(target, request)) {
      switch (event.type) {
        case 'start':
          output = event.output ?? output;
          if (chatty) progress.note(`peapod: writing ${printable(output)}`);
          if (chatty && event.selectedBytes < event.totalBytes) {
            progress.note(
              `peapod: fetching ${formatBytes(event.selectedBytes)} of ${formatBytes(event.totalBytes)} (--only)`,
            );
          }
          break;
        case 'waiting':
          if (chatty && !options.quiet) progress.note(`peapod: ${event.message}`);
          break;
        case 'progress':
          if (chatty && !options.quiet) {
            progress.update(
              event.verifiedBytes,
              event.totalBytes,
              event.bySource,
              printableNames(event.sourceNames),
            );
          }
          break;
        case 'done': {
          if (options.json) {
            summary({ ok: true, output, ...event });
            return GET_EXIT_CODES.ok;
          }
          const rate = event.totalBytes / Math.max(0.001, event.seconds);
          say(
            `${printable(output)}: ${formatBytes(event.totalBytes)} in ${event.seconds.toFixed(1)} s ` +
              `(${formatBytes(rate)}/s), every chunk verified`,
          );
          progress.note(`peapod: sources: ${sourceShares(event.bySource, event.sourceNames)}`);
          return GET_EXIT_CODES.ok;
        }
        case 'error':
          if (options.json) summary({ ok: false, contentId: request.id, error: event.message });
          else say(`fetch failed: ${printable(event.message)}`);
          return GET_EXIT_CODES.failed;
      }
    }
    throw new Error(
      'the daemon closed the connection before the fetch ended (did it stop? `peapod peers` tells whether it runs)',
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (options.json) summary({ ok: false, contentId: request.id, error: message });
    else say(printable(error instanceof ApiError ? `fetch failed: ${message}` : message));
    // What the daemon answers about the fetch itself (the manifest, the output) is the fetch
    // failing; no daemon, or one that refuses the key, is exit 3.
    const noDaemon = error instanceof DaemonUnreachable || error instanceof ApiRefused;
    return noDaemon ? GET_EXIT_CODES.noDaemon : GET_EXIT_CODES.failed;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

/** Device names are chosen by their owners: printed escaped (printable.ts). */
function printableNames(
  names: Readonly<Record<string, string>> | undefined,
): Record<string, string> | undefined {
  if (names === undefined) return undefined;
  return Object.fromEntries(Object.entries(names).map(([key, name]) => [key, printable(name)]));
}
