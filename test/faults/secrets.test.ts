/**
 * Fault suite: secrets never reach a log line. The real daemon runs at log level trace with a
 * distinctive API key, secret and control token (plus a second firewall whose key and secret are
 * written in jail.local), and is driven through every path that logs: start-up, bans and unbans,
 * control commands over the unix socket and over TCP with the token, API errors (401, 403, 500,
 * hanging calls hitting the timeout, refused connections, a TLS handshake failure), a reload with a
 * broken configuration that holds the secret, SIGHUP, `reconcile --json` (also with a wrong
 * secret), `doctor` and shutdown. Then every byte any process printed, and every file in the data
 * dir, is searched for the secrets in the forms they travel in (plain, URL-encoded, the Basic
 * authorization header's base64, the bearer header).
 */
import assert from 'node:assert/strict';
import { appendFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LEAST_PRIVILEGES, OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { runCli, startCliDaemon, type CliResult } from '../helpers/cli.ts';
import { until } from '../helpers/until.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { selfSignedCertificate } from '../helpers/self-signed-certificate.ts';

const KEY = 'SecretsSuiteKey+7Qv/u9WmZr2K';
const SECRET = 'S3cr3t+EdgeBan/Plain=Qx9Lw2Zp7Rv4Tn8';
const TOKEN = 'CtlT0ken-EdgeBan-Zk4Wq8Xr2Mv6Np0';
/** The second firewall's credentials, written only in jail.local. */
const FILE_KEY = 'FileKeyEdgeBan+Jx3Hd8Sf1Gk5';
const FILE_SECRET = 'F1leS3cret/EdgeBan+Yw7Ub4Ci2Oe6';
const WRONG_SECRET = 'Wr0ngS3cret+EdgeBan/Ha5Jb8Kc1Ld3';
const ALIAS = 'fail2ban_blocklist';
const FILE_ALIAS = 'postfix_block';

/** Every form a secret travels in; none may appear in any output or state file. */
function forbiddenForms(): Map<string, string> {
  const forms = new Map<string, string>();
  for (const [name, value] of [
    ['OPNSENSE_SECRET', SECRET],
    ['control token', TOKEN],
    ['jail.local secret', FILE_SECRET],
    ['a wrong secret tried', WRONG_SECRET],
  ] as const) {
    forms.set(value, name);
    forms.set(encodeURIComponent(value), `${name} (URL-encoded)`);
    forms.set(Buffer.from(value).toString('base64'), `${name} (base64)`);
  }
  forms.set(Buffer.from(`${KEY}:${SECRET}`).toString('base64'), 'Basic authorization (OPNSENSE_KEY:OPNSENSE_SECRET)');
  forms.set(Buffer.from(`${FILE_KEY}:${FILE_SECRET}`).toString('base64'), 'Basic authorization (jail.local key:secret)');
  forms.set(Buffer.from(`${KEY}:${WRONG_SECRET}`).toString('base64'), 'Basic authorization (key:wrong secret)');
  forms.set(`Bearer ${TOKEN}`, 'bearer header');
  return forms;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address && typeof address === 'object');
  return address.port;
}

