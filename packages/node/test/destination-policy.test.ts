/**
 * The helper destination policy's address classes (DESIGN.md decision 14): a table of public and
 * refused addresses with the reason given, and fast-check properties: no string makes it throw;
 * every address of a refused range is refused, in IPv4 and in each IPv6 form that leads to an
 * IPv4 address (mapped, NAT64, 6to4); an IPv4 address outside every refused range is allowed;
 * this device's own addresses are refused by `publicDestinations`.
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  addressRefusal,
  ownAddressRefusal,
  publicDestinations,
} from '../src/http/destination-policy.js';

const PUBLIC = [
  '8.8.8.8',
  '1.1.1.1',
  '93.184.215.14',
  '100.63.255.255', // just below CGNAT
  '100.128.0.0', // just above it
  '172.15.255.255',
  '172.32.0.0',
  '192.167.255.255',
  '169.253.255.255',
  '223.255.255.255',
  '2606:4700:4700::1111',
  '2a00:1450:4001:80b::200e',
  '::ffff:8.8.8.8',
  '64:ff9b::808:808', // NAT64 of 8.8.8.8
  '2002:808:808::1', // 6to4 of 8.8.8.8
];

const REFUSED: ReadonlyArray<readonly [string, RegExp]> = [
  ['127.0.0.1', /is a loopback address$/],
  ['127.255.255.254', /loopback/],
  ['0.0.0.0', /unspecified/],
  ['0.1.2.3', /unspecified/],
  ['10.0.0.1', /is a private \(RFC 1918\) address$/],
  ['172.16.0.1', /private/],
  ['172.31.255.255', /private/],
  ['192.168.1.1', /private/],
  ['169.254.169.254', /^169\.254\.169\.254 is a link-local address$/],
  ['100.64.0.1', /CGNAT/],
  ['100.127.255.255', /CGNAT/],
  ['224.0.0.1', /multicast/],
  ['239.255.255.250', /multicast/],
  ['255.255.255.255', /broadcast/],
  ['240.0.0.1', /reserved/],
  ['192.0.2.1', /reserved or documentation/],
  ['198.18.0.1', /reserved/],
  ['203.0.113.9', /reserved/],
  ['::1', /loopback/],
  ['::', /unspecified/],
  ['fe80::1', /link-local/],
  ['fe80::1%eth0', /zoned/],
  ['fc00::1', /unique local/],
  ['fd12:3456::1', /unique local/],
  ['ff02::1', /multicast/],
  ['fec0::1', /site-local/],
  ['100::1', /discard/],
  ['::7f00:1', /non-global/], // IPv4-compatible (deprecated)
  ['::ffff:127.0.0.1', /^::ffff:127\.0\.0\.1 is a loopback address \(as IPv4 127\.0\.0\.1\)$/],
  ['::ffff:7f00:1', /loopback address \(as IPv4 127\.0\.0\.1\)/],
  ['::ffff:169.254.169.254', /link-local address \(as IPv4 169\.254\.169\.254\)/],
  ['::ffff:0:7f00:1', /IPv4-translated/],
  ['64:ff9b::7f00:1', /loopback address \(as IPv4 127\.0\.0\.1\)/],
  ['64:ff9b::a9fe:a9fe', /link-local address \(as IPv4 169\.254\.169\.254\)/],
  ['64:ff9b:1::1', /local-use NAT64/],
  ['2002:7f00:1::1', /loopback address \(as IPv4 127\.0\.0\.1\)/],
  ['2002:c0a8:101::1', /private \(RFC 1918\) address \(as IPv4 192\.168\.1\.1\)/],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', /Teredo/],
  ['2001:db8::1', /reserved or documentation/],
  ['3fff::1', /reserved or documentation/],
  ['localhost', /^localhost is not an IP address$/],
  ['', /not an IP address/],
  ['0177.0.0.1', /not an IP address/], // octal: never read as 127.0.0.1
  ['0x7f.1', /not an IP address/],
  ['127.1', /not an IP address/],
  ['2130706433', /not an IP address/],
  ['[::1]', /not an IP address/],
];

test('public unicast addresses are allowed', () => {
  for (const address of PUBLIC) assert.equal(addressRefusal(address), undefined, address);
});

test('every other kind is refused, and the reason names the kind', () => {
  for (const [address, reason] of REFUSED) {
    const refusal = addressRefusal(address);
    assert.ok(refusal !== undefined, `${address} was allowed`);
    assert.match(refusal, reason, address);
  }
});

test('property: no string makes it throw; the answer is undefined or one line', () => {
  const inputs = fc.oneof(
    fc.string(),
    fc.ipV4(),
    fc.ipV6(),
    fc.ipV4Extended(),
    fc.string({ unit: 'binary' }),
  );
  fc.assert(
    fc.property(inputs, (text) => {
      const refusal = addressRefusal(text);
      assert.ok(refusal === undefined || (typeof refusal === 'string' && !/\n/.test(refusal)));
    }),
    { numRuns: 2000 },
  );
});

/** Refused IPv4 ranges: every address in them must be refused, in every form. */
const REFUSED_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4], // with 255.255.255.255
  // Anycast services no content lives on; refusing them costs nothing.
  ['192.31.196.0', 24],
  ['192.52.193.0', 24],
  ['192.175.48.0', 24],
];

