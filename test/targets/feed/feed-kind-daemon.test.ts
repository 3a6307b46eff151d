// A jail banning only into a pull feed (`banaction = feed[name=pfsense]`), for pfSense or FortiGate
// users without OPNsense: the daemon as a process, no OPNSENSE_URL, the ban served over HTTP with the token.
import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon } from '../../helpers/cli.ts';
import { freePort } from '../../helpers/free-port.ts';
import { dovecotFailure } from '../../helpers/log-lines.ts';
import { mailSetup } from '../../helpers/mail-setup.ts';
import { until } from '../../helpers/until.ts';

const TOKEN = 'feed-kind-token-0123456789';

test('feed[name=pfsense] alone: refused without EDGEBAN_FEED_TOKEN; with it the daemon starts without OPNSENSE_URL, a ban appears in /blocklist/feed:pfsense.txt and /blocklist/pfsense.txt, status reports the feed in sync', {
  timeout: 120_000,
}, async (t) => {
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    ['[dovecot]', 'enabled = true', `logpath = ${mailLog}`, 'maxretry = 3', 'findtime = 10m', 'bantime = 1h', 'banaction = feed[name=pfsense]', ''].join('\n'),
  );
  const port = await freePort();
  const env = {
    TZ: 'UTC',
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_METRICS_LISTEN: `127.0.0.1:${port}`,
    EDGEBAN_FEED_TOKEN: TOKEN,
  };
  // Without the token the feed would be served to no one: refused at start, naming the fix.
  const { EDGEBAN_FEED_TOKEN: _token, ...tokenless } = env;
  const refused = await runCli(['run'], { env: tokenless });
  assert.equal(refused.code, 2, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /jail\.local:\d+: token: .*EDGEBAN_FEED_TOKEN is not set/);

  const daemon = await startCliDaemon(t, env);
  const base = `http://127.0.0.1:${port}`;
  const body = async (name: string) => {
    const response = await fetch(`${base}/blocklist/${name}.txt`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(response.status, 200, `/blocklist/${name}.txt answered ${response.status}`);
    return response.text();
  };
  assert.equal(await body('feed:pfsense'), '', 'an empty feed before any ban, not an error');
  assert.equal((await fetch(`${base}/blocklist/pfsense.txt`)).status, 401, 'the token is required');

  for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure('192.0.2.70'));
  await until("the jail's ban in the feed", async () => (await body('feed:pfsense')) === '192.0.2.70\n');
  assert.equal(await body('pfsense'), '192.0.2.70\n', 'the feed by its name alone');

  const status = await runCli(['status', '--json'], { env });
  assert.equal(status.code, 0, status.stdout + status.stderr);
  const targets = (JSON.parse(status.stdout) as { targets: Array<{ id: string; kind: string; ledgerTarget: string; state: string }> }).targets;
  assert.deepEqual(
    targets.map((x) => [x.id, x.kind, x.ledgerTarget]),
    [['feed pfsense', 'feed', 'feed:pfsense']],
  );
  await until('the feed target in sync', async () => {
    const now = JSON.parse((await runCli(['status', '--json'], { env })).stdout) as { targets: Array<{ state: string }> };
    return now.targets[0]?.state === 'in-sync';
  });

  const unban = await runCli(['unban', '192.0.2.70'], { env });
  assert.equal(unban.code, 0, unban.stdout + unban.stderr);
  assert.equal(await body('pfsense'), '');
  assert.equal(await daemon.stop(), 0);
});
