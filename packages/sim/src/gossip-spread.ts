/**
 * How far and how cheaply announcements spread: the gossip simulation's measurements.
 *
 * Theory of operation
 * - The scenario names an origin and a kind before it makes the origin speak (`expect`): a
 *   PEER_ANNOUNCEMENT after `announce`, a PEER_UPDATE after `setSelf`, a CONTENT_AVAILABILITY
 *   after `announceContent`. The next frame of that kind the origin
 *   sends with its own key as the envelope's origin is the tracked message; its message ID is
 *   read from the frame header (docs/protocol.md section 11: u8 ttl | 16 messageId | 32
 *   originPublicKey | ...), which every relay copies unchanged.
 * - Every `send` of a frame with a tracked message ID counts as one message of that
 *   announcement (the origin's own sends included, lost frames included: they were sent).
 * - Every `gossip:accepted` event for a tracked ID records the receiving node's `hops` (an
 *   engine accepts a message once); the origin has it at hop 0.
 * - The population an announcement is measured against is its live nodes: those in the overlay
 *   (a gossip link up) when it was first sent and still live at the end of its spread window.
 *   Nodes that had joined but were still dialling their first link are counted apart
 *   (`joinedNotLinked`): no protocol reaches a node before it has a link. Its rounds are
 *   the least hop count h such that at least 99.9% of that population had it within h hops; its
 *   messages per node are its sends divided by the population.
 */
import { GossipCode, type GossipEvent, type GossipFrameMessage } from '@peapod/core';

export const ANNOUNCEMENT_KINDS = [
  'peer-announcement',
  'peer-update',
  'content-availability',
] as const;
export type AnnouncementKind = (typeof ANNOUNCEMENT_KINDS)[number];

export const KIND_CODE: Readonly<Record<AnnouncementKind, number>> = {
  'peer-announcement': GossipCode.peerAnnouncement,
  'peer-update': GossipCode.peerUpdate,
  'content-availability': GossipCode.contentAvailability,
};

/** The fraction of live nodes an announcement must reach. */
export const COVERAGE_TARGET = 0.999;

const HEADER_ID_OFFSET = 1;
const HEADER_ORIGIN_OFFSET = 17;
const HEADER_BYTES = 49;

export interface TrackedAnnouncement {
  readonly kind: AnnouncementKind;
  readonly origin: number;
  readonly messageKey: string;
  readonly firstSentMs: number;
  sends: number;
  /** Receiving node -> hops at acceptance. */
  readonly hops: Map<number, number>;
}

interface Expectation {
  readonly kind: AnnouncementKind;
  readonly publicKey: Uint8Array;
}

/** The measurement of one announcement against its population. */
export interface SpreadResult {
  readonly kind: AnnouncementKind;
  readonly origin: number;
  readonly population: number;
  /** Population members that had it (the origin included). */
  readonly covered: number;
  /** Hops within which COVERAGE_TARGET of the population had it; undefined: never reached. */
  readonly rounds: number | undefined;
  /** Hops within which every covered member had it. */
  readonly lastHop: number;
  readonly sends: number;
  readonly messagesPerNode: number;
  /** Nodes that had joined but had no gossip link up yet when it was first sent (not measured). */
  readonly joinedNotLinked: number;
}

/**
 * The least h such that at least `target` of `population` members have hops <= h, or undefined.
 * `hops` lists the hop count of each member that had it (the origin as 0).
 */
export function coverageRounds(
  hops: readonly number[],
  population: number,
  target = COVERAGE_TARGET,
): number | undefined {
  // Integer comparison: covered * 1000 >= population * 999 for the default target.
  const needed = Math.ceil(population * target - 1e-9);
  if (population === 0 || hops.length < needed) return undefined;
  const sorted = [...hops].sort((a, b) => a - b);
  return sorted[Math.max(0, needed - 1)];
}

function messageKey(body: Uint8Array): string {
  let key = '';
  for (let i = HEADER_ID_OFFSET; i < HEADER_ORIGIN_OFFSET; i++) {
    key += String.fromCharCode(body[i]!);
  }
  return key;
}

function keyOfId(messageId: Uint8Array): string {
  let key = '';
  for (let i = 0; i < messageId.length; i++) key += String.fromCharCode(messageId[i]!);
  return key;
}

function isOrigin(body: Uint8Array, publicKey: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (body[HEADER_ORIGIN_OFFSET + i] !== publicKey[i]) return false;
  return true;
}

