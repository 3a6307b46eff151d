import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { startReceiver } from './ntfy-receiver.ts';

const KEY = 'notifyKey0123456789abcdef';
const SECRET = 'notifySecret0123456789abcdef+/=';
const TOKEN = 'tk_notifyToken0123456789abcdefgh';

/** An ISO-style stamp without zone, like a container runtime's log driver writes. */
const isoStampNow = (): string => new Date().toISOString().replace(/\.\d+Z$/, '');

test('edgeban run with `action = %(action_)s ntfy[…]`: a ban reaches the alias and is pushed to ntfy with topic, priority and token; the token is never logged', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const receiver = await startReceiver(t, { token: TOKEN });
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[DEFAULT]',
      'action = %(action_)s',
      `         ntfy[ntfyurl="${receiver.url}", ntfytopic="bans", ntfytoken="${TOKEN}", ntfypriority=max]`,
      '',
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      'maxretry = 3',
      'findtime = 10m',
      'bantime = 1h',
      '',
    ].join('\n'),
  );
  const daemon = await startCliDaemon(t, {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_LOG_LEVEL: 'debug',
  });

  for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure('203.0.113.45', 'alice', isoStampNow()));
  await receiver.until(
    'the ban pushed to ntfy',
    (requests) => requests.some((r) => r.path === '/bans' && r.status === 200 && r.body.includes('203.0.113.45')),
    30_000,
  );
  const state = (await sim.admin('state')) as { tables: Record<string, string[]> };
  assert.ok(state.tables.fail2ban_blocklist?.includes('203.0.113.45'), 'the ban is in the alias');

  const push = receiver.published('bans').find((r) => r.body.includes('203.0.113.45'));
  assert.ok(push);
  assert.equal(push.headers.authorization, `Bearer ${TOKEN}`);
  assert.equal(push.headers.priority ?? push.headers['x-priority'], '5');
  assert.match(push.body, /dovecot/);

  assert.equal(await daemon.stop(), 0);
  const output = [...daemon.stdout, ...daemon.stderr].join('\n');
  assert.ok(!output.includes(TOKEN), 'the ntfy token appears in the daemon output');
  assert.ok(!output.includes(SECRET), 'the API secret appears in the daemon output');
});
