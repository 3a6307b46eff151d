import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { KEY, mountFixture, SECRET, statusJson } from './harness.ts';

/**
 * linuxserver's opnsense action with allow_insecure=true against a firewall with a self-signed
 * certificate: the native action runs with TLS verification off for that firewall only, with the
 * same loud warning as OPNSENSE_TLS_INSECURE. The environment's firewall is another (plain, loopback)
 * simulator, so nothing but allow_insecure can make the TLS one accept edgeban.
 */
test("linuxserver's opnsense with allow_insecure=true bans into a firewall with a self-signed certificate, with a loud warning; status and doctor show the mapping", async (t) => {
  const certDir = await tempDir(t);
  const cert = path.join(certDir, 'cert.pem');
  const key = path.join(certDir, 'key.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  // Never skipped: .ci/run installs openssl.
  assert.equal(made.status, 0, `openssl could not make a certificate (install Debian's openssl): ${made.error?.message ?? made.stderr}`);
  const tls = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0', '--tls-cert', cert, '--tls-key', key]);
  const plain = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  assert.match(tls.url, /^https:\/\//);
  const mounted = await mountFixture(t, 'linuxserver', { FIREWALL: tls.url });
  // The test itself reads the self-signed simulator's state without verifying it.
  const insecure = new Agent({ connect: { rejectUnauthorized: false } });
  t.after(() => insecure.close());
  const tlsAlias = async () => {
    const res = await request(`${tls.url}/__simulator/state`, { dispatcher: insecure });
    return ((await res.body.json()) as { tables: Record<string, string[]> }).tables.fail2ban_blocklist ?? [];
  };
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: plain.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: mounted.dataDir,
    EDGEBAN_CONFIG_DIR: mounted.configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const daemon = await startCliDaemon(t, env);
  const log = daemon.stderr.join('\n');
  assert.match(
    log,
    /action\.d\/opnsense\.conf: run as edgeban's native opnsense action \(its parameter names are the native ones\); its shell commands are not run/,
  );

  for (let i = 0; i < 3; i++) await appendFile(mounted.mailLog, dovecotFailure('192.0.2.140'));
  await until("192.0.2.140 in the self-signed firewall's alias", async () => (await tlsAlias()).includes('192.0.2.140'));
  assert.ok(
    daemon.stderr.some((l) => l.includes('certificate is not verified') && l.includes(tls.url)),
    'no loud warning for the insecure firewall',
  );
  assert.ok(
    !daemon.stderr.some((l) => l.includes('certificate is not verified') && l.includes(plain.url)),
    'TLS verification is off only for the firewall that asked',
  );
  assert.equal((await statusJson(env)).jails.find((j) => j.jail === 'dovecot')?.running, true);
  const doctor = await runCli(['doctor'], { env });
  assert.match(doctor.stdout, /^PASS {2}config\.action .*action\.d\/opnsense\.conf: run as edgeban's native opnsense action/m);
  assert.ok(!doctor.stdout.includes(SECRET));
  assert.equal(await daemon.stop(), 0);
});
