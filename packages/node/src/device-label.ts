/**
 * The one way a person sees a device: its name and its short Device ID, `laptop (MFQWCYL)`.
 *
 * The short ID is the first group of the formatted Device ID (identity.ts `formatDeviceId`):
 * seven base32 characters, what `peapod id` and `peapod peers` print first, so a person can
 * match a line of a progress bar, a log or an error to a row of `peapod peers` or to the ID
 * shown on the other device. The core names download sources by the Device ID in hex (or
 * `self`); `deviceLabel` takes either form.
 */
import { formatDeviceId } from '@peapod/core';

/** The first group of the formatted Device ID, e.g. `MFQWCYL`. */
export function shortDeviceId(deviceId: Uint8Array | string): string {
  const raw =
    typeof deviceId === 'string' ? Uint8Array.from(Buffer.from(deviceId, 'hex')) : deviceId;
  return formatDeviceId(raw).slice(0, 7);
}

/**
 * `name (SHORTID)`, or `(SHORTID)` alone while the name is unknown (a device seen by discovery
 * only). `deviceId` is the raw ID or its 64 hex digits.
 * @example
 * deviceLabel('laptop', new Uint8Array(32).fill(0x61)); // => 'laptop (MFQWCYL)'
 */
export function deviceLabel(name: string, deviceId: Uint8Array | string): string {
  const short = shortDeviceId(deviceId);
  return name === '' ? `(${short})` : `${name} (${short})`;
}