/** An https simulator with a fresh self-signed certificate (openssl). */
async function untrustedTlsSimulator(t: TestContext, dir: string): Promise<string> {
  const { cert, key } = selfSignedCertificate(dir);
  const sim = await OpnsenseSimulator.start({
    keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' }],
    authFailDelayMs: 0,
    seed: 6,
    tls: { cert: await readFile(cert, 'utf8'), key: await readFile(key, 'utf8') },
  });
  t.after(() => sim.stop());
  return sim.url;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

function failure(address: string, user = 'alice'): string {
  return `Nov 21 10:01:01 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<${user}>, method=PLAIN, rip=${address}, lip=10.0.0.2, TLS, session=<s>\n`;
}

test('secrets: no output of any edgeban process, and no state file, holds the API secret, the control token or their encodings', {
  timeout: 240_000,
}, async (t: TestContext) => {
  const sim = await OpnsenseSimulator.start({
    keys: [
      { key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' },
      { key: FILE_KEY, secret: FILE_SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban2' },
    ],
    aliases: [
      { name: ALIAS, type: 'external' },
      { name: FILE_ALIAS, type: 'external' },
    ],
    authFailDelayMs: 0,
    seed: 5,
  });
  t.after(() => sim.stop());
  const root = await tempDir(t, 'edgeban-secrets-');
  const configDir = path.join(root, 'config');
  const dataDir = path.join(root, 'data');
  const mailLog = path.join(root, 'logs', 'mail.log');
  await mkdir(path.dirname(mailLog), { recursive: true });
  await mkdir(configDir, { recursive: true });
  await writeFile(mailLog, '');
  const jailLocal = path.join(configDir, 'jail.local');
  const goodConfig = [
    '[dovecot]',
    'enabled = true',
    `logpath = ${mailLog}`,
    'maxretry = 2',
    'bantime = 1h',
    '',
    '[postfix]',
    'enabled = true',
    `logpath = ${mailLog}`,
    'maxretry = 2',
    'bantime = 1h',
    // The same simulator under another name: a firewall of its own (the environment's is 127.0.0.1), with its own key.
    `banaction = opnsense[firewall="${sim.url.replace('127.0.0.1', 'localhost')}", key="${FILE_KEY}", secret="${FILE_SECRET}", alias="${FILE_ALIAS}"]`,
    '',
  ].join('\n');
  await writeFile(jailLocal, goodConfig);
  const port = await freePort();
  // A second firewall over https with a self-signed certificate edgeban does not trust: every call
  // there fails certificate verification (without openssl: https to the plain-http port, a failed handshake).
  const tlsUrl = await untrustedTlsSimulator(t, root);
  const env: Record<string, string> = {
    TZ: 'UTC',
    OPNSENSE_URL: `${sim.url},${tlsUrl}`,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    OPNSENSE_TIMEOUT: '1',
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '1',
    EDGEBAN_LOG_LEVEL: 'trace',
    EDGEBAN_CONTROL_LISTEN: `127.0.0.1:${port}`,
    EDGEBAN_CONTROL_TOKEN: TOKEN,
  };
  const outputs: Array<{ what: string; text: string }> = [];
  const cli = async (args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> => {
    const result = await runCli(args, { env: { ...env, ...extraEnv }, cwd: root, timeoutMs: 60_000 });
    outputs.push({ what: `edgeban ${args.join(' ')} (stdout)`, text: result.stdout }, { what: `edgeban ${args.join(' ')} (stderr)`, text: result.stderr });
    return result;
  };
  const statuses = () => new Set(sim.calls().map((c) => c.status));

  const daemon = await startCliDaemon(t, env, { cwd: root });
  try {
    // Bans by a jail of each target, over the environment's firewall and the jail.local one.
    for (let i = 0; i < 2; i++) {
      // The secret pasted into a login form's user name ends up in the mail log, and so in what the daemon reads.
      await appendFile(mailLog, failure('198.51.100.31', i === 0 ? SECRET : 'alice'));
      await appendFile(mailLog, `Nov 21 10:00:01 mail postfix/smtpd[2101]: warning: unknown[198.51.100.32]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n`);
    }
    await until(
      'the jail bans in both aliases',
      () => sim.tableEntries(ALIAS).includes('198.51.100.31') && sim.tableEntries(FILE_ALIAS).includes('198.51.100.32'),
    );

    // Control commands, over the unix socket and over TCP with the token.
    assert.equal((await cli(['ban', '203.0.113.31', '--bantime', '1h'])).code, 0);
    assert.equal((await cli(['ban', '203.0.113.32', '--tcp'])).code, 0);
    assert.equal((await cli(['set', 'dovecot', 'banip', '203.0.113.33'])).code, 0);
    await cli(['status', '--json']);
    await cli(['status', 'dovecot', '--tcp']);
    await cli(['banned', '--json', '--tcp']);
    await cli(['status', '--tcp'], { EDGEBAN_CONTROL_TOKEN: `${TOKEN}-wrong` }); // a refused token
    await until('manual bans in the alias', () => sim.tableEntries(ALIAS).includes('203.0.113.32'));
    assert.equal((await cli(['unban', '203.0.113.31'])).code, 0);
    assert.equal((await cli(['set', 'dovecot', 'unbanip', '203.0.113.33', '--tcp'])).code, 0);
    await until('unbans leave the alias', () => !sim.tableEntries(ALIAS).includes('203.0.113.31'));

    // 500s, then hanging calls (OPNSENSE_TIMEOUT 1 s), then refused connections.
    sim.setFaults({ errorRate: 1 });
    await cli(['ban', '203.0.113.34']);
    await until('the daemon meets 500s', () => statuses().has(500));
    await sleep(1500);
    sim.setFaults({ errorRate: 0, hangRate: 1 });
    await cli(['ban', '203.0.113.35']);
    await sleep(3000);
    sim.setFaults({ hangRate: 0 });
    await fetch(`${sim.url}/__simulator/faults`, { method: 'POST', body: JSON.stringify({ refuseForMs: 1500 }) });
    await cli(['ban', '203.0.113.36']);
    await sleep(2500);
    // 403: the key loses its privileges; 401: the firewall's secret changes.
    sim.setKey({ key: KEY, secret: SECRET, privileges: [], user: 'edgeban' });
    await cli(['ban', '203.0.113.37']);
    await until('the daemon meets 403s', () => statuses().has(403));
    await sleep(1500);
    sim.setKey({ key: KEY, secret: `${SECRET}-rotated`, privileges: LEAST_PRIVILEGES, user: 'edgeban' });
    await cli(['ban', '203.0.113.38']);
    await until('the daemon meets 401s', () => statuses().has(401));
    await sleep(1500);
    sim.setKey({ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' });
    await until('recovery', () => ['203.0.113.34', '203.0.113.38'].every((a) => sim.tableEntries(ALIAS).includes(a)), 30_000);

    // One-off commands beside the daemon, one with a wrong secret (401 reported, not echoed).
    await cli(['reconcile', '--json']);
    await cli(['reconcile', '--dry-run']);
    await cli(['reconcile', '--json'], { OPNSENSE_SECRET: WRONG_SECRET, OPNSENSE_URL: sim.url });
    await cli(['doctor']);
    await cli(['doctor', '--json']);

    // A reload with a broken configuration that holds the secret, by command and by SIGHUP, then a good one.
    await writeFile(jailLocal, goodConfig.replace(`alias="${FILE_ALIAS}"]`, `alias="${FILE_ALIAS}"`));
    const refused = await cli(['reload']);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    daemon.child.kill('SIGHUP');
    await sleep(1000);
    await writeFile(jailLocal, goodConfig);
    assert.equal((await cli(['reload', '--tcp'])).code, 0);
  } finally {
    assert.equal(await daemon.stop(), 0, 'the daemon stops cleanly');
  }
  // The start-up failure path too: a configuration error at start, with the secret in the file.
  await writeFile(jailLocal, goodConfig.replace('maxretry = 2\nbantime', 'maxretry = two\nbantime'));
  assert.equal((await cli(['run'])).code, 2);

  outputs.push({ what: 'the daemon (stdout)', text: daemon.stdout.join('\n') }, { what: 'the daemon (stderr)', text: daemon.stderr.join('\n') });
  for (const file of await filesUnder(dataDir)) outputs.push({ what: file, text: (await readFile(file)).toString('latin1') });
  const daemonLog = daemon.stderr.join('\n');
  if (process.env.FAULTS_DUMP) await writeFile(process.env.FAULTS_DUMP, `${daemonLog}\n${outputs.map((o) => `== ${o.what}\n${o.text}`).join('\n')}`);
  // The paths above were taken: the log shows them (else this test proves nothing).
  assert.ok(daemon.stderr.length > 50, 'trace logging produced lines');
  assert.ok(statuses().has(500) && statuses().has(401) && statuses().has(403), 'the API errors happened');
  assert.match(daemonLog, /reload failed/);
  assert.match(daemonLog, /certificate|TLS|ECONNRESET/i, 'the TLS failure was logged');
  assert.ok(
    outputs.some((o) => o.what.startsWith('edgeban doctor') && o.text.length > 0),
    'doctor printed',
  );

  const leaks: string[] = [];
  for (const { what, text } of outputs) {
    for (const [form, name] of forbiddenForms()) if (text.includes(form)) leaks.push(`${name} in ${what}`);
  }
  assert.deepEqual(leaks, []);
});
