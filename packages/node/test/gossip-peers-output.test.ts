/**
 * `peapod peers`' gossip section (src/commands/peers.ts) from a fixed answer: the columns, the
 * relative "last heard", an address only for broadcasting peers, and the trackers' states.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PeersAnswer } from '../src/api-client.js';
import { ago, renderPeers } from '../src/commands/peers.js';

const NOW = Date.parse('2026-12-02T08:00:00.000Z');
const at = (secondsAgo: number) => new Date(NOW - secondsAgo * 1000).toISOString();

const answer: PeersAnswer = {
  deviceId: 'AAAAAAA-BBBBBBB-CCCCCCC-DDDDDDD-EEEEEEE-FFFFFFF-GGGGGGG-HHHHHHH',
  deviceName: 'laptop',
  pod: 'pod-1',
  peers: [],
  gossip: {
    broadcast: false,
    addresses: [],
    listenPort: 9000,
    trackers: [
      {
        url: 'http://127.0.0.1:7000',
        state: 'unreachable',
        detail: 'connect ECONNREFUSED 127.0.0.1:7000',
        registeredUntil: undefined,
        recordsLast: 0,
      },
      {
        url: 'https://t.example.org',
        state: 'reachable',
        detail: undefined,
        registeredUntil: undefined,
        recordsLast: 3,
      },
    ],
    peers: [
      {
        deviceId: 'FARAWAY-1234567-...',
        name: 'far',
        source: 'tracker',
        lastHeard: at(12),
        score: 0.8125,
        trust: 'stranger',
        broadcast: true,
        address: '203.0.113.7:9000',
        linked: true,
      },
      {
        deviceId: 'QUIETQQ-1234567-...',
        name: 'quiet',
        source: 'gossip',
        lastHeard: at(3 * 3600 + 5),
        score: 0.5,
        trust: 'stranger',
        broadcast: false,
        linked: false,
      },
    ],
  },
};

describe('peapod peers: beyond the pod', () => {
  test('rows show source, last heard, score, trust; an address only for the broadcasting peer', () => {
    const lines = renderPeers(answer, NOW);
    const header = lines.findIndex((line) => line.startsWith('PEER'));
    assert.ok(header > 0, lines.join('\n'));
    assert.match(
      lines[header - 1]!,
      /^Beyond the pod \(gossip\): silent: this address is never passed on$/,
    );
    assert.match(lines[header]!, /^PEER +SOURCE +LAST HEARD +SCORE +TRUST +ADDRESS$/);
    assert.match(
      lines[header + 1]!,
      /^far \(FARAWAY\) +tracker +12s ago +0\.81 +stranger +203\.0\.113\.7:9000 +linked$/,
    );
    assert.match(
      lines[header + 2]!,
      /^quiet \(QUIETQQ\) +gossip +3h ago +0\.50 +stranger +- \(silent\)$/,
    );
    assert.deepEqual(lines.slice(header + 3), [
      'Tracker http://127.0.0.1:7000: unreachable (connect ECONNREFUSED 127.0.0.1:7000); retrying',
      'Tracker https://t.example.org: reachable',
    ]);
  });

  test('without gossip there is no such section; with no peers yet it says what to do', () => {
    const { gossip: _gossip, ...podOnly } = answer;
    assert.ok(!renderPeers(podOnly, NOW).some((line) => line.startsWith('Beyond the pod')));
    const empty = renderPeers(
      {
        ...answer,
        gossip: {
          ...answer.gossip!,
          broadcast: true,
          addresses: ['198.51.100.2'],
          peers: [],
          trackers: [],
        },
      },
      NOW,
    );
    assert.deepEqual(empty.slice(-2), [
      'Beyond the pod (gossip): broadcasting as 198.51.100.2 port 9000',
      'No peers beyond the pod yet. Give the daemon --tracker URL or --peer HOST:PORT.',
    ]);
  });

  test('ago: seconds, minutes, hours, then days', () => {
    assert.deepEqual(
      [0, 59, 60, 3599, 3600, 47 * 3600, 48 * 3600, -5].map((s) => ago(at(s), NOW)),
      ['0s ago', '59s ago', '1m ago', '59m ago', '1h ago', '47h ago', '2d ago', '0s ago'],
    );
  });
});
