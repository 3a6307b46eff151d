import assert from 'node:assert/strict';
import { test } from 'node:test';
import ipaddr from 'ipaddr.js';
import { parsePfAddress } from '../../../src/net/address.ts';
import { parseFeedRequest, renderFeed } from '../../../src/targets/feed/feed-document.ts';
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
  assert.deepEqual(
    (await feed.list()).sort((a, b) => a.address.localeCompare(b.address)),
    [
      { address: '192.0.2.10', owned: true },
      { address: '2001:db8::1', owned: true },
      { address: '203.0.113.9', owned: true },
    ],
  );
  await feed.delete('2001:db8:0::1');
  assert.equal(feed.document(null).body, '192.0.2.10\n203.0.113.9\n');
  assert.equal(feed.document(6).body, '');
  assert.notEqual(feed.document(null).etag, before.etag);
  await feed.deleteMany(['192.0.2.10', '203.0.113.9']);
  assert.deepEqual(await feed.list(), []);
  assert.equal(feed.document(null).entries, 0);
});

test('renderFeed: numeric order, IPv4 before IPv6, a network before the hosts it starts with; ETag equal for equal sets in any order', () => {
  const list = ['2001:db8:0:1::', '2001:db8::1', '10.0.0.0/8', '192.0.2.100', '2001:db8::/32', '9.255.255.255', '192.0.2.20', '::1:0:0:0:1'];
  const document = renderFeed(list, null);
  assert.equal(
    document.body,
    ['9.255.255.255', '10.0.0.0/8', '192.0.2.20', '192.0.2.100', '::1:0:0:0:1', '2001:db8::/32', '2001:db8::1', '2001:db8:0:1::', ''].join('\n'),
  );
  assert.equal(renderFeed([...list].reverse(), null).etag, document.etag);
  assert.equal(renderFeed(list, 4).entries, 4);

  // Against a byte-wise reference on random IPv6 addresses in pf spelling (zero runs in every place).
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  const random = Array.from(
    { length: 400 },
    () => parsePfAddress(Array.from({ length: 8 }, () => (next() % 3 === 0 ? '0' : (next() % 65536).toString(16))).join(':')).text,
  );
  const unique = [...new Set(random)];
  const bytes = (a: string) => ipaddr.parse(a).toByteArray();
  const reference = [...unique].sort((a, b) => {
    const x = bytes(a);
    const y = bytes(b);
    for (let i = 0; i < 16; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  });
  assert.deepEqual(
    renderFeed(unique, 6)
      .body.split('\n')
      .filter((l) => l !== ''),
    reference,
  );
});

test('parseFeedRequest: path suffix and query select the family; a contradiction or another family is refused', () => {
  const isTarget = (id: string) => id === 'fail2ban_blocklist';
  const parse = (path: string) => parseFeedRequest(new URL(path, 'http://edgeban'), isTarget);
  assert.deepEqual(parse('/blocklist/fail2ban_blocklist.txt'), { target: 'fail2ban_blocklist', family: null });
  assert.deepEqual(parse('/blocklist/fail2ban_blocklist-v6.txt'), { target: 'fail2ban_blocklist', family: 6 });
  assert.deepEqual(parse('/blocklist/fail2ban_blocklist.txt?family=4'), { target: 'fail2ban_blocklist', family: 4 });
  assert.deepEqual(parse('/blocklist/opnsense%3Ahttps%3A%2F%2Ffw%2Fblock.txt'), { target: 'opnsense:https://fw/block', family: null });
  assert.equal(typeof parse('/blocklist/fail2ban_blocklist-v4.txt?family=6'), 'string');
  assert.equal(typeof parse('/blocklist/fail2ban_blocklist.txt?family=5'), 'string');
  assert.equal(parse('/blocklist/a/b.txt'), null);
  assert.equal(parse('/blocklist/x.csv'), null);
});
