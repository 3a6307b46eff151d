import assert from 'node:assert/strict';
import { test } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { EdgebanMetrics } from '../../src/metrics/edgeban-metrics.ts';
import { judgeReadiness } from '../../src/metrics/readiness.ts';
import type { PassResult, TargetStatus } from '../../src/targets/target-reconciler.ts';
import { parseExposition, select, sampleValue } from './prom-text.ts';

const FIREWALL = 'https://fw1.example.net';
const ALIAS = 'fail2ban_blocklist';

function pass(overrides: Partial<PassResult> = {}): PassResult {
  return {
    add: [],
    remove: [],
    foreign: [],
    inAlias: 0,
    desired: 0,
    ok: true,
    at: 1_700_000_000_000,
    unconfirmed: [],
    unholdable: [],
    error: null,
    ...overrides,
  };
}

function status(overrides: Partial<TargetStatus> = {}): TargetStatus {
  return {
    id: `${FIREWALL} ${ALIAS}`,
    kind: 'opnsense',
    alias: ALIAS,
    ledgerTarget: ALIAS,
    state: 'in-sync',
    aliasType: 'external',
    inAlias: 3,
    pending: 0,
    rejected: [],
    killStates: true,
    lastError: null,
    lastPass: null,
    lastSuccess: null,
    successfulPasses: 0,
    ...overrides,
  };
}

/** A reconciler's status fields after its `count`th successful pass `p`. */
function succeeded(p: PassResult, count: number): Partial<TargetStatus> {
  return { lastPass: p, lastSuccess: p, successfulPasses: count };
}

const target = { target: ALIAS, firewall: FIREWALL, alias: ALIAS };

