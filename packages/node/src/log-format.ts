/**
 * The daemon's log: pino, as JSON lines (for journald, files, scripts) or as lines a person
 * reads on a terminal.
 *
 * Theory of operation: pino always builds the JSON record; with the `pretty` format its
 * destination is `prettyLine`, which turns each record into
 * `20:12:25.123 INFO  peer connected  peer="laptop (MFQWCYL)" address=127.0.0.1:50412`:
 * local time, level, message, then every other field as key=value (strings quoted only when
 * they hold spaces or quotes, objects as JSON). `pid`, `hostname` and `time` are left out of the
 * fields. No worker thread and no extra dependency (pino-pretty's transports run in a worker;
 * a daemon's log needs none of its options). The default is `pretty` on a TTY, else `json`.
 */
import { pino, type Logger } from 'pino';

import type { LogFormat } from './log-format-names.js';
export { LOG_FORMATS, type LogFormat } from './log-format-names.js';

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

function fieldValue(value: unknown): string {
  if (typeof value === 'string')
    return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** One pino JSON record as a line for a person; a line that is not a record comes back as is. */
export function prettyLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const { level, time, msg, pid: _pid, hostname: _hostname, ...fields } = record;
  const when = typeof time === 'number' ? new Date(time) : new Date();
  const clock =
    `${String(when.getHours()).padStart(2, '0')}:${String(when.getMinutes()).padStart(2, '0')}:` +
    `${String(when.getSeconds()).padStart(2, '0')}.${String(when.getMilliseconds()).padStart(3, '0')}`;
  const name = (typeof level === 'number' ? LEVEL_NAMES[level] : undefined) ?? String(level);
  const rest = Object.entries(fields)
    .map(([key, value]) => `${key}=${fieldValue(value)}`)
    .join(' ');
  return `${clock} ${name.padEnd(5)} ${typeof msg === 'string' ? msg : ''}${rest === '' ? '' : `  ${rest}`}\n`;
}

/**
 * The daemon's logger at `level`, writing to `out` (default stdout) in `format` (default: pretty
 * on a TTY, else JSON).
 */
export function createLogger(
  level: string,
  format: LogFormat | undefined,
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): Logger {
  const pretty = (format ?? (out.isTTY === true ? 'pretty' : 'json')) === 'pretty';
  const options = { level, base: { pid: process.pid } };
  if (!pretty) return out === process.stdout ? pino(options) : pino(options, out);
  return pino(options, { write: (line: string) => out.write(prettyLine(line)) });
}
