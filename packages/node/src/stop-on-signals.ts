/**
 * How a long-running command (`peapod daemon`, `peapod tracker`) ends: on the first SIGINT or
 * SIGTERM it logs "shutting down", runs `close` once (later signals are ignored while it runs)
 * and exits 0, or 1 with "shutdown failed" when `close` rejects.
 */

/** The part of a pino logger this needs. */
interface ShutdownLogger {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export function stopOnSignals(logger: ShutdownLogger, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error(
          { error: error instanceof Error ? error.message : String(error) },
          'shutdown failed',
        );
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
