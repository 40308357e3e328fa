/**
 * The tracker's endpoints: each takes a parsed request (`RequestContext`) and returns an
 * `Answer` (status and JSON). The order inside each handler is the security argument: every
 * check that can refuse runs before the one store call that changes anything, and that store
 * call itself refuses replays and rollbacks atomically (store.ts), so a refused request never
 * changes state. Per-key rate limits run after signatures verify, so a stranger cannot spend
 * another device's budget by sending garbage under its key, and after the not-newer read, so
 * replaying a device's captured record cannot spend its budget either. A registration's record
 * must point at the request's own source address (address-match.ts), so nobody can register a
 * victim's address.
 */
import { randomInt } from 'node:crypto';
import { toHex, type CryptoProvider } from '@peapod/core';
import { TrackerLimits } from './limits.js';
import { foreignAddress } from './address-match.js';
import { checkClock, checkRecord, type CheckedRecord } from './record-check.js';
import { accepted, refused, type Checked, type Refusal } from './refusal.js';
import { ed25519Verify } from './tracker-crypto.js';
import { signedRequestMessage } from './signed-request.js';
import type { TrackerStore } from './store.js';
import {
  checkFields,
  checkQuery,
  parseContentIds,
  parseJsonObject,
  parseLimit,
  parseRecordField,
  parseSignatureHeader,
  parseSignedFields,
  type JsonObject,
} from './validators.js';

export interface RequestContext {
  readonly method: string;
  /** The path exactly as sent (what a signature covers). */
  readonly path: string;
  readonly query: URLSearchParams;
  /** The body bytes (empty for GET). */
  readonly body: Uint8Array;
  readonly signatureHeader: string | string[] | undefined;
  /** The source address as the tracker sees it. */
  readonly observedAddress: string;
  readonly nowMs: number;
  /** Path parameter: the device ID in /api/v1/nodes/{id}/heartbeat. */
  readonly deviceIdHex?: string;
}

export type Answer =
  | { readonly status: 200; readonly json: unknown }
  | { readonly status: 'refused'; readonly refusal: Refusal };

export interface EndpointDeps {
  readonly store: TrackerStore;
  readonly crypto: CryptoProvider;
  readonly ttlMs: number;
  readonly nodeTtlMs: number;
  /** Takes one token of `deviceIdHex`'s budget: 0, or seconds until one is back. */
  readonly takeKeyToken: (deviceIdHex: string, nowMs: number) => number;
}

export type Endpoint = (context: RequestContext, deps: EndpointDeps) => Promise<Answer>;

const ok = (json: unknown): Answer => ({ status: 200, json });
const no = (refusal: Refusal): Answer => ({ status: 'refused', refusal });

function rateLimited(seconds: number): Answer {
  return no({
    code: 'rate-limited',
    error: `Too many requests for this device key: retry in ${seconds} s.`,
    retryAfterSeconds: seconds,
  });
}

/** The JSON object body with exactly `fields`. */
function objectBody(context: RequestContext, fields: readonly string[]): Checked<JsonObject> {
  const body = parseJsonObject(context.body);
  return body.ok ? checkFields(body.value, fields) : body;
}

interface SignedRequest {
  readonly body: JsonObject;
  readonly deviceIdHex: string;
  readonly timestampMs: number;
}

/** Checks a signed request (signed-request.ts): fields, clock, signature. */
function checkSigned(
  context: RequestContext,
  deps: EndpointDeps,
  fields: readonly string[],
): Checked<SignedRequest> {
  const body = objectBody(context, fields);
  if (!body.ok) return body;
  const signed = parseSignedFields(body.value);
  if (!signed.ok) return signed;
  const signature = parseSignatureHeader(context.signatureHeader);
  if (!signature.ok) return signature;
  const clock = checkClock("The request's timestampMs", signed.value.timestampMs, context.nowMs);
  if (!clock.ok) return clock;
  const message = signedRequestMessage(
    context.method,
    context.path,
    signed.value.timestampMs,
    context.body,
  );
  if (!ed25519Verify(signed.value.publicKey, message, signature.value))
    return refused(
      'bad-signature',
      'PeaPod-Signature does not verify for this publicKey over this method, path, timestamp ' +
        'and body: sign exactly the bytes sent (docs/tracker.md, "Signed requests").',
    );
  return accepted({
    body: body.value,
    deviceIdHex: toHex(deps.crypto.sha256(signed.value.publicKey)),
    timestampMs: signed.value.timestampMs,
  });
}

