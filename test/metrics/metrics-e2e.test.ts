import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { startCliDaemon } from '../helpers/cli.ts';
import { ALIAS, KEY, SECRET, startSimulator } from '../helpers/enforcement-harness.ts';
import { dovecotFailure, dovecotLogin } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';
import { parseExposition, select, sampleValue, type Sample } from './prom-text.ts';

const ATTACKER = '203.0.113.77';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('edgeban run with EDGEBAN_METRICS_LISTEN: /readyz follows the first successful pass, /metrics carries every series, failures show in outcomes, reload keeps counters, SIGTERM closes it', {
  timeout: 180_000,
}, async (t) => {
  // The firewall refuses connections from the start: the first pass cannot succeed.
  const sim = await startSimulator(t, { faults: { refuse: true } });
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\n`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const startedAt = Date.now();
  const daemon = await startCliDaemon(t, {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    EDGEBAN_METRICS_LISTEN: `127.0.0.1:${port}`,
  });
  const scrape = async (): Promise<{ text: string; samples: Sample[] }> => {
    const response = await fetch(`${base}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    return { text, samples: parseExposition(text) };
  };
  const target = { target: ALIAS, firewall: sim.url, alias: ALIAS };

  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { status: string }).status, 'ok');
  assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  assert.equal((await fetch(`${base}/nothing`)).status, 404);

  const notReady = await fetch(`${base}/readyz`);
  assert.equal(notReady.status, 503);
  const reason = (await notReady.json()) as { ready: boolean; targets: Array<{ firewall: string; ready: boolean; reason: string }> };
  assert.equal(reason.ready, false);
  assert.equal(reason.targets[0]?.firewall, sim.url);
  assert.match(reason.targets[0]?.reason ?? '', /no successful full pass yet/);
  await until(
    'a refused call in the metrics',
    async () => select((await scrape()).samples, 'edgeban_target_api_requests_total', { ...target, outcome: 'network' }).length > 0,
  );

  sim.setFaults({ refuse: false });
  await until('/readyz 200 after the first successful pass', async () => (await fetch(`${base}/readyz`)).status === 200);

  // Two lines that are no failure, then three failures: the third bans.
  await appendFile(mailLog, dovecotLogin() + dovecotLogin() + dovecotFailure(ATTACKER) + dovecotFailure(ATTACKER) + dovecotFailure(ATTACKER));
  await until('the attacker in the alias', async () => sim.tableEntries(ALIAS).includes(ATTACKER));

  let { text, samples } = await scrape();
  assert.equal(sampleValue(samples, 'edgeban_log_lines_read_total', { jail: 'dovecot', path: mailLog }), 5, 'lines read = lines written');
  assert.equal(sampleValue(samples, 'edgeban_filter_matches_total', { jail: 'dovecot' }), 3);
  assert.equal(sampleValue(samples, 'edgeban_failures_dropped_total', { jail: 'dovecot', reason: 'unusable' }), 0);
  assert.equal(sampleValue(samples, 'edgeban_active_bans', { target: ALIAS, jail: 'dovecot' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_banned_addresses', { target: ALIAS }), 1);
  assert.ok(sampleValue(samples, 'edgeban_target_api_requests_total', { ...target, endpoint: 'POST firewall/alias_util/add', outcome: 'ok' }) >= 1);
  assert.ok(sampleValue(samples, 'edgeban_target_api_request_duration_seconds_count', { ...target, endpoint: 'POST firewall/alias_util/add' }) >= 1);
  assert.ok(
    select(samples, 'edgeban_target_api_requests_total', { ...target, outcome: 'network' }).some((s) => s.value >= 1),
    'the refused pass',
  );
  assert.ok(sampleValue(samples, 'edgeban_reconcile_last_success_timestamp_seconds', target) >= Math.floor(startedAt / 1000) - 1);
  for (const drift of [
    'edgeban_reconcile_last_pass_added_entries',
    'edgeban_reconcile_last_pass_removed_entries',
    'edgeban_reconcile_last_pass_foreign_entries',
    'edgeban_reconcile_added_entries_total',
    'edgeban_reconcile_removed_entries_total',
  ]) {
    assert.ok(sampleValue(samples, drift, target) >= 0, drift);
  }
  assert.ok(sampleValue(samples, 'edgeban_target_pending_entries', target) >= 0);
  assert.equal(
    select(samples, 'edgeban_target_state', target).reduce((sum, s) => sum + s.value, 0),
    1,
    'exactly one state at a time',
  );
  assert.ok(select(samples, 'process_resident_memory_bytes').length === 1, 'process metrics missing');
  assert.ok(select(samples, 'nodejs_eventloop_lag_seconds').length === 1, 'event loop metrics missing');
  assert.ok(!text.includes(ATTACKER), "the attacker's address is in the metrics");
  assert.ok(!text.includes(SECRET) && !text.includes(KEY), 'an API credential is in the metrics');

  // The firewall fails every call: the outcome label says so.
  sim.setFaults({ errorRate: 1 });
  await until('server errors in the metrics', async () =>
    select((await scrape()).samples, 'edgeban_target_api_requests_total', { ...target, outcome: 'server' }).some((s) => s.value >= 1),
  );
  await until(
    'the target shown unreachable',
    async () => sampleValue((await scrape()).samples, 'edgeban_target_state', { ...target, state: 'unreachable' }) === 1,
  );
  assert.equal((await fetch(`${base}/readyz`)).status, 200, 'an outage after a successful pass keeps it ready');
  sim.setFaults({ errorRate: 0 });

  // SIGHUP: the same server answers and counters are kept.
  const reloadsBefore = daemon.stderr.filter((l) => l.includes('configuration reloaded')).length;
  daemon.child.kill('SIGHUP');
  await until('the reload', async () => daemon.stderr.filter((l) => l.includes('configuration reloaded')).length > reloadsBefore);
  ({ text, samples } = await scrape());
  assert.equal(sampleValue(samples, 'edgeban_log_lines_read_total', { jail: 'dovecot', path: mailLog }), 5, 'a reload reset a counter');
  assert.equal(sampleValue(samples, 'edgeban_filter_matches_total', { jail: 'dovecot' }), 3);
  assert.ok(!text.includes(ATTACKER));

  const logged = daemon.stderr.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.ok(
    logged.some((l) => l.msg === 'metrics served' && l.url === base),
    'the metrics address is logged as a field',
  );

  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
  await assert.rejects(fetch(`${base}/healthz`), 'the metrics server outlived the daemon');
  assert.ok(
    daemon.stderr.every((line) => !line.includes(SECRET)),
    'secret in the daemon log',
  );
});
