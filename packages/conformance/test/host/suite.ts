/**
 * The host compliance suite (issue 10 item 6): the cases every host of the core must pass,
 * registered with node:test for one `HostUnderTest`. Each case starts its own pod (so no case
 * depends on another's state or order), waits for events, and asserts what it names:
 * - links come up: every node holds a ready link to every other;
 * - HELLO: each node learns the others' device names, and the protocol version of each link
 *   (skipped, saying so, on a host that does not report it);
 * - a pooled download is byte-exact: the output's SHA-256 is the object's, and more than one
 *   source contributed;
 * - a liar is banned, and the download is still exact;
 * - a leaver is survived: a helper leaves mid-way and the download completes exactly;
 * - a stalled helper is reassigned: the download completes exactly, the stalled helper (which
 *   was given work) contributed nothing, so its pieces came from someone else;
 * - GOODBYE with its reason: a node that shuts down sends goingAway, and its peers report it.
 * No case asserts a duration; the guard timeouts only turn a hang into a failure.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ReasonCode } from '@peapod/core';
import type { DownloadResult, HostUnderTest, PodSpec, PodUnderTest } from './host-under-test.js';

/** A source "contributed" when it moved at least one 64 KiB frame's worth of the object. */
export const CONTRIBUTION_MIN_BYTES = 64 * 1024;

/** Only turns a hang into a failure (a real download here takes a few seconds). */
const GUARD_MS = 90_000;

function others(count: number, index: number): number[] {
  return Array.from({ length: count }, (_, i) => i).filter((i) => i !== index);
}

/** The download finished and its output is the object, byte for byte. */
function assertExact(result: DownloadResult): void {
  assert.equal(result.ok, true, `the download failed: ${result.error}`);
  assert.equal(result.bytes, result.objectBytes, 'output size');
  assert.equal(result.sha256, result.objectSha256, "output SHA-256 is the object's");
}

function contributors(result: DownloadResult): number[] {
  return [...result.bySource]
    .filter(([, bytes]) => bytes >= CONTRIBUTION_MIN_BYTES)
    .map(([node]) => node);
}

/** A describe block whose one pod is started before its tests and closed after. */
function withPod(
  host: HostUnderTest,
  title: string,
  spec: PodSpec,
  body: (pod: () => PodUnderTest) => void,
): void {
  describe(title, () => {
    let pod: PodUnderTest | undefined;
    before(async () => {
      pod = await host.startPod(spec);
    });
    after(async () => {
      await pod?.close();
    });
    body(() => {
      assert.ok(pod !== undefined, 'the pod did not start');
      return pod;
    });
  });
}