const notNewer = (what: string): Answer =>
  no({
    code: 'not-newer',
    error:
      `This ${what} has a record registered that was issued at or after this one (or ` +
      'unregistered after it): build a fresh record (issuedAtMs now) and register that.',
  });

/**
 * The checks of a registration after its record verified, before the store writes: the
 * record's addresses are the source's, the record is newer than the stored one (a read; the
 * put re-checks atomically), then the device's rate-limit token. undefined: go ahead.
 */
async function admitRegistration(
  context: RequestContext,
  deps: EndpointDeps,
  checked: CheckedRecord,
  table: 'bootstrap' | 'nodes',
): Promise<Answer | undefined> {
  const { record, deviceIdHex } = checked;
  const foreign = foreignAddress(record.addresses, context.observedAddress);
  if (foreign !== undefined)
    return no({
      code: 'wrong-address',
      error:
        `The record's address ${JSON.stringify(foreign.slice(0, 80))} is not the address this ` +
        `request came from (${context.observedAddress}): a device registers only its own address, ` +
        'as an IP literal (behind a load balancer, the operator runs the tracker with --trust-proxy).',
    });
  const stored = await deps.store.issuedAt(table, deviceIdHex);
  if (stored !== undefined && stored >= record.issuedAtMs)
    return notNewer(table === 'bootstrap' ? 'device' : 'node');
  const wait = deps.takeKeyToken(deviceIdHex, context.nowMs);
  if (wait > 0) return rateLimited(wait);
  return undefined;
}

export const healthz: Endpoint = async () => ok({ status: 'ok' });

export const registerBootstrap: Endpoint = async (context, deps) => {
  const body = objectBody(context, ['record']);
  if (!body.ok) return no(body.refusal);
  const bytes = parseRecordField(body.value['record']);
  if (!bytes.ok) return no(bytes.refusal);
  const checked = checkRecord(deps.crypto, bytes.value, context.nowMs, 'bootstrap');
  if (!checked.ok) return no(checked.refusal);
  const { record, deviceIdHex } = checked.value;
  const refusal = await admitRegistration(context, deps, checked.value, 'bootstrap');
  if (refusal !== undefined) return refusal;
  const expiresAtMs = context.nowMs + deps.ttlMs;
  const result = await deps.store.putBootstrap({
    deviceIdHex,
    record: record.bytes,
    issuedAtMs: record.issuedAtMs,
    expiresAtMs,
    sampleKey: randomInt(0x7fff_ffff),
  });
  if (result === 'not-newer') return notNewer('device');
  return ok({ expiresAtMs, observedAddress: context.observedAddress });
};

export const unregisterBootstrap: Endpoint = async (context, deps) => {
  const signed = checkSigned(context, deps, ['publicKey', 'timestampMs']);
  if (!signed.ok) return no(signed.refusal);
  const { deviceIdHex, timestampMs } = signed.value;
  const wait = deps.takeKeyToken(deviceIdHex, context.nowMs);
  if (wait > 0) return rateLimited(wait);
  // The tombstone outlives every record issued before the request (their issuedAtMs <=
  // timestampMs), since after this they are outside the clock window anyway.
  const tombstoneUntilMs =
    Math.max(context.nowMs, timestampMs) + TrackerLimits.clockWindowMs + 1000;
  const result = await deps.store.removeBootstrap(
    { deviceIdHex, timestampMs, nowMs: context.nowMs },
    tombstoneUntilMs,
  );
  if (result === 'not-registered')
    return no({
      code: 'not-registered',
      error: 'This device has no live bootstrap registration (it expired or was removed).',
    });
  if (result === 'replayed') return no(replayedRefusal);
  return ok({ removed: true });
};

const replayedRefusal: Refusal = {
  code: 'replayed',
  error:
    "This request's timestampMs is not above the last one accepted from this device: a " +
    'replay, or requests sent out of order. Sign a fresh request (timestamps must increase).',
};

