/**
 * The peer table: which devices this core knows, how each is reached, and who dials whom.
 *
 * Theory of operation
 * - Hosts report what they learn (`peer-discovered`: a LAN beacon, the peers cache of the last
 *   run, an address the user gave); the table decides whether to dial and says so with a
 *   `connect` output. The host opens the transport and reports `link-opened` with the same
 *   `dialId`, or `dial-failed`. So every host (daemon, simulator, browser) dials by one rule.
 * - One link per pair: of two pod devices that discover each other, the one with the smaller
 *   Device ID (as lowercase hex) dials; the other waits to be dialled. Stranger dials (gossip,
 *   the tracker, `dial-stranger`) skip that rule: the device that wants the link dials, since the
 *   other may be silent (its address is known to nobody). Two links that end up joining the same
 *   pair are resolved by `duplicateToClose`, a rule both ends compute alike.
 * - A dial that fails, or a link that closes before HELLO, counts a failure; the next dial to
 *   that device waits `redialMinMs * 2^(failures - 1)`, at most `redialMaxMs`. A link that became
 *   ready resets the count. A banned device is never dialled again.
 * - Only pod peers' addresses are kept (a device discovered as a pod peer, or met on a pod
 *   link). A stranger (gossip, tracker, `dial-stranger`, an inbound XX link) is kept by Device
 *   ID alone, for its backoff, ban and live link: its address is dialled from the order and
 *   never stored, so the table, its snapshot and anything persisted from it hold no address
 *   learnt beyond the pod (the gossip table holds the signed, broadcast ones).
 * - Entries are bounded (`maxEntries`): when full, the longest-gone entry that is not live
 *   (connected or connecting) is forgotten; when every entry is live, a newly discovered device
 *   is ignored (a device that completes a link is always recorded: links are bounded by the
 *   host's inbound guard).
 * The table never throws on what peers sent: its inputs are checked by the core before.
 */
import { toHex } from './bytes.js';
import type { LinkTrust } from './peer-link.js';

/**
 * Where a peer was learnt: the host's own discovery ('lan', 'cache', 'manual'), or beyond the
 * pod ('gossip': a gossip record or a stranger that linked in; 'tracker').
 */
export type PeerSource = 'lan' | 'cache' | 'manual' | 'gossip' | 'tracker';

export type PeerState = 'discovered' | 'connecting' | 'connected' | 'gone';

/** One row of the peer table, as hosts show it (`peapod peers`). */
export interface PeerSnapshot {
  readonly deviceId: Uint8Array;
  readonly deviceIdHex: string;
  /** From the peer's HELLO; empty until a link was ready. */
  readonly name: string;
  /** The protocol version negotiated in HELLO on the last ready link; 0 before one. */
  readonly protocolVersion: number;
  /** Last address and port it was discovered or connected at. */
  readonly address: string;
  readonly port: number;
  readonly state: PeerState;
  readonly direction: 'inbound' | 'outbound' | undefined;
  readonly linkId: number | undefined;
  readonly rttMs: number | undefined;
  /** Core clock reading of the last state change. */
  readonly sinceMs: number;
  readonly source: PeerSource;
  /** Dial failures since the last ready link. */
  readonly failures: number;
  readonly banned: boolean;
  /** Trust of the current (or last) ready link; undefined before one. */
  readonly trust: LinkTrust | undefined;
}

/** A dial the table decided on (becomes a `connect` output). */
export interface DialOrder {
  readonly dialId: number;
  /** undefined for a stranger dialled by address alone. */
  readonly deviceId: Uint8Array | undefined;
  readonly address: string;
  readonly port: number;
  readonly trust: LinkTrust;
}

export interface PeerTableSettings {
  readonly redialMinMs: number;
  readonly redialMaxMs: number;
  readonly maxEntries: number;
}

