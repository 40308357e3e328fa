/**
 * `peapod share`, `fetch`, `ls` and `rm` as real processes against one daemon of a pod (its
 * data directory as PEAPOD_HOME), asynchronously (a test waits on the daemons meanwhile), and
 * small file helpers for the share and fetch tests: random trees, hashes, the store's rows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { listContents, type ContentRow } from '../../src/api-client.js';
import { CLI_PATH } from '../../src/local-pod.js';
import type { DaemonProcess } from './pod-fixture.js';

export interface CliResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts `peapod ARGS` with daemon's data directory; `done` resolves when it exited. */
export function startPeapod(
  daemon: DaemonProcess,
  args: readonly string[],
  cwd?: string,
): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: { ...process.env, PEAPOD_HOME: daemon.home },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd === undefined ? {} : { cwd }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (part: Buffer) => (stdout += part.toString()));
  child.stderr!.on('data', (part: Buffer) => (stderr += part.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.once('close', (code) => resolve({ status: code ?? -1, stdout, stderr })),
  );
  return { child, done };
}

/** Runs `peapod ARGS` to its end. */
export function peapod(daemon: DaemonProcess, args: readonly string[], cwd?: string) {
  return startPeapod(daemon, args, cwd).done;
}

/** The last JSON line a `--json` command printed. */
export function jsonOf<T>(result: CliResult): T {
  const lines = result.stdout.trim().split('\n');
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    return JSON.parse(lines[lines.length - 1]!) as T;
  }
}

/** Writes `files` (relative path -> size) of random bytes under `root`. */
export async function writeTree(root: string, files: Record<string, number>): Promise<void> {
  for (const [path, size] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), randomBytes(size));
  }
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every regular file under `root`: relative path -> SHA-256. */
export async function treeHashes(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (directory: string): Promise<void> => {
    for (const entry of await readdir(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out[relative(root, path)] = sha256(await readFile(path));
    }
  };
  await walk(root);
  return out;
}

/** The daemon's store row of `contentId`, if any. */
export async function storeRow(
  daemon: DaemonProcess,
  contentId: string,
): Promise<ContentRow | undefined> {
  return (await listContents(daemon.api)).find((row) => row.contentId === contentId);
}

/** Chunk indices a row holds. */
export function heldSet(row: ContentRow | undefined): Set<number> {
  const held = new Set<number>();
  for (const range of row?.heldRanges ?? []) {
    for (let index = range.start; index < range.end; index += 1) held.add(index);
  }
  return held;
}
