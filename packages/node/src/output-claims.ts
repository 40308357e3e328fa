/**
 * Which output files the daemon's running jobs write: two jobs on one file would interleave
 * their part files and rename over each other, so the second is refused at once.
 *
 * Theory of operation: a claim is keyed by the file's canonical path, the realpath of its
 * directory joined with its base name, so two spellings of one file (`/a/../b/f`, a symlinked
 * directory) collide. The file itself need not exist yet, so only the directory is resolved; a
 * directory that does not exist is the job's error, said in one sentence. A claim lives in this
 * process only (one daemon owns its jobs) and is released when its job ends, however it ends.
 * Resolving and checking happen with no await between the check and the insert, so two
 * requests that race still cannot both win.
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { describeFileError, OutputError } from './output-errors.js';

/** One job's hold on its output file; `release` is idempotent. */
export interface OutputClaim {
  /** The canonical path the claim holds. */
  readonly path: string;
  release(): void;
}

export class OutputClaims {
  private readonly held = new Set<string>();

  /**
   * Claims the output file `path` (absolute).
   * @throws Error with a sentence for the user when another job writes that file, or when its
   *   directory cannot be resolved (missing, not a directory, no permission).
   */
  async claim(path: string): Promise<OutputClaim> {
    let directory: string;
    try {
      directory = await realpath(dirname(path));
    } catch (error) {
      throw new OutputError(describeFileError(error, path));
    }
    const canonical = join(directory, basename(path));
    if (this.held.has(canonical)) {
      throw new OutputError(
        `another download is already writing ${path}; wait for it to end, or choose another -o`,
      );
    }
    this.held.add(canonical);
    let released = false;
    return {
      path: canonical,
      release: () => {
        if (released) return;
        released = true;
        this.held.delete(canonical);
      },
    };
  }
}