export const PeerTableDefaults: PeerTableSettings = {
  /** A beacon arrives every few seconds: the first retry waits for about one. */
  redialMinMs: 1_000,
  /** A device that keeps failing is tried once a minute. */
  redialMaxMs: 60_000,
  /** A household or a rack: far beyond any pod's size, a bound on memory all the same. */
  maxEntries: 4_096,
};

interface Entry {
  readonly deviceId: Uint8Array;
  readonly hex: string;
  name: string;
  protocolVersion: number;
  address: string;
  port: number;
  state: PeerState;
  direction: 'inbound' | 'outbound' | undefined;
  linkId: number | undefined;
  rttMs: number | undefined;
  sinceMs: number;
  source: PeerSource;
  failures: number;
  nextDialMs: number;
  banned: boolean;
  dialId: number | undefined;
  trust: LinkTrust | undefined;
  /** Discovered as a pod peer or met on a pod link: its address is kept. */
  podPeer: boolean;
}

export class PeerTable {
  private readonly entries = new Map<string, Entry>();
  /** Outbound dials in progress by dial ID, and links opened for them. */
  private readonly dials = new Map<number, Entry>();
  private readonly dialLinks = new Map<number, Entry>();
  private readonly links = new Map<number, Entry>();
  /** Stranger dials by address alone (no entry until HELLO names the device), and their links. */
  private readonly addressDials = new Map<number, PeerSource>();
  private readonly addressLinks = new Map<number, PeerSource>();
  private nextDialId = 1;

  constructor(
    private readonly ownHex: string,
    private readonly settings: PeerTableSettings = PeerTableDefaults,
  ) {}

  /**
   * A pod peer was discovered; returns the dial to make, if this side should dial now (the
   * smaller Device ID dials). `trust`: the handshake the dial runs ('pod' with a pod secret).
   */
  discovered(
    deviceId: Uint8Array,
    address: string,
    port: number,
    source: PeerSource,
    nowMs: number,
    trust: LinkTrust = 'pod',
  ): DialOrder | undefined {
    return this.dial(deviceId, address, port, source, nowMs, trust, true);
  }

  /**
   * A stranger this device wants a link to (a gossip `dial`, a content holder, `dial-stranger`):
   * dialled unless linked, connecting, banned or backing off; no smaller-ID rule. `deviceId`
   * undefined: by address alone (its identity is learnt in the handshake).
   */
  dialStranger(
    deviceId: Uint8Array | undefined,
    address: string,
    port: number,
    source: PeerSource,
    nowMs: number,
  ): DialOrder | undefined {
    if (deviceId === undefined) {
      const dialId = this.nextDialId++;
      this.addressDials.set(dialId, source);
      return { dialId, deviceId: undefined, address, port, trust: 'stranger' };
    }
    return this.dial(deviceId, address, port, source, nowMs, 'stranger', false);
  }

  private dial(
    deviceId: Uint8Array,
    address: string,
    port: number,
    source: PeerSource,
    nowMs: number,
    trust: LinkTrust,
    smallerDials: boolean,
  ): DialOrder | undefined {
    const hex = toHex(deviceId);
    if (hex === this.ownHex) return undefined;
    const entry = this.entryFor(deviceId, hex, source, nowMs, false);
    if (entry === undefined) return undefined; // full of live peers: ignore newcomers
    if (entry.state === 'connected' || entry.state === 'connecting') return undefined;
    if (trust === 'pod') entry.podPeer = true;
    entry.address = entry.podPeer ? address : '';
    entry.port = entry.podPeer ? port : 0;
    entry.source = source;
    if (entry.banned || (smallerDials && this.ownHex >= hex) || nowMs < entry.nextDialMs) {
      if (entry.state === 'gone' && !entry.banned) this.setState(entry, 'discovered', nowMs);
      return undefined;
    }
    const dialId = this.nextDialId++;
    entry.dialId = dialId;
    this.dials.set(dialId, entry);
    this.setState(entry, 'connecting', nowMs);
    return { dialId, deviceId: entry.deviceId, address, port, trust };
  }

