/**
 * `peapod cache stats`, `peapod cache ls` and `peapod cache evict [PREFIX]`: the gateway cache of
 * a daemon started with `--gateway`.
 *
 * `stats` gives the cache's size against its budget, requests with hits and misses, the bytes
 * that came from the origin and from the cache, the back-to-origin ratio (origin bytes over all
 * bytes served: the figure Dragonfly reports) and the revalidations by outcome. `ls` lists each
 * cached object: its key (the upstream URL, cut to the terminal's width; --json has it whole),
 * size, hits, whether it was fetched with credentials (then every use is revalidated) and when
 * it was last used. `evict` drops the objects whose key starts with PREFIX (all without one).
 */
import { evictCache, getCache, type ApiTarget, type CacheAnswer } from '../api-client.js';
import { printable } from '../printable.js';
import { formatBytes } from '../rate-limit.js';

const NOT_RUNNING =
  'This daemon runs no gateway: start it with `peapod daemon --gateway 127.0.0.1:8081 --route /PREFIX=TARGET`.';

/** The lines `peapod cache stats` prints. */
export function renderCacheStats(answer: CacheAnswer): string[] {
  const stats = answer.stats;
  if (!answer.running || stats === undefined) return [NOT_RUNNING];
  const served = stats.bytesFromOrigin + stats.bytesFromCache;
  const ratio = served === 0 ? '-' : (stats.bytesFromOrigin / served).toFixed(3);
  const lookups = stats.hits + stats.misses;
  const hitRatio = lookups === 0 ? '-' : `${((100 * stats.hits) / lookups).toFixed(1)}%`;
  const r = stats.revalidations;
  return [
    `cache: ${stats.objects} objects, ${formatBytes(stats.bytes)} of ${formatBytes(stats.budgetBytes)}`,
    `requests: ${stats.requests} (hits ${stats.hits}, misses ${stats.misses}, hit ratio ${hitRatio})`,
    `bytes: ${formatBytes(stats.bytesFromOrigin)} from the origin, ${formatBytes(stats.bytesFromCache)} from the cache; back-to-origin ratio ${ratio}`,
    `memory (L1): ${formatBytes(stats.memory.bytes)} of ${formatBytes(stats.memory.maxBytes)} in ${stats.memory.entries} chunks (hot ${stats.memory.levels.hot}, warm ${stats.memory.levels.warm}, cold ${stats.memory.levels.cold}); ${formatBytes(stats.bytesFromMemory)} served from memory, ${formatBytes(stats.bytesFromStore)} from disk`,
    `revalidations: ${r.not_modified} unchanged (304), ${r.changed} changed, ${r.denied} refused or failed upstream`,
  ];
}

/** The table `peapod cache ls` prints; KEY is cut to fit `columns` when given. */
export function renderCacheList(answer: CacheAnswer, columns?: number): string[] {
  if (!answer.running) return [NOT_RUNNING];
  const objects = answer.objects ?? [];
  if (objects.length === 0) return ['The gateway cache is empty.'];
  const rows = [
    ['SIZE', 'HITS', 'PRIVATE', 'LAST USED', 'KEY'],
    ...objects.map((o) => [
      formatBytes(o.bytes),
      String(o.hits),
      o.private ? 'private' : '-',
      o.lastUsedAt.slice(0, 19).replace('T', ' '),
      printable(o.key),
    ]),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => {
    const head = row
      .slice(0, 4)
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ');
    let key = row[4]!;
    if (columns !== undefined) {
      const room = Math.max(12, columns - head.length - 2);
      if ([...key].length > room) key = `${[...key].slice(0, room - 1).join('')}…`;
    }
    return `${head}  ${key}`;
  });
}

export async function runCache(
  target: ApiTarget,
  action: 'stats' | 'ls' | 'evict',
  options: { readonly json: boolean; readonly prefix?: string },
): Promise<void> {
  if (action === 'evict') {
    const evicted = await evictCache(target, options.prefix ?? '');
    console.log(options.json ? JSON.stringify({ evicted }) : `evicted ${evicted} objects`);
    return;
  }
  const answer = await getCache(target);
  if (options.json) {
    console.log(
      JSON.stringify(
        action === 'stats' ? { running: answer.running, stats: answer.stats } : answer,
      ),
    );
    return;
  }
  const columns = process.stdout.isTTY ? process.stdout.columns : undefined;
  const lines = action === 'stats' ? renderCacheStats(answer) : renderCacheList(answer, columns);
  for (const line of lines) console.log(line);
}
