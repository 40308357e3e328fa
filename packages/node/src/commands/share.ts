/**
 * `peapod share PATH [--hidden] [--publish]`: the daemon records the file or directory tree in
 * its store (pinned; a chunk inside one file is referenced where it is, a chunk spanning two
 * files is copied into the store) and serves it to every pod member, and with `--publish` to
 * strangers too (recorded in the store, so across restarts); this prints its content ID,
 * `peapod://` link and whether it is published (`--json`: the daemon's answer as one object).
 * What the walk skipped
 * (hidden names without `--hidden`, symbolic links, special files) is said on stderr, one
 * line each.
 */
import { resolve } from 'node:path';
import { ApiError, shareContent, type ApiTarget, type ShareRequest } from '../api-client.js';
import { printable } from '../printable.js';
import { formatBytes } from '../rate-limit.js';

/** Exit status: 0 shared, 1 the daemon could not share it (the message says why). */
export async function runShare(
  target: ApiTarget,
  path: string,
  options: { readonly json: boolean; readonly hidden: boolean; readonly publish?: boolean },
): Promise<number> {
  const request: ShareRequest = {
    path: resolve(path),
    hidden: options.hidden,
    ...(options.publish === true ? { publish: true } : {}),
  };
  let answer;
  try {
    answer = await shareContent(target, request);
  } catch (error) {
    // No daemon, or one that refuses the key, is the CLI's exit 3 (thrown on).
    if (!(error instanceof ApiError)) throw error;
    if (options.json) console.log(JSON.stringify({ ok: false, error: error.message }));
    else process.stderr.write(`peapod: share failed: ${printable(error.message)}\n`);
    return 1;
  }
  if (options.json) {
    console.log(JSON.stringify(answer, null, 2));
    return 0;
  }
  for (const note of answer.skipped) process.stderr.write(`peapod: ${printable(note)}\n`);
  const files = answer.files === 1 ? '1 file' : `${answer.files} files`;
  console.log(`Shared ${printable(answer.name)}: ${files}, ${formatBytes(answer.totalBytes)}`);
  console.log(`Content ID: ${answer.contentId}`);
  console.log(`Link:       ${answer.link}`);
  if (answer.published) {
    console.log(
      'Published:  strangers (devices of other pods) may fetch it too, until `peapod unpublish`',
    );
  }
  console.log(`\nOn another pod member:  peapod fetch '${answer.link}'`);
  return 0;
}
