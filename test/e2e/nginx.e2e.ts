// A real nginx with basic auth inside, a real brute force from the attacker namespace with curl,
// edgeban (uid 65534) reading nginx's real error log, the ban enforced by the edge's nftables set.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { until } from '../helpers/until.ts';
import { ALIAS, RECONCILE_S, httpStatus, logFile, saveSample, startEdge, startEdgebanAsNobody, tcpProbe } from './edge-harness.ts';
import { requirePackages, serveInNs, tryInNs } from './netns.ts';

const MAXRETRY = 3;
// Long enough to hold through the reboot and restart checks on a loaded machine.
const BANTIME_S = 35;

test('nginx basic auth: a real brute force is dropped at the edge', async (t) => {
  const started = Date.now();
  requirePackages([['nginx', 'nginx']]);
  const edge = await startEdge(t);
  const { net, sim, dir } = edge;
  const errorLog = await logFile(dir, 'nginx-error.log');
  const accessLog = await logFile(dir, 'nginx-access.log');
  await mkdir(path.join(dir, 'www'), { mode: 0o755 });
  await writeFile(path.join(dir, 'www/index.html'), 'members only\n', { mode: 0o644 });
  await writeFile(path.join(dir, 'htpasswd'), 'alice:{PLAIN}correct-horse\n', { mode: 0o644 });
  await writeFile(
    path.join(dir, 'nginx.conf'),
    `
daemon off;
worker_processes 1;
user nobody nogroup;
pid ${dir}/nginx.pid;
error_log ${errorLog} error;
events { worker_connections 64; }
http {
  access_log ${accessLog};
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  server {
    listen 80;
    listen [::]:80;
    server_name e2e.example;
    root ${dir}/www;
    location / { auth_basic "members"; auth_basic_user_file ${dir}/htpasswd; }
  }
}
`,
  );
  const version = (await tryInNs(net.servers.ns, ['nginx', '-v'])).stderr.trim();
  serveInNs(t, net.servers.ns, ['env', 'TZ=UTC', 'nginx', '-p', dir, '-e', errorLog, '-c', path.join(dir, 'nginx.conf')]);
  await until('nginx answers the client', async () => (await httpStatus(net.client.ns, net.servers.v4, '/', 'alice:correct-horse')) === '200', 20_000, 200);

  const jailLocal = `
[nginx]
enabled = true
filter = nginx[mode=auth]
logpath = ${errorLog}
maxretry = ${MAXRETRY}
findtime = 10m
bantime = ${BANTIME_S}s
`;
  let edgeban = await startEdgebanAsNobody(t, edge, jailLocal);

  await t.test(`the attacker's real address is banned after ${MAXRETRY} real failed logins`, async () => {
    for (let i = 0; i < MAXRETRY; i++) {
      assert.equal(await httpStatus(net.attacker.ns, net.servers.v4, '/', `alice:guess${i}`), '401');
    }
    await until('the attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v4), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4], 'only the attacker, not the edge gateway');
    assert.deepEqual(sim.tableEntries(ALIAS), [net.attacker.v4]);
    const lines = (await readFile(errorLog, 'utf8')).split('\n').filter((l) => l.includes('password mismatch'));
    assert.equal(lines.length, MAXRETRY);
    t.diagnostic(`${version}: ${lines[0]}`);
    const release = /nginx\/([\d.]+)/.exec(version)?.[1] ?? 'unknown';
    await saveSample(`nginx-${release}-error`, await readFile(errorLog, 'utf8'));
    await saveSample(`nginx-${release}-access`, await readFile(accessLog, 'utf8'));
  });

  await t.test("the attacker's next TCP connection gets no answer; the client still logs in", async () => {
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v4, 80), 'silent');
    assert.equal(await httpStatus(net.client.ns, net.servers.v4, '/', 'alice:correct-horse'), '200');
  });

  await t.test('an emptied set (edge reboot) is restored within one reconcile interval', async () => {
    sim.reboot();
    assert.deepEqual(edge.setEntries(), []);
    const rebooted = Date.now();
    // One interval, plus the time one reconcile pass and its checks take on a loaded machine.
    await until('the ban is back in the edge set', () => edge.setEntries().includes(net.attacker.v4), (RECONCILE_S + 8) * 1000, 100);
    t.diagnostic(`restored after ${Date.now() - rebooted} ms (reconcile interval ${RECONCILE_S} s)`);
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v4, 80), 'silent');
  });

  await t.test('a restart of edgeban keeps the block, and the restarted edgeban restores an emptied set', async () => {
    await edgeban.stop();
    assert.deepEqual(edge.setEntries(), [net.attacker.v4], 'a stopped edgeban leaves its bans in place');
    edgeban = await startEdgebanAsNobody(t, edge, jailLocal);
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v4, 80), 'silent');
    sim.reboot();
    await until('the restarted edgeban restores the ban', () => edge.setEntries().includes(net.attacker.v4), (RECONCILE_S + 8) * 1000, 100);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4]);
  });

  await t.test('after the ban expires the attacker connects again', async () => {
    await until(
      'the attacker can connect',
      async () => (await tcpProbe(net.attacker.ns, net.servers.v4, 80)) === 'open',
      (BANTIME_S + RECONCILE_S + 20) * 1000,
      500,
    );
    assert.deepEqual(edge.setEntries(), []);
  });

  await t.test('an IPv6 attacker is banned by its real address and dropped', async () => {
    for (let i = 0; i < MAXRETRY; i++) {
      assert.equal(await httpStatus(net.attacker.ns, net.servers.v6, '/', `alice:v6guess${i}`), '401');
    }
    await until('the IPv6 attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v6), 20_000, 200);
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v6, 80), 'silent');
    assert.equal(await httpStatus(net.client.ns, net.servers.v6, '/', 'alice:correct-horse'), '200');
  });

  await t.test('no flush ever reached the edge', () => {
    assert.deepEqual(
      sim.calls().filter((c) => c.path.includes('/flush/')),
      [],
    );
  });
  t.diagnostic(`duration ${Date.now() - started} ms`);
});
