/**
 * S3 clients for the gateway tests: AWS's own SDK, path-style, with the checksum settings s3rver
 * 3.7.1 needs (it stores aws-chunked uploads still encoded otherwise), and s3rver's credentials
 * (it verifies no signature: any secret passes with the key `S3RVER`).
 */
import { S3Client } from '@aws-sdk/client-s3';

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
