/**
 * What an outsider replays in a handshake flood (the guard's tests, bench/handshake-flood.ts):
 * a real member's first handshake record, read off the wire once. A member NodeHost dials a
 * plain TCP server that keeps the first length-prefixed record it reads and closes.
 */
import { createServer, type AddressInfo } from 'node:net';
import { NodeHost } from '../../src/node-host.js';
import { createNodeCryptoProvider } from '../../src/node-crypto-provider.js';

/** A pod member's host with a fresh identity. */
export function memberHost(secret: Uint8Array): NodeHost {
  const crypto = createNodeCryptoProvider();
  return new NodeHost({ crypto, identity: crypto.ed25519GenerateKeyPair(), podSecret: secret });
}

/** A member's first handshake record, with its 2-byte length prefix, as it went on the wire. */
export async function captureFirstRecord(secret: Uint8Array): Promise<Buffer> {
  let bytes = Buffer.alloc(0);
  let resolveRecord!: (record: Buffer) => void;
  const captured = new Promise<Buffer>((resolve) => (resolveRecord = resolve));
  const server = createServer((socket) => {
    socket.on('data', (part: Buffer) => {
      bytes = Buffer.concat([bytes, part]);
      if (bytes.length >= 2 && bytes.length >= 2 + bytes.readUInt16BE(0)) {
        resolveRecord(bytes.subarray(0, 2 + bytes.readUInt16BE(0)));
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const member = memberHost(secret);
  await member.dial((server.address() as AddressInfo).port);
  const record = await captured;
  await member.close();
  server.close();
  return record;
}
