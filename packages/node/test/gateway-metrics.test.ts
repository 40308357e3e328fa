/**
 * `/metrics` (gateway/metrics.ts): the exact text exposition for a small registry, label values
 * that round-trip through the format's escaping, and docs/gateway-dashboard.json naming only
 * metrics the gateway exports. (promtool is not installed here, so the format is checked against
 * its specification's examples by hand.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { escapeLabelValue, formatLabels, Metrics } from '../src/gateway/metrics.js';

test('render: HELP, TYPE, labelled series, a collected gauge and a cumulative histogram', () => {
  const m = new Metrics();
  m.counter('x_requests_total', 'Requests.\nSecond line \\ here');
  m.inc('x_requests_total', { status: '200' }, 2);
  m.inc('x_requests_total', { status: '404' });
  m.inc('x_requests_total', { status: '200' });
  m.inc('x_requests_total', { status: '200' }, -5); // refused: counters only go up
  m.gauge('x_ratio', 'A ratio.', () => [{ labels: {}, value: 0.25 }]);
  m.histogram('x_seconds', 'Durations.', [0.1, 1]);
  m.observe('x_seconds', 0.05);
  m.observe('x_seconds', 0.5);
  m.observe('x_seconds', 7);
  assert.equal(
    m.render(),
    [
      '# HELP x_requests_total Requests.\\nSecond line \\\\ here',
      '# TYPE x_requests_total counter',
      'x_requests_total{status="200"} 3',
      'x_requests_total{status="404"} 1',
      '# HELP x_ratio A ratio.',
      '# TYPE x_ratio gauge',
      'x_ratio 0.25',
      '# HELP x_seconds Durations.',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{le="0.1"} 1',
      'x_seconds_bucket{le="1"} 2',
      'x_seconds_bucket{le="+Inf"} 3',
      'x_seconds_sum 7.55',
      'x_seconds_count 3',
      '',
    ].join('\n'),
  );
});

test('names and label names outside the grammar are refused', () => {
  assert.throws(() => new Metrics().counter('bad-name', 'x'), /not valid/);
  assert.throws(() => formatLabels({ __reserved: 'x' }), /not valid/);
  assert.throws(() => formatLabels({ '1a': 'x' }), /not valid/);
});

test('property: any label value escapes to one line and unescapes to itself', () => {
  const unescape = (text: string) =>
    text.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (value) => {
      const escaped = escapeLabelValue(value);
      assert.ok(!escaped.includes('\n'));
      assert.ok(!/(^|[^\\])(\\\\)*"/.test(escaped), 'no unescaped quote');
      assert.equal(unescape(escaped), value);
    }),
    { numRuns: 1000 },
  );
});

test('the Grafana dashboard parses and queries only metrics the gateway exports', () => {
  const exported = new Set([
    'peapod_gateway_requests_total',
    'peapod_gateway_cache_lookups_total',
    'peapod_gateway_bytes_total',
    'peapod_gateway_back_to_origin_ratio',
    'peapod_gateway_peer_bytes_total',
    'peapod_gateway_evictions_total',
    'peapod_gateway_revalidations_total',
    'peapod_gateway_request_duration_seconds_bucket',
    'peapod_gateway_memory_bytes',
    'peapod_gateway_store_bytes',
  ]);
  const dashboard = JSON.parse(
    readFileSync(new URL('../../../../docs/gateway-dashboard.json', import.meta.url), 'utf8'),
  ) as { panels: { title: string; targets: { expr: string }[] }[] };
  assert.ok(dashboard.panels.length >= 8);
  for (const panel of dashboard.panels)
    for (const target of panel.targets)
      for (const name of target.expr.match(/peapod_[a-z_]+/g) ?? [])
        assert.ok(exported.has(name), `${panel.title}: ${name}`);
});
