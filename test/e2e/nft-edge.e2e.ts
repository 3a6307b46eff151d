// The simulator's --nft-netns mode: the pf tables behind the API are real nftables sets in a
// namespace, and packets from a listed source are really dropped.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { EDGEBAN } from '../helpers/cli.ts';
import { post, startSim } from '../simulator/helpers.ts';
import { tcpProbe } from './edge-harness.ts';
import { buildInternet, inNs, nftSetEntries, requireTools, serveInNs } from './netns.ts';
import { until } from '../helpers/until.ts';

const ALIAS = 'fail2ban_blocklist';

function setElements(edge: string, family: 4 | 6): string[] {
  return nftSetEntries(edge, 'edgeban', `${ALIAS}_v${family}`);
}

test('alias_util add/list/delete/flush, kill_states and reboot act on the edge set', async (t) => {
  requireTools();
  const net = buildInternet(t);
  const sim = await startSim({ nft: { netns: net.edge, table: 'edgeban' } });
  t.after(() => sim.stop());
  // A TCP listener inside (a shell's nc would be one more package: Node itself listens).
  serveInNs(t, net.servers.ns, [
    process.execPath,
    '-e',
    'require("net").createServer((s) => { s.on("error", () => {}); s.write("hi\\n"); }).listen(7000, "::")',
  ]);
  const connect = (from: string, address: string) => tcpProbe(from, address, 7000);
  await until('the server listens', async () => (await connect(net.attacker.ns, net.servers.v4)) === 'open', 20_000, 200);

  await t.test('an added address is in the set and its packets are dropped; another client still connects', async () => {
    assert.deepEqual((await post(sim, `/api/firewall/alias_util/add/${ALIAS}`, { address: net.attacker.v4 })).json, { status: 'done' });
    assert.deepEqual((await post(sim, `/api/firewall/alias_util/add/${ALIAS}`, { address: net.attacker.v6 })).json, { status: 'done' });
    assert.deepEqual(setElements(net.edge, 4), [net.attacker.v4]);
    assert.deepEqual(setElements(net.edge, 6), [net.attacker.v6]);
    assert.equal(await connect(net.attacker.ns, net.servers.v4), 'silent', 'attacker IPv4 gets no answer');
    assert.equal(await connect(net.attacker.ns, net.servers.v6), 'silent', 'attacker IPv6 gets no answer');
    assert.equal(await connect(net.client.ns, net.servers.v4), 'open', 'the client still connects');
  });

  await t.test('list shows the set as it is, also after a change made with nft directly', async () => {
    inNs(net.edge, ['nft', 'add', 'element', 'inet', 'edgeban', `${ALIAS}_v4`, '{ 203.0.113.200 }']);
    const list = await post(sim, `/api/firewall/alias_util/list/${ALIAS}`, {});
    const rows = (list.json as { rows: Array<{ ip: string }> }).rows.map((r) => r.ip);
    assert.deepEqual(rows, [net.attacker.v4, '203.0.113.200', net.attacker.v6]);
  });

  await t.test('delete removes the address from the set and packets pass again', async () => {
    await post(sim, `/api/firewall/alias_util/delete/${ALIAS}`, { address: net.attacker.v4 });
    assert.deepEqual(setElements(net.edge, 4), ['203.0.113.200']);
    assert.equal(await connect(net.attacker.ns, net.servers.v4), 'open');
  });

  await t.test('kill_states deletes the conntrack flows of the address in the edge', async () => {
    const held = serveInNs(t, net.attacker.ns, [
      process.execPath,
      '-e',
      `const s = require("net").connect({ host: "${net.servers.v4}", port: 7000 }); s.on("data", () => {}); s.on("error", () => {}); setTimeout(() => {}, 60000);`,
    ]);
    const tracked = () => inNs(net.edge, ['conntrack', '-L', '-s', net.attacker.v4]).includes('dport=7000');
    await until('the flow is tracked', tracked, 10_000, 100);
    // Listed after the flow was set up: like pf, the edge keeps passing it until its state is killed.
    await post(sim, `/api/firewall/alias_util/add/${ALIAS}`, { address: net.attacker.v4 });
    assert.ok(tracked());
    const killed = (await post(sim, '/api/diagnostics/firewall/kill_states', { filter: net.attacker.v4 })).json as { dropped_states: number };
    assert.ok(killed.dropped_states >= 1, `dropped ${killed.dropped_states}`);
    assert.ok(!tracked(), 'the flow is gone and its next packets meet the drop rule');
    held.kill('SIGKILL');
  });

  await t.test('flush empties the set; reboot empties it too', async () => {
    await post(sim, `/api/firewall/alias_util/flush/${ALIAS}`, {});
    assert.deepEqual([...setElements(net.edge, 4), ...setElements(net.edge, 6)], []);
    await post(sim, `/api/firewall/alias_util/add/${ALIAS}`, { address: net.attacker.v4 });
    assert.deepEqual(setElements(net.edge, 4), [net.attacker.v4]);
    sim.reboot();
    assert.deepEqual(setElements(net.edge, 4), []);
    assert.deepEqual(sim.tableEntries(ALIAS), []);
  });
});

test('edgeban simulate --nft-netns with a namespace that does not exist exits 2 naming the option', () => {
  requireTools();
  const result = spawnSync(process.execPath, [EDGEBAN, 'simulate', '--port', '0', '--nft-netns', `eb-missing-${process.pid}`], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /--nft-netns: nft in namespace eb-missing-\d+ failed: Cannot open network namespace/);
});
