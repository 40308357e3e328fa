/**
 * `peapod fetch --only GLOB`: which files of a tree to fetch, and so which chunks.
 *
 * Theory of operation
 * - A glob is matched against a file's path relative to the tree's root (the shared
 *   directory's name left off: `--only '*.jpg'` in `photos/` picks `photos/a.jpg`). `*` and `?`
 *   stay within one segment (`?` is one character), `**` as a whole segment spans any number of
 *   segments (none too), and everything else is literal. A glob that names a directory picks
 *   everything under it (`--only 2024` is `2024/**`). Node 20's `path.matchesGlob` is
 *   experimental there (it prints an ExperimentalWarning into the daemon's log and brings brace
 *   and extglob syntax with it), so this small matcher is used instead.
 * - `selectFiles` applies the globs (any may match) and returns the chosen file indices and the
 *   chunks that hold any of their bytes (`chunksOfFiles`, sorted and merged). A glob that
 *   matches no file is an error naming it: a typo should not fetch nothing and succeed.
 */
import { chunksOfFiles, type IndexRange, type Manifest } from '@peapod/core';

/** Compiles a glob to an anchored regular expression (see the module comment). */
export function globPattern(glob: string): RegExp {
  const segments = glob.split('/').filter((segment, i, all) => segment !== '' || i === all.length);
  let source = '';
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '**') {
      source += last ? '.*' : '(?:[^/]*/)*';
      return;
    }
    for (const char of segment) {
      if (char === '*') source += '[^/]*';
      else if (char === '?') source += '[^/]';
      else source += char.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
    }
    if (!last) source += '/';
  });
  // A directory's glob picks what is under it.
  return new RegExp(`^${source}(?:/.*)?$`, 'su');
}

/** Whether `path` (relative to the tree's root) matches `glob`. */
export function matchesGlob(glob: string, path: string): boolean {
  return globPattern(glob).test(path);
}

/** A tree file's path relative to the tree's root: the first segment left off, when shared. */
export function relativePath(manifest: Manifest, path: string): string {
  const root = treeRoot(manifest);
  return root === undefined ? path : path.slice(root.length + 1);
}

/**
 * The directory every path of the tree is under (`photos` for a shared `photos/`), or
 * undefined for a single file or a table with several top-level entries.
 */
export function treeRoot(manifest: Manifest): string | undefined {
  const files = manifest.files ?? [];
  const first = files[0]?.path ?? '';
  const slash = first.indexOf('/');
  if (slash <= 0) return undefined;
  const root = first.slice(0, slash);
  return files.every((file) => file.path.startsWith(`${root}/`)) ? root : undefined;
}

export interface Selection {
  /** Indices into `manifest.files`, ascending. */
  readonly files: readonly number[];
  readonly chunks: readonly IndexRange[];
}

/**
 * The files and chunks `globs` choose. Throws one sentence when the content has no file table
 * or a glob matches no file.
 */
export function selectFiles(manifest: Manifest, globs: readonly string[]): Selection {
  const files = manifest.files;
  if (files === undefined) {
    throw new Error('--only needs a shared tree; this content is a single object without files');
  }
  const patterns = globs.map((glob) => ({ glob, pattern: globPattern(glob), used: false }));
  const chosen: number[] = [];
  files.forEach((file, index) => {
    const path = relativePath(manifest, file.path);
    let hit = false;
    for (const entry of patterns) {
      if (entry.pattern.test(path)) {
        entry.used = true;
        hit = true;
      }
    }
    if (hit) chosen.push(index);
  });
  const unused = patterns.find((entry) => !entry.used);
  if (unused !== undefined) {
    throw new Error(
      `--only ${JSON.stringify(unused.glob)} matches no file of this tree (${files.length} files; ` +
        'paths are relative to its root, `*` stays within a directory, `**` spans directories)',
    );
  }
  return {
    files: chosen,
    chunks: chunksOfFiles(
      manifest,
      chosen.map((index) => files[index]!),
    ),
  };
}
