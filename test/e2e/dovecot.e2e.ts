// A real Dovecot (IMAP, passwd-file user) inside, IMAP LOGIN brute force from the attacker
// namespace (the last client resets the connection right after failing), edgeban (uid 65534)
// reading Dovecot's real log file, the ban enforced by the edge's nftables set. Also behind
// HAProxy (IMAP and IMAPS, PROXY v2 to listeners with haproxy = yes) in the proxy namespace.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { until } from '../helpers/until.ts';
import { ALIAS, RECONCILE_S, logFile, mailCertificate, saveSample, startEdge, startEdgebanAsNobody, tcpProbe } from './edge-harness.ts';
import { startHaproxy } from './haproxy.ts';
import { requirePackages, serveInNs, tryInNs } from './netns.ts';
import { writeDovecotConf } from './dovecot-conf.ts';

const MAXRETRY = 3;
const BANTIME_S = 20;
const PROXIED_PORT = 10143;
const PROXIED_TLS_PORT = 10993;

/**
 * One IMAP session (IMAPS when `tlsPort` is given): LOGIN, then LOGOUT (or a reset right after
 * the answer). Prints the LOGIN reply. Dovecot delays a failed reply more with each failure from
 * the same address (its auth penalty, 2^n s).
 */
function imapLogin(ns: string, address: string, user: string, password: string, reset = false, tlsPort?: number) {
  const connect =
    tlsPort === undefined
      ? `require("net").connect({ host: ${JSON.stringify(address)}, port: 143, timeout: 20000 })`
      : `require("tls").connect({ host: ${JSON.stringify(address)}, port: ${tlsPort}, timeout: 20000, rejectUnauthorized: false })`;
  const script = `
const s = ${connect};
let buf = "", step = 0;
s.on("timeout", () => process.exit(3)); s.on("error", () => process.exit(4));
s.on("data", (d) => {
  buf += d;
  if (step === 0 && buf.includes("* OK")) { step = 1; s.write("a1 LOGIN ${user} ${password}\\r\\n"); }
  const m = /^a1 (OK|NO|BAD)[^\\r]*/m.exec(buf);
  if (step === 1 && m) {
    step = 2; console.log(m[0]);
    if (${reset}) { s.resetAndDestroy(); setTimeout(() => process.exit(0), 100); }
    else s.end("a2 LOGOUT\\r\\n");
  }
});
s.on("close", () => process.exit(step === 2 ? 0 : 5));`;
  return tryInNs(ns, [process.execPath, '-e', script], 30_000);
}

/**
 * A logged-in IMAP IDLE session from `ns`, kept open. probe() ends the IDLE and says whether the
 * server's answer arrives within 3 s ('answered') or not ('silent': the flow is dropped).
 */
async function idleSession(t: TestContext, ns: string, address: string): Promise<{ probe: () => Promise<string> }> {
  const script = `
const s = require("net").connect({ host: ${JSON.stringify(address)}, port: 143 });
let buf = "", step = 0;
s.on("error", () => { console.log("error"); });
s.on("data", (d) => {
  buf += d;
  if (step === 0 && buf.includes("* OK")) { step = 1; s.write("a1 LOGIN alice correct-horse\\r\\n"); }
  if (step === 1 && /^a1 OK/m.test(buf)) { step = 2; s.write("a2 SELECT INBOX\\r\\n"); }
  if (step === 2 && /^a2 OK/m.test(buf)) { step = 3; s.write("a3 IDLE\\r\\n"); }
  if (step === 3 && /^\\+ idling/m.test(buf)) { step = 4; console.log("idling"); }
  if (step === 5 && /^a3 OK/m.test(buf)) { step = 6; console.log("answered"); }
});
require("readline").createInterface({ input: process.stdin }).on("line", () => {
  step = 5; s.write("DONE\\r\\n");
  setTimeout(() => { if (step === 5) console.log("silent"); }, 3000);
});`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'ignore'] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  await until('the IDLE session is up', () => lines.includes('idling'), 20_000, 100);
  return {
    probe: async () => {
      const seen = lines.length;
      child.stdin!.write('probe\n');
      await until('the probe ends', () => lines.length > seen, 10_000, 100);
      return lines[seen]!;
    },
  };
}

