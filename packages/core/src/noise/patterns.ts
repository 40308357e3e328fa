/**
 * Noise handshake patterns as data (Noise spec rev 34, sections 7 and 9): the token lists that
 * the HandshakeState interprets, plus the parser for protocol names such as
 * `Noise_XXpsk3_25519_ChaChaPoly_SHA256`.
 *
 * The table holds the one-way patterns (7.4) and the twelve fundamental interactive patterns
 * (7.5), copied from the spec. The `psk` modifiers of section 9 are applied on top: `psk0` puts
 * a `psk` token at the start of the first message, `pskN` (N >= 1) at the end of message N.
 * Other modifiers (`fallback`, deferred patterns) are not supported. PeaPod itself uses XX and
 * XXpsk3; the rest exist so the interpreter can be checked against published vectors.
 *
 * Only DH `25519` and hash `SHA256` are accepted; ciphers are `ChaChaPoly` and `AESGCM`.
 */
import type { AeadCipher } from '../crypto-provider.js';

/** A token of a handshake message pattern (section 7.1). */
export type NoiseToken = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk';
/** A token of a pre-message pattern: only public keys (section 7.1). */
export type NoisePreMessageToken = 'e' | 's';

/** A handshake pattern with its modifiers applied. */
export interface NoisePattern {
  /** The pattern part of the protocol name, e.g. `XXpsk3`. */
  readonly name: string;
  /** Keys the responder knows about the initiator before the handshake. */
  readonly initiatorPreMessage: readonly NoisePreMessageToken[];
  /** Keys the initiator knows about the responder before the handshake. */
  readonly responderPreMessage: readonly NoisePreMessageToken[];
  /** Message patterns; even indexes are sent by the initiator, odd ones by the responder. */
  readonly messages: readonly (readonly NoiseToken[])[];
  /** Whether the pattern carries psk modifiers (then `e` tokens also call MixKey, section 9.2). */
  readonly hasPsk: boolean;
  /** Number of `psk` tokens, i.e. how many pre-shared keys each side must supply. */
  readonly pskCount: number;
}

interface BasePattern {
  readonly initiatorPreMessage: readonly NoisePreMessageToken[];
  readonly responderPreMessage: readonly NoisePreMessageToken[];
  readonly messages: readonly (readonly NoiseToken[])[];
}

function basePattern(
  initiatorPreMessage: readonly NoisePreMessageToken[],
  responderPreMessage: readonly NoisePreMessageToken[],
  ...messages: readonly (readonly NoiseToken[])[]
): BasePattern {
  return { initiatorPreMessage, responderPreMessage, messages };
}

/**
 * Sections 7.4 (one-way) and 7.5 (interactive), token for token: the initiator's pre-message,
 * the responder's pre-message, then the messages (initiator first, alternating).
 */
// prettier-ignore
const BASE_PATTERNS: Readonly<Record<string, BasePattern>> = {
  N:  basePattern([],    ['s'], ['e', 'es']),
  K:  basePattern(['s'], ['s'], ['e', 'es', 'ss']),
  X:  basePattern([],    ['s'], ['e', 'es', 's', 'ss']),
  NN: basePattern([],    [],    ['e'], ['e', 'ee']),
  NK: basePattern([],    ['s'], ['e', 'es'], ['e', 'ee']),
  NX: basePattern([],    [],    ['e'], ['e', 'ee', 's', 'es']),
  XN: basePattern([],    [],    ['e'], ['e', 'ee'], ['s', 'se']),
  XK: basePattern([],    ['s'], ['e', 'es'], ['e', 'ee'], ['s', 'se']),
  XX: basePattern([],    [],    ['e'], ['e', 'ee', 's', 'es'], ['s', 'se']),
  KN: basePattern(['s'], [],    ['e'], ['e', 'ee', 'se']),
  KK: basePattern(['s'], ['s'], ['e', 'es', 'ss'], ['e', 'ee', 'se']),
  KX: basePattern(['s'], [],    ['e'], ['e', 'ee', 'se', 's', 'es']),
  IN: basePattern([],    [],    ['e', 's'], ['e', 'ee', 'se']),
  IK: basePattern([],    ['s'], ['e', 'es', 's', 'ss'], ['e', 'ee', 'se']),
  IX: basePattern([],    [],    ['e', 's'], ['e', 'ee', 'se', 's', 'es']),
};

/**
 * Resolves a pattern name with optional psk modifiers (`XX`, `XXpsk3`, `NNpsk0+psk2`).
 * Returns `undefined` for an unknown pattern, an unsupported or repeated modifier, or a psk
 * position beyond the last message.
 */
export function resolveNoisePattern(name: string): NoisePattern | undefined {
  const match = /^([A-Z]+)((?:psk(?:0|[1-9]\d*))(?:\+psk(?:0|[1-9]\d*))*)?$/.exec(name);
  if (match === null) return undefined;
  const base = Object.hasOwn(BASE_PATTERNS, match[1]!) ? BASE_PATTERNS[match[1]!] : undefined;
  if (base === undefined) return undefined;
  const messages = base.messages.map((tokens) => [...tokens]);
  const modifiers = match[2] === undefined ? [] : match[2].split('+');
  const seen = new Set<number>();
  for (const modifier of modifiers) {
    const position = Number(modifier.slice(3));
    if (seen.has(position) || position > messages.length) return undefined;
    seen.add(position);
    if (position === 0) messages[0]!.unshift('psk');
    else messages[position - 1]!.push('psk');
  }
  return {
    name,
    initiatorPreMessage: base.initiatorPreMessage,
    responderPreMessage: base.responderPreMessage,
    messages,
    hasPsk: modifiers.length > 0,
    pskCount: modifiers.length,
  };
}

/** A parsed protocol name. */
export interface NoiseProtocol {
  /** The full protocol name, e.g. `Noise_XX_25519_ChaChaPoly_SHA256`. */
  readonly name: string;
  readonly pattern: NoisePattern;
  readonly cipher: AeadCipher;
}

/**
 * Parses `Noise_<pattern>_25519_<ChaChaPoly|AESGCM>_SHA256`. Returns `undefined` for anything
 * else, including other DH or hash functions.
 */
export function parseNoiseProtocolName(name: string): NoiseProtocol | undefined {
  const match = /^Noise_([A-Za-z0-9+]+)_25519_(ChaChaPoly|AESGCM)_SHA256$/.exec(name);
  if (match === null) return undefined;
  const pattern = resolveNoisePattern(match[1]!);
  if (pattern === undefined) return undefined;
  return { name, pattern, cipher: match[2] as AeadCipher };
}
