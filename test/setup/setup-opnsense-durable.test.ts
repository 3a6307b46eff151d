import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { freePort } from '../helpers/free-port.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const DAEMON_KEY = 'durableDaemonKey0123456789';
const DAEMON_SECRET = 'durableDaemonSecret0123456789+/=';
const ADMIN_KEY = 'durableAdminKey0123456789';
const ADMIN_SECRET = 'durableAdminSecret0123456789+/=';
const ALIAS = 'fail2ban_blocklist';
const TOKEN = 'durable-feed-token-0123456789';

interface SimState {
  aliases: Array<{ name: string; type: string }>;
  tables: Record<string, string[]>;
  configRevisions: number;
}

test('setup-opnsense --durable: a URL Table alias fed by the feed; alias_util adds land in it at once; a refresh replaces it with the feed; after a reboot with edgeban stopped every ban is back', {
  timeout: 180_000,
}, async (t) => {
  const sim = await startCliSimulator(t, [
    '--key',
    DAEMON_KEY,
    '--secret',
    DAEMON_SECRET,
    '--admin-key',
    ADMIN_KEY,
    '--admin-secret',
    ADMIN_SECRET,
    '--auth-fail-delay',
    '0',
    '--no-alias',
  ]);
  const state = async () => (await sim.admin('state')) as SimState;
  const table = async () => [...((await state()).tables[ALIAS] ?? [])].sort();
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\n`);
  const tokenFile = path.join(root, 'feed-token');
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  const port = await freePort();
  const feedUrl = `http://127.0.0.1:${port}/blocklist/${ALIAS}.txt`;
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: DAEMON_KEY,
    OPNSENSE_SECRET: DAEMON_SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    EDGEBAN_METRICS_LISTEN: `127.0.0.1:${port}`,
    EDGEBAN_FEED_TOKEN_FILE: tokenFile,
  };
  const daemon = await startCliDaemon(t, env);
  const ban = async (address: string) => {
    const result = await runCli(['ban', address, '--bantime', '1h'], { env });
    assert.equal(result.code, 0, result.stdout + result.stderr);
  };
  for (const address of ['192.0.2.11', '198.51.100.12', '2001:db8::13']) await ban(address);

  const setupEnv = { ...env, OPNSENSE_SETUP_KEY: ADMIN_KEY, OPNSENSE_SETUP_SECRET: ADMIN_SECRET };
  const setup = (args: string[]) => runCli(['setup-opnsense', '--durable', '--feed-url', feedUrl, ...args], { env: setupEnv, cwd: root });
  const wrongToken = await runCli(['setup-opnsense', '--durable', '--feed-url', feedUrl], {
    env: { ...setupEnv, EDGEBAN_FEED_TOKEN_FILE: '', EDGEBAN_FEED_TOKEN: 'not-the-daemons-token-000' },
    cwd: root,
  });
  assert.equal(wrongToken.code, 1, wrongToken.stdout + wrongToken.stderr);
  assert.match(wrongToken.stdout, /feed: FAILED: .*refused the token \(401\)/);
  assert.deepEqual((await state()).aliases, [], 'a feed that refuses the token changes nothing');

  const first = await setup([]);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /feed: .* answers with 3 entries/);
  assert.match(
    first.stdout,
    /alias: create fail2ban_blocklist as URL Table \(IPs\) from http:\/\/127\.0\.0\.1:\d+\/blocklist\/fail2ban_blocklist\.txt, refreshed every 1 h, bearer auth/,
  );
  assert.ok(!first.stdout.includes(TOKEN) && !first.stderr.includes(TOKEN), 'the feed token is printed');
  assert.deepEqual(
    (await state()).aliases.map((a) => [a.name, a.type]),
    [[ALIAS, 'urltable']],
  );
  assert.deepEqual(await table(), ['192.0.2.11', '198.51.100.12', '2001:db8::13'], 'reconfigure fetched the feed');
  const again = await setup([]);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /nothing to change: the alias \(URL table from the feed\)/);

  // Immediacy: a new ban reaches the URL table through alias_util, before any refresh.
  await ban('203.0.113.14');
  await until('the new ban added by alias_util', async () => (await table()).includes('203.0.113.14'));
  // An unban leaves at once too; an entry someone added by hand is not in the feed.
  assert.equal((await runCli(['unban', '198.51.100.12'], { env })).code, 0);
  await until('the unban deleted by alias_util', async () => !(await table()).includes('198.51.100.12'));
  await sim.admin('seed', { table: ALIAS, entries: ['192.0.2.99'] });

  // The refresh (its TTL passed) replaces the table wholesale with the feed: the hand-added entry goes.
  await sim.admin('refresh-aliases', { expire: true });
  assert.deepEqual(await table(), ['192.0.2.11', '2001:db8::13', '203.0.113.14']);

  // edgeban stops; the firewall reboots: every ban is back from OPNsense's cache, without edgeban.
  assert.equal(await daemon.stop(), 0);
  await sim.admin('reboot', {});
  assert.deepEqual(await table(), ['192.0.2.11', '2001:db8::13', '203.0.113.14'], 'bans back after the reboot');
  // A refresh while the feed is down keeps the last list (update_tables keeps its cache on a fetch error).
  await sim.admin('refresh-aliases', { expire: true });
  assert.deepEqual(await table(), ['192.0.2.11', '2001:db8::13', '203.0.113.14'], 'bans kept when the feed is unreachable');
});