export const discover: Endpoint = async (context, deps) => {
  const query = checkQuery(context.query, ['limit']);
  if (!query.ok) return no(query.refusal);
  const limit = parseLimit(query.value, TrackerLimits.discoverDefault, TrackerLimits.discoverMax);
  if (!limit.ok) return no(limit.refusal);
  const records = await deps.store.sampleBootstrap(
    context.nowMs,
    limit.value,
    randomInt(0x7fff_ffff),
  );
  return ok({
    records: records.map((record) => Buffer.from(record).toString('base64')),
    observedAddress: context.observedAddress,
  });
};

export const registerNode: Endpoint = async (context, deps) => {
  const body = objectBody(context, ['record']);
  if (!body.ok) return no(body.refusal);
  const bytes = parseRecordField(body.value['record']);
  if (!bytes.ok) return no(bytes.refusal);
  const checked = checkRecord(deps.crypto, bytes.value, context.nowMs, 'node');
  if (!checked.ok) return no(checked.refusal);
  const { record, deviceIdHex } = checked.value;
  const refusal = await admitRegistration(context, deps, checked.value, 'nodes');
  if (refusal !== undefined) return refusal;
  const expiresAtMs = context.nowMs + deps.nodeTtlMs;
  const result = await deps.store.putNode({
    deviceIdHex,
    record: record.bytes,
    issuedAtMs: record.issuedAtMs,
    expiresAtMs,
    nowMs: context.nowMs,
  });
  if (result === 'not-newer') return notNewer('node');
  return ok({ expiresAtMs });
};

export const heartbeat: Endpoint = async (context, deps) => {
  const signed = checkSigned(context, deps, ['publicKey', 'timestampMs', 'contentIds']);
  if (!signed.ok) return no(signed.refusal);
  const { deviceIdHex, timestampMs, body } = signed.value;
  if (deviceIdHex !== context.deviceIdHex)
    return no({
      code: 'wrong-key',
      error:
        "The signing key is not this node's: a node's heartbeat is signed by its own device " +
        'key, whose SHA-256 is the device ID in the path.',
    });
  const contentIds = parseContentIds(
    body['contentIds'],
    TrackerLimits.heartbeatContentIdsMax,
    true,
  );
  if (!contentIds.ok) return no(contentIds.refusal);
  const wait = deps.takeKeyToken(deviceIdHex, context.nowMs);
  if (wait > 0) return rateLimited(wait);
  const expiresAtMs = context.nowMs + deps.nodeTtlMs;
  const result = await deps.store.heartbeat(
    { deviceIdHex, timestampMs, nowMs: context.nowMs },
    contentIds.value,
    expiresAtMs,
  );
  if (result === 'not-registered')
    return no({
      code: 'not-registered',
      error:
        'This node is not registered (or expired): register it first with POST /api/v1/nodes ' +
        'and its signed record.',
    });
  if (result === 'replayed') return no(replayedRefusal);
  return ok({ expiresAtMs });
};

export const listNodes: Endpoint = async (context, deps) => {
  const query = checkQuery(context.query, ['limit']);
  if (!query.ok) return no(query.refusal);
  const limit = parseLimit(query.value, TrackerLimits.nodesDefault, TrackerLimits.nodesMax);
  if (!limit.ok) return no(limit.refusal);
  const nodes = await deps.store.liveNodes(context.nowMs, limit.value);
  return ok({
    nodes: nodes.map((node) => ({
      deviceIdHex: node.deviceIdHex,
      record: Buffer.from(node.record).toString('base64'),
      lastHeartbeatMs: node.lastHeartbeatMs,
      expiresAtMs: node.expiresAtMs,
    })),
  });
};

export const chunkLocations: Endpoint = async (context, deps) => {
  const body = objectBody(context, ['contentIds']);
  if (!body.ok) return no(body.refusal);
  const contentIds = parseContentIds(
    body.value['contentIds'],
    TrackerLimits.locationsContentIdsMax,
    false,
  );
  if (!contentIds.ok) return no(contentIds.refusal);
  const locations = await deps.store.locations(
    contentIds.value,
    context.nowMs,
    TrackerLimits.locationsHoldersMax,
  );
  return ok({ locations: Object.fromEntries(locations) });
};