  /** The host could not open the transport of a dial. */
  dialFailed(dialId: number, nowMs: number): void {
    this.addressDials.delete(dialId);
    const entry = this.dials.get(dialId);
    this.dials.delete(dialId);
    if (entry === undefined || entry.dialId !== dialId) return;
    entry.dialId = undefined;
    this.failed(entry, nowMs);
  }

  /** A link opened; `dialId` when the host opened it for a `connect`. */
  linkOpened(linkId: number, dialId: number | undefined): void {
    if (dialId === undefined) return;
    const addressSource = this.addressDials.get(dialId);
    this.addressDials.delete(dialId);
    if (addressSource !== undefined) this.addressLinks.set(linkId, addressSource);
    const entry = this.dials.get(dialId);
    this.dials.delete(dialId);
    if (entry !== undefined) this.dialLinks.set(linkId, entry);
  }

  /** A link finished HELLO with the device `deviceId`. */
  linkReady(
    linkId: number,
    deviceId: Uint8Array,
    name: string,
    protocolVersion: number,
    remoteAddress: string,
    listenPort: number,
    direction: 'inbound' | 'outbound',
    nowMs: number,
    trust: LinkTrust = 'pod',
  ): void {
    const dialled = this.dialLinks.get(linkId);
    this.dialLinks.delete(linkId);
    const addressSource = this.addressLinks.get(linkId);
    this.addressLinks.delete(linkId);
    // A device first met on a stranger link was learnt beyond the pod.
    const source = addressSource ?? (trust === 'stranger' ? 'gossip' : 'lan');
    const hex = toHex(deviceId);
    if (dialled !== undefined && dialled.hex !== hex) {
      // The address answered as another device: the dialled one is not there.
      dialled.dialId = undefined;
      this.failed(dialled, nowMs);
    }
    const [host, port] = splitHostPort(remoteAddress);
    // Forced: a device that completed a link is always recorded (links are bounded by the host).
    const entry = this.entryFor(deviceId, hex, source, nowMs, true)!;
    entry.name = name;
    entry.protocolVersion = protocolVersion;
    if (trust === 'pod') entry.podPeer = true;
    entry.address = entry.podPeer ? host : '';
    entry.port = entry.podPeer ? listenPort || port || entry.port : 0;
    entry.direction = direction;
    entry.linkId = linkId;
    entry.failures = 0;
    entry.nextDialMs = 0;
    entry.dialId = undefined;
    entry.trust = trust;
    this.links.set(linkId, entry);
    this.setState(entry, 'connected', nowMs);
  }

  /** A link closed (after HELLO or before). */
  linkClosed(linkId: number, nowMs: number): void {
    this.addressLinks.delete(linkId);
    const dialled = this.dialLinks.get(linkId);
    this.dialLinks.delete(linkId);
    if (dialled !== undefined && dialled.state === 'connecting') {
      dialled.dialId = undefined;
      this.failed(dialled, nowMs);
    }
    const entry = this.links.get(linkId);
    this.links.delete(linkId);
    if (entry === undefined || entry.linkId !== linkId) return;
    entry.linkId = undefined;
    entry.direction = undefined;
    this.setState(entry, 'gone', nowMs);
  }

  rtt(linkId: number, rttMs: number): void {
    const entry = this.links.get(linkId);
    if (entry !== undefined) entry.rttMs = rttMs;
  }

  /** A device was banned: never dialled again. */
  banned(deviceId: Uint8Array): void {
    const entry = this.entries.get(toHex(deviceId));
    if (entry !== undefined) entry.banned = true;
  }

  /** True when the table knows the device (for naming it in messages). */
  knows(hex: string): boolean {
    return this.entries.has(hex);
  }

