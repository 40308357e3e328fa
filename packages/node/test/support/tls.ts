/**
 * A throwaway self-signed TLS certificate for https origins in tests: `openssl req` writes a
 * P-256 key and a certificate for 127.0.0.1 (CN and IP SAN), valid one day, into `dir`.
 * Callers skip their tests where openssl is missing (`hasOpenssl`).
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** True when the `openssl` command runs here. */
export function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

/** Writes key.pem and cert.pem into `dir`; resolves with their contents. */
export async function selfSignedCertificate(dir: string): Promise<{ key: Buffer; cert: string }> {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  await new Promise<void>((resolve, reject) =>
    execFile(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', keyFile, '-out', certFile, '-days', '1'],
        ...['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      ],
      (error, _stdout, stderr) =>
        error === null ? resolve() : reject(new Error(`openssl req failed: ${stderr}`)),
    ),
  );
  return { key: await readFile(keyFile), cert: await readFile(certFile, 'utf8') };
}