/** Registers every case for `host`. */
export function hostComplianceSuite(host: HostUnderTest): void {
  describe(`host compliance: ${host.name}`, { timeout: GUARD_MS * 4 }, () => {
    withPod(host, 'a pod of 3', { nodes: 3 }, (pod) => {
      test('links come up: every node holds a ready link to every other', async () => {
        await pod().linksUp();
        for (let i = 0; i < 3; i++) {
          const connected = (await pod().peers(i)).filter((p) => p.connected);
          assert.deepEqual(
            connected.map((p) => p.deviceIdHex).sort(),
            others(3, i)
              .map((j) => pod().identity(j).deviceIdHex)
              .sort(),
            `node ${i}'s connected peers`,
          );
        }
      });

      test("HELLO: each node learns the others' device names", async () => {
        await pod().linksUp();
        for (let i = 0; i < 3; i++) {
          const peers = await pod().peers(i);
          for (const j of others(3, i)) {
            const want = pod().identity(j);
            const seen = peers.find((p) => p.deviceIdHex === want.deviceIdHex);
            assert.ok(seen !== undefined, `node ${i} does not know node ${j}`);
            assert.equal(seen.name, want.name, `node ${i}'s name for node ${j}`);
          }
        }
      });

      test('HELLO: each node learns the protocol version it runs with each peer', async (t) => {
        await pod().linksUp();
        const versions = new Map<string, number>();
        for (let i = 0; i < 3; i++) {
          for (const peer of await pod().peers(i)) {
            const j = others(3, i).find((n) => pod().identity(n).deviceIdHex === peer.deviceIdHex);
            if (j !== undefined && peer.protocolVersion !== undefined)
              versions.set(`${i}:${j}`, peer.protocolVersion);
          }
        }
        if (versions.size === 0) {
          // The links above are ready, which HELLO allows only with a version in common, but
          // which one is not observable on this host.
          t.skip(`${host.name} does not report a link's protocol version`);
          return;
        }
        assert.equal(versions.size, 6, `every node reports it for every peer: ${[...versions]}`);
        // Both ends of a link run the version they negotiated, a whole number from 1.
        for (const [pair, version] of versions) {
          const [i, j] = pair.split(':');
          assert.ok(Number.isInteger(version) && version >= 1, `${pair} runs version ${version}`);
          assert.equal(versions.get(`${j}:${i}`), version, `both ends of ${pair} agree`);
        }
      });

      test("a pooled download is byte-exact: SHA-256 equal to the object's, more than one source", async () => {
        await pod().linksUp();
        const result = await pod().download(0);
        assertExact(result);
        const sources = contributors(result);
        assert.ok(sources.length >= 2, `sources: ${JSON.stringify([...result.bySource])}`);
        assert.deepEqual(result.bans, [], 'no honest node is banned');
      });
    });

    withPod(host, 'a pod of 3 with a liar (node 2)', { nodes: 3, liars: [2] }, (pod) => {
      test('a liar is banned, and the download is still byte-exact', async () => {
        await pod().linksUp();
        const result = await pod().download(0);
        assertExact(result);
        await pod().banned(0, 2);
        assert.ok(
          !result.bans.some((ban) => ban.node !== 2),
          `only the liar is banned: ${JSON.stringify(result.bans)}`,
        );
      });
    });

    withPod(host, 'a pod of 4', { nodes: 4 }, (pod) => {
      test('a leaver is survived: the download completes exactly after a helper leaves mid-way', async () => {
        await pod().linksUp();
        const result = await pod().download(0, { leaver: 3 });
        assertExact(result);
        if (result.fetchesForPeers !== undefined) {
          assert.ok(
            (result.fetchesForPeers.get(3) ?? 0) >= 1,
            `the leaver had work when it left: ${JSON.stringify([...result.fetchesForPeers])}`,
          );
        }
        assert.deepEqual(result.bans, [], 'leaving is not lying: nobody is banned');
      });
    });

    withPod(
      host,
      'a pod of 3 whose node 2 stalls for peers',
      { nodes: 3, stalledForPeers: [2] },
      (pod) => {
        test("a stalled helper is reassigned: exact, and the stalled helper's pieces came from others", async (t) => {
          await pod().linksUp();
          const result = await pod().download(0);
          assertExact(result);
          assert.ok(
            (result.bySource.get(2) ?? 0) < CONTRIBUTION_MIN_BYTES,
            `the stalled helper contributed: ${JSON.stringify([...result.bySource])}`,
          );
          assert.ok(
            (result.bySource.get(1) ?? 0) >= CONTRIBUTION_MIN_BYTES,
            `the healthy helper took part: ${JSON.stringify([...result.bySource])}`,
          );
          assert.deepEqual(result.bans, [], 'stalling is not lying: nobody is banned');
          if (result.fetchesForPeers === undefined) {
            t.diagnostic(`${host.name} does not show which helper was given work`);
          } else {
            // It was given pieces (it did not merely sit out), and the output holds none of its bytes.
            assert.ok(
              (result.fetchesForPeers.get(2) ?? 0) >= 1,
              `the stalled helper was never given work: ${JSON.stringify([...result.fetchesForPeers])}`,
            );
          }
        });
      },
    );

    withPod(host, 'a pod of 3 where node 2 shuts down', { nodes: 3 }, (pod) => {
      test('GOODBYE with its reason: a node that shuts down sends goingAway; its peers report it', async () => {
        await pod().linksUp();
        const seen = await pod().stopNode(2);
        assert.deepEqual(
          seen.map((s) => s.by).sort(),
          [0, 1],
          `who saw it: ${JSON.stringify(seen)}`,
        );
        for (const s of seen) {
          assert.equal(s.reason, ReasonCode.goingAway, `node ${s.by}: ${JSON.stringify(s)}`);
          if (s.byRemote !== undefined) assert.equal(s.byRemote, true, 'the remote ended it');
        }
        const gone = pod().identity(2).deviceIdHex;
        for (const i of [0, 1]) {
          const row = (await pod().peers(i)).find((p) => p.deviceIdHex === gone);
          assert.equal(row?.connected, false, `node ${i} no longer lists node 2 as connected`);
        }
      });
    });
  });
}
