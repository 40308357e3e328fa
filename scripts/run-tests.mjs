#!/usr/bin/env node
// Runs every compiled test file of every package with Node's built-in test runner.
// Usage: node scripts/run-tests.mjs [substring...]   (only files whose path contains a substring)
// Node 20's `--test` takes file paths but no globs, so this script finds the files.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function findTests(dir) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const packagesDir = join(root, 'packages');
const files = readdirSync(packagesDir)
  .flatMap((pkg) => findTests(join(packagesDir, pkg, 'dist', 'test')))
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();

if (files.length === 0) {
  console.error('No test files found. Did `tsc -b` run? (npm test builds first.)');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
