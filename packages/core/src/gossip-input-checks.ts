/**
 * Argument checks of the Core's gossip inputs (`gossip-records`, `gossip-self`, `find-peers`,
 * `dial-stranger`, and the `wallClockMs` of `bytes-received` / `timer-fired`). These come from
 * the host, never from the network: a malformed one is host misuse and throws
 * PEAPOD_ERR_INVALID_ARGUMENT naming the argument. What the records themselves say is checked by
 * the gossip engine (signatures, clocks), which never throws on them.
 */
import { invalidArgument } from './errors.js';
import type { GossipSelf } from './gossip/gossip-engine.js';
import { peerRecordProblem } from './gossip/peer-record.js';

/** Longest host name or address literal accepted in a dial (DNS's limit). */
const ADDRESS_BYTES_MAX = 253;
/** Records one `gossip-records` input may carry (a tracker page, a persisted table). */
export const GOSSIP_RECORDS_MAX = 10_000;

/** A wall-clock reading: Unix ms, a safe integer not negative (as Date.now gives). */
export function checkWallClock(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    invalidArgument(name, `must be a Unix time in whole ms, got ${shown(value)}`);
  }
  return value;
}

export function checkOptionalWallClock(name: string, value: unknown): number | undefined {
  return value === undefined ? undefined : checkWallClock(name, value);
}

export function checkDeviceId(name: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== 32) {
    invalidArgument(name, 'must be a 32-byte Uint8Array');
  }
  return value;
}

export function checkPort(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 65_535) {
    invalidArgument(name, `must be an integer from ${min} to 65535, got ${shown(value)}`);
  }
  return value;
}

/** A value for an error message; never throws (String() does on `{toString: []}`). */
function shown(value: unknown): string {
  return typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean'
    ? String(value)
    : typeof value;
}

export function checkAddress(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > ADDRESS_BYTES_MAX) {
    invalidArgument(name, `must be a host of 1 to ${ADDRESS_BYTES_MAX} characters`);
  }
  return value;
}

export function checkRecords(name: string, value: unknown): readonly Uint8Array[] {
  if (!Array.isArray(value)) invalidArgument(name, 'must be an array of Uint8Array');
  if (value.length > GOSSIP_RECORDS_MAX) {
    invalidArgument(name, `holds ${value.length} records, more than ${GOSSIP_RECORDS_MAX}`);
  }
  for (let i = 0; i < value.length; i++) {
    if (!(value[i] instanceof Uint8Array)) invalidArgument(`${name}[${i}]`, 'must be a Uint8Array');
  }
  return value as readonly Uint8Array[];
}

/** A `GossipSelf`: the shape, then what a peer record of it must satisfy (peer-record.ts). */
export function checkSelf(name: string, value: unknown): GossipSelf {
  if (typeof value !== 'object' || value === null) invalidArgument(name, 'must be an object');
  const self = value as Partial<Record<keyof GossipSelf, unknown>>;
  for (const flag of ['broadcast', 'bootstrap'] as const) {
    if (typeof self[flag] !== 'boolean') invalidArgument(`${name}.${flag}`, 'must be a boolean');
  }
  if (!Array.isArray(self.addresses)) invalidArgument(`${name}.addresses`, 'must be an array');
  self.addresses.forEach((address, i) => checkAddress(`${name}.addresses[${i}]`, address));
  checkPort(`${name}.listenPort`, self.listenPort, 0);
  if (typeof self.deviceName !== 'string')
    invalidArgument(`${name}.deviceName`, 'must be a string');
  const caps = self.capabilities;
  if (typeof caps !== 'number' || !Number.isInteger(caps) || caps < 0 || caps > 0xffff_ffff) {
    invalidArgument(`${name}.capabilities`, 'must be a u32');
  }
  const checked = value as GossipSelf;
  const problem = peerRecordProblem({
    issuedAtMs: 0,
    broadcast: checked.broadcast,
    bootstrap: checked.bootstrap,
    leaving: false,
    capabilities: checked.capabilities,
    listenPort: checked.listenPort,
    deviceName: checked.deviceName,
    addresses: checked.broadcast ? checked.addresses : [],
  });
  if (problem !== undefined) invalidArgument(name, problem);
  return checked;
}
