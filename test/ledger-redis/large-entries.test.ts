import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LedgerMutation } from '../../src/ledger/ban-claim.ts';
import { RedisLedgerStore } from '../../src/ledger/redis-ledger-store.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { until } from '../helpers/until.ts';
import { RedisServer } from './redis-server.ts';
import { PREFIX, T } from './replicas.ts';

// Reads fetch fewer journal entries when entries are large (a batch of up to 1,000 mutations each):
// what adapts the page size must not lose or repeat an entry at a page boundary, in load or in the tail.
test('a journal of large entries then small ones is read whole, by load and by the tail, however the reads are paged', async (t) => {
  const redis = await RedisServer.start(t);
  const open = () => RedisLedgerStore.open({ url: redis.url, prefix: PREFIX, logger: silentLogger() });
  const writer = await open();
  t.after(() => writer.close());
  await writer.load();
  const tail = await open();
  t.after(() => tail.close());
  await tail.load();
  const seen = new Set<string>();
  tail.onRemoteMutations((mutations) => {
    for (const m of mutations) if (m.op === 'ban') seen.add(m.claim.address);
  });
  const ban = (i: number): LedgerMutation => ({
    op: 'ban',
    claim: {
      target: T,
      address: `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`,
      jail: 'dovecot-with-a-long-jail-name-to-make-entries-large',
      origin: 'jail',
      bannedAt: 1_000,
      expiresAt: 86_401_000,
      endedAt: null,
      banCount: 1,
    },
  });
  let next = 0;
  // 12 entries of 1,000 mutations (~2.5 MiB in all, over the per-read budget), then 2,500 entries of one.
  for (let e = 0; e < 12; e++) await writer.append(Array.from({ length: 1000 }, () => ban(next++)));
  for (let e = 0; e < 2500; e++) await writer.append([ban(next++)]);
  const total = next;
  await until('the tail delivered every ban', async () => seen.size === total, 60_000);

  const fresh = await open();
  t.after(() => fresh.close());
  const loaded = await fresh.load();
  assert.equal(loaded.length, total);
  assert.equal(new Set(loaded.map((c) => c.address)).size, total);
});
