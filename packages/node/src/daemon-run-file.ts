/**
 * The file a running daemon writes into its data directory to say where its API listens, so
 * the CLI finds it. Its own module so the CLI's short commands (`get`, `peers`) read it without
 * loading the daemon.
 */

/** The file in the data directory that says where a running daemon's API listens. */
export const DAEMON_RUN_FILE = 'daemon.json';

/** What `DAEMON_RUN_FILE` holds. */
export interface DaemonRunFile {
  readonly pid: number;
  readonly apiHost: string;
  readonly apiPort: number;
}
