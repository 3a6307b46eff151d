// A real Apache httpd (Debian's apache2, event MPM, mod_cgid) with basic auth inside, a real
// brute force and real probes for missing CGI scripts from the attacker namespace with curl,
// edgeban (uid 65534) reading Apache's real error log, the bans enforced by the edge's nftables set.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { until } from '../helpers/until.ts';
import { ALIAS, httpStatus, logFile, saveSample, startEdge, startEdgebanAsNobody, tcpProbe } from './edge-harness.ts';
import { requirePackages, serveInNs, tryInNs } from './netns.ts';

const MAXRETRY = 3;
const MODULES = '/usr/lib/apache2/modules';

test('Apache basic auth and CGI probes: a real brute force is dropped at the edge', async (t) => {
  const started = Date.now();
  requirePackages([
    ['apache2', 'apache2'],
    ['htpasswd', 'apache2-utils'],
  ]);
  const edge = await startEdge(t);
  const { net, sim, dir } = edge;
  const errorLog = await logFile(dir, 'apache-error.log');
  const accessLog = await logFile(dir, 'apache-access.log');
  const root = path.join(dir, 'apache');
  for (const sub of ['www', 'cgi-bin', 'run']) await mkdir(path.join(root, sub), { recursive: true, mode: 0o755 });
  await writeFile(path.join(root, 'www/index.html'), 'members only\n', { mode: 0o644 });
  // bcrypt, as `htpasswd -B` writes it (Apache on Linux takes no plain-text passwords).
  await writeFile(path.join(root, 'htpasswd'), execFileSync('htpasswd', ['-nbB', 'alice', 'correct-horse'], { encoding: 'utf8' }), { mode: 0o644 });
  await writeFile(
    path.join(root, 'httpd.conf'),
    `
ServerRoot ${root}
DefaultRuntimeDir ${root}/run
PidFile ${root}/run/httpd.pid
ServerName e2e.example
Listen 80
User nobody
Group nogroup
LoadModule mpm_event_module ${MODULES}/mod_mpm_event.so
LoadModule authn_core_module ${MODULES}/mod_authn_core.so
LoadModule authn_file_module ${MODULES}/mod_authn_file.so
LoadModule authz_core_module ${MODULES}/mod_authz_core.so
LoadModule authz_user_module ${MODULES}/mod_authz_user.so
LoadModule auth_basic_module ${MODULES}/mod_auth_basic.so
LoadModule alias_module ${MODULES}/mod_alias.so
LoadModule dir_module ${MODULES}/mod_dir.so
LoadModule cgid_module ${MODULES}/mod_cgid.so
ErrorLog ${errorLog}
LogLevel warn
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined
CustomLog ${accessLog} combined
ScriptSock ${root}/run/cgisock
DocumentRoot ${root}/www
DirectoryIndex index.html
ScriptAlias /cgi-bin/ ${root}/cgi-bin/
<Directory ${root}/www>
  AuthType Basic
  AuthName members
  AuthUserFile ${root}/htpasswd
  Require valid-user
</Directory>
`,
  );
  const version = (await tryInNs(net.servers.ns, ['apache2', '-v'])).stdout.split('\n')[0]!.trim();
  serveInNs(t, net.servers.ns, ['env', 'TZ=UTC', 'apache2', '-f', path.join(root, 'httpd.conf'), '-DFOREGROUND']);
  await until('Apache answers the client', async () => (await httpStatus(net.client.ns, net.servers.v4, '/', 'alice:correct-horse')) === '200', 20_000, 200);

  await startEdgebanAsNobody(
    t,
    edge,
    `
[apache-auth]
enabled = true
filter = apache[mode=auth]
logpath = ${errorLog}
maxretry = ${MAXRETRY}
findtime = 10m
bantime = 10m

[apache-noscript]
enabled = true
filter = apache[mode=noscript]
logpath = ${errorLog}
maxretry = ${MAXRETRY}
findtime = 10m
bantime = 10m
`,
  );

  await t.test(`the attacker is banned after ${MAXRETRY} real failed logins (wrong passwords, an unknown user)`, async () => {
    for (const user of ['alice:guess0', 'alice:guess1', 'mallory:guess2']) {
      assert.equal(await httpStatus(net.attacker.ns, net.servers.v4, '/', user), '401');
    }
    await until('the attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v4), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4], 'only the attacker, not the edge gateway');
    assert.deepEqual(sim.tableEntries(ALIAS), [net.attacker.v4]);
    const lines = (await readFile(errorLog, 'utf8')).split('\n').filter((l) => l.includes('[auth_basic:error]'));
    assert.equal(lines.length, MAXRETRY);
    for (const line of lines) t.diagnostic(`${version}: ${line}`);
  });

  await t.test("the attacker's next TCP connection gets no answer; the client still logs in", async () => {
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v4, 80), 'silent');
    assert.equal(await httpStatus(net.client.ns, net.servers.v4, '/', 'alice:correct-horse'), '200');
  });

  await t.test(`the IPv6 attacker probing ${MAXRETRY} missing CGI scripts is banned by its real address and dropped`, async () => {
    for (const script of ['php5', 'test.cgi', 'admin.pl']) {
      assert.equal(await httpStatus(net.attacker.ns, net.servers.v6, `/cgi-bin/${script}`), '404');
    }
    await until('the IPv6 attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v6), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4, net.attacker.v6]);
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v6, 80), 'silent');
    assert.equal(await httpStatus(net.client.ns, net.servers.v6, '/', 'alice:correct-horse'), '200');
    const text = await readFile(errorLog, 'utf8');
    for (const line of text.split('\n').filter((l) => l.includes('script not found'))) t.diagnostic(`${version}: ${line}`);
    const release = /Apache\/([\d.]+)/.exec(version)?.[1] ?? 'unknown';
    await saveSample(`apache-${release}-error`, text);
    await saveSample(`apache-${release}-access`, await readFile(accessLog, 'utf8'));
  });

  await t.test('no flush ever reached the edge', () => {
    assert.deepEqual(
      sim.calls().filter((c) => c.path.includes('/flush/')),
      [],
    );
  });
  t.diagnostic(`duration ${Date.now() - started} ms`);
});
