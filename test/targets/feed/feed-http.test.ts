import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../../helpers/cli.ts';
import { freePort } from '../../helpers/free-port.ts';
import { dovecotFailure } from '../../helpers/log-lines.ts';
import { mailSetup } from '../../helpers/mail-setup.ts';
import { until } from '../../helpers/until.ts';

const KEY = 'feedTestKey0123456789abcdef';
const SECRET = 'feedTestSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';
const TOKEN = 'feed-token-0123456789abcdef';

async function daemonWithFeed(t: import('node:test').TestContext, extra: Record<string, string> = {}) {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\n`);
  const tokenFile = path.join(root, 'feed-token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
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
    EDGEBAN_FEED_TOKEN_FILE: tokenFile,
    ...extra,
  };
  const daemon = await startCliDaemon(t, env);
  return { sim, env, mailLog, daemon, base: `http://127.0.0.1:${port}` };
}

const bearer = { authorization: `Bearer ${TOKEN}` };

test('the pull feed over HTTP from the running daemon: auth, a ban appears, family split, ETag and 304, an unban leaves it', {
  timeout: 120_000,
}, async (t) => {
  const { env, mailLog, daemon, base } = await daemonWithFeed(t);
  const feed = `${base}/blocklist/${ALIAS}.txt`;

  // Refused without the token, or with a wrong one (bearer or basic): 401 with a challenge, no target names.
  const none = await fetch(feed);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
  assert.equal((await fetch(feed, { headers: { authorization: `Bearer ${TOKEN}x` } })).status, 401);
  assert.equal((await fetch(feed, { headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` } })).status, 401);
  assert.equal((await fetch(`${base}/blocklist/nothing.txt`)).status, 401, 'an unknown target is not revealed before auth');
  const wrongBasic = `Basic ${Buffer.from(`opnsense:${TOKEN}!`).toString('base64')}`;
  assert.equal((await fetch(feed, { headers: { authorization: wrongBasic } })).status, 401);

  // Nothing banned yet: an empty feed, not an error.
  const empty = await fetch(feed, { headers: bearer });
  assert.equal(empty.status, 200);
  assert.equal(await empty.text(), '');
  assert.equal(empty.headers.get('cache-control'), 'no-cache');

  // A ban from a jail and manual ones, one IPv6 in upper case; 192.0.2.100 sorts after .20 (numeric, not text).
  for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure('203.0.113.50'));
  for (const address of ['2001:DB8::7', '192.0.2.100', '192.0.2.20']) {
    const ban = await runCli(['ban', address, '--bantime', '1h'], { env });
    assert.equal(ban.code, 0, `${ban.stdout}${ban.stderr}`);
  }
  const body = async (url: string) => (await fetch(url, { headers: bearer })).text();
  await until('the jail ban in the feed', async () => (await body(feed)).includes('203.0.113.50'));
  // Deterministic order: IPv4 numerically, then IPv6; pf spelling (lower case, no /128).
  assert.equal(await body(feed), '192.0.2.20\n192.0.2.100\n203.0.113.50\n2001:db8::7\n');
  assert.equal(await body(`${base}/blocklist/${ALIAS}-v4.txt`), '192.0.2.20\n192.0.2.100\n203.0.113.50\n');
  assert.equal(await body(`${feed}?family=4`), '192.0.2.20\n192.0.2.100\n203.0.113.50\n');
  assert.equal(await body(`${base}/blocklist/${ALIAS}-v6.txt`), '2001:db8::7\n');
  assert.equal(await body(`${feed}?family=6`), '2001:db8::7\n');
  assert.equal((await fetch(`${feed}?family=5`, { headers: bearer })).status, 400);

  // Basic auth with the token as password (any user name), as URL tables send it.
  const basic = await fetch(feed, { headers: { authorization: `Basic ${Buffer.from(`opnsense:${TOKEN}`).toString('base64')}` } });
  assert.equal(basic.status, 200);
  const etag = basic.headers.get('etag');
  assert.ok(etag, 'no ETag');
  await basic.text();
  const head = await fetch(feed, { method: 'HEAD', headers: bearer });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('etag'), etag);
  assert.equal(head.headers.get('content-length'), String('192.0.2.20\n192.0.2.100\n203.0.113.50\n2001:db8::7\n'.length));
  assert.equal((await fetch(feed, { method: 'POST', headers: bearer })).status, 405);
  const cached = await fetch(feed, { headers: { ...bearer, 'if-none-match': etag } });
  assert.equal(cached.status, 304);
  assert.equal(await cached.text(), '');
  assert.equal((await fetch(`${base}/blocklist/nothing.txt`, { headers: bearer })).status, 404, 'unknown target');

  // An unban leaves the feed, and the old ETag no longer matches.
  const unban = await runCli(['unban', '203.0.113.50'], { env });
  assert.equal(unban.code, 0, unban.stderr);
  assert.equal(await body(feed), '192.0.2.20\n192.0.2.100\n2001:db8::7\n');
  const changed = await fetch(feed, { headers: { ...bearer, 'if-none-match': etag } });
  assert.equal(changed.status, 200);
  assert.notEqual(changed.headers.get('etag'), etag);
  await changed.text();

  assert.equal(await daemon.stop(), 0);
  assert.ok(
    daemon.stderr.every((line) => !line.includes(TOKEN)),
    'the feed token in the daemon log',
  );
});

test('without a token the feed is off (404); a short token or a token without a listener is a config error', { timeout: 120_000 }, async (t) => {
  const { base } = await daemonWithFeed(t, { EDGEBAN_FEED_TOKEN_FILE: '' });
  assert.equal((await fetch(`${base}/blocklist/${ALIAS}.txt`, { headers: bearer })).status, 404);
  assert.equal((await fetch(`${base}/healthz`)).status, 200, 'the listener itself serves');

  const short = await runCli(['run'], { env: { EDGEBAN_DATA_DIR: '/nonexistent', EDGEBAN_FEED_TOKEN: 'short', EDGEBAN_METRICS_LISTEN: '127.0.0.1:1' } });
  assert.equal(short.code, 2);
  assert.match(short.stderr, /EDGEBAN_FEED_TOKEN: at least 16 characters/);
  assert.ok(!short.stderr.includes('short'), 'the token value is quoted in the error');
  const nowhere = await runCli(['run'], { env: { EDGEBAN_DATA_DIR: '/nonexistent', EDGEBAN_FEED_TOKEN: TOKEN } });
  assert.equal(nowhere.code, 2);
  assert.match(nowhere.stderr, /EDGEBAN_FEED_TOKEN: set, but EDGEBAN_METRICS_LISTEN is not/);
});
