import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { until } from '../helpers/until.ts';
import { ADMIN, call, post, startSim } from './helpers.ts';

const TOKEN = 'url-table-token-0123456789';

/** A URL-table source on loopback that insists on the bearer token and counts fetches. */
async function feedServer(t: import('node:test').TestContext) {
  const feed = { lines: ['192.0.2.1', '198.51.100.0/24 # comment', '// skipped', '2001:DB8::5'], status: 200, fetches: 0, userAgents: new Set<string>() };
  const server = createServer((req, res) => {
    feed.fetches++;
    feed.userAgents.add(req.headers['user-agent'] ?? '');
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
    res.writeHead(feed.status, { 'content-type': 'text/plain' });
    res.end(feed.status === 200 ? `${feed.lines.join('\n')}\n` : 'error');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { feed, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/list.txt` };
}

test('URL Table alias as update_tables.py runs it: fetch with bearer auth; alias_util adds kept by the quick cron, reverted to the cached list by a non-quick run; refetched and replaced when the TTL passes; a failed fetch keeps the list; a reboot reloads the cache without fetching', async (t) => {
  let now = Date.UTC(2026, 0, 1);
  const sim = await startSim({ now: () => now });
  t.after(() => sim.stop());
  const { feed, url } = await feedServer(t);
  const added = await post(
    sim,
    '/api/firewall/alias/add_item',
    {
      alias: { enabled: '1', name: 'durable', type: 'urltable', content: url, updatefreq: '0.5', authtype: 'Bearer', username: '', password: TOKEN },
    },
    ADMIN,
  );
  assert.equal((added.json as { result: string }).result, 'saved');
  const uuid = (added.json as { uuid: string }).uuid;
  const item = (await call(sim, 'GET', `/api/firewall/alias/get_item/${uuid}`, { auth: ADMIN })).json as {
    alias: { updatefreq: string; authtype: Record<string, { selected: number }> };
  };
  assert.equal(item.alias.updatefreq, '0.5');
  assert.equal(item.alias.authtype.Bearer?.selected, 1);
  assert.equal(((await post(sim, '/api/firewall/alias/reconfigure', {}, ADMIN)).json as { status: string }).status, 'ok');
  assert.deepEqual(sim.tableEntries('durable'), ['192.0.2.1', '198.51.100.0/24', '2001:db8::5'], 'fetched and loaded by reconfigure');
  assert.equal(feed.fetches, 1);
  assert.deepEqual([...feed.userAgents], ['OPNsense']);

  // alias_util into the URL table: pfctl -T add, no config write; the quick cron (unchanged, not expired) leaves it.
  const revisions = sim.configRevisions();
  await post(sim, '/api/firewall/alias_util/add/durable', { address: '203.0.113.9' });
  assert.equal(sim.configRevisions(), revisions);
  now += 60_000;
  await post(sim, '/api/firewall/alias_util/list/durable', {});
  assert.ok(sim.tableEntries('durable').includes('203.0.113.9'));
  assert.equal(feed.fetches, 1, 'no fetch before the TTL');

  // A non-quick run (alias Apply, a filter reload, boot): the table differs in size from the cached list, which replaces it.
  await post(sim, '/api/firewall/alias/reconfigure', {}, ADMIN);
  assert.deepEqual(sim.tableEntries('durable'), ['192.0.2.1', '198.51.100.0/24', '2001:db8::5'], 'the add since the fetch is gone');
  assert.equal(feed.fetches, 1, 'from the cache, not fetched');

  // The TTL (0.5 day) passes: the cron fetches and replaces the table wholesale.
  await post(sim, '/api/firewall/alias_util/add/durable', { address: '203.0.113.9' });
  feed.lines = ['192.0.2.1', '203.0.113.10'];
  now += 13 * 3_600_000;
  await post(sim, '/api/firewall/alias_util/list/durable', {});
  await until('the refresh after the TTL', () => sim.tableEntries('durable').includes('203.0.113.10'), 10_000, 10);
  assert.deepEqual(sim.tableEntries('durable'), ['192.0.2.1', '203.0.113.10'], 'replaced: entries not in the list are dropped');
  assert.equal(feed.fetches, 2);

  // A failed fetch keeps the previous list (and restarts the TTL).
  feed.status = 500;
  now += 13 * 3_600_000;
  await post(sim, '/api/firewall/alias_util/list/durable', {});
  await until('the failed fetch', () => feed.fetches === 3, 10_000, 10);
  await post(sim, '/api/firewall/alias/reconfigure', {}, ADMIN);
  assert.deepEqual(sim.tableEntries('durable'), ['192.0.2.1', '203.0.113.10']);
  assert.equal(feed.fetches, 3, 'the TTL restarted after the failure');

  // Reboot: pf is empty, the URL table comes back from the cache, without a fetch.
  sim.reboot();
  assert.deepEqual(sim.tableEntries('durable'), ['192.0.2.1', '203.0.113.10']);
  assert.equal(feed.fetches, 3);
});
