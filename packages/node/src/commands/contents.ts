/**
 * `peapod ls`, `peapod rm ID`, `peapod publish ID` and `peapod unpublish ID`: what the daemon's
 * store holds, removing a content from it, and whether strangers are served it.
 *
 * `ls` shows each content's short ID (its first 12 hex digits; the other commands take any
 * unique prefix), name, size, how much of it is held, whether it is pinned, whether it is
 * published and where it came from; on a terminal the name and origin are cut to fit its
 * width. `rm` removes a content from the store and tells the pod it is no longer here; a shared
 * content's files are the user's and stay where they are. `publish` / `unpublish` set the
 * store's published flag (kept across restarts), which the daemon applies at once.
 */
import {
  listContents,
  removeContent,
  updateContent,
  type ApiTarget,
  type ContentRow,
} from '../api-client.js';
import { printable } from '../printable.js';
import { formatBytes } from '../rate-limit.js';

const NAME = 1;
const ORIGIN = 6;
/** The narrowest a cut NAME or ORIGIN gets, however narrow the terminal. */
const CUT_MIN = 12;

/**
 * The table `peapod ls` prints. With `columns` (a terminal's width) NAME and ORIGIN are cut
 * (ending in '…') so every line fits, unless the other columns alone do not.
 */
export function renderContents(rows: readonly ContentRow[], columns?: number): string[] {
  if (rows.length === 0)
    return ['The store holds no content yet (`peapod share PATH`, `peapod fetch ID`).'];
  const table = [
    ['ID', 'NAME', 'SIZE', 'HELD', 'PINNED', 'PUBLISHED', 'ORIGIN'],
    ...rows.map((row) => [
      row.contentId.slice(0, 12),
      row.name === '' ? '-' : printable(row.name),
      formatBytes(row.totalBytes),
      row.complete ? 'complete' : `${row.heldChunks}/${row.chunkCount} chunks`,
      row.pinned ? 'pinned' : '-',
      row.published ? 'published' : '-',
      originText(row).trimEnd(), // as every line ends: so its width is what is shown
    ]),
  ];
  if (columns !== undefined) fitColumns(table, columns);
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

/** Cuts NAME, then ORIGIN, so that the table's lines are at most `columns` wide. */
function fitColumns(table: string[][], columns: number): void {
  const width = (i: number) => Math.max(...table.map((cells) => [...cells[i]!].length));
  const fixed = table[0]!.reduce(
    (sum, _, i) => (i === NAME || i === ORIGIN ? sum : sum + width(i) + 2),
    2, // the separator after NAME
  );
  const room = columns - fixed;
  const origin = width(ORIGIN);
  const name = Math.min(width(NAME), Math.max(CUT_MIN, room - Math.min(origin, CUT_MIN)));
  const originMax = Math.max(CUT_MIN, room - name);
  for (const cells of table) {
    cells[NAME] = cut(cells[NAME]!, name);
    cells[ORIGIN] = cut(cells[ORIGIN]!, originMax);
  }
}

/** `cell`, or its start and '…' in `max` characters. */
function cut(cell: string, max: number): string {
  const chars = [...cell];
  return chars.length <= max ? cell : `${chars.slice(0, max - 1).join('')}…`;
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
  const columns = process.stdout.isTTY ? process.stdout.columns || 80 : undefined;
  for (const line of renderContents(contents, columns)) console.log(line);
}

/**
 * The stored content `id` names (a full ID, a unique start of one, or a `peapod://` link);
 * undefined when none does.
 * @throws ContentIdError when `id` is not hex, or the start of several IDs.
 */
async function findContent(target: ApiTarget, id: string): Promise<ContentRow | undefined> {
  const wanted = wantedId(id);
  const matches = (await listContents(target)).filter((row) => row.contentId.startsWith(wanted));
  if (matches.length > 1) {
    throw new ContentIdError(
      `${wanted} is the start of ${matches.length} content IDs; give more of it (\`peapod ls\`)`,
    );
  }
  return matches[0];
}

function wantedId(id: string): string {
  const wanted = id
    .trim()
    .toLowerCase()
    .replace(/^peapod:\/\//, '')
    .replace(/\?.*$/s, '');
  if (!/^[0-9a-f]{1,64}$/.test(wanted)) {
    throw new ContentIdError(`not a content ID: ${JSON.stringify(id)}; \`peapod ls\` lists them`);
  }
  return wanted;
}

/** Exit status of `rm`: 0 removed, 1 no such content (the message says which). */
export async function runRemove(
  target: ApiTarget,
  id: string,
  options: { readonly json: boolean },
): Promise<number> {
  const wanted = wantedId(id);
  const row = await findContent(target, id);
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

/**
 * Exit status of `publish` / `unpublish`: 0 done (also when it already was so), 1 no such
 * content.
 */
export async function runSetPublished(
  target: ApiTarget,
  id: string,
  published: boolean,
  options: { readonly json: boolean },
): Promise<number> {
  const row = await findContent(target, id);
  const known = row !== undefined && (await updateContent(target, row.contentId, { published }));
  if (options.json) {
    console.log(
      JSON.stringify({ contentId: row?.contentId ?? wantedId(id), found: known, published }),
    );
  } else if (known) {
    const what = `${row.contentId.slice(0, 12)} ${printable(row.name)}`;
    console.log(
      published
        ? `Published ${what}: strangers (devices of other pods) may fetch it, and a broadcasting daemon announces it; this holds across restarts until \`peapod unpublish\`.`
        : `Unpublished ${what}: strangers are no longer served it; your pod still is.`,
    );
  } else {
    process.stderr.write(
      `peapod: the store holds no content ${wantedId(id)}; \`peapod ls\` lists what it holds\n`,
    );
  }
  return known ? 0 : 1;
}

/** A content ID the user typed that names nothing usable (a usage error, exit 2). */
export class ContentIdError extends Error {}
