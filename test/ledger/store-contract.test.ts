import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { FileLedgerStore, type LedgerFileIo } from '../../src/ledger/file-ledger-store.ts';
import { Ledger, type LedgerChange } from '../../src/ledger/ledger.ts';
import type { LedgerStore } from '../../src/ledger/ledger-store.ts';
import { RedisLedgerStore } from '../../src/ledger/redis-ledger-store.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { RedisServer } from '../ledger-redis/redis-server.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The LedgerStore contract (src/ledger/ledger-store.ts), run against both stores. Each store
 * brings real ways to hold and to fail a write: the file store through its injectable file I/O
 * (a write that stops short and then ENOSPC, as a full disk does; EIO from fdatasync), Redis
 * through its own controls (CLIENT PAUSE WRITE; maxmemory 1 makes XADD answer OOM).
 */
interface StoreUnderTest {
  open(): Promise<LedgerStore>;
  /** Makes the next writes hang until `release()`; resolves once one write is being held. */
  hold(start: () => void): Promise<void>;
  release(): Promise<void>;
  /** Makes writes fail until `heal()`, in each way the store can fail. */
  faults: Array<{ name: string; pattern: RegExp; inject(): Promise<void> }>;
  heal(): Promise<void>;
}

const T = 'fail2ban_blocklist';

type Fault = { kind: 'short-write-then-enospc'; shortDone: boolean } | { kind: 'fsync-eio' } | { kind: 'hold'; entered: () => void; gate: Promise<void> };

async function fileStore(t: TestContext): Promise<StoreUnderTest> {
  const dir = await tempDir(t);
  let fault: Fault | null = null;
  const io: LedgerFileIo = {
    async write(handle, data, position) {
      if (fault?.kind === 'short-write-then-enospc') {
        if (fault.shortDone) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        fault.shortDone = true;
        // Half of it fits: write(2) reports the short count without an error.
        return (await handle.write(data, 0, Math.max(1, data.length >> 1), position)).bytesWritten;
      }
      return (await handle.write(data, 0, data.length, position)).bytesWritten;
    },
    async datasync(handle) {
      if (fault?.kind === 'fsync-eio') throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      if (fault?.kind === 'hold') {
        fault.entered();
        await fault.gate;
      }
      await handle.datasync();
    },
    truncate: (handle, length) => handle.truncate(length),
  };
  let release = () => {};
  return {
    open: () => FileLedgerStore.open({ dir, logger: silentLogger(), io }),
    async hold(start) {
      const entered = Promise.withResolvers<void>();
      const gate = Promise.withResolvers<void>();
      release = gate.resolve;
      fault = { kind: 'hold', entered: entered.resolve, gate: gate.promise };
      start();
      await entered.promise;
    },
    async release() {
      fault = null;
      release();
    },
    faults: [
      {
        name: 'disk full (a short write, then ENOSPC)',
        pattern: /no space left on the device \(ENOSPC\)/,
        inject: async () => {
          fault = { kind: 'short-write-then-enospc', shortDone: false };
        },
      },
      {
        name: 'fdatasync fails with EIO',
        pattern: /input\/output error from the disk \(EIO\)/,
        inject: async () => {
          fault = { kind: 'fsync-eio' };
        },
      },
    ],
    async heal() {
      fault = null;
    },
  };
}

async function redisStore(t: TestContext, spoolDir?: string): Promise<StoreUnderTest> {
  const redis = await RedisServer.start(t);
  const admin = new Redis(redis.url, { protocol: 2 });
  t.after(() => admin.disconnect());
  const blockedClients = async () => Number(/blocked_clients:(\d+)/.exec(await admin.info('clients'))?.[1] ?? 0);
  return {
    async open() {
      return RedisLedgerStore.open({ url: redis.url, prefix: 'contract:', logger: silentLogger(), ...(spoolDir ? { spoolDir } : {}) });
    },
    async hold(start) {
      const before = await blockedClients();
      await admin.call('CLIENT', 'PAUSE', '60000', 'WRITE');
      start();
      // A paused write is a blocked client, beside the stores' blocking reads.
      await until('the write to reach Redis and wait there', async () => (await blockedClients()) > before, 30_000, 20);
    },
    async release() {
      await admin.call('CLIENT', 'UNPAUSE');
    },
    faults: [
      {
        name: 'Redis refuses the write (OOM)',
        pattern: /OOM/,
        inject: async () => {
          await admin.config('SET', 'maxmemory-policy', 'noeviction');
          await admin.config('SET', 'maxmemory', '1');
        },
      },
    ],
    async heal() {
      await admin.config('SET', 'maxmemory', '0');
    },
  };
}

// With a spool (the daemon's), a write Redis holds past 2 s is kept on the local disk instead: durable then too.
const spooledRedisStore = async (t: TestContext) => redisStore(t, path.join(await tempDir(t), 'ledger-spool'));

