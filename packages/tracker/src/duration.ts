/** Durations on the command line: "90s", "30m", "1h", "2d", or plain seconds ("3600"). */
const UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Milliseconds of `text`, or undefined when it is not a positive duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (match === null) return undefined;
  const ms = Math.round(Number(match[1]) * UNITS_MS[match[2] ?? 's']!);
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}