/** A feed stand-in that answers like edgeban's: the list with the right bearer token, 401 without. */
async function staticFeed(t: import('node:test').TestContext, lines: string[]): Promise<string> {
  const server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.map((l) => `${l}\n`).join(''));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/blocklist/${ALIAS}.txt`;
}

test('setup-opnsense --durable converts an existing External alias (its entries replaced by the feed), changes only what differs on a second run, and refuses OPNsense before 25.7', {
  timeout: 120_000,
}, async (t) => {
  const sim = await startCliSimulator(t, [
    '--key',
    DAEMON_KEY,
    '--secret',
    DAEMON_SECRET,
    '--admin-key',
    ADMIN_KEY,
    '--admin-secret',
    ADMIN_SECRET,
    '--auth-fail-delay',
    '0',
  ]);
  const feedUrl = await staticFeed(t, ['192.0.2.21', '2001:db8::22']);
  await sim.admin('seed', { table: ALIAS, entries: ['198.51.100.23'] });
  const root = await tempDir(t, 'edgeban-durable-');
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: DAEMON_KEY,
    OPNSENSE_SECRET: DAEMON_SECRET,
    OPNSENSE_SETUP_KEY: ADMIN_KEY,
    OPNSENSE_SETUP_SECRET: ADMIN_SECRET,
    EDGEBAN_DATA_DIR: root,
    EDGEBAN_FEED_TOKEN: TOKEN,
  };
  const setup = (args: string[]) => runCli(['setup-opnsense', '--durable', '--feed-url', feedUrl, ...args], { env, cwd: root });
  const state = async () => (await sim.admin('state')) as SimState;

  const converted = await setup([]);
  assert.equal(converted.code, 0, converted.stdout + converted.stderr);
  assert.match(converted.stdout, /alias: fail2ban_blocklist \(external\): set type External → URL Table \(IPs\), url, refresh, auth/);
  assert.deepEqual(
    (await state()).aliases.filter((a) => a.name === ALIAS).map((a) => a.type),
    ['urltable'],
  );
  assert.deepEqual([...((await state()).tables[ALIAS] ?? [])].sort(), ['192.0.2.21', '2001:db8::22']);

  const slower = await setup(['--refresh-hours', '6']);
  assert.equal(slower.code, 0, slower.stdout + slower.stderr);
  assert.match(slower.stdout, /alias: fail2ban_blocklist \(urltable\): set refresh to the URL table/);
  const same = await setup(['--refresh-hours', '6']);
  assert.match(same.stdout, /nothing to change/);

  await sim.admin('firmware', { version: '25.1.4' });
  const old = await setup(['--dry-run']);
  assert.equal(old.code, 1);
  assert.match(old.stdout, /OPNsense 25\.1\.4 cannot authenticate to a URL table \(that came with 25\.7\)/);
});
