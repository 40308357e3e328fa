/**
 * Entity tags (RFC 9110 section 8.8.3): the strongest validator that pins every range of a
 * pooled download to one version of an object (origin-pin.ts).
 *
 * Theory of operation: `parseEntityTag` reads an `ETag` field value from the network and never
 * throws; anything outside the grammar is `undefined`, which callers treat as "no validator".
 * Only a *strong* tag may be sent in `If-Match` / `If-Range` (section 13.1.5), and only it names
 * identical bytes; a weak tag (`W/"..."`) only promises semantically equivalent content
 * (section 8.8.1), so origin-pin.ts compares it and never sends it. `strongMatch` is the strong
 * comparison of section 8.8.3.2.
 *
 * Grammar:
 *   entity-tag = [ weak ] opaque-tag
 *   weak       = %s"W/"
 *   opaque-tag = DQUOTE *etagc DQUOTE
 *   etagc      = %x21 / %x23-7E / obs-text      (obs-text = %x80-FF)
 */

/** A parsed entity tag. `opaqueTag` includes its double quotes, as it goes on the wire. */
export interface EntityTag {
  readonly weak: boolean;
  readonly opaqueTag: string;
}

/** etagc: any visible ASCII except DQUOTE, and obs-text (U+0080..U+00FF as Node decodes latin1). */
const ENTITY_TAG = /^(W\/)?("[\x21\x23-\x7e\x80-\xff]*")$/;

/**
 * Parses an `ETag` value (surrounding whitespace ignored); undefined when absent or malformed.
 * @example parseEntityTag('W/"abc"') // { weak: true, opaqueTag: '"abc"' }
 */
export function parseEntityTag(value: string | undefined): EntityTag | undefined {
  if (value === undefined) return undefined;
  const match = ENTITY_TAG.exec(value.trim());
  if (match === null) return undefined;
  return { weak: match[1] !== undefined, opaqueTag: match[2] ?? '""' };
}

/** Formats an entity tag for the wire; `parseEntityTag` reads it back unchanged. */
export function formatEntityTag(tag: EntityTag): string {
  return `${tag.weak ? 'W/' : ''}${tag.opaqueTag}`;
}

/** Strong comparison (RFC 9110 section 8.8.3.2): both strong and the opaque tags identical. */
export function strongMatch(a: EntityTag | undefined, b: EntityTag | undefined): boolean {
  return a !== undefined && b !== undefined && !a.weak && !b.weak && a.opaqueTag === b.opaqueTag;
}
