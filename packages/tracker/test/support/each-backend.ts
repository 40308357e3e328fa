/** Registers one test per backend (SQLite, PostgreSQL), each with a fresh database. */
import { test } from 'node:test';
import { BACKENDS, type Backend } from './backends.js';

export function eachBackend(title: string, body: (backend: Backend) => Promise<void>): void {
  for (const { name, open, skip } of BACKENDS) {
    test(`${title} [${name}]`, skip === undefined ? {} : { skip }, async () => {
      const backend = await open();
      try {
        await body(backend);
      } finally {
        await backend.dispose();
      }
    });
  }
}
