import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { systemClock } from '../../src/util/clock.ts';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

const KEY = 'oneTargetKey0123456789abcdef';
const SECRET = 'oneTargetSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';

interface StatusTarget {
  id: string;
  alias: string;
  ledgerTarget: string;
  pending: number;
  successfulPasses: number;
}
interface SimCall {
  path: string;
  requestBody: string;
}

async function targetsOf(env: Record<string, string>): Promise<StatusTarget[]> {
  const status = await runCli(['status', '--json'], { env });
  assert.equal(status.code, 0, status.stdout + status.stderr);
  return (JSON.parse(status.stdout) as { targets: StatusTarget[] }).targets;
}

function deletes(calls: SimCall[], address: string): number {
  return calls.filter((c) => c.path.includes('alias_util/delete') && (JSON.parse(c.requestBody) as { address: string }).address === address).length;
}

test("the same firewall and alias in the environment and a jail are one target: a manual unban, exclusive passes and reconcile keep the jail's ban", async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  // The README's first example beside OPNSENSE_URL: the firewall spelled with a trailing slash, the same key.
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      'maxretry = 3',
      'findtime = 10m',
      'bantime = 1h',
      `banaction = opnsense[firewall="${sim.url}/", key="${KEY}", secret="${SECRET}", alias="${ALIAS}"]`,
      '',
    ].join('\n'),
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '1',
    EDGEBAN_FOREIGN_ENTRIES: 'exclusive',
  };
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });

  const targets = await targetsOf(env);
  assert.deepEqual(
    targets.map((x) => x.alias),
    [ALIAS],
    'one reconciler for one firewall and alias',
  );

  for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure('192.0.2.50'));
  await until("the jail's ban in the alias", async () => (await alias()).includes('192.0.2.50'));
  assert.equal((await runCli(['ban', '192.0.2.50'], { env })).code, 0);
  const unban = await runCli(['unban', '192.0.2.50', '--jail', 'manual'], { env });
  assert.match(unban.stdout, /1 ban ended/);
  // Two more full passes of every target (EDGEBAN_RECONCILE_INTERVAL=1) with nothing pending.
  const passes = new Map((await targetsOf(env)).map((x) => [x.id, x.successfulPasses]));
  await until('two more full passes', async () => (await targetsOf(env)).every((x) => x.pending === 0 && x.successfulPasses >= (passes.get(x.id) ?? 0) + 2));
  assert.equal(deletes((await sim.admin('calls')) as SimCall[], '192.0.2.50'), 0, "the jail's ban was deleted from the alias");
  assert.ok((await alias()).includes('192.0.2.50'));
  assert.equal(await daemon.stop(), 0);

  // With the daemon stopped, reconcile covers the jail's firewall and removes nothing the jail bans.
  const reconcile = await runCli(['reconcile', '--json'], { env });
  assert.equal(reconcile.code, 0, reconcile.stdout + reconcile.stderr);
  const report = JSON.parse(reconcile.stdout) as { targets: Array<{ remove: string[]; foreign: string[]; desired: number }> };
  assert.equal(report.targets.length, 1);
  assert.deepEqual(report.targets[0]!.foreign, [], "the jail's ban seen as foreign");
  assert.equal(deletes((await sim.admin('calls')) as SimCall[], '192.0.2.50'), 0, 'reconcile deleted an active jail ban');
  assert.deepEqual(await alias(), ['192.0.2.50']);
});

test("OPNSENSE_URL is optional when every jail names its firewall; offline ban --jail lands on the jail's firewall; an unused OPNSENSE_ALIAS gets no target", async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0', '--alias', ALIAS, '--alias', 'mail_block']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      'bantime = 1h',
      `banaction = opnsense[firewall="${sim.url}", key="${KEY}", secret="${SECRET}", alias="mail_block"]`,
      '',
    ].join('\n'),
  );
  const base = { EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: configDir, EDGEBAN_RECONCILE_INTERVAL: '2' };
  const tables = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables;

  const offline = await runCli(['ban', '203.0.113.7', '--jail', 'dovecot'], { env: base });
  assert.equal(offline.code, 0, offline.stdout + offline.stderr);
  assert.match(offline.stdout, /banned 203\.0\.113\.7 in opnsense:127\.0\.0\.1:\d+\/mail_block \(jail dovecot/);
  const noDefault = await runCli(['ban', '203.0.113.8'], { env: base });
  assert.equal(noDefault.code, 1);
  assert.match(noDefault.stdout + noDefault.stderr, /OPNSENSE_URL is not set.*--jail/);

  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...base });
  await until("the offline ban on the jail's firewall", async () => ((await tables()).mail_block ?? []).includes('203.0.113.7'));
  assert.deepEqual(
    (await targetsOf(base)).map((x) => x.alias),
    ['mail_block'],
  );
  assert.equal(await daemon.stop(), 0);

  // The environment's firewall is the same one, but no jail and no ban uses OPNSENSE_ALIAS: no target for it ...
  const env = { ...base, OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET };
  const second = await startCliDaemon(t, { TZ: 'UTC', ...env });
  assert.deepEqual(
    (await targetsOf(env)).map((x) => x.alias),
    ['mail_block'],
  );
  // ... until a manual ban does.
  const manual = await runCli(['ban', '203.0.113.9'], { env });
  assert.equal(manual.code, 0, manual.stdout + manual.stderr);
  await until('the manual ban in OPNSENSE_ALIAS', async () => ((await tables())[ALIAS] ?? []).includes('203.0.113.9'));
  assert.deepEqual((await targetsOf(env)).map((x) => x.alias).sort(), [ALIAS, 'mail_block']);
  assert.equal(await second.stop(), 0);
});

test("bans an older edgeban recorded under the jail's own name for the environment's firewall move to the one target and stay in the alias", async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      `banaction = opnsense[firewall="${sim.url}", key="${KEY}", secret="${SECRET}", alias="${ALIAS}"]`,
      '',
    ].join('\n'),
  );
  const dataDir = path.join(root, 'data');
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
  await ledger.ban({ target: `opnsense:${sim.url}/${ALIAS}`, address: '192.0.2.60', jail: 'dovecot', origin: 'jail', durationMs: 3_600_000 });
  await ledger.close();
  await sim.admin('seed', { table: ALIAS, entries: ['192.0.2.60'] });
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '1',
    EDGEBAN_FOREIGN_ENTRIES: 'exclusive',
  };
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  await until('two full passes', async () => (await targetsOf(env)).every((x) => x.successfulPasses >= 2));
  assert.equal(deletes((await sim.admin('calls')) as SimCall[], '192.0.2.60'), 0, 'the moved ban was deleted as foreign');
  const banned = (
    JSON.parse((await runCli(['banned', '--json'], { env })).stdout) as { banned: Array<{ address: string; target: string; jail: string; expiresAt: string }> }
  ).banned;
  assert.deepEqual(
    banned.map((b) => [b.address, b.target, b.jail]),
    [['192.0.2.60', ALIAS, 'dovecot']],
  );
  assert.ok(Date.parse(banned[0]!.expiresAt) - Date.now() <= 3_600_000, 'the ban keeps its expiry');
  assert.equal(await daemon.stop(), 0);
});