test('registry: counters, bans from the ledger, target gauges and drift, from fake sources; nothing in the global registry', async () => {
  const claims = [
    { target: ALIAS, jail: 'dovecot', address: '198.51.100.1' },
    { target: ALIAS, jail: 'dovecot', address: '198.51.100.2' },
    { target: ALIAS, jail: 'postfix', address: '198.51.100.2' },
  ];
  let current = status({ state: 'syncing', pending: 4, lastPass: null });
  const metrics = new EdgebanMetrics({ activeClaims: () => claims, targets: () => [current] });
  assert.equal(globalRegistry.getMetricsAsArray().length, 0, "something registered in prom-client's global registry");

  const dovecot = metrics.forJail('dovecot');
  dovecot.lines('/logs/mail.log', 5);
  dovecot.lines('/logs/mail.log', 2);
  dovecot.lines('/logs/other.log', 1);
  dovecot.matches(3);
  dovecot.dropped('unusable', 1);
  metrics.forJail('postfix');

  let samples = parseExposition((await metrics.scrape()).body);
  assert.equal(sampleValue(samples, 'edgeban_log_lines_read_total', { jail: 'dovecot', path: '/logs/mail.log' }), 7);
  assert.equal(sampleValue(samples, 'edgeban_log_lines_read_total', { jail: 'dovecot', path: '/logs/other.log' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_filter_matches_total', { jail: 'dovecot' }), 3);
  assert.equal(sampleValue(samples, 'edgeban_filter_matches_total', { jail: 'postfix' }), 0, 'a configured jail shows 0 before its first match');
  assert.equal(sampleValue(samples, 'edgeban_failures_dropped_total', { jail: 'dovecot', reason: 'unusable' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_failures_dropped_total', { jail: 'dovecot', reason: 'old' }), 0);
  assert.equal(sampleValue(samples, 'edgeban_active_bans', { target: ALIAS, jail: 'dovecot' }), 2);
  assert.equal(sampleValue(samples, 'edgeban_active_bans', { target: ALIAS, jail: 'postfix' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_banned_addresses', { target: ALIAS }), 2, 'an address banned by two jails is one alias entry');
  assert.equal(sampleValue(samples, 'edgeban_target_state', { ...target, state: 'syncing' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_target_state', { ...target, state: 'in-sync' }), 0);
  assert.equal(sampleValue(samples, 'edgeban_target_pending_entries', target), 4);
  assert.equal(select(samples, 'edgeban_reconcile_last_success_timestamp_seconds').length, 0, 'no pass yet: no success time');
  assert.ok(select(samples, 'process_cpu_user_seconds_total').length === 1, 'process metrics missing');

  // A successful pass repairs drift; scraped twice, it is counted once.
  current = status(succeeded(pass({ add: ['a', 'b'], remove: ['c'], foreign: ['d'] }), 1));
  await metrics.scrape();
  samples = parseExposition((await metrics.scrape()).body);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_last_pass_added_entries', target), 2);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_last_pass_removed_entries', target), 1);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_last_pass_foreign_entries', target), 1);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_added_entries_total', target), 2);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_removed_entries_total', target), 1);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_last_success_timestamp_seconds', target), 1_700_000_000);

  // Between two scrapes: another successful pass, seen through an API call of the next (failing) pass, then the failure.
  const second = pass({ add: ['e'], at: 1_700_000_060_000 });
  current = status(succeeded(second, 2));
  metrics.apiCall(current, {
    kind: 'opnsense',
    target: current.id,
    endpoint: 'POST firewall/alias_util/list',
    outcome: 'retry',
    reason: 'network',
    durationMs: 12,
  });
  current = status({
    state: 'unreachable',
    lastError: { kind: 'network', message: 'refused', at: 0 },
    lastPass: pass({ ok: false, error: 'refused', at: 1_700_000_120_000 }),
    lastSuccess: second,
    successfulPasses: 2,
  });
  samples = parseExposition((await metrics.scrape()).body);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_added_entries_total', target), 3);
  assert.equal(sampleValue(samples, 'edgeban_reconcile_last_success_timestamp_seconds', target), 1_700_000_060, 'a failed pass is not a success');
  assert.equal(sampleValue(samples, 'edgeban_reconcile_last_pass_added_entries', target), 1);
  assert.equal(sampleValue(samples, 'edgeban_target_state', { ...target, state: 'unreachable' }), 1);
  assert.equal(
    sampleValue(samples, 'edgeban_target_api_requests_total', {
      firewall: FIREWALL,
      alias: ALIAS,
      endpoint: 'POST firewall/alias_util/list',
      outcome: 'network',
    }),
    1,
  );
  assert.equal(
    sampleValue(samples, 'edgeban_target_api_request_duration_seconds_count', { firewall: FIREWALL, alias: ALIAS, endpoint: 'POST firewall/alias_util/list' }),
    1,
  );

  // Bans all ended: the series go, they do not keep their last value.
  claims.length = 0;
  samples = parseExposition((await metrics.scrape()).body);
  assert.equal(select(samples, 'edgeban_active_bans').length, 0);
  assert.equal(sampleValue(samples, 'edgeban_banned_addresses', { target: ALIAS }), 0);
  const text = (await metrics.scrape()).body;
  assert.ok(!text.includes('198.51.100.'), 'an address in the metrics');
});

test('readiness: running, every target past a successful pass, none degraded; a later outage keeps it ready', () => {
  const done = { lastSuccess: pass(), successfulPasses: 1 };
  assert.equal(judgeReadiness('starting', []).ready, false);
  assert.equal(judgeReadiness('stopping', [status(done)]).ready, false);
  assert.equal(judgeReadiness('running', []).ready, true, 'no target: nothing to wait for');

  const refusing = judgeReadiness('running', [
    status({ state: 'unreachable', lastError: { kind: 'network', message: 'connect ECONNREFUSED 127.0.0.1:1', at: 0 } }),
  ]);
  assert.equal(refusing.ready, false);
  assert.match(refusing.targets[0]?.reason ?? '', /no successful full pass yet \(state unreachable, last error network\)/);
  assert.ok(!JSON.stringify(refusing).includes('127.0.0.1:1'), 'error texts are not repeated in /readyz');

  assert.equal(judgeReadiness('running', [status({ state: 'unreachable', ...done })]).ready, true, 'an outage after a successful pass');
  const degraded = judgeReadiness('running', [status({ state: 'degraded', lastError: { kind: 'auth', message: '401', at: 0 }, ...done })]);
  assert.equal(degraded.ready, false);
  assert.match(degraded.targets[0]?.reason ?? '', /degraded \(auth\)/);
  assert.deepEqual(
    degraded.targets.map((t) => [t.firewall, t.alias]),
    [[FIREWALL, ALIAS]],
  );
});
