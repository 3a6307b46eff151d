import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PfTableStore } from '../../src/simulator/pf-table-store.ts';
import { phpJsonEncode } from '../../src/simulator/php-json.ts';
import { parseBody, parseUrlEncoded } from '../../src/simulator/request-params.ts';
import { createRng } from '../../src/simulator/rng.ts';
import { resolveRoute } from '../../src/simulator/routing.ts';
import { FifoLock } from '../../src/simulator/fifo-lock.ts';

test('the cached pf order stays equal to a fresh sort through random adds, deletes and lists', () => {
  const store = new PfTableStore(1_000_000, () => 0);
  const rng = createRng(3);
  const live = new Set<string>();
  const spell = (i: number) => (i % 3 === 0 ? `2001:db8::${i.toString(16)}` : `192.0.${(i >> 8) & 255}.${i & 255}`);
  const key = (e: string) => {
    if (!e.includes(':'))
      return `4${e
        .split('.')
        .map((o) => Number(o).toString(16).padStart(2, '0'))
        .join('')}`;
    return `6${BigInt(`0x${e.split('::')[1]}`)
      .toString(16)
      .padStart(32, '0')}`;
  };
  for (let round = 0; round < 3000; round++) {
    const i = 1 + Math.floor(rng.next() * 2000);
    const action = rng.next();
    if (action < 0.6) {
      store.add('t', spell(i));
      live.add(spell(i));
    } else if (action < 0.9) {
      store.deleteExact('t', spell(i));
      live.delete(spell(i));
    } else {
      const expected = [...live].sort((a, b) => (key(a) < key(b) ? -1 : 1));
      assert.deepEqual(store.get('t')?.inPfOrder(), expected, `round ${round}`);
    }
  }
  assert.equal(store.usedEntries(), live.size);
});

test('phpJsonEncode escapes slashes and non-ASCII like json_encode', () => {
  assert.equal(phpJsonEncode({ ip: '10.0.0.0/8', d: 'é' }), '{"ip":"10.0.0.0\\/8","d":"\\u00e9"}');
  assert.equal(phpJsonEncode([]), '[]');
});

test('PHP form parsing: brackets, lists, dots in names', () => {
  assert.deepEqual(parseUrlEncoded('sort[ip]=desc&type[]=host&type[]=network&a.b=1&x=%2F'), {
    sort: { ip: 'desc' },
    type: { 0: 'host', 1: 'network' },
    a_b: '1',
    x: '/',
  });
  assert.deepEqual(parseBody('GET', 'application/x-www-form-urlencoded', Buffer.from('address=1')), { kind: 'ok', params: {} });
  assert.deepEqual(parseBody('GET', 'application/json', Buffer.alloc(0)), { kind: 'invalid-json' });
  assert.deepEqual(parseBody('POST', 'application/json', Buffer.from('{"rowCount":-1,"on":true}')), { kind: 'ok', params: { rowCount: '-1', on: '1' } });
});

test('routing table', () => {
  assert.ok(resolveRoute('/api/firewall/alias_util/list/t'));
  assert.ok(resolveRoute('/api/FIREWALL/Alias_Util/LIST/t'));
  assert.equal(resolveRoute('/api/firewall/ALIAS_UTIL/list/t'), null);
  assert.equal(resolveRoute('/api/firewall/alias_util/list'), null);
  assert.equal(resolveRoute('/api/firewall/alias_util/list/'), null);
  assert.deepEqual(resolveRoute('/api/firewall/alias_util/list/a%20b/c')?.args, ['a%20b', 'c']);
  assert.equal(resolveRoute('/api/firewall/alias/get-item/x'), null);
  assert.equal(resolveRoute('/ui/firewall/alias'), null);
});

test('FifoLock runs holders one at a time in arrival order', async () => {
  const lock = new FifoLock();
  const log: string[] = [];
  const hold = (name: string) =>
    lock.run(async () => {
      log.push(`${name}+`);
      await new Promise((resolve) => setImmediate(resolve));
      log.push(`${name}-`);
    });
  await Promise.all([hold('a'), hold('b'), hold('c')]);
  assert.deepEqual(log, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
});
