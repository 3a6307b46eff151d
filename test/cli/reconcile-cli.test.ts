import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { systemClock } from '../../src/util/clock.ts';
import { writeFile } from 'node:fs/promises';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const KEY = 'cliTestKey0123456789abcdef';
const SECRET = 'cliTestSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';

interface SimState {
  tables: Record<string, string[]>;
  calls: number;
}

async function seedLedger(dataDir: string, target = ALIAS): Promise<void> {
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
  // Not 192.0.2.1: a test machine's gateway may sit there, and the guard never bans a gateway.
  for (const address of ['192.0.2.41', '198.51.100.2', '2001:db8::3']) {
    await ledger.ban({ target, address, jail: 'dovecot', origin: 'jail', durationMs: 3_600_000 });
  }
  await ledger.ban({ target, address: '203.0.113.4', jail: 'dovecot', origin: 'jail', durationMs: 3_600_000 });
  await ledger.unban({ address: '203.0.113.4' });
  await ledger.close();
}

test('edgeban reconcile --dry-run, then edgeban reconcile, against edgeban simulate', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const dataDir = await tempDir(t);
  await seedLedger(dataDir);
  await sim.admin('seed', { table: ALIAS, entries: ['203.0.113.4', '203.0.113.99'] });
  const env = { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir };

  const dry = await runCli(['reconcile', '--dry-run'], { env, cwd: dataDir });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /2 in the alias, 3 banned in the ledger/);
  assert.match(dry.stdout, /would add: 3\n\s+192\.0\.2\.41\n\s+198\.51\.100\.2\n\s+2001:db8::3/);
  assert.match(dry.stdout, /would remove: 1 \(ban ended\)\n\s+203\.0\.113\.4/);
  assert.match(dry.stdout, /foreign, would keep: 1 .*\n\s+203\.0\.113\.99/);
  let state = (await sim.admin('state')) as SimState;
  assert.deepEqual(state.tables[ALIAS], ['203.0.113.4', '203.0.113.99'], 'a dry run changes nothing');

  const real = await runCli(['reconcile'], { env, cwd: dataDir });
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout, /converged/);
  state = (await sim.admin('state')) as SimState;
  assert.deepEqual(state.tables[ALIAS], ['192.0.2.41', '198.51.100.2', '203.0.113.99', '2001:db8::3']);

  const again = await runCli(['reconcile', '--json'], { env, cwd: dataDir });
  assert.equal(again.code, 0);
  const report = JSON.parse(again.stdout) as { targets: Array<{ ok: boolean; add: string[]; remove: string[] }> };
  assert.deepEqual(
    report.targets.map((r) => [r.ok, r.add.length, r.remove.length]),
    [[true, 0, 0]],
    'a second run has nothing to do',
  );
});

test('reconcile fails clearly on bad credentials and a missing alias, without leaking the secret', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const dataDir = await tempDir(t);
  // Bans recorded for OPNSENSE_ALIAS: a target to reconcile.
  await seedLedger(dataDir, 'not_configured');
  const wrongSecret = `${SECRET}WRONG`;
  const bad = await runCli(['reconcile'], {
    env: {
      OPNSENSE_URL: sim.url,
      OPNSENSE_KEY: KEY,
      OPNSENSE_SECRET: wrongSecret,
      EDGEBAN_DATA_DIR: dataDir,
      EDGEBAN_LOG_LEVEL: 'trace',
      OPNSENSE_ALIAS: 'not_configured',
    },
    cwd: dataDir,
  });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stdout + bad.stderr, /authentication failed: check OPNSENSE_KEY and OPNSENSE_SECRET/);
  const everything = bad.stdout + bad.stderr;
  assert.ok(!everything.includes(wrongSecret) && !everything.includes(SECRET), 'secret printed');
  assert.ok(!everything.includes(Buffer.from(`${KEY}:${wrongSecret}`).toString('base64')), 'Authorization header printed');

  const missing = await runCli(['reconcile'], {
    env: { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir, OPNSENSE_ALIAS: 'not_configured' },
    cwd: dataDir,
  });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stdout + missing.stderr, /no alias named not_configured/);
});

test('bad input stops before any API call: invalid alias name, plain http to a remote host', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const dataDir = await tempDir(t);
  const before = ((await sim.admin('state')) as SimState).calls;
  const badAlias = await runCli(['reconcile'], {
    env: { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir, OPNSENSE_ALIAS: 'block-list' },
    cwd: dataDir,
  });
  assert.equal(badAlias.code, 2);
  assert.match(badAlias.stderr, /OPNSENSE_ALIAS: "block-list" is not a valid OPNsense alias name/);
  const plainHttp = await runCli(['reconcile'], {
    env: { OPNSENSE_URL: 'http://192.0.2.1', OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir },
    cwd: dataDir,
  });
  assert.equal(plainHttp.code, 2);
  assert.match(plainHttp.stderr, /OPNSENSE_URL: http:\/\/192\.0\.2\.1: plain http is accepted only for loopback/);
  assert.equal(((await sim.admin('state')) as SimState).calls, before, 'no API call was made');
});

