/**
 * `peapod ls` and `peapod rm ID`: what the daemon's store holds, and removing a content from it.
 *
 * `ls` shows each content's short ID (its first 12 hex digits; `rm` takes any unique prefix),
 * name, size, how much of it is held, whether it is pinned and where it came from. `rm`
 * removes a content from the store and tells the pod it is no longer here; a shared content's
 * files are the user's and stay where they are.
 */
import { listContents, removeContent, type ApiTarget, type ContentRow } from '../api-client.js';
import { printable } from '../printable.js';
import { formatBytes } from '../rate-limit.js';

/** The table `peapod ls` prints. */
export function renderContents(rows: readonly ContentRow[]): string[] {
  if (rows.length === 0)
    return ['The store holds no content yet (`peapod share PATH`, `peapod fetch ID`).'];
  const table = [
    ['ID', 'NAME', 'SIZE', 'HELD', 'PINNED', 'ORIGIN'],
    ...rows.map((row) => [
      row.contentId.slice(0, 12),
      row.name === '' ? '-' : printable(row.name),
      formatBytes(row.totalBytes),
      row.complete ? 'complete' : `${row.heldChunks}/${row.chunkCount} chunks`,
      row.pinned ? 'pinned' : '-',
      originText(row),
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((cells) => [...cells[i]!].length)));
  return table.map((cells) =>
    cells
      .map((cell, i) =>
        i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - [...cell].length),
      )
      .join('  ')
      .trimEnd(),
  );
}

function originText(row: ContentRow): string {
  switch (row.origin.kind) {
    case 'shared':
      return `shared from ${printable(row.origin.path)}`;
    case 'fetched':
      return 'fetched from the pod';
    case 'url':
      return `downloaded from ${printable(row.origin.url)}`;
  }
}

export async function runList(
  target: ApiTarget,
  options: { readonly json: boolean },
): Promise<void> {
  const contents = await listContents(target);
  if (options.json) {
    console.log(JSON.stringify({ contents }, null, 2));
    return;
  }
  for (const line of renderContents(contents)) console.log(line);
}

/** Exit status of `rm`: 0 removed, 1 no such content (the message says which). */
export async function runRemove(
  target: ApiTarget,
  id: string,
  options: { readonly json: boolean },
): Promise<number> {
  const wanted = id
    .trim()
    .toLowerCase()
    .replace(/^peapod:\/\//, '')
    .replace(/\?.*$/s, '');
  if (!/^[0-9a-f]{1,64}$/.test(wanted)) {
    throw new ContentIdError(`not a content ID: ${JSON.stringify(id)}; \`peapod ls\` lists them`);
  }
  const matches = (await listContents(target)).filter((row) => row.contentId.startsWith(wanted));
  if (matches.length > 1) {
    throw new ContentIdError(
      `${wanted} is the start of ${matches.length} content IDs; give more of it (\`peapod ls\`)`,
    );
  }
  const row = matches[0];
  const removed = row !== undefined && (await removeContent(target, row.contentId));
  if (options.json) {
    console.log(JSON.stringify({ contentId: row?.contentId ?? wanted, removed }));
  } else if (removed) {
    const kept =
      row.origin.kind === 'shared' ? ` (your files in ${printable(row.origin.path)} stay)` : '';
    console.log(
      `Removed ${row.contentId.slice(0, 12)} ${printable(row.name)} from the store${kept}.`,
    );
  } else {
    process.stderr.write(
      `peapod: the store holds no content ${wanted}; \`peapod ls\` lists what it holds\n`,
    );
  }
  return removed ? 0 : 1;
}

/** A content ID the user typed that names nothing usable (a usage error, exit 2). */
export class ContentIdError extends Error {}
