// A real Postfix (submission, SASL through Dovecot's auth socket) inside, SMTP AUTH brute force
// from the attacker namespace in upper- and lower-case mechanism names, edgeban (uid 65534)
// reading Postfix's own log file (maillog_file, postlogd), the ban enforced at the edge. Also
// behind HAProxy (submission and SMTPS, PROXY v2) in the proxy namespace.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { until } from '../helpers/until.ts';
import { ALIAS, logFile, mailCertificate, saveSample, startEdge, startEdgebanAsNobody, tcpProbe } from './edge-harness.ts';
import { writeDovecotConf } from './dovecot-conf.ts';
import { startHaproxy } from './haproxy.ts';
import { inNs, requirePackages, serveInNs, tryInNs } from './netns.ts';

const MAXRETRY = 3;
const PROXIED_PORT = 10587;
const PROXIED_TLS_PORT = 10465;

/**
 * One SMTP session (submission on 587, or SMTPS on 465 with `smtps`): EHLO,
 * `AUTH <mechanism> <PLAIN response>`, QUIT. Prints the AUTH reply.
 */
function smtpAuth(ns: string, address: string, mechanism: string, user: string, password: string, smtps = false) {
  const response = Buffer.from(`\0${user}\0${password}`).toString('base64');
  const connect = smtps
    ? `require("tls").connect({ host: ${JSON.stringify(address)}, port: 465, timeout: 20000, rejectUnauthorized: false })`
    : `require("net").connect({ host: ${JSON.stringify(address)}, port: 587, timeout: 20000 })`;
  const script = `
const s = ${connect};
let buf = "", step = 0;
s.on("timeout", () => process.exit(3)); s.on("error", () => process.exit(4));
s.on("data", (d) => {
  buf += d;
  if (step === 0 && /^220 /m.test(buf)) { step = 1; buf = ""; s.write("EHLO attacker.example\\r\\n"); }
  if (step === 1 && /^250 /m.test(buf)) { step = 2; buf = ""; s.write("AUTH ${mechanism} ${response}\\r\\n"); }
  const m = /^(\\d{3}) [^\\r]*/m.exec(buf);
  if (step === 2 && m) { step = 3; console.log(m[0]); s.end("QUIT\\r\\n"); }
});
s.on("close", () => process.exit(step === 3 ? 0 : 5));`;
  return tryInNs(ns, [process.execPath, '-e', script], 30_000);
}

/** Debian's master.cf with the submission service on and nothing chrooted (the queue is a temp dir). */
async function masterCf(address: string): Promise<string> {
  const stock = await readFile('/etc/postfix/master.cf', 'utf8');
  // Plus a smtpd for HAProxy (in the proxy namespace), taking the client's address from PROXY v2.
  // Postfix has no list of proxies it trusts: in a real stack this port is reachable only from
  // the proxy (a container network).
  const proxy = '-o smtpd_upstream_proxy_protocol=haproxy';
  const proxied =
    `${address}:${PROXIED_PORT} inet n - n - - smtpd ${proxy}\n` +
    `${address}:${PROXIED_TLS_PORT} inet n - n - - smtpd ${proxy} -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt`;
  return `${proxied}\n${stock
    .split('\n')
    .map((line) => {
      const l = line.replace(/^#submission inet/, 'submission inet');
      const fields = l.split(/\s+/);
      if (l.startsWith('#') || l.startsWith(' ') || fields.length < 8) return l;
      fields[4] = 'n';
      return fields.join(' ');
    })
    .join('\n')}`;
}

