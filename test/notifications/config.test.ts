import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadEnv, type EdgebanEnv } from '../../src/config/env.ts';
import { ConfigError } from '../../src/config/fail2ban/config-error.ts';
import { loadDaemonConfig } from '../../src/daemon/daemon-config.ts';
import { SecretScrubber } from '../../src/logging/secret-scrubber.ts';
import { Notifier } from '../../src/notifications/notifier.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { CapturedLog, idle, openLedger, TARGET } from './helpers.ts';
import { startReceiver } from './ntfy-receiver.ts';

const TOKEN = 'tk_configTestToken0123456789';
const KEY = 'configTestKey0123456789';
const SECRET = 'configTestSecret0123456789';

async function envFor(t: TestContext, jailLocal: string): Promise<{ env: EdgebanEnv; file: string }> {
  const root = await tempDir(t);
  const configDir = path.join(root, 'config');
  await mkdir(configDir);
  const file = path.join(configDir, 'jail.local');
  await writeFile(file, jailLocal);
  const env = loadEnv({
    env: {
      OPNSENSE_URL: 'http://127.0.0.1:9',
      OPNSENSE_KEY: KEY,
      OPNSENSE_SECRET: SECRET,
      EDGEBAN_DATA_DIR: path.join(root, 'data'),
      EDGEBAN_CONFIG_DIR: configDir,
    },
    envFile: path.join(root, 'no.env'),
  });
  return { env, file };
}

async function configError(t: TestContext, jailLocal: string): Promise<{ error: ConfigError; file: string }> {
  const { env, file } = await envFor(t, jailLocal);
  const error = await loadDaemonConfig(env).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
  return { error, file };
}

test('jail.local ntfy[…] and webhook[…] become channels: identical ones shared across jails, each jail its own list', async (t) => {
  const { env, file } = await envFor(
    t,
    [
      '[DEFAULT]',
      'banaction = opnsense',
      '',
      '[dovecot]',
      'enabled = true',
      'action = %(action_)s',
      `         ntfy[ntfyurl="https://ntfy.example.org/", ntfytopic=mail-bans, ntfytoken="${TOKEN}", ntfypriority=high]`,
      '',
      '[postfix]',
      'enabled = true',
      'action = %(action_)s',
      `         ntfy[ntfyurl="https://ntfy.example.org", ntfytopic=mail-bans, ntfytoken="${TOKEN}", ntfypriority=high]`,
      '         webhook[url="https://hooks.example.org/T000/B000/secretpath", token="hook-token-123", header="X-Api-Key"]',
      '',
      '[traefik]',
      'enabled = true',
      '',
    ].join('\n'),
  );
  const config = await loadDaemonConfig(env);
  const { channels, jailChannels } = config.notify;
  assert.equal(channels.length, 2, 'the two identical ntfy entries are one channel');
  const [ntfy, hook] = channels;
  assert.ok(ntfy?.kind === 'ntfy' && hook?.kind === 'webhook');
  assert.deepEqual([ntfy.url, ntfy.topic, ntfy.token, ntfy.priority], ['https://ntfy.example.org', 'mail-bans', TOKEN, 4]);
  // Written twice (lines 7 and 12); the shared channel keeps the first jail's entry as its source.
  assert.ok(ntfy.source.file === file && [7, 12].includes(ntfy.source.line), JSON.stringify(ntfy.source));
  assert.deepEqual([hook.url, hook.token, hook.header], ['https://hooks.example.org/T000/B000/secretpath', 'hook-token-123', 'x-api-key']);
  assert.equal(hook.label, `webhook https://hooks.example.org (${file}:13)`, 'the label shows no path, topic or token');
  assert.ok(!ntfy.label.includes('mail-bans') && !ntfy.label.includes(TOKEN));
  assert.deepEqual(jailChannels, { dovecot: [ntfy.id], postfix: [ntfy.id, hook.id] });
  const byJail = Object.fromEntries(config.jails.map((j) => [j.definition.name, j.channels]));
  assert.equal(byJail.dovecot?.[0], byJail.postfix?.[0], 'one object, so one rate limit');
  assert.deepEqual(byJail.traefik, []);
  for (const secret of [TOKEN, 'hook-token-123']) assert.ok(config.secrets.includes(secret), 'tokens are in the scrub list');
});

test('a missing ntfytopic or url, a bad priority, a token over plain http: ConfigError naming file:line and the parameter', async (t) => {
  const head = '[DEFAULT]\nbanaction = opnsense\n\n[dovecot]\nenabled = true\naction = %(action_)s\n';
  const cases: Array<[string, string, RegExp]> = [
    [`         ntfy[ntfyurl="https://ntfy.example.org", ntfytoken="${TOKEN}"]\n`, 'ntfytopic', /ntfy\[…\] needs ntfytopic=/],
    ['         webhook[token="abc"]\n', 'url', /webhook\[…\] needs url=/],
    ['         ntfy[ntfytopic=bans, ntfypriority=loud]\n', 'ntfypriority', /"loud" is not an ntfy priority/],
    ['         ntfy[ntfytopic="bans/../x"]\n', 'ntfytopic', /1 to 64 letters/],
    [`         ntfy[ntfyurl="http://ntfy.example.org", ntfytopic=bans, ntfytoken="${TOKEN}"]\n`, 'ntfyurl', /a token is sent only over https/],
    ['         webhook[url="ftp://hooks.example.org/x"]\n', 'url', /expected an https:\/\/ URL/],
    ['         webhook[url="https://hooks.example.org/x", token=t0k3n, header="Bad Header"]\n', 'header', /not an HTTP header name/],
  ];
  for (const [entry, key, message] of cases) {
    const { error, file } = await configError(t, `${head}${entry}`);
    assert.equal(error.file, file);
    assert.equal(error.line, 7, entry);
    assert.equal(error.key, key, entry);
    assert.match(error.message, message);
    assert.ok(error.message.startsWith(`${file}:7: ${key}: jail dovecot: `), error.message);
    assert.ok(!error.message.includes(TOKEN), 'no token in the message');
  }
});

test('end to end: jail.local → loadDaemonConfig → channels → Notifier with a real ledger → the ntfy receiver', async (t) => {
  const receiver = await startReceiver(t, { token: TOKEN });
  const { env } = await envFor(
    t,
    [
      '[DEFAULT]',
      'banaction = opnsense',
      '',
      '[dovecot]',
      'enabled = true',
      'action = %(action_)s',
      `         ntfy[ntfyurl="${receiver.url}", ntfytopic=edge-bans, ntfytoken="${TOKEN}", ntfypriority=max]`,
      '',
    ].join('\n'),
  );
  const config = await loadDaemonConfig(env);
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const notifier = Notifier.start({
    plan: config.notify,
    ledger,
    targets: () => [],
    sources: () => [],
    clock,
    logger: log.logger,
    env,
    scrubber: new SecretScrubber(config.secrets),
  });
  t.after(() => notifier.stop());

  await ledger.ban({ target: TARGET, address: '203.0.113.50', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await receiver.until('the publish', (r) => r.length >= 1);
  await idle(notifier);
  const [push] = receiver.published('edge-bans');
  assert.ok(push, 'published to the configured topic');
  assert.equal(push.headers.authorization, `Bearer ${TOKEN}`);
  assert.equal(push.headers.priority, '5');
  assert.equal(push.headers.title, 'Banned 203.0.113.50 (dovecot)');
  assert.ok(!log.lines.join('\n').includes(TOKEN));
});