  snapshot(): PeerSnapshot[] {
    return [...this.entries.values()].map((entry) => ({
      deviceId: entry.deviceId,
      deviceIdHex: entry.hex,
      name: entry.name,
      protocolVersion: entry.protocolVersion,
      address: entry.address,
      port: entry.port,
      state: entry.state,
      direction: entry.direction,
      linkId: entry.linkId,
      rttMs: entry.rttMs,
      sinceMs: entry.sinceMs,
      source: entry.source,
      failures: entry.failures,
      banned: entry.banned,
      trust: entry.trust,
    }));
  }

  private failed(entry: Entry, nowMs: number): void {
    entry.failures++;
    const backoff = this.settings.redialMinMs * 2 ** Math.min(entry.failures - 1, 30);
    entry.nextDialMs = nowMs + Math.min(this.settings.redialMaxMs, backoff);
    if (entry.state === 'connecting') this.setState(entry, 'gone', nowMs);
  }

  private setState(entry: Entry, state: PeerState, nowMs: number): void {
    if (entry.state !== state) entry.sinceMs = nowMs;
    entry.state = state;
  }

  private entryFor(
    deviceId: Uint8Array,
    hex: string,
    source: PeerSource,
    nowMs: number,
    force: boolean,
  ): Entry | undefined {
    const known = this.entries.get(hex);
    if (known !== undefined) return known;
    if (this.entries.size >= this.settings.maxEntries && !this.evictOne() && !force) {
      return undefined;
    }
    const entry: Entry = {
      deviceId: deviceId.slice(),
      hex,
      name: '',
      protocolVersion: 0,
      // Filled by the caller when the device is a pod peer (strangers' are never stored).
      address: '',
      port: 0,
      state: 'discovered',
      direction: undefined,
      linkId: undefined,
      rttMs: undefined,
      sinceMs: nowMs,
      source,
      failures: 0,
      nextDialMs: 0,
      banned: false,
      dialId: undefined,
      trust: undefined,
      podPeer: false,
    };
    this.entries.set(hex, entry);
    return entry;
  }

  /** Forgets the longest-gone entry that is not live; false when every entry is live. */
  private evictOne(): boolean {
    let oldest: Entry | undefined;
    for (const entry of this.entries.values()) {
      if (entry.state === 'connected' || entry.state === 'connecting') continue;
      if (oldest === undefined || entry.sinceMs < oldest.sinceMs) oldest = entry;
    }
    if (oldest === undefined) return false;
    this.entries.delete(oldest.hex);
    return true;
  }
}

/** What `duplicateToClose` knows of a ready link. */
export interface ReadyLinkFacts {
  readonly linkId: number;
  readonly trust: LinkTrust;
  readonly direction: 'inbound' | 'outbound';
}

/**
 * Two ready links join this device (`ownHex`) and `remoteHex`: which one this side closes, by
 * facts both ends share, so both pick the same link. A pod link beats a stranger link; of two
 * links of one trust dialled by different ends, the one the smaller Device ID dialled stays;
 * two dialled by the same end are resolved by that end alone, which closes the newer (`added`):
 * the other end returns undefined and waits for it.
 */
export function duplicateToClose(
  ownHex: string,
  remoteHex: string,
  existing: ReadyLinkFacts,
  added: ReadyLinkFacts,
): number | undefined {
  if (existing.trust !== added.trust) {
    return existing.trust === 'stranger' ? existing.linkId : added.linkId;
  }
  if (existing.direction === added.direction) {
    return added.direction === 'outbound' ? added.linkId : undefined;
  }
  const smallerIsOwn = ownHex < remoteHex;
  const keptDirection = smallerIsOwn ? 'outbound' : 'inbound';
  return existing.direction === keptDirection ? added.linkId : existing.linkId;
}

/** `host:port` or `[v6]:port` into its parts (port 0 when absent or malformed). */
function splitHostPort(address: string): [string, number] {
  const match = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(address);
  if (match === null) return [address, 0];
  const port = Number(match[2]);
  return [match[1]!, port <= 65_535 ? port : 0];
}
