/**
 * `peapod peers`: the pod, this device, and the members the daemon has seen, as a table a
 * person reads (or `--json`, the daemon's answer as it is).
 *
 * Devices appear as everywhere else: name plus short Device ID (device-label.ts). When devices
 * of another pod tried to connect (the daemon's `refused` list: their handshake failed the pod
 * secret), the output says so, with the address, how often and why, since that is the usual
 * cause of "my other device never shows up": it joined another pod.
 */
import type { PeersAnswer } from '../api-client.js';

/** Pads each column to its widest cell. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return rows.map((row) =>
    row
      .map((cell, i) =>
        i === row.length - 1 ? cell : cell + ' '.repeat(widths[i]! - [...cell].length),
      )
      .join('  ')
      .trimEnd(),
  );
}

/** `name (SHORTID)` from a formatted Device ID (its first group is the short ID). */
function label(name: string | undefined, deviceId: string): string {
  const short = deviceId.slice(0, 7);
  return name === undefined || name === '' ? `(${short})` : `${name} (${short})`;
}

/** The lines `peapod peers` prints for `answer`. */
export function renderPeers(answer: PeersAnswer): string[] {
  const lines: string[] = [];
  if (answer.pod !== undefined) lines.push(`Pod:         ${answer.pod}`);
  lines.push(`This device: ${label(answer.deviceName, answer.deviceId)}  ${answer.deviceId}`);
  lines.push('');
  if (answer.peers.length === 0) {
    lines.push('No pod members seen yet. Is `peapod daemon` running on the others, in this pod?');
  } else {
    const rows = answer.peers.map((peer) => [
      label(peer.name, peer.deviceId),
      peer.state,
      peer.address,
      peer.rttMs === undefined ? '-' : `${peer.rttMs.toFixed(1)} ms`,
    ]);
    lines.push(...table([['MEMBER', 'STATE', 'ADDRESS', 'RTT'], ...rows]));
  }
  const refused = answer.refused ?? [];
  if (refused.length > 0) {
    const attempts = refused.reduce((sum, entry) => sum + entry.count, 0);
    lines.push('');
    lines.push(
      `Refused: ${attempts} connection attempt${attempts === 1 ? '' : 's'} from devices not in ` +
        'this pod (another join code?). To add such a device, run `peapod code` here and ' +
        '`peapod join CODE` there.',
    );
    lines.push(
      ...table([
        ['ADDRESS', 'TIMES', 'LAST', 'REASON'],
        ...refused.map((entry) => [entry.address, String(entry.count), entry.lastAt, entry.reason]),
      ]).map((line) => `  ${line}`),
    );
  }
  return lines;
}
