/**
 * The gossip scenario on the real GossipEngine (real Ed25519 signatures), a few hundred nodes,
 * 1% loss, 10% churn, 20% silent: every kind reaches 99.9% of live nodes, the IP-sharing
 * invariant holds, messages per node are reported and finite, and a seed replays to the same
 * figures, at the engine's default settings (a relay floods its active view of 4 to 5 links).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gossipScenarioDefaults, GossipScenario } from '../src/gossip-scenario.js';

const config = gossipScenarioDefaults(200, {
  seed: 5,
  settleMs: 20_000,
  measureMs: 20_000,
  originsPerKind: 3,
});

test('gossip sim, 200 real engines: 99.9% coverage per kind, invariant held, same figures twice', () => {
  const one = new GossipScenario(config).run();
  assert.equal(one.invariant.ok, true, JSON.stringify(one.invariant.violations));
  assert.ok(one.invariant.checks.tableEvents > 0 && one.invariant.checks.sweptTables > 0);
  for (const kind of one.kinds) {
    assert.equal(kind.origins, 3, `${kind.kind}: every origin's message went out`);
    assert.notEqual(kind.roundsWorst, undefined, `${kind.kind}: coverage ${kind.coverageMin}`);
    assert.ok(Number.isFinite(kind.messagesPerNodeMax) && kind.messagesPerNodeMax > 0);
  }
  assert.ok(one.left > 0, 'churn happened');
  const two = new GossipScenario(config).run();
  assert.deepEqual(
    two.spreads.map((s) => [s.kind, s.rounds, s.sends, s.covered, s.population]),
    one.spreads.map((s) => [s.kind, s.rounds, s.sends, s.covered, s.population]),
  );
  assert.equal(two.events, one.events);
});

test('gossip sim progress: reported every 5 simulated seconds up to the end, and it changes no figure', () => {
  const small = gossipScenarioDefaults(60, { seed: 3, settleMs: 5_000, measureMs: 5_000 });
  const seen: { simMs: number; endMs: number; liveNodes: number }[] = [];
  const quiet = new GossipScenario(small).run();
  const told = new GossipScenario({ ...small, onProgress: (p) => seen.push(p) }).run();
  const end = small.joinWindowMs + small.settleMs + small.measureMs + small.spreadWindowMs;
  assert.deepEqual(
    seen.map((p) => p.simMs),
    Array.from({ length: Math.floor(end / 5_000) }, (_, i) => (i + 1) * 5_000),
  );
  assert.ok(seen.every((p) => p.endMs === end && p.liveNodes > 0 && p.liveNodes <= 60));
  assert.deepEqual(
    told.spreads.map((s) => [s.kind, s.rounds, s.sends, s.covered]),
    quiet.spreads.map((s) => [s.kind, s.rounds, s.sends, s.covered]),
  );
  assert.equal(
    told.events,
    quiet.events + seen.length,
    'the progress events are the only extra ones',
  );
});
