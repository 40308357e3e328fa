/**
 * `peapod peers`: the pod, this device, and the members the daemon has seen, as a table a
 * person reads (or `--json`, the daemon's answer as it is).
 *
 * Devices appear as everywhere else: name plus short Device ID (device-label.ts). When devices
 * of another pod tried to connect (the daemon's `refused` list: their handshake failed the pod
 * secret), the output says so, with the address, how often and why, since that is the usual
 * cause of "my other device never shows up": it joined another pod.
 *
 * With gossip on, a second section lists the devices beyond the pod the gossip engine knows:
 * where each was learnt (SOURCE: gossip, tracker, cache = peers.db, link = it linked in), when
 * it was LAST HEARD, its SCORE (0-1) and TRUST (pod or stranger), and an ADDRESS only for a
 * device that broadcasts it (a silent device's address is known to nobody, so there is none to
 * show), then each tracker's state.
 */
import type { PeersAnswer } from '../api-client.js';
import type { GossipAnswer } from '../gossip-service.js';

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

/** How long ago `iso` was, as a person says it: "12s ago", "5m ago", "3h ago", "2d ago". */
export function ago(iso: string, nowMs: number): string {
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (!Number.isFinite(seconds)) return '-';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** The gossip section: this device's stance, the peers beyond the pod, the trackers. */
function renderGossip(gossip: GossipAnswer, nowMs: number): string[] {
  const lines = [''];
  const stance = gossip.broadcast
    ? gossip.addresses.length > 0
      ? `broadcasting as ${gossip.addresses.join(', ')} port ${gossip.listenPort}`
      : 'broadcasting, but no address is known yet (a tracker tells it, or --public-address)'
    : 'silent: this address is never passed on';
  lines.push(`Beyond the pod (gossip): ${stance}`);
  if (gossip.peers.length === 0) {
    lines.push('No peers beyond the pod yet. Give the daemon --tracker URL or --peer HOST:PORT.');
  } else {
    const rows = gossip.peers.map((peer) => [
      label(peer.name, peer.deviceId),
      peer.source,
      ago(peer.lastHeard, nowMs),
      peer.score.toFixed(2),
      peer.trust,
      peer.address ?? (peer.broadcast ? '-' : '- (silent)'),
      peer.linked ? 'linked' : '',
    ]);
    lines.push(
      ...table([['PEER', 'SOURCE', 'LAST HEARD', 'SCORE', 'TRUST', 'ADDRESS', ''], ...rows]),
    );
  }
  for (const tracker of gossip.trackers) {
    const state =
      tracker.state === 'unreachable'
        ? `unreachable (${tracker.detail ?? 'no answer'}); retrying`
        : tracker.state === 'starting'
          ? 'asking...'
          : tracker.registeredUntil === undefined
            ? 'reachable'
            : `reachable, registered until ${tracker.registeredUntil}`;
    lines.push(`Tracker ${tracker.url}: ${state}`);
  }
  return lines;
}

/** The lines `peapod peers` prints for `answer`. */
export function renderPeers(answer: PeersAnswer, nowMs: number = Date.now()): string[] {
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
  if (answer.gossip !== undefined) lines.push(...renderGossip(answer.gossip, nowMs));
  return lines;
}
