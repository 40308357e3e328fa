/**
 * Presigned-URL query parameters (SigV4) in a request-target: credentials, not part of what the
 * URL names. Cache keys drop them, so two presigned URLs of one object share one cached copy
 * (each use is still revalidated with the origin using the client's own URL: cached-get.ts).
 */
const PRESIGN_PARAMETER =
  /^x-amz-(algorithm|credential|date|expires|signedheaders|signature|security-token|content-sha256)$/i;

/**
 * `path` (`/p?q`) without its SigV4 presign parameters (and those `also` names), the rest of the
 * query as it was.
 */
export function withoutPresignQuery(path: string, also?: RegExp): string {
  const query = path.indexOf('?');
  if (query < 0) return path;
  const kept = path
    .slice(query + 1)
    .split('&')
    .filter((pair) => {
      const name = safeDecode(pair.split('=')[0]!);
      return pair !== '' && !PRESIGN_PARAMETER.test(name) && !(also?.test(name) ?? false);
    });
  return kept.length === 0 ? path.slice(0, query) : `${path.slice(0, query)}?${kept.join('&')}`;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
