import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { Ledger, type LedgerChange } from '../../src/ledger/ledger.ts';
import { RedisLedgerStore, type RedisLedgerStoreOptions } from '../../src/ledger/redis-ledger-store.ts';
import { silentLogger, type Logger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';

export const T = 'fail2ban_blocklist';
export const PREFIX = 'edgeban-test:';

/** Fast reconnects, so outage tests end quickly. */
export const FAST_RECONNECT = { retryStrategy: () => 50 };

export interface Replica {
  store: RedisLedgerStore;
  ledger: Ledger;
  clock: ManualClock;
  changes: LedgerChange[];
  close(): Promise<void>;
}

/** One edgeban replica's ledger on a shared Redis, closed when the test ends. */
export async function openReplica(
  t: TestContext,
  url: string,
  options: { clock?: ManualClock; logger?: Logger; store?: Partial<RedisLedgerStoreOptions>; historyRetentionMs?: number } = {},
): Promise<Replica> {
  const clock = options.clock ?? new ManualClock();
  const logger = options.logger ?? silentLogger();
  const store = await RedisLedgerStore.open({ url, prefix: PREFIX, logger, ...options.store });
  const ledger = await Ledger.open({
    store,
    clock,
    logger,
    ...(options.historyRetentionMs !== undefined ? { historyRetentionMs: options.historyRetentionMs } : {}),
  });
  const changes: LedgerChange[] = [];
  ledger.onChange((batch) => {
    changes.push(...batch);
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await ledger.close();
  };
  t.after(close);
  return { store, ledger, clock, changes, close };
}

/** A plain client for looking at (or damaging) what is stored. */
export function rawClient(t: TestContext, url: string): Redis {
  const redis = new Redis(url, { protocol: 2, ...FAST_RECONNECT });
  t.after(() => redis.disconnect());
  return redis;
}

/** Every replica has read everything written so far. */
export async function settle(...replicas: Replica[]): Promise<void> {
  for (let round = 0; round < 2; round++) {
    for (const replica of replicas) await replica.store.catchUp(20_000);
  }
}
