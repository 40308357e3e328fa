/**
 * What the daemon does with an error nobody handled, and which errors a job may contain.
 *
 * Theory of operation (the decision for issue 9 item 8): errors are contained per job, not at
 * the process. Everything a job meets from outside (the file system, an origin, a peer, the
 * user's request) ends that job alone with one sentence (download-job.ts `failWith`, daemon.ts
 * `serveGet`). What still reaches the process is, by construction, a PeaPod bug: an invariant
 * broke (PEAPOD_ERR_ASSERTION, rethrown by jobs on purpose) or a path nobody thought of. The
 * core's state may then be wrong, and going on could deliver unverified bytes, so "log and keep
 * serving" is the wrong answer: the daemon logs the error once, with its stack, and exits with
 * status 70 (EX_SOFTWARE) so a service manager restarts it. Part files and their sidecars are
 * consistent on disk at every moment (output-file.ts), so re-running a download resumes.
 */
import type { Logger } from 'pino';

/** Exit status after an internal error (sysexits.h EX_SOFTWARE). */
export const INTERNAL_ERROR_EXIT_STATUS = 70;

/** True for a broken internal invariant (core `assert`), which no job may contain. */
export function isInvariantBreak(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === 'PEAPOD_ERR_ASSERTION';
}

/** Rethrows `error` when it is a broken invariant; returns otherwise (the caller contains it). */
export function escalateIfInvariant(error: unknown): void {
  if (isInvariantBreak(error)) throw error;
}

/**
 * Makes an uncaught exception or unhandled rejection end the daemon with one fatal log line
 * (with the stack, for the bug report) and status 70, instead of Node's bare stack trace.
 */
export function installProcessGuard(logger: Logger): void {
  let exiting = false;
  const fatal = (kind: string, error: unknown) => {
    if (exiting) return;
    exiting = true;
    const message = error instanceof Error ? error.message : String(error);
    logger.fatal(
      { err: error },
      `internal error (${kind}): ${message}; the daemon stops. This is a PeaPod bug: please ` +
        'report it with this log. Restart the daemon; re-run downloads resume from their part files.',
    );
    logger.flush(() => process.exit(INTERNAL_ERROR_EXIT_STATUS));
  };
  process.on('uncaughtException', (error) => fatal('uncaught exception', error));
  process.on('unhandledRejection', (reason) => fatal('unhandled rejection', reason));
}
