// A real Caddy (Debian's caddy) as a reverse proxy in front of a small app inside, with basicauth
// on /private/ and its JSON access log; probes for secrets and a basic-auth brute force from the
// attacker namespace with curl, edgeban (uid 65534) reading Caddy's real access log, the bans
// enforced by the edge's nftables set.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { until } from '../helpers/until.ts';
import { ALIAS, httpStatus, logFile, saveSample, startEdge, startEdgebanAsNobody, tcpProbe } from './edge-harness.ts';
import { requirePackages, serveInNs } from './netns.ts';

const PROBES = ['/.env', '/.ENV', '/.git/config', '/wp-login.php'];
const MAXRETRY = PROBES.length;
/** Caddy's bcrypt check (cost 14) takes about 1 s: room for it on a loaded machine. */
const CURL_S = 15;

test('Caddy reverse proxy: real probes and a basic-auth brute force are dropped at the edge', async (t) => {
  const started = Date.now();
  requirePackages([['caddy', 'caddy']]);
  const edge = await startEdge(t);
  const { net, sim, dir } = edge;
  const accessLog = await logFile(dir, 'caddy-access.json');
  const home = path.join(dir, 'caddy');
  await mkdir(home, { mode: 0o700 });
  // The app behind Caddy, on the servers' loopback: / and /private/ exist, nothing else.
  serveInNs(t, net.servers.ns, [
    process.execPath,
    '-e',
    'require("http").createServer((q, s) => { const ok = q.url === "/" || q.url.startsWith("/private/"); s.writeHead(ok ? 200 : 404); s.end(ok ? "app\\n" : "no\\n"); }).listen(9000, "127.0.0.1")',
  ]);
  const hash = execFileSync('caddy', ['hash-password', '--plaintext', 'correct-horse'], { encoding: 'utf8' }).trim();
  await writeFile(
    path.join(home, 'Caddyfile'),
    `
{
  admin off
  auto_https off
}
:80 {
  log {
    output file ${accessLog}
    format json
  }
  basicauth /private/* {
    alice ${hash}
  }
  reverse_proxy 127.0.0.1:9000
}
`,
  );
  const version = execFileSync('caddy', ['version'], { encoding: 'utf8' }).trim();
  serveInNs(t, net.servers.ns, [
    'env',
    `HOME=${home}`,
    `XDG_DATA_HOME=${home}`,
    `XDG_CONFIG_HOME=${home}`,
    'caddy',
    'run',
    '--adapter',
    'caddyfile',
    '--config',
    path.join(home, 'Caddyfile'),
  ]);
  await until(
    'Caddy passes the client to the app',
    async () => (await httpStatus(net.client.ns, net.servers.v4, '/', undefined, CURL_S)) === '200',
    20_000,
    200,
  );

  await startEdgebanAsNobody(
    t,
    edge,
    `
[caddy]
enabled = true
filter = caddy
logpath = ${accessLog}
maxretry = ${MAXRETRY}
findtime = 10m
bantime = 10m
`,
  );

  await t.test(`the attacker probing ${PROBES.join(', ')} is banned and dropped; the client still gets through`, async () => {
    for (const probe of PROBES) assert.equal(await httpStatus(net.attacker.ns, net.servers.v4, probe, undefined, CURL_S), '404');
    await until('the attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v4), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4], 'only the attacker');
    assert.deepEqual(sim.tableEntries(ALIAS), [net.attacker.v4]);
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v4, 80), 'silent');
    assert.equal(await httpStatus(net.client.ns, net.servers.v4, '/private/inbox', 'alice:correct-horse', CURL_S), '200');
  });

  await t.test(`the IPv6 attacker failing basic auth ${MAXRETRY} times (wrong passwords, unknown users) is banned and dropped`, async () => {
    for (const user of ['alice:guess0', 'alice:guess1', 'mallory:guess2', 'root:guess3']) {
      assert.equal(await httpStatus(net.attacker.ns, net.servers.v6, '/private/inbox', user, CURL_S), '401');
    }
    await until('the IPv6 attacker is in the edge set', () => edge.setEntries().includes(net.attacker.v6), 20_000, 200);
    assert.deepEqual(edge.setEntries(), [net.attacker.v4, net.attacker.v6]);
    assert.equal(await tcpProbe(net.attacker.ns, net.servers.v6, 80), 'silent');
    assert.equal(await httpStatus(net.client.ns, net.servers.v6, '/private/inbox', 'alice:correct-horse', CURL_S), '200');
    const text = await readFile(accessLog, 'utf8');
    for (const line of text.split('\n').filter((l) => /"status":40[14]/.test(l))) t.diagnostic(`caddy ${version}: ${line}`);
    await saveSample(`caddy-${/^v?([\d.]+)/.exec(version)?.[1] ?? 'unknown'}-access`, text);
  });

  await t.test('no flush ever reached the edge', () => {
    assert.deepEqual(
      sim.calls().filter((c) => c.path.includes('/flush/')),
      [],
    );
  });
  t.diagnostic(`duration ${Date.now() - started} ms`);
});