const v4ToInt = (address: string) =>
  address.split('.').reduce((sum, part) => sum * 256 + Number(part), 0);
const intToV4 = (value: number) =>
  [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
const inRange = (value: number, [base, prefix]: readonly [string, number]) =>
  Math.floor(value / 2 ** (32 - prefix)) === Math.floor(v4ToInt(base) / 2 ** (32 - prefix));
const hex4 = (value: number) =>
  `${Math.floor(value / 65536).toString(16)}:${(value % 65536).toString(16)}`;

const refusedV4 = fc
  .tuple(fc.constantFrom(...REFUSED_V4), fc.nat())
  .map(([[base, prefix], offset]) => v4ToInt(base) + (offset % 2 ** (32 - prefix)));

test('property: every address of a refused IPv4 range is refused, mapped, NAT64 or 6to4', () => {
  fc.assert(
    fc.property(refusedV4, (value) => {
      const v4 = intToV4(value);
      for (const form of [v4, `::ffff:${v4}`, `::ffff:${hex4(value)}`, `64:ff9b::${hex4(value)}`]) {
        assert.ok(addressRefusal(form) !== undefined, `${form} was allowed`);
      }
      assert.ok(addressRefusal(`2002:${hex4(value)}::1`) !== undefined, `6to4 of ${v4}`);
    }),
    { numRuns: 3000 },
  );
});

test('property: an IPv4 address outside every refused range is allowed, in every form', () => {
  const outside = fc
    .nat({ max: 2 ** 32 - 1 })
    .filter((value) => !REFUSED_V4.some((range) => inRange(value, range)));
  fc.assert(
    fc.property(outside, (value) => {
      const v4 = intToV4(value);
      for (const form of [
        v4,
        `::ffff:${v4}`,
        `64:ff9b::${hex4(value)}`,
        `2002:${hex4(value)}::1`,
      ]) {
        assert.equal(addressRefusal(form), undefined, form);
      }
    }),
    { numRuns: 3000 },
  );
});

/** Refused IPv6 ranges (outside 2000::/3, and the special ones inside it). */
const REFUSED_V6: ReadonlyArray<readonly [number[], number]> = [
  [[0, 0, 0, 0, 0, 0, 0, 0], 8], // ::/8: unspecified, loopback, IPv4-compatible, mapped...
  [[0x0100, 0, 0, 0, 0, 0, 0, 0], 64],
  [[0x2001, 0, 0, 0, 0, 0, 0, 0], 23],
  [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32],
  [[0x3fff, 0, 0, 0, 0, 0, 0, 0], 20],
  [[0x4000, 0, 0, 0, 0, 0, 0, 0], 2], // 4000::/2 to bfff: unassigned
  [[0xc000, 0, 0, 0, 0, 0, 0, 0], 3], // c000:: to dfff: unassigned
  [[0xfc00, 0, 0, 0, 0, 0, 0, 0], 7],
  [[0xfe80, 0, 0, 0, 0, 0, 0, 0], 10],
  [[0xfec0, 0, 0, 0, 0, 0, 0, 0], 10],
  [[0xff00, 0, 0, 0, 0, 0, 0, 0], 8],
];

test('property: every address of a refused IPv6 range is refused', () => {
  const word = fc.integer({ min: 0, max: 0xffff });
  const inside = fc
    .tuple(fc.constantFrom(...REFUSED_V6), fc.array(word, { minLength: 8, maxLength: 8 }))
    .map(([[base, prefix], random]) =>
      base
        .map((baseWord, i) => {
          const fixedBits = Math.max(0, Math.min(16, prefix - 16 * i));
          const mask = fixedBits === 0 ? 0 : (0xffff << (16 - fixedBits)) & 0xffff;
          return ((baseWord & mask) | (random[i]! & ~mask & 0xffff)).toString(16);
        })
        .join(':'),
    )
    // ::ffff:a.b.c.d and ::a.b.c.d-like forms of a public IPv4 address are judged by it.
    .filter((address) => !address.startsWith('0:0:0:0:0:ffff:'));
  fc.assert(
    fc.property(inside, (address) => {
      assert.ok(addressRefusal(address) !== undefined, `${address} was allowed`);
    }),
    { numRuns: 3000 },
  );
});

test("this device's own addresses are refused, whatever their kind", () => {
  // A public address of this device reaches its own services (bound to 0.0.0.0) past an
  // inbound firewall. No interface here has one, so the table is given.
  const interfaces = {
    eth9: [
      {
        address: '100.128.9.9',
        netmask: '255.255.255.0',
        family: 'IPv4' as const,
        mac: '00:00:00:00:00:00',
        internal: false,
        cidr: '100.128.9.9/24',
      },
    ],
  };
  assert.match(ownAddressRefusal('100.128.9.9', interfaces)!, /is an address of this device$/);
  assert.match(ownAddressRefusal('::ffff:100.128.9.9', interfaces)!, /of this device/);
  assert.equal(ownAddressRefusal('100.128.9.10', interfaces), undefined);
  // The real interfaces: publicDestinations refuses each of their addresses.
  const own = Object.values(networkInterfaces()).flatMap((entries) => entries ?? []);
  for (const { address } of own) assert.ok(publicDestinations(address) !== undefined, address);
  assert.equal(publicDestinations('8.8.8.8'), undefined);
});