export class SpreadTracker {
  readonly tracked: TrackedAnnouncement[] = [];
  private readonly byKey = new Map<string, TrackedAnnouncement>();
  private readonly expectations = new Map<number, Expectation[]>();

  /** The next `kind` message `origin` sends as its origin is tracked. */
  expect(kind: AnnouncementKind, origin: number, publicKey: Uint8Array): void {
    const list = this.expectations.get(origin);
    if (list === undefined) this.expectations.set(origin, [{ kind, publicKey }]);
    else list.push({ kind, publicKey });
  }

  /** Expectations no frame has met yet (an engine that never sent what was asked). */
  get unmet(): { readonly origin: number; readonly kind: AnnouncementKind }[] {
    const out: { origin: number; kind: AnnouncementKind }[] = [];
    for (const [origin, list] of this.expectations) {
      for (const e of list) out.push({ origin, kind: e.kind });
    }
    return out;
  }

  onSend(node: number, frame: GossipFrameMessage, atMs: number): void {
    const code = frame.code;
    if (
      code !== GossipCode.peerAnnouncement &&
      code !== GossipCode.peerUpdate &&
      code !== GossipCode.contentAvailability
    ) {
      return;
    }
    const body = frame.body;
    if (body.length < HEADER_BYTES) return;
    const key = messageKey(body);
    const known = this.byKey.get(key);
    if (known !== undefined) {
      known.sends++;
      return;
    }
    const list = this.expectations.get(node);
    if (list === undefined) return;
    const at = list.findIndex((e) => KIND_CODE[e.kind] === code && isOrigin(body, e.publicKey));
    if (at < 0) return;
    const expectation = list[at]!;
    list.splice(at, 1);
    if (list.length === 0) this.expectations.delete(node);
    const tracked: TrackedAnnouncement = {
      kind: expectation.kind,
      origin: node,
      messageKey: key,
      firstSentMs: atMs,
      sends: 1,
      hops: new Map([[node, 0]]),
    };
    this.tracked.push(tracked);
    this.byKey.set(key, tracked);
  }

  onEvent(node: number, event: GossipEvent): void {
    if (event.type !== 'gossip:accepted') return;
    const tracked = this.byKey.get(keyOfId(event.messageId));
    if (tracked === undefined || tracked.hops.has(node)) return;
    tracked.hops.set(node, event.hops);
  }

  /** Measures one tracked announcement against `populationNodes` (its live nodes). */
  measure(
    tracked: TrackedAnnouncement,
    populationNodes: readonly number[],
    joinedNotLinked = 0,
  ): SpreadResult {
    const hops: number[] = [];
    for (const node of populationNodes) {
      const h = tracked.hops.get(node);
      if (h !== undefined) hops.push(h);
    }
    const population = populationNodes.length;
    return {
      kind: tracked.kind,
      origin: tracked.origin,
      population,
      covered: hops.length,
      rounds: coverageRounds(hops, population),
      lastHop: hops.reduce((m, h) => (h > m ? h : m), 0),
      sends: tracked.sends,
      messagesPerNode: population === 0 ? 0 : tracked.sends / population,
      joinedNotLinked,
    };
  }
}

/** One kind's figures over its origins. */
export interface KindSummary {
  readonly kind: AnnouncementKind;
  readonly origins: number;
  /** The worst origin's rounds; undefined when some origin never reached the target. */
  readonly roundsWorst: number | undefined;
  readonly roundsMean: number | undefined;
  readonly messagesPerNodeMean: number;
  readonly messagesPerNodeMax: number;
  /** The lowest coverage of any origin (covered / population). */
  readonly coverageMin: number;
  /** Origins asked to speak whose message never went out. */
  readonly unsent: number;
}

export function summarizeKind(
  kind: AnnouncementKind,
  results: readonly SpreadResult[],
  unsent: number,
): KindSummary {
  const mine = results.filter((r) => r.kind === kind);
  const reached = mine.every((r) => r.rounds !== undefined) && mine.length > 0;
  const mean = (values: number[]) =>
    values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
  const messages = mine.map((r) => r.messagesPerNode);
  return {
    kind,
    origins: mine.length,
    roundsWorst: reached ? Math.max(...mine.map((r) => r.rounds!)) : undefined,
    roundsMean: reached ? mean(mine.map((r) => r.rounds!)) : undefined,
    messagesPerNodeMean: mean(messages),
    messagesPerNodeMax: messages.length === 0 ? 0 : Math.max(...messages),
    coverageMin:
      mine.length === 0
        ? 0
        : Math.min(...mine.map((r) => (r.population === 0 ? 0 : r.covered / r.population))),
    unsent,
  };
}