for (const [name, make] of [
  ['file store', fileStore],
  ['Redis store', redisStore],
  ['Redis store with a spool', spooledRedisStore],
] as const) {
  describe(`LedgerStore contract: ${name}`, () => {
    async function openLedger(t: TestContext, store: StoreUnderTest, clock = new ManualClock()) {
      const ledger = await Ledger.open({ store: await store.open(), clock, logger: silentLogger() });
      const changes: LedgerChange[] = [];
      ledger.onChange((batch) => {
        changes.push(...batch);
      });
      let closed = false;
      const close = async () => {
        if (!closed) {
          closed = true;
          await ledger.close();
        }
      };
      t.after(close);
      return { ledger, changes, close };
    }

    test("a ban becomes visible (memory, listeners, the CLI's reads) only once it is durable", async (t) => {
      const store = await make(t);
      const { ledger, changes } = await openLedger(t, store);
      let banning!: Promise<unknown>;
      await store.hold(() => {
        banning = ledger.ban({ target: T, address: '192.0.2.10', jail: 'sshd', origin: 'jail', durationMs: 600_000 });
      });
      try {
        assert.equal(ledger.isActive(T, '192.0.2.10'), false, 'not enforced while the write is in flight');
        assert.deepEqual(ledger.activeClaims(), [], 'not listed while the write is in flight');
        assert.deepEqual(changes, [], 'no reconciler told while the write is in flight');
      } finally {
        await store.release();
      }
      await banning;
      assert.equal(ledger.isActive(T, '192.0.2.10'), true);
      assert.deepEqual(changes, [{ target: T, address: '192.0.2.10' }]);
    });

    test('an unban becomes visible only once it is durable', async (t) => {
      const store = await make(t);
      const { ledger, changes } = await openLedger(t, store);
      await ledger.ban({ target: T, address: '198.51.100.4', jail: 'sshd', origin: 'jail', durationMs: null });
      changes.length = 0;
      let unbanning!: Promise<unknown>;
      await store.hold(() => {
        unbanning = ledger.unban({ address: '198.51.100.4' });
      });
      try {
        assert.equal(ledger.isActive(T, '198.51.100.4'), true, 'still enforced while the unban is in flight');
        assert.deepEqual(changes, []);
      } finally {
        await store.release();
      }
      assert.equal(await unbanning, 1);
      assert.equal(ledger.isActive(T, '198.51.100.4'), false);
    });

    test('repeat bans made while one is in flight count it', async (t) => {
      const store = await make(t);
      const { ledger } = await openLedger(t, store);
      let first!: Promise<{ banCount: number }>;
      await store.hold(() => {
        first = ledger.ban({ target: T, address: '203.0.113.5', jail: 'sshd', origin: 'jail', durationMs: 60_000 });
      });
      const second = ledger.ban({ target: T, address: '203.0.113.5', jail: 'sshd', origin: 'jail', durationMs: 60_000 });
      await store.release();
      assert.deepEqual([(await first).banCount, (await second).banCount], [1, 2]);
      assert.equal(ledger.claimsOf(T, '203.0.113.5')[0]?.banCount, 2);
    });

    for (const probe of [0, 1]) {
      test(`a failed write leaves no trace and reports the cause (${probe === 0 ? 'ban' : 'unban'})`, async (t) => {
        const store = await make(t);
        for (const fault of store.faults) {
          await t.test(fault.name, async (t) => {
            const clock = new ManualClock();
            const first = await openLedger(t, store, clock);
            await first.ledger.ban({ target: T, address: '198.51.100.1', jail: 'sshd', origin: 'jail', durationMs: null });
            first.changes.length = 0;
            await fault.inject();
            if (probe === 0) {
              await assert.rejects(first.ledger.ban({ target: T, address: '198.51.100.2', jail: 'sshd', origin: 'jail', durationMs: null }), fault.pattern);
              assert.equal(first.ledger.isActive(T, '198.51.100.2'), false, 'a ban that was not saved is not enforced');
              assert.equal(first.ledger.isKnown(T, '198.51.100.2'), false);
            } else {
              await assert.rejects(first.ledger.unban({ address: '198.51.100.1' }), fault.pattern);
              assert.equal(first.ledger.isActive(T, '198.51.100.1'), true, 'an unban that was not saved leaves the ban in force');
            }
            assert.deepEqual(first.changes, [], 'no reconciler was told');
            await store.heal();
            // The store still works, and what follows the failed write is readable after a restart.
            await first.ledger.ban({ target: T, address: '198.51.100.3', jail: 'sshd', origin: 'jail', durationMs: null });
            await first.close();
            const second = await openLedger(t, store, clock);
            assert.deepEqual([...second.ledger.activeAddresses(T)].sort(), ['198.51.100.1', '198.51.100.3']);
            assert.equal(second.ledger.isKnown(T, '198.51.100.2'), false);
            assert.equal(second.ledger.damage(), null, 'the failed write left nothing to recover from');
            await second.ledger.unbanAll();
            await second.close();
          });
        }
      });
    }
  });
}
