/**
 * `peapod://` links (BRIEF interface F): `peapod://<64 hex content ID>?dn=<percent-encoded
 * name>`. `share` prints one; `fetch` takes one or the bare hex ID. The name is only a hint
 * for a person (and a default output name when the daemon has no manifest to take it from):
 * the content ID alone says what the bytes are.
 */

/** The link of a content. */
export function contentLink(contentIdHex: string, name: string): string {
  return `peapod://${contentIdHex}${name === '' ? '' : `?dn=${encodeURIComponent(name)}`}`;
}

/** A content reference a user typed: its ID (lower-case hex) and the link's name, if any. */
export interface ContentRef {
  readonly contentIdHex: string;
  readonly name?: string;
}

/**
 * Reads a `peapod://` link or a bare 64-hex-digit ID; undefined when it is neither. Never
 * throws.
 * @example
 * parseContentRef(`peapod://${'ab'.repeat(32)}?dn=a%20b.txt`)?.name; // => 'a b.txt'
 */
export function parseContentRef(text: string): ContentRef | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return { contentIdHex: trimmed.toLowerCase() };
  const match = /^peapod:\/\/([0-9a-fA-F]{64})\/?(?:\?(.*))?$/s.exec(trimmed);
  if (match === null) return undefined;
  const contentIdHex = match[1]!.toLowerCase();
  let name: string | undefined;
  try {
    name = new URLSearchParams(match[2] ?? '').get('dn') ?? undefined;
  } catch {
    name = undefined;
  }
  return name === undefined || name === '' ? { contentIdHex } : { contentIdHex, name };
}
