/**
 * The forward proxy's pooling policy (the `poolable` hook of proxy.ts): which proxied GETs
 * become pooled downloads, and the response such a GET gets.
 *
 * Theory of operation: a plain GET (no Range, no conditions, no credentials) of an object of at
 * least `PROXY_POOL_MIN_BYTES` at an origin that allows pooling (pin-plan.ts says `pooled`, and
 * the probe did not redirect) becomes a pooled download streamed to the client; anything else
 * passes through untouched. The response carries the origin's own header fields (from the
 * probe, minus hop-by-hop and range fields) with status 200, the full length, which pinning held
 * the ranges to one version (`X-PeaPod-Pinning`), and the origin's Repr-Digest as
 * Content-Digest when the body is not content-coded.
 *
 * Pod copies (DESIGN.md decision 16): such a GET is first revalidated against the copies the
 * pod holds (JobFactory.revalidate: one conditional probe). On a 304 the body is served from the
 * pod, with the 304's header fields (the origin's current ones), the copy's length when known
 * (else chunked), `X-PeaPod-Source: pod` and the pinning level; a 206 or 200 is the probe of the
 * pooled download as above, so the origin sees no second probe. A copy is served only when a
 * digest or a 16 KiB sample binds it to the URL (pod-source.ts `podBinding`). A GET that
 * carries `Proxy-Authorization` or a private URL (url-content.ts `privateRequestReason`) is
 * never looked up in the pod (it may still be pooled).
 */
import type { Logger } from 'pino';
import type { HeaderPair } from './download-job.js';
import type { JobFactory } from './job-factory.js';
import { planFromProbe } from './http/pin-plan.js';
import { describeBinding, type PodServing } from './pod-source.js';
import { stripHopByHop, type PooledResponder, type ProxiedGet } from './proxy.js';
import { privateRequestReason } from './url-content.js';

/** Proxy GETs smaller than this pass through: pooling pays off on big objects only. */
export const PROXY_POOL_MIN_BYTES = 16 * 1024 * 1024;

/** The proxy's `poolable` hook over `jobs`. */
export async function poolableGet(
  request: ProxiedGet,
  jobs: JobFactory,
  logger: Logger,
): Promise<PooledResponder | undefined> {
  const conditional = request.headers.some(({ name }) =>
    /^(range|if-.*|authorization|cookie)$/i.test(name),
  );
  if (conditional) return undefined;
  const headers = request.headers.filter(
    ({ name }) => !/^(host|accept-encoding|proxy-.*|connection)$/i.test(name),
  );
  // The original headers: Proxy-Authorization is dropped before the origin, yet makes it private.
  const check =
    privateRequestReason(request.url, request.headers) === undefined
      ? await jobs.revalidate(request.url, headers, []).catch(() => undefined)
      : undefined;
  if (check?.kind === 'unchanged') return podResponder(check.serving, jobs, headers, logger);
  const probe =
    check?.kind === 'probed'
      ? check.probe
      : await jobs.probe(request.url, headers).catch(() => undefined);
  if (probe === undefined) return undefined;
  const plan = planFromProbe(probe, [], { pool: true, strict: false });
  if (plan.kind !== 'pooled') return undefined;
  if (plan.totalBytes < PROXY_POOL_MIN_BYTES || probe.url !== request.url) return undefined;
  return {
    respond: async (res) => {
      const fields = stripHopByHop(probe.rawHeaders);
      const kept: string[] = [];
      for (let i = 0; i + 1 < fields.length; i += 2) {
        if (/^(content-range|content-length|content-digest)$/i.test(fields[i]!)) continue;
        kept.push(fields[i]!, fields[i + 1]!);
      }
      kept.push('Content-Length', String(probe.totalBytes));
      // Which pinning held the pooled ranges to one version (pin-plan.ts); not the origin's.
      kept.push('X-PeaPod-Pinning', plan.pinning.level);
      // A whole (200) response's Content-Digest is its Repr-Digest when it is not
      // content-coded; the probe was a 206, whose Content-Digest (if any) covered one byte.
      const repr = headerValue(probe.rawHeaders, 'repr-digest');
      if (repr !== undefined && headerValue(probe.rawHeaders, 'content-encoding') === undefined)
        kept.push('Content-Digest', repr);
      res.sendDate = false; // the origin's own Date, if any, is among its fields
      res.writeHead(200, kept);
      const job = jobs.proxyJob(probe, plan, res, headers);
      let failure: string | undefined;
      job.on('event', (event) => {
        if (event.type === 'error') failure = event.message;
      });
      res.on('close', () => {
        if (!res.writableFinished) void job.cancel();
      });
      logger.info(
        { url: probe.url, bytes: probe.totalBytes, pinning: plan.pinning.level },
        `proxy: pooled GET, ${plan.pinning.guarantee}`,
      );
      await job.run();
      jobs.forget(job);
      if (failure !== undefined) throw new Error(failure);
    },
  };
}

/** The response of a GET served from the pod; see the module comment. */
function podResponder(
  serving: PodServing,
  jobs: JobFactory,
  headers: readonly HeaderPair[],
  logger: Logger,
): PooledResponder | undefined {
  const copy = serving.copies[0]!;
  const totalBytes = copy.pin.totalBytes;
  if (totalBytes !== undefined && totalBytes < PROXY_POOL_MIN_BYTES) return undefined;
  return {
    respond: async (res) => {
      const { rawHeaders } = serving.answer;
      const fields = stripHopByHop(rawHeaders);
      const kept: string[] = [];
      for (let i = 0; i + 1 < fields.length; i += 2) {
        if (/^(content-range|content-length|content-digest)$/i.test(fields[i]!)) continue;
        kept.push(fields[i]!, fields[i + 1]!);
      }
      if (totalBytes !== undefined) kept.push('Content-Length', String(totalBytes));
      kept.push('X-PeaPod-Pinning', copy.pin.level, 'X-PeaPod-Source', 'pod');
      const repr = headerValue(rawHeaders, 'repr-digest');
      if (repr !== undefined && headerValue(rawHeaders, 'content-encoding') === undefined)
        kept.push('Content-Digest', repr);
      res.sendDate = false;
      res.writeHead(200, kept);
      const job = jobs.podProxyJob(serving, res, headers);
      let failure: string | undefined;
      job.on('event', (event) => {
        if (event.type === 'error') failure = event.message;
      });
      res.on('close', () => {
        if (!res.writableFinished) void job.cancel();
      });
      logger.info(
        { url: serving.answer.url, revalidation: serving.condition },
        `proxy: GET served from the pod after a 304 from the origin, bound by ${describeBinding(serving.binding)}`,
      );
      await job.run();
      jobs.forget(job);
      if (failure !== undefined) throw new Error(failure);
    },
  };
}

/** The first value of header `name` in raw header fields, or undefined. */
function headerValue(rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) return rawHeaders[i + 1];
  }
  return undefined;
}
