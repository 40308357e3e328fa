/**
 * File-system faults for tests, made with real mounts: a tiny tmpfs (ENOSPC) and a read-only
 * bind mount (EROFS). The tests run as root, so permissions alone cannot make a write fail;
 * these can. Both need CAP_SYS_ADMIN: where `mount` is refused, `mountTinyTmpfs` and
 * `mountReadOnly` say so (the test then skips with that reason).
 */
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';

export interface Mount {
  readonly path: string;
  unmount(): void;
}

function mount(args: readonly string[]): string | undefined {
  const result = spawnSync('mount', args, { encoding: 'utf8' });
  if (result.error !== undefined) return `mount could not run (${result.error.message})`;
  if (result.status !== 0) return `mount ${args.join(' ')} failed: ${result.stderr.trim()}`;
  return undefined;
}

function unmounter(path: string): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    spawnSync('umount', ['-l', path]);
  };
}

/** A tmpfs of `sizeBytes` at `path` (created); a string says why it could not be made. */
export async function mountTinyTmpfs(path: string, sizeBytes: number): Promise<Mount | string> {
  await mkdir(path, { recursive: true });
  const failed = mount(['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', path]);
  return failed ?? { path, unmount: unmounter(path) };
}

/** `path` (created) as a read-only bind mount of itself; a string says why not. */
export async function mountReadOnly(path: string): Promise<Mount | string> {
  await mkdir(path, { recursive: true });
  const bound = mount(['--bind', path, path]);
  if (bound !== undefined) return bound;
  const readOnly = mount(['-o', 'remount,bind,ro', path]);
  if (readOnly !== undefined) {
    spawnSync('umount', ['-l', path]);
    return readOnly;
  }
  return { path, unmount: unmounter(path) };
}
