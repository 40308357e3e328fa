/**
 * S3 clients for the gateway tests: AWS's own SDK, path-style, with the checksum settings s3rver
 * 3.7.1 needs (it stores aws-chunked uploads still encoded otherwise), and s3rver's credentials
 * (it verifies no signature: any secret passes with the key `S3RVER`).
 */
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** s3rver on a free loopback port, storing in `dir`, with the bucket `models`; and its URL. */
export async function startS3rver(dir: string): Promise<{ s3: S3rver; url: string }> {
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: 'models' }],
  });
  const { port } = (await s3.run()) as AddressInfo;
  return { s3, url: `http://127.0.0.1:${port}` };
}
