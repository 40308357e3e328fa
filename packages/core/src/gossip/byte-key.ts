/**
 * Map keys for byte strings (Device IDs, message IDs, content IDs) in the gossip modules.
 *
 * A key is the bytes as a one-byte-per-character string: V8 stores it in one byte per
 * character (half a hex string's size), and it compares and hashes as a plain string. Keys never
 * leave the process; hex is what anything a person reads gets.
 */
export function bytesKey(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

/** The key of `a` followed by `b`. */
export function pairKey(a: Uint8Array, b: Uint8Array): string {
  return String.fromCharCode(...a) + String.fromCharCode(...b);
}
