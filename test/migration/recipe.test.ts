import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { until } from '../helpers/until.ts';
import { startReceiver } from '../notifications/ntfy-receiver.ts';
import { aliasContent, KEY, mountFixture, SECRET, statusJson } from './harness.ts';

const NTFY_TOKEN = 'tk_migrationtoken0123456789abcdef';

test("the recipe's action.d/opnsense.conf and ntfy.conf curl scripts run as edgeban's native actions: the attacker is in the alias, the push arrives, status and doctor say what was mapped", async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const ntfy = await startReceiver(t, { token: NTFY_TOKEN });
  const mounted = await mountFixture(t, 'recipe', { FIREWALL: sim.url, NTFY: ntfy.url, NTFYTOKEN: NTFY_TOKEN });
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: mounted.dataDir,
    EDGEBAN_CONFIG_DIR: mounted.configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    EDGEBAN_NOTIFY_INTERVAL: '1',
  };
  const daemon = await startCliDaemon(t, env);
  const log = daemon.stderr.join('\n');
  assert.match(log, /action\.d\/opnsense\.conf: run as edgeban's native opnsense action .*its shell commands are not run/);
  assert.match(
    log,
    /action\.d\/ntfy\.conf: run as edgeban's native ntfy action \(parameters ntfy_url → ntfyurl, ntfy_topic → ntfytopic, ntfy_token → ntfytoken, ntfy_priority → ntfypriority\)/,
  );
  assert.ok(!log.includes(SECRET) && !log.includes(NTFY_TOKEN), 'a secret in the log');

  for (let i = 0; i < 3; i++) await appendFile(mounted.mailLog, dovecotFailure('203.0.113.41'));
  await until('203.0.113.41 in the alias', async () => (await aliasContent(sim)).includes('203.0.113.41'));
  await ntfy.until("the ban pushed to the topic of the user's ntfy.conf", (requests) =>
    requests.some((r) => r.path === '/fail2ban' && r.body.includes('203.0.113.41')),
  );
  assert.equal(ntfy.requests.find((r) => r.path === '/fail2ban')?.headers.authorization, `Bearer ${NTFY_TOKEN}`);

  const status = await statusJson(env);
  const dovecot = status.jails.find((j) => j.jail === 'dovecot');
  assert.equal(dovecot?.running, true);
  assert.equal(dovecot?.bans, 1);
  const health = await runCli(['health'], { env });
  assert.equal(health.code, 0, health.stdout);

  const doctor = await runCli(['doctor'], { env });
  assert.match(doctor.stdout, /^PASS {2}config\.action .*action\.d\/opnsense\.conf: run as edgeban's native opnsense action/m);
  assert.match(doctor.stdout, /^PASS {2}config\.action .*action\.d\/ntfy\.conf: run as edgeban's native ntfy action/m);
  assert.ok(!doctor.stdout.includes(SECRET) && !doctor.stdout.includes(NTFY_TOKEN));
  assert.equal(await daemon.stop(), 0);
});
