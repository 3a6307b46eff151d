// What the reconciler does with what a backend declares through the seam: bans it cannot hold,
// native expiry, its own ownership marks, and a spelling that folds several bans into one entry.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { parsePfAddress } from '../../src/net/address.ts';
import type { TargetCapabilities } from '../../src/targets/edge-target.ts';
import { MemoryTarget } from '../../src/targets/memory/target.ts';
import { TargetReconciler } from '../../src/targets/target-reconciler.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { CapturedLog } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const MINUTE = 60_000;
const T = 'memtarget';

interface SetupOptions {
  capabilities?: Partial<TargetCapabilities>;
  canonical?: (a: string) => string | null;
  /** Stands in for a shared store's catch-up with the other replicas' writes. */
  catchUp?: () => Promise<void>;
}

async function setup(t: TestContext, { catchUp, ...options }: SetupOptions = {}) {
  const log = new CapturedLog('warn');
  const clock = new ManualClock();
  const store = await FileLedgerStore.open({ dir: await tempDir(t), logger: log.logger });
  if (catchUp) Object.assign(store, { catchUp });
  const ledger = await Ledger.open({ store, clock, logger: log.logger });
  const target = new MemoryTarget({ name: 'm', ...options });
  const reconciler = new TargetReconciler({
    ledgerTarget: T,
    list: 'm',
    target,
    ledger,
    clock,
    logger: log.logger,
    intervalMs: 10 * MINUTE,
    concurrency: 4,
    foreignPolicy: 'keep',
    adoptBantimeMs: MINUTE,
    adoptionRefusal: () => null,
    killConnections: false,
    retry: { retries: 1, minTimeoutMs: 1, maxTimeoutMs: 5 },
  });
  t.after(async () => {
    await reconciler.stop();
    await ledger.close();
  });
  return { log, clock, ledger, target, reconciler };
}

const ban = (address: string, durationMs: number | null = 10 * MINUTE, jail = 'dovecot') => ({ target: T, address, jail, origin: 'jail' as const, durationMs });

test('a ban the backend cannot hold (canonical null) is reported in the pass, in status and once in the log, never dropped silently', async (t) => {
  const noIpv6 = (a: string) => (a.includes(':') ? null : parsePfAddress(a).text);
  const s = await setup(t, { canonical: noIpv6 });
  await s.ledger.ban(ban('192.0.2.1'));
  await s.ledger.ban(ban('2001:db8::1'));
  const pass = await s.reconciler.start();
  assert.deepEqual(pass.unholdable, ['2001:db8::1']);
  assert.equal(pass.ok, false, 'not converged while a ban is not enforced');
  assert.deepEqual(s.target.addresses(), ['192.0.2.1']);
  assert.deepEqual(s.reconciler.status().rejected, ['2001:db8::1']);
  await s.ledger.ban(ban('2001:db8::2'));
  await s.reconciler.runFullPass();
  assert.deepEqual(s.reconciler.status().rejected.sort(), ['2001:db8::1', '2001:db8::2']);
  assert.equal(s.log.atLevel(50).filter((e) => /cannot hold this ban/.test(String(e.msg))).length, 2, 'one error line per address, not per pass');
  await s.ledger.unban({ address: '2001:db8::2' });
  assert.deepEqual(s.reconciler.status().rejected, ['2001:db8::1'], 'an ended ban is no longer reported');
});

test("backends with native expiry get the ban's end; others get null; both get a comment naming the jails", async (t) => {
  for (const nativeExpiry of [true, false]) {
    const s = await setup(t, { capabilities: { nativeExpiry } });
    await s.reconciler.start();
    const claim = await s.ledger.ban(ban('198.51.100.7', 5 * MINUTE, 'postfix'));
    await s.ledger.ban(ban('198.51.100.8', null));
    await s.reconciler.idle();
    const sent = s.target.entries.get('198.51.100.7')?.entry;
    assert.equal(sent?.expiresAt, nativeExpiry ? claim.expiresAt : null);
    assert.match(sent?.comment ?? '', /postfix/);
    assert.equal(s.target.entries.get('198.51.100.8')?.entry?.expiresAt, null, 'permanent');
  }
});

test("an entry the backend marks as edgeban's is removed though the ledger never knew it; unmarked ones it never banned stay", async (t) => {
  const s = await setup(t, { capabilities: { comments: true } });
  s.target.seed(['203.0.113.1'], true);
  s.target.seed(['203.0.113.2'], false);
  s.target.seed(['203.0.113.3'], null);
  const pass = await s.reconciler.start();
  await s.reconciler.idle();
  assert.deepEqual(pass.remove, ['203.0.113.1']);
  assert.deepEqual(pass.foreign.sort(), ['203.0.113.2', '203.0.113.3']);
  assert.deepEqual(s.target.addresses(), ['203.0.113.2', '203.0.113.3']);
  await s.ledger.ban(ban('203.0.113.4', MINUTE));
  await s.reconciler.idle();
  assert.equal(s.target.entries.get('203.0.113.4')?.owned, true, 'what edgeban adds carries its mark');
});

test('a spelling that folds bans together (IPv6 to its /64) keeps the entry until the last of them ends', async (t) => {
  const to64 = (a: string) => {
    const p = parsePfAddress(a);
    return p.family === 4 ? p.text : parsePfAddress(`${p.text.split('/')[0]}/64`).text;
  };
  const s = await setup(t, { canonical: to64 });
  await s.reconciler.start();
  await s.ledger.ban(ban('2001:db8:1:2::5', 2 * MINUTE));
  await s.ledger.ban(ban('2001:db8:1:2::6', 5 * MINUTE));
  await s.reconciler.idle();
  assert.deepEqual(s.target.addresses(), ['2001:db8:1:2::/64']);
  await s.clock.advance(3 * MINUTE);
  await s.reconciler.idle();
  assert.deepEqual(s.target.addresses(), ['2001:db8:1:2::/64'], 'the other ban still holds it');
  assert.equal(s.reconciler.holdsForeign('2001:db8:1:2::6'), false);
  await s.clock.advance(3 * MINUTE);
  await s.reconciler.idle();
  assert.deepEqual(s.target.addresses(), []);
});

test('a shared ledger that cannot catch up during a pass leaves the target unreachable (retried with backoff), not degraded until the next interval', async (t) => {
  let redisDown = true;
  // A shared store's catch-up, as Redis's fails while it does not answer.
  const catchUp = async () => {
    if (redisDown) throw new Error('the shared ledger did not catch up with Redis within 10000 ms: connect ECONNREFUSED');
  };
  const { clock, ledger, target, reconciler } = await setup(t, { catchUp });
  await ledger.ban(ban('192.0.2.10'));
  const first = await reconciler.start();
  assert.equal(first.ok, false);
  assert.equal(reconciler.status().state, 'unreachable', 'an outage of the ledger, retried soon; nothing for an operator to fix on the target');
  redisDown = false;
  // The retry comes after a backoff of seconds, well within the 10-minute interval.
  await clock.advance(5_000);
  await reconciler.idle();
  assert.equal(reconciler.status().state, 'in-sync');
  assert.deepEqual(target.addresses(), ['192.0.2.10']);
});
