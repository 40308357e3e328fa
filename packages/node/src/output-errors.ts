/**
 * File-system failures of a download's output, as one sentence a person can act on: what
 * failed, why (the errno code, for a search), and what to do next. Node's own messages
 * ("EISDIR: illegal operation on a directory, rename '...' -> '...'") name a syscall and
 * internal paths (the part file) instead.
 */
import { dirname } from 'node:path';

/**
 * A problem with the user's output (`-o`), as opposed to the origin's: the API answers it with
 * 409, not 502. Callers compare `code` (STYLE.md section 5).
 */
export class OutputError extends Error {
  readonly code = 'PEAPOD_ERR_OUTPUT';
}

/** True for an `OutputError` (by code). */
export function isOutputError(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === 'PEAPOD_ERR_OUTPUT';
}

/** Why each errno stops a write, and the next step; `{dir}` is the output's directory. */
const REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'a directory on its path does not exist (ENOENT); create {dir} or choose another -o',
  ENOTDIR: 'a part of its path is a file, not a directory (ENOTDIR); choose another -o',
  EISDIR: 'it is a directory (EISDIR); give a file name with -o, e.g. -o {path}/NAME',
  EACCES: 'permission denied (EACCES); choose a directory the daemon can write, or another -o',
  EPERM: 'operation not permitted (EPERM); choose a directory the daemon can write, or another -o',
  EROFS: 'its file system is read-only (EROFS); choose another -o',
  ENOSPC: 'the disk is full (ENOSPC); free some space and re-run to resume, or choose another -o',
  EDQUOT: 'the disk quota is used up (EDQUOT); free some space and re-run to resume',
  EFBIG: 'the file is too large for its file system (EFBIG); choose another -o',
  ENAMETOOLONG: 'the name is too long (ENAMETOOLONG); choose a shorter -o',
  ELOOP: 'its path has too many symbolic links (ELOOP); choose another -o',
  EMFILE: 'the daemon has too many files open (EMFILE); try again when fewer downloads run',
  ENFILE: 'the system has too many files open (ENFILE); try again later',
  EIO: 'the disk reported an I/O error (EIO); check the disk, then choose another -o',
  EBUSY: 'it is busy (EBUSY), e.g. a mount point; choose another -o',
  EXDEV: 'its part file is on another file system (EXDEV); choose another -o',
};

/**
 * The sentence for a failure to write the output file `path`. Errors without an errno code
 * (already a sentence from PeaPod, e.g. an `OutputError`) pass through unchanged.
 */
export function describeFileError(error: unknown, path: string): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) return message; // not an errno
  const reason = REASONS[code];
  if (reason === undefined) return `cannot write ${path}: ${message}`;
  return `cannot write ${path}: ${reason.replaceAll('{dir}', dirname(path)).replaceAll('{path}', path)}`;
}
