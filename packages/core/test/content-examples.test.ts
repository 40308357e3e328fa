/**
 * Runs every `@example` in the content layer's TSDoc (STYLE.md section 6: examples a test
 * actually runs, as noble checks its examples). An example is plain JavaScript with the
 * module's exports, `crypto` (the pure-JS provider) and `toHex` in scope; a line of the form
 * `expression; // => JSON` asserts that the expression deep-equals the JSON value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toHex } from '../src/bytes.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import * as chunkVerifier from '../src/content/chunk-verifier.js';
import * as chunker from '../src/content/chunker.js';
import * as contentId from '../src/content/content-id.js';
import * as fileTable from '../src/content/file-table.js';
import * as layout from '../src/content/layout.js';
import * as manifest from '../src/content/manifest.js';
import * as merkle from '../src/content/merkle.js';

const scope: Record<string, unknown> = {
  ...chunkVerifier,
  ...chunker,
  ...contentId,
  ...fileTable,
  ...layout,
  ...manifest,
  ...merkle,
  toHex,
  crypto: createNobleCryptoProvider({
    randomBytes: () => {
      throw new Error('the content layer must not draw randomness');
    },
  }),
};

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const sourceDir = join(packageRoot(), 'src', 'content');

/** The `@example` blocks of a TypeScript source, as code lines without the ` * ` margin. */
function examplesOf(source: string): string[][] {
  const blocks: string[][] = [];
  let current: string[] | undefined;
  for (const raw of source.split('\n')) {
    const line = raw.trim();
    if (line === '* @example') {
      current = [];
      blocks.push(current);
    } else if (current !== undefined && line.startsWith('*') && !/^\*\s*@|^\*\//.test(line)) {
      current.push(line.replace(/^\* ?/, ''));
    } else {
      current = undefined;
    }
  }
  return blocks;
}

/** Turns `expr; // => json` lines into assertions and runs the block. Returns assertion count. */
function runExample(lines: readonly string[], where: string): number {
  let checks = 0;
  const body = lines
    .map((line) => {
      const match = /^(.*?);\s*\/\/ => (.*)$/.exec(line);
      if (match === null) return line;
      checks++;
      return `__expect((${match[1]}), ${JSON.stringify(match[2])}, ${JSON.stringify(line)});`;
    })
    .join('\n');
  const expect = (actual: unknown, expectedJson: string, line: string): void => {
    assert.deepStrictEqual(actual, JSON.parse(expectedJson), `${where}: ${line}`);
  };
  const names = Object.keys(scope);
  new Function(...names, '__expect', body)(...names.map((name) => scope[name]), expect);
  return checks;
}

const files = readdirSync(sourceDir).filter((name) => name.endsWith('.ts'));

test('examples: every content module has TSDoc examples', () => {
  assert.deepEqual(files.sort(), [
    'chunk-verifier.ts',
    'chunker.ts',
    'content-id.ts',
    'file-table.ts',
    'layout.ts',
    'manifest.ts',
    'merkle.ts',
  ]);
});

for (const file of files) {
  test(`examples: ${file}`, () => {
    const blocks = examplesOf(readFileSync(join(sourceDir, file), 'utf8'));
    assert.ok(blocks.length > 0, `${file} has no @example`);
    let checks = 0;
    blocks.forEach((block, i) => {
      checks += runExample(block, `${file} example ${i + 1}`);
    });
    assert.ok(checks >= blocks.length, `${file}: every example asserts something`);
  });
}
