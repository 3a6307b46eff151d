// Fault case: pf's table is full, so OPNsense answers `done` to adds and stores nothing. Bans that
// never reach the edge must not look healthy: `edgeban run` as a process, its /readyz, `edgeban
// health` and `edgeban status`, against the simulator.
import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon } from '../helpers/cli.ts';
import { freePort } from '../helpers/free-port.ts';
import { ALIAS, KEY, SECRET, attackers, startSimulator } from '../helpers/enforcement-harness.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

test('pf table full: 45 of 50 bans not stored make the target degraded, health exit 1 and /readyz 503 naming the limit; raising it recovers', {
  timeout: 180_000,
}, async (t) => {
  const sim = await startSimulator(t, { tableEntriesLimit: 5 });
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 1\nfindtime = 10m\nbantime = 1h\n`);
  const port = await freePort();
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    EDGEBAN_METRICS_LISTEN: `127.0.0.1:${port}`,
  };
  const daemon = await startCliDaemon(t, env);
  await until('/readyz 200 after the first pass', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);

  const banned = attackers(50, 10);
  await appendFile(mailLog, banned.map((a) => dovecotFailure(a)).join(''));
  await until('/readyz 503 once a pass found the adds not stored', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 503);
  assert.equal(sim.tableEntries(ALIAS).length, 5);
  const readyz = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { targets: Array<{ state: string; reason: string }> };
  assert.equal(readyz.targets[0]?.state, 'degraded');
  assert.match(readyz.targets[0]?.reason ?? '', /not-stored/);

  let health = await runCli(['health'], { env });
  assert.equal(health.code, 1, health.stdout + health.stderr);
  // The first failing pass may have run while the bans were still arriving; a later one counts all 50.
  await until('a pass that saw all 50 bans', async () => /holds 5 of the ledger's 50/.test((health = await runCli(['health'], { env })).stdout));
  assert.equal(health.code, 1);
  assert.match(health.stdout, /degraded.*adds .*not stored.*table-entries limit is reached \(5 of 5/);
  const status = await runCli(['status'], { env });
  assert.equal(status.code, 1, 'status exits 1 with a degraded target');
  assert.match(status.stdout, /degraded/);
  const errors = daemon.stderr.filter((line) => line.includes('not stored'));
  assert.equal(errors.length, 1, 'one clear log line, not one per pass');

  sim.setTableEntriesLimit(1_000); // the operator raises Firewall Maximum Table Entries
  await until('all 50 in the alias', () => sim.tableEntries(ALIAS).length === 50);
  await until('/readyz 200 again', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
  const healthy = await runCli(['health'], { env });
  assert.equal(healthy.code, 0, healthy.stdout);
  assert.deepEqual(new Set(sim.tableEntries(ALIAS)), new Set(banned));

  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
});