test('Dovecot IMAP LOGIN: a real brute force is dropped at the edge', async (t) => {
  const started = Date.now();
  requirePackages([
    ['dovecot', 'dovecot-imapd'],
    ['haproxy', 'haproxy'],
    ['openssl', 'openssl'],
  ]);
  const edge = await startEdge(t);
  const { net, sim, dir } = edge;
  const log = await logFile(dir, 'dovecot.log');
  const conf = await writeDovecotConf(dir, log, {
    proxied: { port: PROXIED_PORT, tlsPort: PROXIED_TLS_PORT, trusted: [`${net.proxy.v4}/32`], certificate: mailCertificate(dir) },
  });
  const version = (await tryInNs(net.servers.ns, ['dovecot', '--version'])).stdout.trim();
  serveInNs(t, net.servers.ns, ['env', 'TZ=UTC', 'dovecot', '-F', '-c', conf]);
  await until(
    'Dovecot lets the client log in',
    async () => (await imapLogin(net.client.ns, net.servers.v4, 'alice', 'correct-horse')).stdout.startsWith('a1 OK'),
    20_000,
    200,
  );
  await startHaproxy(t, net, dir, [
    { name: 'imap', port: 143, backendPort: PROXIED_PORT },
    { name: 'imaps', port: 993, backendPort: PROXIED_TLS_PORT },
  ]);
  await until(
    'HAProxy passes the client to Dovecot',
    async () => (await imapLogin(net.client.ns, net.proxy.v4, 'alice', 'correct-horse')).stdout.startsWith('a1 OK'),
    20_000,
    200,
  );
  assert.match((await imapLogin(net.client.ns, net.proxy.v4, 'alice', 'correct-horse', false, 993)).stdout, /^a1 OK/, 'IMAPS through HAProxy');

  await startEdgebanAsNobody(
    t,
    edge,
    `
[dovecot]
enabled = true
filter = dovecot
logpath = ${log}
maxretry = ${MAXRETRY}
findtime = 10m
bantime = ${BANTIME_S}s
`,
  );

  // The attacker also holds a session it logged into before (a stolen password, say).
  const held = await idleSession(t, net.attacker.ns, net.servers.v4);

  await t.test(`the attacker's real address is banned after ${MAXRETRY} real failed IMAP logins`, async () => {
    for (let i = 0; i < MAXRETRY; i++) {
      const reply = await imapLogin(net.attacker.ns, net.servers.v4, 'alice', `guess${i}`, i === MAXRETRY - 1);
      assert.match(reply.stdout, /^a1 NO/, `exit ${reply.code} ${reply.stderr}\n${await readFile(log, 'utf8')}`);
    }
    await until('the attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v4), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4]);
    assert.deepEqual(sim.tableEntries(ALIAS), [net.attacker.v4]);
    const text = await readFile(log, 'utf8');
    for (const line of text.split('\n').filter((l) => l.includes('auth failed'))) t.diagnostic(`dovecot ${version}: ${line}`);
  });

  await t.test("the attacker's established IMAP IDLE session is cut by the ban (kill_states)", async () => {
    await until('kill_states reached the edge', () => sim.calls().some((c) => c.path.includes('/kill_states')), 10_000, 100);
    assert.equal(await held.probe(), 'silent');
  });

  await t.test("the attacker's next TCP connection gets no answer; the client still logs in", async () => {
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v4, 143), 'silent');
    assert.match((await imapLogin(net.client.ns, net.servers.v4, 'alice', 'correct-horse')).stdout, /^a1 OK/);
  });

  await t.test('after the ban expires the attacker connects again', async () => {
    await until(
      'the attacker can connect',
      async () => (await tcpProbe(net.attacker.ns, net.servers.v4, 143)) === 'open',
      (BANTIME_S + RECONCILE_S + 20) * 1000,
      500,
    );
    assert.deepEqual(edge.setEntries(), []);
  });

  await t.test("a PROXY v2 header forged by the attacker straight to Dovecot's proxied listener frames nobody", async () => {
    const before = (await readFile(log, 'utf8')).length;
    // Claims to relay the client 203.0.113.9; Dovecot takes it only from haproxy_trusted_networks.
    const header = Buffer.concat([
      Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
      Buffer.from([0x21, 0x11, 0, 12]),
      Buffer.from(net.client.v4.split('.').map(Number)),
      Buffer.from(net.servers.v4.split('.').map(Number)),
      Buffer.from([0x9c, 0x40, 0x27, 0x9f]),
    ]);
    for (let i = 0; i < MAXRETRY; i++) {
      const script = `
const s = require("net").connect({ host: ${JSON.stringify(net.servers.v4)}, port: ${PROXIED_PORT} }, () => {
  s.write(Buffer.from(${JSON.stringify(header.toString('hex'))}, "hex"));
  s.write("a1 LOGIN alice forged${i}\\r\\n");
});
let got = "";
s.on("data", (d) => { got += d; }); s.on("error", () => {});
s.on("close", () => { console.log(got.includes("* OK") ? "greeted" : "refused"); process.exit(0); });
setTimeout(() => { console.log("open"); process.exit(0); }, 5000);`;
      assert.equal((await tryInNs(net.attacker.ns, [process.execPath, '-e', script])).stdout.trim(), 'refused');
    }
    const text = (await readFile(log, 'utf8')).slice(before);
    assert.ok(!text.includes(`rip=${net.client.v4}`), `no line names the client:\n${text}`);
    for (const line of text.split('\n').filter((l) => l !== '')) t.diagnostic(`dovecot ${version}, forged header: ${line}`);
    // Past the point where a counted failure would have become a ban.
    await new Promise((resolve) => setTimeout(resolve, (RECONCILE_S + 1) * 1000));
    assert.deepEqual(edge.setEntries(), []);
  });

  await t.test("behind HAProxy (PROXY v2, haproxy = yes; IMAP and IMAPS) the IPv6 attacker's real address is banned, not the proxy's", async () => {
    for (let i = 0; i < MAXRETRY; i++) {
      const reply = await imapLogin(net.attacker.ns, net.proxy.v6, 'alice', `proxied${i}`, false, i === 1 ? 993 : undefined);
      assert.match(reply.stdout, /^a1 NO/, `exit ${reply.code} ${reply.stderr}`);
    }
    await until('the IPv6 attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v6), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v6], 'nobody else, not the proxy');
    assert.equal(await tcpProbe(net.attacker.ns, net.proxy.v6, 143), 'silent');
    assert.equal(await tcpProbe(net.attacker.ns, net.proxy.v6, 993), 'silent');
    assert.match((await imapLogin(net.client.ns, net.proxy.v6, 'alice', 'correct-horse', false, 993)).stdout, /^a1 OK/);
    const text = await readFile(log, 'utf8');
    const lines = text.split('\n').filter((l) => l.includes(`rip=${net.attacker.v6},`));
    assert.equal(lines.length, MAXRETRY, text);
    // On the TCP level Dovecot saw only the proxy; rip= is the client, from PROXY v2.
    assert.ok(!text.includes(`rip=${net.proxy.v4}`), `no login line names the proxy:\n${text}`);
    for (const line of lines) t.diagnostic(`dovecot ${version} behind HAProxy: ${line}`);
    await saveSample(`dovecot-${version.split(' ')[0]}`, text);
  });

  await t.test('no flush ever reached the edge', () => {
    assert.deepEqual(
      sim.calls().filter((c) => c.path.includes('/flush/')),
      [],
    );
  });
  t.diagnostic(`duration ${Date.now() - started} ms`);
});