test('a corrupt ledger is reported with its path and stops the command', async (t) => {
  const dataDir = await tempDir(t);
  await seedLedger(dataDir);
  const { readFile } = await import('node:fs/promises');
  // Damage the ledger can read around is recovered (test/ledger/ledger-damage.test.ts); an unreadable snapshot header is not.
  const snapshot = path.join(dataDir, 'ledger', 'snapshot.jsonl');
  const lines = (await readFile(snapshot, 'utf8')).split('\n');
  lines[0] = `deadbeef${lines[0]!.slice(8)}`;
  await writeFile(snapshot, lines.join('\n'));
  const result = await runCli(['reconcile', '--dry-run'], {
    env: { OPNSENSE_URL: 'http://127.0.0.1:9', OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir },
    cwd: dataDir,
  });
  assert.equal(result.code, 2);
  assert.ok(result.stderr.includes(`ledger file ${snapshot} is corrupt at line 1`), result.stderr);
});

test('several firewalls (an HA pair) each get every ban; an insecure-TLS opt-in warns', async (t) => {
  const first = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const second = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const dataDir = await tempDir(t);
  await seedLedger(dataDir);
  const result = await runCli(['reconcile'], {
    env: { OPNSENSE_URL: `${first.url},${second.url}`, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir, OPNSENSE_TLS_INSECURE: '1' },
    cwd: dataDir,
  });
  assert.equal(result.code, 0, result.stderr);
  for (const sim of [first, second]) {
    assert.deepEqual(((await sim.admin('state')) as SimState).tables[ALIAS], ['192.0.2.41', '198.51.100.2', '2001:db8::3']);
  }
  assert.match(result.stderr, /OPNSENSE_TLS_INSECURE=1: the firewall's certificate is not verified/);
});

test('reconcile beside a running daemon asks the daemon, which runs the pass on its own reconcilers and live ledger', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  const dataDir = path.join(root, 'data');
  await seedLedger(dataDir);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\n`);
  // No timed pass during the test: only reconcile's own pass can restore the alias.
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '3600',
  };
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  const table = async () => ((await sim.admin('state')) as SimState).tables[ALIAS] ?? [];
  await until('the first pass', async () => (await table()).length === 3);
  await sim.admin('reboot', {});
  assert.deepEqual(await table(), [], 'a reboot empties the External alias');

  const result = await runCli(['reconcile'], { env, cwd: dataDir });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /add: 3[\s\S]*converged/);
  assert.deepEqual(await table(), ['192.0.2.41', '198.51.100.2', '2001:db8::3']);
  const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout) as { targets: Array<{ successfulPasses: number }> };
  assert.deepEqual(
    status.targets.map((x) => x.successfulPasses),
    [2],
    'the daemon ran the pass',
  );
  const dry = await runCli(['reconcile', '--dry-run', '--json'], { env, cwd: dataDir });
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual(
    (JSON.parse(dry.stdout) as { targets: Array<{ add: string[]; remove: string[]; dryRun: boolean }> }).targets.map((x) => [
      x.dryRun,
      x.add.length,
      x.remove.length,
    ]),
    [[true, 0, 0]],
  );
  assert.equal(await daemon.stop(), 0);
});

test('reconcile refuses a ledger locked by an edgeban whose control socket does not answer', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const dataDir = await tempDir(t);
  await seedLedger(dataDir);
  const { readFile } = await import('node:fs/promises');
  // This test process stands in for the daemon: a live pid that is not the CLI's.
  const lock = path.join(dataDir, 'ledger', 'lock');
  await writeFile(lock, String(process.pid));
  const result = await runCli(['reconcile'], {
    env: { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir },
    cwd: dataDir,
  });
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(result.stderr, /locked by a running edgeban, but nothing answers on/);
  assert.equal(((await sim.admin('state')) as SimState).calls, 0, 'no API call on a copy of the ledger');
  assert.equal(await readFile(lock, 'utf8'), String(process.pid), 'the daemon keeps its lock');
});

test('reconcile with the daemon stopped ends recorded bans the guard refuses instead of sending them', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const dataDir = await tempDir(t);
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
  for (const address of ['0.0.0.0/0', '127.0.0.1', '203.0.113.21'])
    await ledger.ban({ target: ALIAS, address, jail: 'manual', origin: 'manual', durationMs: 3_600_000 });
  await ledger.close();
  const result = await runCli(['reconcile'], {
    env: { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir },
    cwd: dataDir,
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stderr, /ended the recorded ban of 0\.0\.0\.0\/0 is wider than/);
  assert.deepEqual(((await sim.admin('state')) as SimState).tables[ALIAS], ['203.0.113.21']);
});
