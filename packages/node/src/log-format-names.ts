/**
 * The names of the daemon's log formats (see log-format.ts). Its own module so the CLI lists
 * them in `daemon --help` without loading pino.
 */

/** `--log-format` choices. */
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
