/**
 * `peapod share PATH`: the daemon records the file or directory tree in its store (pinned, its
 * bytes referenced where they are, not copied) and serves it to the pod; this prints its
 * content ID and `peapod://` link (`--json`: the daemon's answer as one object). What the walk
 * skipped (symbolic links, special files) is said on stderr, one line each.
 */
import { resolve } from 'node:path';
import { ApiError, shareContent, type ApiTarget } from '../api-client.js';
import { formatBytes } from '../rate-limit.js';

/** Exit status: 0 shared, 1 the daemon could not share it (the message says why). */
export async function runShare(
  target: ApiTarget,
  path: string,
  options: { readonly json: boolean },
): Promise<number> {
  let answer;
  try {
    answer = await shareContent(target, { path: resolve(path) });
  } catch (error) {
    // No daemon, or one that refuses the key, is the CLI's exit 3 (thrown on).
    if (!(error instanceof ApiError)) throw error;
    if (options.json) console.log(JSON.stringify({ ok: false, error: error.message }));
    else process.stderr.write(`peapod: share failed: ${error.message}\n`);
    return 1;
  }
  if (options.json) {
    console.log(JSON.stringify(answer, null, 2));
    return 0;
  }
  for (const note of answer.skipped) process.stderr.write(`peapod: ${note}\n`);
  const files = answer.files === 1 ? '1 file' : `${answer.files} files`;
  console.log(`Shared ${answer.name}: ${files}, ${formatBytes(answer.totalBytes)}`);
  console.log(`Content ID: ${answer.contentId}`);
  console.log(`Link:       ${answer.link}`);
  console.log(`\nOn another pod member:  peapod fetch '${answer.link}'`);
  return 0;
}
