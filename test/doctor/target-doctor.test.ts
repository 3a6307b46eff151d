// `edgeban doctor` on registry backends: each jail's mikrotik[…] / cloudflare[…] list is checked
// through the backend's own check(), against its simulator run as a process.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { runCli, startCliSimulator, type CliResult } from '../helpers/cli.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { linesWith } from './helpers.ts';

const PASSWORD = 'doctor-password-0123';
const LIST = 'edgeban';
const ACCOUNT = '0123456789abcdef0123456789abcdef';
const TOKEN = 'doctor-cloudflare-token-0123456789';

/** A config dir with one dovecot jail banning through `banaction`, and `edgeban doctor` run on it. */
async function doctorWith(t: TestContext, banaction: string, env: Record<string, string> = {}): Promise<CliResult> {
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    ['[dovecot]', 'enabled = true', `logpath = ${mailLog}`, 'maxretry = 3', 'findtime = 10m', 'bantime = 1h', `banaction = ${banaction}`, ''].join('\n'),
  );
  return runCli(['doctor'], { env: { TZ: 'UTC', EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: configDir, ...env }, cwd: root });
}

test('doctor on a MikroTik list with drop rules: the target is reachable, usable, and its facts shown; the password never printed', async (t) => {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--user', 'edgeban', '--password', PASSWORD, '--list', LIST]);
  const result = await doctorWith(t, `mikrotik[url="${sim.url}", user=edgeban, list=${LIST}]`, { MIKROTIK_PASSWORD: PASSWORD });
  assert.deepEqual(linesWith(result.stdout, 'FAIL'), [], result.stdout + result.stderr);
  assert.match(result.stdout, /^PASS {2}target\.reachable\s+mikrotik \S+ edgeban: answers/m);
  assert.match(result.stdout, /^PASS {2}target\.check\s+mikrotik .*the list exists/m);
  assert.match(result.stdout, /^PASS {2}target\.facts\s+mikrotik .*rules_ipv4=\d/m);
  assert.ok(!(result.stdout + result.stderr).includes(PASSWORD), 'the password is never printed');
});

test('doctor on a MikroTik list no rule drops from: FAIL naming the rule to add (exit 2)', async (t) => {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--user', 'edgeban', '--password', PASSWORD, '--no-rules']);
  const result = await doctorWith(t, `mikrotik[url="${sim.url}", user=edgeban, password=${PASSWORD}, list=${LIST}]`);
  assert.equal(result.code, 2, result.stdout + result.stderr);
  const [failed] = linesWith(result.stdout, 'FAIL');
  assert.match(
    failed ?? '',
    /target\.check\s+mikrotik .*no enabled drop rule in \/ip\/firewall\/filter or raw matches src-address-list=edgeban — fix: add one/,
  );
  assert.ok(
    linesWith(result.stdout, 'WARN').some((l) => /\/ipv6\/firewall/.test(l)),
    'the missing IPv6 rule warns',
  );
});

test('doctor on a MikroTik router with a wrong password: FAIL naming the credentials; an unreachable router: FAIL target.reachable', async (t) => {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--user', 'edgeban', '--password', PASSWORD, '--list', LIST]);
  const wrong = await doctorWith(t, `mikrotik[url="${sim.url}", user=edgeban, password=not-the-password-0123, list=${LIST}]`);
  assert.equal(wrong.code, 2, wrong.stdout + wrong.stderr);
  assert.match(linesWith(wrong.stdout, 'FAIL').join('\n'), /target\.check\s+mikrotik .*(401|password|user)/i);
  const down = await doctorWith(t, `mikrotik[url="http://127.0.0.1:1", user=edgeban, password=${PASSWORD}, list=${LIST}, api_timeout=5]`);
  assert.equal(down.code, 2, down.stdout + down.stderr);
  assert.match(linesWith(down.stdout, 'FAIL').join('\n'), /target\.reachable\s+mikrotik .*cannot reach it/);
});

test('doctor on a Cloudflare list: usable, warns that no WAF rule uses it; a token Cloudflare refuses: FAIL naming the token to fix', async (t) => {
  const sim = await startCliSimulator(t, ['--kind', 'cloudflare', '--account', ACCOUNT, '--list', 'edgeban_blocklist', '--token', TOKEN]);
  const action = (token: string) => `cloudflare[account=${ACCOUNT}, list=edgeban_blocklist, token=${token}, api="${sim.url}"]`;
  const ok = await doctorWith(t, action(TOKEN));
  assert.deepEqual(linesWith(ok.stdout, 'FAIL'), [], ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^PASS {2}target\.check\s+cloudflare /m);
  assert.match(
    linesWith(ok.stdout, 'WARN').join('\n'),
    /target\.warning\s+cloudflare .*no rule uses Cloudflare list edgeban_blocklist.* — fix: .*setup-cloudflare/,
  );
  assert.equal(ok.code, 1);
  const refused = await doctorWith(t, action('a-token-without-the-permission-0123'));
  assert.equal(refused.code, 2, refused.stdout + refused.stderr);
  assert.match(linesWith(refused.stdout, 'FAIL').join('\n'), /target\.check\s+cloudflare .*CLOUDFLARE_API_TOKEN/);
  assert.ok(!(ok.stdout + refused.stdout).includes(TOKEN), 'the token is never printed');
});
