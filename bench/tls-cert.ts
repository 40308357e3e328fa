/**
 * A throwaway self-signed TLS certificate for the `node:tls` baselines of the link benchmarks:
 * `openssl req` writes `key.pem` and `cert.pem` (P-256, CN and SAN localhost, valid one day) into
 * a fresh temporary directory, which the caller removes when done.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The directory holding key.pem and cert.pem, or undefined when openssl is not available. */
export function makeCertificate(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'peapod-bench-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1'],
        ...['-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
      ],
      { stdio: 'ignore' },
    );
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

/** The key and certificate `makeCertificate` wrote. */
export function tlsCredentials(certDir: string): { key: Buffer; cert: Buffer } {
  return {
    key: readFileSync(join(certDir, 'key.pem')),
    cert: readFileSync(join(certDir, 'cert.pem')),
  };
}
