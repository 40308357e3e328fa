/**
 * What a peer record must be to register. Both registrations carry the device's own signed
 * record (core gossip/peer-record.ts), which the tracker stores and hands out verbatim; this
 * module decides whether to take one:
 *   - it decodes and its signature verifies (`openPeerRecord`);
 *   - its `issuedAtMs` is within +-30 s of the tracker's clock (a record is a fresh statement,
 *     so a captured old one cannot be registered again once it is 30 s old);
 *   - it is not `leaving` (to leave, a device unregisters or lets its entry expire);
 *   - bootstrap: `broadcast` and `bootstrap` set and at least one address, since the whole point
 *     of a bootstrap entry is an address others may dial, and the record's own flags are the
 *     device's consent to pass it on (the IP-sharing rule);
 *   - control plane: any broadcast setting. A silent cluster node's record carries no address
 *     (peer-record.ts refuses to build or decode one that does), and the tracker stores no
 *     address of its own for it, so its address appears in no answer.
 * "Newer than the stored one" is checked by the store, atomically (store.ts).
 */
import { openPeerRecord, toHex, type CryptoProvider, type PeerRecord } from '@peapod/core';
import { TrackerLimits } from './limits.js';
import { accepted, refused, type Checked } from './refusal.js';

export type RecordPurpose = 'bootstrap' | 'node';

export interface CheckedRecord {
  readonly record: PeerRecord;
  readonly deviceIdHex: string;
}

/** Refuses a timestamp outside the clock window around `nowMs`. */
export function checkClock(what: string, timestampMs: number, nowMs: number): Checked<number> {
  const skewMs = timestampMs - nowMs;
  const windowS = TrackerLimits.clockWindowMs / 1000;
  if (skewMs < -TrackerLimits.clockWindowMs)
    return refused(
      'stale-timestamp',
      `${what} is ${Math.round(-skewMs / 1000)} s behind the tracker's clock (limit ${windowS} s): ` +
        "check this device's clock (NTP) and sign a fresh one.",
    );
  if (skewMs > TrackerLimits.clockWindowMs)
    return refused(
      'future-timestamp',
      `${what} is ${Math.round(skewMs / 1000)} s ahead of the tracker's clock (limit ${windowS} s): ` +
        "check this device's clock (NTP).",
    );
  return accepted(timestampMs);
}

/** Opens `bytes` as a record and applies the rules above. */
export function checkRecord(
  crypto: CryptoProvider,
  bytes: Uint8Array,
  nowMs: number,
  purpose: RecordPurpose,
): Checked<CheckedRecord> {
  const opened = openPeerRecord(crypto, bytes);
  if (!opened.ok) {
    if (opened.detail === 'bad signature')
      return refused(
        'bad-signature',
        "The record's signature does not verify against its own key: sign it with the device key.",
      );
    return refused(
      'bad-record',
      `The record is not a PeaPod peer record (${opened.detail}): build it with buildPeerRecord.`,
    );
  }
  const record = opened.record;
  const clock = checkClock("The record's issuedAtMs", record.issuedAtMs, nowMs);
  if (!clock.ok) return clock;
  if (record.leaving)
    return refused(
      'record-refused',
      'The record has the leaving flag: to leave, unregister (or stop refreshing) instead.',
    );
  if (purpose === 'bootstrap') {
    if (!record.broadcast)
      return refused(
        'record-refused',
        'A bootstrap record must have the broadcast flag: the tracker hands its address to ' +
          'strangers, and only a broadcasting record may be passed on (run the daemon with --broadcast).',
      );
    if (!record.bootstrap)
      return refused(
        'record-refused',
        'A bootstrap record must have the bootstrap flag set: build it with bootstrap: true.',
      );
    if (record.addresses.length === 0)
      return refused(
        'record-refused',
        'A bootstrap record must carry at least one address (and its listenPort): others dial it.',
      );
  }
  return accepted({ record, deviceIdHex: toHex(crypto.sha256(record.publicKey)) });
}