test('Postfix SMTP AUTH (SASL through Dovecot): a real brute force is dropped at the edge', async (t) => {
  const started = Date.now();
  requirePackages([
    ['postfix', 'postfix'],
    ['dovecot', 'dovecot-imapd'],
    ['haproxy', 'haproxy'],
    ['openssl', 'openssl'],
  ]);
  const edge = await startEdge(t);
  const { net, sim, dir } = edge;
  const dovecotLog = await logFile(dir, 'dovecot.log');
  const maillog = await logFile(dir, 'mail.log');
  const dovecotConf = await writeDovecotConf(dir, dovecotLog, {
    extra: `
service auth {
  unix_listener ${dir}/postfix-auth {
    mode = 0666
  }
}`,
  });
  serveInNs(t, net.servers.ns, ['env', 'TZ=UTC', 'dovecot', '-F', '-c', dovecotConf]);
  const conf = path.join(dir, 'postfix');
  await mkdir(conf, { mode: 0o755 });
  await mkdir(path.join(dir, 'postfix-queue'), { mode: 0o755 });
  await mkdir(path.join(dir, 'postfix-data'), { mode: 0o700 });
  await chown(path.join(dir, 'postfix-data'), Number(inNs(net.servers.ns, ['id', '-u', 'postfix']).trim()), 0);
  await writeFile(path.join(conf, 'master.cf'), await masterCf(net.servers.v4));
  const certificate = mailCertificate(dir);
  await writeFile(
    path.join(conf, 'main.cf'),
    `
compatibility_level = 3.6
queue_directory = ${dir}/postfix-queue
data_directory = ${dir}/postfix-data
maillog_file = ${maillog}
maillog_file_prefixes = ${dir}
myhostname = mail.example.org
mydestination =
inet_interfaces = all
inet_protocols = all
smtpd_peername_lookup = no
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = ${dir}/postfix-auth
smtpd_tls_security_level = none
smtpd_tls_cert_file = ${certificate.cert}
smtpd_tls_key_file = ${certificate.key}
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
`,
  );
  const version = inNs(net.servers.ns, ['postconf', '-h', '-c', conf, 'mail_version']).trim();
  serveInNs(t, net.servers.ns, ['env', 'TZ=UTC', 'postfix', '-c', conf, 'start-fg']);
  // A signal to start-fg's wrapper does not reach master, which takes its children with it on SIGTERM.
  const masterPid = path.join(dir, 'postfix-queue/pid/master.pid');
  await until('Postfix master is up', () => existsSync(masterPid), 30_000, 100);
  const pid = Number((await readFile(masterPid, 'utf8')).trim());
  t.after(() => {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  });
  await until(
    'Postfix lets the client authenticate',
    async () => /^235 /.test((await smtpAuth(net.client.ns, net.servers.v4, 'PLAIN', 'alice', 'correct-horse')).stdout),
    30_000,
    300,
  );

  await startHaproxy(t, net, dir, [
    { name: 'submission', port: 587, backendPort: PROXIED_PORT },
    { name: 'smtps', port: 465, backendPort: PROXIED_TLS_PORT },
  ]);
  await until(
    'HAProxy passes the client to Postfix',
    async () => /^235 /.test((await smtpAuth(net.client.ns, net.proxy.v4, 'PLAIN', 'alice', 'correct-horse')).stdout),
    30_000,
    300,
  );
  assert.match((await smtpAuth(net.client.ns, net.proxy.v4, 'PLAIN', 'alice', 'correct-horse', true)).stdout, /^235 /, 'SMTPS through HAProxy');

  await startEdgebanAsNobody(
    t,
    edge,
    `
[postfix]
enabled = true
filter = postfix[mode=auth]
logpath = ${maillog}
maxretry = ${MAXRETRY}
findtime = 10m
bantime = 10m
`,
  );

  await t.test(`the attacker is banned after ${MAXRETRY} failed SMTP AUTH (PLAIN and plain)`, async () => {
    for (let i = 0; i < MAXRETRY; i++) {
      const reply = await smtpAuth(net.attacker.ns, net.servers.v4, i % 2 === 0 ? 'PLAIN' : 'plain', 'alice', `guess${i}`);
      assert.match(reply.stdout, /^535 /, `exit ${reply.code}\n${await readFile(maillog, 'utf8')}`);
    }
    await until('the attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v4), 20_000, 200);
    assert.deepEqual(sim.tableEntries(ALIAS), [net.attacker.v4]);
    const text = await readFile(maillog, 'utf8');
    for (const line of text.split('\n').filter((l) => l.includes('authentication failed'))) t.diagnostic(`postfix ${version}: ${line}`);
  });

  await t.test("the attacker's next TCP connection gets no answer; the client still authenticates", async () => {
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v4, 587), 'silent');
    assert.match((await smtpAuth(net.client.ns, net.servers.v4, 'PLAIN', 'alice', 'correct-horse')).stdout, /^235 /);
  });

  await t.test("behind HAProxy (PROXY v2, its own namespace; submission and SMTPS) the IPv6 attacker's real address is banned, not the proxy's", async () => {
    for (let i = 0; i < MAXRETRY; i++) {
      const reply = await smtpAuth(net.attacker.ns, net.proxy.v6, 'PLAIN', 'alice', `proxied${i}`, i === 1);
      assert.match(reply.stdout, /^535 /, `exit ${reply.code}`);
    }
    await until('the IPv6 attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v6), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4, net.attacker.v6], 'nobody else, not the proxy');
    assert.equal(await tcpProbe(net.attacker.ns, net.proxy.v6, 587), 'silent');
    assert.equal(await tcpProbe(net.attacker.ns, net.proxy.v6, 465), 'silent');
    assert.match((await smtpAuth(net.client.ns, net.proxy.v6, 'PLAIN', 'alice', 'correct-horse', true)).stdout, /^235 /);
    const text = await readFile(maillog, 'utf8');
    const lines = text.split('\n').filter((l) => l.includes(`[${net.attacker.v6}]: SASL`));
    assert.equal(lines.length, MAXRETRY);
    // On the TCP level Postfix saw only the proxy; the client's address came through PROXY v2.
    assert.ok(!text.includes(net.proxy.v4), `the proxy's address is in no log line:\n${text}`);
    for (const line of lines) t.diagnostic(`postfix ${version} behind HAProxy: ${line}`);
    await saveSample(`postfix-${version}`, text);
  });

  await t.test('no flush ever reached the edge', () => {
    assert.deepEqual(
      sim.calls().filter((c) => c.path.includes('/flush/')),
      [],
    );
  });
  t.diagnostic(`duration ${Date.now() - started} ms`);
});
