// ESLint flat config. The block scoped to packages/core/src is what keeps pea-core sans-I/O
// (DESIGN.md decision 1, STYLE.md section 1): no node:* modules, no DOM, no timers, no clocks,
// no global randomness or crypto, no Buffer. Hosts inject all of those.
import tseslint from 'typescript-eslint';

const coreBannedGlobals = [
  'Buffer',
  'process',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'performance',
  'crypto',
  'window',
  'document',
  'navigator',
  'self',
  'fetch',
  'WebSocket',
  'RTCPeerConnection',
  'BroadcastChannel',
  'indexedDB',
  'localStorage',
  'require',
  'global',
].map((name) => ({
  name,
  message: 'pea-core is sans-I/O: the host injects platform services (see docs/architecture.md).',
}));

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/*.d.ts'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        {
          selector: 'TSEnumDeclaration',
          message: 'Use string-literal unions or as-const objects (STYLE.md section 4).',
        },
        {
          selector: 'TSModuleDeclaration[kind="namespace"]',
          message: 'No namespaces: keep the code erasable.',
        },
      ],
    },
  },
  {
    files: ['packages/core/src/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', ...coreBannedGlobals],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'pea-core must not import node:* modules (sans-I/O).' },
          ],
          paths: [
            'fs',
            'net',
            'dgram',
            'http',
            'https',
            'os',
            'path',
            'crypto',
            'timers',
            'worker_threads',
            'child_process',
            'buffer',
            'stream',
            'events',
            'perf_hooks',
            'tls',
            'dns',
            'url',
            'util',
            'process',
          ].map((name) => ({
            name,
            message: 'pea-core must not import Node built-ins (sans-I/O).',
          })),
        },
      ],
      'no-restricted-properties': [
        'error',
        {
          object: 'Math',
          property: 'random',
          message: 'Use the core PRNG (src/prng.ts), seeded by the host.',
        },
        { object: 'Date', property: 'now', message: 'Time comes in as nowMs on every input.' },
        {
          object: 'globalThis',
          property: 'crypto',
          message: 'Crypto is injected (CryptoProvider).',
        },
        { object: 'globalThis', property: 'Buffer', message: 'Use Uint8Array in the core.' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'TSEnumDeclaration',
          message: 'Use string-literal unions or as-const objects (STYLE.md section 4).',
        },
        {
          selector: 'NewExpression[callee.name="Date"]',
          message: 'Time comes in as nowMs on every input.',
        },
        {
          selector: 'CallExpression[callee.name="Date"]',
          message: 'Time comes in as nowMs on every input.',
        },
      ],
    },
  },
);
