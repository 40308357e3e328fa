/**
 * SIMULATION ONLY: Ed25519 verification remembered across the simulated devices.
 *
 * In a real network each device verifies each signature it receives on its own CPU. The
 * simulator runs every device on one core, and a gossip announcement reaching 100,000 nodes is
 * 100,000 verifications of the same (key, message, signature) triple: at ~170 us each (measured
 * with node:crypto on this machine) that is 17 s of wall time per announcement and would make the
 * large runs impossible. So this wraps a provider's `ed25519Verify`: the first time a triple is
 * seen it is verified by the real primitive (OpenSSL), and the answer is remembered, keyed by the
 * signature; a later call with byte-for-byte the same public key, message and signature returns
 * the remembered answer. Identical inputs cannot have a different answer, so every engine still
 * gets exactly what OpenSSL would say for its bytes: a forged or altered copy differs in some
 * byte and is verified afresh (the comparison is of the full key, message and signature, not a
 * hash). Messages over 1 KiB are not remembered (see MESSAGE_REMEMBERED_MAX). The memory is bounded: past `entriesMax` remembered triples it is emptied and refills.
 * `--verify-every` on the CLI turns the memo off (every call goes to OpenSSL).
 */
import type { CryptoProvider } from '@peapod/core';

export interface VerifyMemoStats {
  /** Calls answered by the real primitive. */
  verified: number;
  /** Calls answered from memory (same key, message and signature as an earlier one). */
  remembered: number;
}

interface Remembered {
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  readonly valid: boolean;
}

/**
 * Longer messages are verified every time and not remembered: they are table syncs (a
 * PEER_LIST_RESPONSE of 16 records, sent once on one link), whose copies would fill the memory
 * and never be asked for again. Announcements, updates and heartbeats are far shorter.
 */
const MESSAGE_REMEMBERED_MAX = 1024;

/** A 53-bit number from the signature's first 7 bytes (a Map key; collisions are compared out). */
function signatureKey(signature: Uint8Array): number {
  const high = signature[0]! | (signature[1]! << 8) | ((signature[2]! & 0x1f) << 16);
  const low =
    (signature[3]! | (signature[4]! << 8) | (signature[5]! << 16) | (signature[6]! << 24)) >>> 0;
  return high * 0x1_0000_0000 + low;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * `base` with a remembering `ed25519Verify` (see the module header). SIMULATION ONLY.
 * @param entriesMax remembered triples before the memory is emptied (default 400,000).
 */
export function withVerifyMemo(
  base: CryptoProvider,
  stats: VerifyMemoStats,
  entriesMax = 400_000,
): CryptoProvider {
  const memory = new Map<number, Remembered[]>();
  let entries = 0;
  return {
    ...base,
    name: `${base.name}+verify-memo(sim-only)`,
    ed25519Verify(publicKey, message, signature) {
      if (!(signature instanceof Uint8Array) || signature.length < 8) {
        stats.verified++;
        return base.ed25519Verify(publicKey, message, signature);
      }
      const key = signatureKey(signature);
      const bucket = memory.get(key);
      if (bucket !== undefined) {
        for (const entry of bucket) {
          if (
            same(entry.signature, signature) &&
            same(entry.publicKey, publicKey) &&
            same(entry.message, message)
          ) {
            stats.remembered++;
            return entry.valid;
          }
        }
      }
      stats.verified++;
      const valid = base.ed25519Verify(publicKey, message, signature);
      if (message.length > MESSAGE_REMEMBERED_MAX) return valid;
      if (entries >= entriesMax) {
        memory.clear();
        entries = 0;
      }
      const entry: Remembered = {
        publicKey: publicKey.slice(),
        message: message.slice(),
        signature: signature.slice(),
        valid,
      };
      const target = memory.get(key);
      if (target === undefined) memory.set(key, [entry]);
      else target.push(entry);
      entries++;
      return valid;
    },
  };
}
