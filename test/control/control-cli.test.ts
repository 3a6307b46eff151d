import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ControlServer } from '../../src/control/control-server.ts';
import { createLedgerHandlers } from '../../src/control/ledger-handlers.ts';
import { DEFAULT_INCREMENT } from '../../src/jails/ban-time.ts';
import { NO_NETWORK_FACTS } from '../../src/jails/network-facts.ts';
import type { JailSettings } from '../../src/jails/settings.ts';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { systemClock } from '../../src/util/clock.ts';
import { ALIAS, startHarness } from '../helpers/enforcement-harness.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const DOVECOT: JailSettings = {
  name: 'dovecot',
  maxretry: 5,
  findtimeSec: 600,
  bantimeSec: 3600,
  increment: DEFAULT_INCREMENT,
  ignoreip: [],
  ignoreself: true,
  ipv6prefix: 128,
  banprivate: false,
  maxtracked: 1000,
  targets: [{ id: ALIAS, alias: ALIAS, firewall: null, source: { file: 'jail.local', line: 1, key: 'action' } }],
};

async function startControl(t: import('node:test').TestContext, tcp?: { host: string; port: number; token: string }) {
  const h = await startHarness(t);
  await h.reconciler.start();
  const socketPath = path.join(h.dataDir, 'edgeban.sock');
  const server = await ControlServer.start({
    handlers: createLedgerHandlers({
      ledger: h.ledger,
      targets: () => [h.reconciler.status()],
      manualBantimeSec: 86_400,
      jails: { jail: (name) => (name === 'dovecot' ? DOVECOT : null), manualTarget: () => ALIAS, facts: () => NO_NETWORK_FACTS },
    }),
    logger: silentLogger(),
    socketPath,
    ...(tcp ? { tcp } : {}),
  });
  t.after(() => server.stop());
  const env = { EDGEBAN_DATA_DIR: h.dataDir, EDGEBAN_CONTROL_SOCKET: socketPath };
  return { h, socketPath, env };
}

test('ban, banned, set banip, unban and status from the CLI against the control socket', async (t) => {
  const { h, socketPath, env } = await startControl(t);
  assert.equal((await stat(socketPath)).mode & 0o777, 0o600, 'control socket not reachable by other users');

  const banned = await runCli(['ban', '192.0.2.44', '--bantime', '1h'], { env });
  assert.equal(banned.code, 0, banned.stderr);
  assert.match(banned.stdout, /banned 192\.0\.2\.44 in fail2ban_blocklist \(jail manual, until /);
  const claim = h.ledger.claimsOf(ALIAS, '192.0.2.44')[0];
  assert.equal(claim?.origin, 'manual');
  assert.equal((claim.expiresAt ?? 0) - claim.bannedAt, 3_600_000);

  const set = await runCli(['set', 'dovecot', 'banip', '2001:DB8::44'], { env });
  assert.equal(set.code, 0, set.stderr);
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.44', '2001:db8::44']);

  const list = await runCli(['banned', '--json'], { env });
  const entries = (JSON.parse(list.stdout) as { banned: Array<{ address: string; jail: string }> }).banned;
  assert.deepEqual(
    entries.map((e) => [e.address, e.jail]),
    [
      ['192.0.2.44', 'manual'],
      ['2001:db8::44', 'dovecot'],
    ],
  );

  const unban = await runCli(['set', 'dovecot', 'unbanip', '2001:db8::44'], { env });
  assert.equal(unban.code, 0, unban.stderr);
  const unbanAll = await runCli(['unban', '--all'], { env });
  assert.match(unbanAll.stdout, /1 ban ended/);
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), []);

  const status = await runCli(['status', '--json'], { env });
  assert.equal(status.code, 0, status.stderr);
  const parsed = JSON.parse(status.stdout) as { activeBans: number; targets: Array<{ state: string; inAlias: number }> };
  assert.equal(parsed.activeBans, 0);
  assert.deepEqual(
    parsed.targets.map((x) => [x.state, x.inAlias]),
    [['in-sync', 0]],
  );
});

test('bad requests name the field and change nothing', async (t) => {
  const { h, env } = await startControl(t);
  const bad = await runCli(['ban', 'mail.example.org'], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /invalid address "mail\.example\.org"/);
  const badJail = await runCli(['ban', '192.0.2.1', '--jail', 'no such jail'], { env });
  assert.equal(badJail.code, 2);
  assert.match(badJail.stderr, /jail: a jail name/);
  const badBantime = await runCli(['ban', '192.0.2.1', '--bantime', 'soon'], { env });
  assert.equal(badBantime.code, 2);
  assert.match(badBantime.stderr, /--bantime: "soon" is not a duration/);
  assert.equal(h.ledger.activeClaims().length, 0);
});

test('with no daemon running, ban and unban act on the ledger and the daemon applies them later', async (t) => {
  const dataDir = await tempDir(t);
  // A ban without a jail goes to OPNSENSE_ALIAS on the environment's firewall; nothing is called while edgeban is stopped.
  const env = {
    EDGEBAN_DATA_DIR: dataDir,
    OPNSENSE_URL: 'https://192.0.2.1',
    OPNSENSE_KEY: 'offlineKey0123456789',
    OPNSENSE_SECRET: 'offlineSecret0123456789',
  };
  const result = await runCli(['ban', '203.0.113.70', '--bantime=-1'], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /edgeban is not running: recorded in the ledger/);
  const status = await runCli(['status'], { env });
  assert.equal(status.code, 1);
  assert.match(status.stderr, /edgeban is not running/);
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
  assert.equal(ledger.claimsOf(ALIAS, '203.0.113.70')[0]?.expiresAt, null, 'permanent');
  await ledger.close();
});

test('the loopback TCP listener requires the bearer token', async (t) => {
  const token = 'a-long-control-token-0123456789';
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const { env } = await startControl(t, { host: '127.0.0.1', port, token });
  const tcpEnv = { ...env, EDGEBAN_CONTROL_LISTEN: `127.0.0.1:${port}` };
  const wrong = await runCli(['banned', '--tcp'], { env: { ...tcpEnv, EDGEBAN_CONTROL_TOKEN: 'wrong-token-wrong-token-0000' } });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /missing or wrong bearer token/);
  const right = await runCli(['ban', '198.51.100.80', '--tcp'], { env: { ...tcpEnv, EDGEBAN_CONTROL_TOKEN: token } });
  assert.equal(right.code, 0, right.stderr);
  const exposed = await runCli(['banned'], { env: { ...env, EDGEBAN_CONTROL_LISTEN: '0.0.0.0:9191', EDGEBAN_CONTROL_TOKEN: token } });
  assert.equal(exposed.code, 2);
  assert.match(exposed.stderr, /EDGEBAN_CONTROL_LISTEN: expected a loopback HOST:PORT/);
});
