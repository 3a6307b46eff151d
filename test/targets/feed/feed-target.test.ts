import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FeedTarget } from '../../../src/targets/feed/feed-target.ts';

const entry = (address: string) => ({ address, expiresAt: null, comment: '' });

test('FeedTarget: what add/delete leave is what list() and the feed body hold, in pf spelling, every entry owned', async () => {
  const feed = new FeedTarget('fail2ban_blocklist');
  assert.deepEqual(feed.capabilities, { nativeExpiry: false, bulk: true, killConnections: false, comments: false });
  assert.equal(feed.canonical('2001:DB8::1/128'), '2001:db8::1');
  assert.equal(feed.canonical('192.0.2.1/32'), '192.0.2.1');
  assert.equal(feed.canonical('not an address'), null);
  await feed.addMany([entry('203.0.113.9'), entry('2001:DB8::1'), entry('192.0.2.10/32')]);
  await feed.add(entry('203.0.113.9'));
  const before = feed.document(null);
  assert.equal(before.body, '192.0.2.10\n203.0.113.9\n2001:db8::1\n');
  assert.deepEqual((await feed.list()).sort((a, b) => a.address.localeCompare(b.address)), [
    { address: '192.0.2.10', owned: true }, { address: '2001:db8::1', owned: true }, { address: '203.0.113.9', owned: true },
  ]);
  await feed.delete('2001:db8:0::1');
  assert.equal(feed.document(null).body, '192.0.2.10\n203.0.113.9\n');
  assert.equal(feed.document(6).body, '');
  assert.notEqual(feed.document(null).etag, before.etag);
  await feed.deleteMany(['192.0.2.10', '203.0.113.9']);
  assert.deepEqual(await feed.list(), []);
  assert.equal(feed.document(null).entries, 0);
});
