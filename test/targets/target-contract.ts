/**
 * The contract every edge backend passes: the reconciler's guarantees, checked through the seam
 * (src/targets/edge-target.ts) against the backend's simulator.
 *
 *   runTargetContract(name: string, makeBackend: (t: TestContext) => Promise<ContractBackend>)
 *
 * `makeBackend` starts the backend's simulator AS A PROCESS where one exists (the OPNsense one is
 * `edgeban simulate`, see test/helpers/cli.ts startCliSimulator), registers its shutdown with
 * `t.after`, and returns a ContractBackend: a way to make EdgeTargets on it (`connect`, called
 * again for an edgeban restart) and out-of-band hooks that read and steer the simulator without
 * going through the seam (entries, foreign seeding, reboot, outage, latency, flush and in-flight
 * counters). `seedForeign`, `setDown` and `dropAdds` may be absent only where the guarantee cannot apply
 * to the backend, with the reason in `cannot`; that test then checks what holds instead. Each guarantee is one `test`: never flush, verify adds, keep / adopt / exclusive,
 * outage then converge, restart, reboot empties the list, concurrency bound. Call it once per
 * backend at the top level of a `*.contract.test.ts` file:
 *
 *   runTargetContract('mikrotik', async (t) => { const sim = await startMikrotikSim(t); return {...}; });
 *
 * Addresses are from documentation ranges; time is a ManualClock (full passes run when the
 * test advances it), so nothing depends on the machine's speed.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { ForeignPolicy } from '../../src/config/env.ts';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import type { EdgeTarget } from '../../src/targets/edge-target.ts';
import { TargetReconciler } from '../../src/targets/target-reconciler.ts';
import { ManualClock, type Clock } from '../../src/util/clock.ts';
import { CapturedLog } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';

export interface ContractBackend {
  /** A new EdgeTarget on the simulator (a fresh client: called again for an edgeban restart). The suite closes it. */
  connect(clock: Clock): EdgeTarget;
  /** What the backend's list holds now, canonical spelling, read out of band. */
  entries(): Promise<string[]>;
  /** Puts entries in the list as another admin would (not edgeban's). Absent: `cannot.foreign` says why. */
  seedForeign?(addresses: readonly string[]): Promise<void>;
  /** Empties the list, as a firewall reboot empties a pf table (or a router loses a dynamic list). */
  reboot(): Promise<void>;
  /** true: every call fails as an outage (connection refused, 5xx); false: the backend answers again. Absent: `cannot.outage` says why. */
  setDown?(down: boolean): Promise<void>;
  /** Delay added to every API call, so concurrent calls overlap (0 = none). */
  setLatency(ms: number): Promise<void>;
  /** Calls that emptied the list wholesale (flush, replace-all); must stay 0. */
  flushes(): Promise<number>;
  /** Adds answer success but store nothing (pf's table full, a router dropping them); false undoes it. Absent: `cannot.dropAdds` says why. */
  dropAdds?(drop: boolean): Promise<void>;
  /**
   * Guarantees that cannot apply to this backend, each with the real reason (a feed has no other
   * writer and no network in between). The test of such a guarantee checks what does hold instead.
   */
  cannot?: { foreign?: string; outage?: string; dropAdds?: string };
  /** Most API calls in flight at once since the last reset. */
  maxInFlight(): Promise<number>;
  resetMaxInFlight(): Promise<void>;
  /**
   * Optional, for backends with native expiry: moves the backend's own clock forward by `ms` (the
   * suite moves its clock, which `connect` was given, by as much). Without it that test is skipped.
   */
  advanceClock?(ms: number): Promise<void>;
}

const LIST = 'edgeban_contract';
const MINUTE = 60_000;
const INTERVAL = 5 * MINUTE;

interface Rig {
  backend: ContractBackend;
  clock: ManualClock;
  ledger: Ledger;
  reconciler: TargetReconciler;
  /** The backend's spellings of ledger addresses (a backend may widen or respell them), sorted. */
  spelled(addresses: Iterable<string>): string[];
  /** Whether the backend can hold this address (its `canonical` is not null). */
  holds(address: string): boolean;
  /** Stops the reconciler, closes target and ledger, opens new ones on the same data (an edgeban restart). */
  restart(): Promise<void>;
}

async function rig(
  t: TestContext,
  makeBackend: (t: TestContext) => Promise<ContractBackend>,
  options: { foreignPolicy?: ForeignPolicy; concurrency?: number } = {},
): Promise<Rig> {
  const backend = await makeBackend(t);
  const clock = new ManualClock();
  const log = new CapturedLog('warn');
  const dir = await tempDir(t);
  const build = async () => {
    const target = backend.connect(clock);
    const store = await FileLedgerStore.open({ dir, logger: log.logger });
    const ledger = await Ledger.open({ store, clock, logger: log.logger });
    const reconciler = new TargetReconciler({
      ledgerTarget: 'contract',
      list: LIST,
      target,
      ledger,
      clock,
      logger: log.logger,
      intervalMs: INTERVAL,
      concurrency: options.concurrency ?? 8,
      foreignPolicy: options.foreignPolicy ?? 'keep',
      adoptBantimeMs: 10 * MINUTE,
      adoptionRefusal: () => null,
      killConnections: false,
      retry: { retries: 2, minTimeoutMs: 5, maxTimeoutMs: 20 },
    });
    return { target, ledger, reconciler };
  };
  let current = await build();
  const close = async () => {
    await current.reconciler.stop();
    await current.target.close();
    await current.ledger.close();
  };
  const r: Rig = {
    backend,
    clock,
    ledger: current.ledger,
    reconciler: current.reconciler,
    spelled: (addresses) => sorted(new Set([...addresses].map((a) => current.target.canonical(a) ?? `unholdable ${a}`))),
    holds: (address) => current.target.canonical(address) !== null,
    async restart() {
      await close();
      current = await build();
      r.ledger = current.ledger;
      r.reconciler = current.reconciler;
    },
  };
  t.after(close);
  return r;
}

/** One guarantee: its body, then the check every test makes (nothing emptied the list), while the simulator still runs. */
function contract(
  title: string,
  makeBackend: (t: TestContext) => Promise<ContractBackend>,
  options: Parameters<typeof rig>[2],
  body: (r: Rig) => Promise<void>,
): void {
  test(title, async (t) => {
    const r = await rig(t, makeBackend, options);
    await body(r);
    await r.reconciler.stop();
    assert.equal(await r.backend.flushes(), 0, 'edgeban emptied the list wholesale');
  });
}

function ban(address: string, durationMs: number | null = 30 * MINUTE, jail = 'contract') {
  return { target: 'contract', address, jail, origin: 'jail' as const, durationMs };
}

function addresses(count: number, offset = 0): string[] {
  return Array.from({ length: count }, (_, i) => `${['192.0.2', '198.51.100', '203.0.113'][Math.floor((i + offset) / 250)]}.${((i + offset) % 250) + 1}`);
}

const sorted = (values: Iterable<string>) => [...values].sort();

/** Advances to the next interval pass and waits for everything it sends. */
async function nextPass(r: Rig): Promise<void> {
  await r.clock.advance(INTERVAL);
  await r.reconciler.idle();
}

/**
 * The foreign-entry tests on a backend that holds nothing but edgeban's (cannot.foreign): every
 * entry it lists is marked edgeban's, so no policy finds anything foreign to keep, adopt or remove.
 */
async function onlyOwnEntries(r: Rig): Promise<void> {
  assert.ok(r.backend.cannot?.foreign, 'a backend without seedForeign says why in cannot.foreign');
  await r.ledger.ban(ban('192.0.2.2'));
  const result = await r.reconciler.start();
  assert.deepEqual(result.foreign, []);
  assert.deepEqual(await r.backend.entries(), ['192.0.2.2']);
  const probe = r.backend.connect(r.clock);
  try {
    assert.deepEqual(await probe.list(), [{ address: '192.0.2.2', owned: true }], "every listed entry is marked edgeban's");
  } finally {
    await probe.close();
  }
}

/** Moves the suite's clock and the backend's own clock forward together. */
async function advanceBoth(r: Rig, ms: number): Promise<void> {
  await r.clock.advance(ms);
  await r.backend.advanceClock?.(ms);
}

export function runTargetContract(name: string, makeBackend: (t: TestContext) => Promise<ContractBackend>): void {
  contract(`${name} contract: a full pass adds every ban and verifies it with a list; an IPv6 ban and a network too`, makeBackend, {}, async (r) => {
    // A backend that holds no single IPv6 address (Cloudflare: /64 or wider) gets what a jail with ipv6prefix = 64 bans.
    const wanted = [...addresses(40), r.holds('2001:db8::7') ? '2001:db8::7' : '2001:db8::/64', '198.51.100.0/24'];
    await r.ledger.banMany(wanted.map((a) => ban(a)));
    const result = await r.reconciler.start();
    assert.equal(result.ok, true, result.error ?? `unconfirmed ${result.unconfirmed.join(', ')}`);
    assert.deepEqual(sorted(result.add), r.spelled(wanted));
    assert.deepEqual(result.unconfirmed, []);
    assert.deepEqual(sorted(await r.backend.entries()), r.spelled(wanted));
    assert.equal(r.reconciler.status().state, 'in-sync');
  });

  contract(
    `${name} contract: adds answered success but not stored are found by the verifying list: degraded until they are stored`,
    makeBackend,
    {},
    async (r) => {
      if (!r.backend.dropAdds) {
        // An add that cannot be lost: it is stored when it answers.
        assert.ok(r.backend.cannot?.dropAdds, 'a backend without dropAdds says why in cannot.dropAdds');
        await r.ledger.banMany(addresses(3, 400).map((a) => ban(a)));
        const result = await r.reconciler.start();
        assert.deepEqual(result.unconfirmed, []);
        assert.deepEqual(sorted(await r.backend.entries()), sorted(addresses(3, 400)));
        return;
      }
      await r.backend.dropAdds(true);
      await r.ledger.banMany(addresses(3, 400).map((a) => ban(a)));
      const result = await r.reconciler.start();
      assert.equal(result.ok, false);
      assert.deepEqual(sorted(result.unconfirmed), sorted(addresses(3, 400)));
      assert.equal(r.reconciler.status().state, 'degraded');
      assert.equal(r.reconciler.status().lastError?.kind, 'not-stored');
      await r.backend.dropAdds(false);
      await nextPass(r);
      assert.deepEqual(sorted(await r.backend.entries()), sorted(addresses(3, 400)));
      assert.equal(r.reconciler.status().state, 'in-sync');
    },
  );

  contract(`${name} contract: bans and unbans between passes reach the list one by one; expiry removes; nothing is flushed`, makeBackend, {}, async (r) => {
    await r.reconciler.start();
    await r.ledger.ban(ban('192.0.2.10', 2 * MINUTE));
    await r.ledger.ban(ban('192.0.2.11', null));
    await r.reconciler.idle();
    assert.deepEqual(sorted(await r.backend.entries()), ['192.0.2.10', '192.0.2.11']);
    await r.ledger.unban({ target: 'contract', address: '192.0.2.11' });
    await r.reconciler.idle();
    assert.deepEqual(await r.backend.entries(), ['192.0.2.10']);
    await r.clock.advance(3 * MINUTE);
    await r.reconciler.idle();
    assert.deepEqual(await r.backend.entries(), []);
  });

  contract(
    `${name} contract: keep leaves foreign entries alone, through passes and edgeban's own removals`,
    makeBackend,
    { foreignPolicy: 'keep' },
    async (r) => {
      if (!r.backend.seedForeign) return onlyOwnEntries(r);
      await r.backend.seedForeign(['203.0.113.200', '2001:db8:ff::/64']);
      await r.ledger.ban(ban('192.0.2.1', MINUTE));
      const result = await r.reconciler.start();
      assert.deepEqual(sorted(result.foreign), ['2001:db8:ff::/64', '203.0.113.200']);
      await nextPass(r);
      assert.deepEqual(sorted(await r.backend.entries()), ['2001:db8:ff::/64', '203.0.113.200']);
      assert.equal(r.reconciler.holdsForeign('203.0.113.200'), true);
    },
  );

  contract(`${name} contract: adopt takes foreign entries on as bans that then expire`, makeBackend, { foreignPolicy: 'adopt' }, async (r) => {
    if (!r.backend.seedForeign) return onlyOwnEntries(r);
    await r.backend.seedForeign(['203.0.113.201']);
    await r.reconciler.start();
    await r.reconciler.idle();
    assert.equal(r.ledger.claimsOf('contract', '203.0.113.201')[0]?.origin, 'adopted');
    await r.clock.advance(11 * MINUTE);
    await r.reconciler.idle();
    assert.deepEqual(await r.backend.entries(), []);
  });

  contract(`${name} contract: exclusive removes foreign entries and never its own bans`, makeBackend, { foreignPolicy: 'exclusive' }, async (r) => {
    if (!r.backend.seedForeign) return onlyOwnEntries(r);
    await r.ledger.ban(ban('192.0.2.2'));
    await r.backend.seedForeign(['203.0.113.202']);
    await r.reconciler.start();
    await r.reconciler.idle();
    assert.deepEqual(await r.backend.entries(), ['192.0.2.2']);
    await r.backend.seedForeign!(['203.0.113.203']);
    await nextPass(r);
    assert.deepEqual(await r.backend.entries(), ['192.0.2.2']);
  });

  contract(`${name} contract: an outage loses no ban; bans made meanwhile are applied when the backend answers`, makeBackend, {}, async (r) => {
    await r.ledger.ban(ban('192.0.2.3'));
    await r.reconciler.start();
    if (!r.backend.setDown) {
      // Nothing between edgeban and the list to fail: every ban is applied at once, none waits.
      assert.ok(r.backend.cannot?.outage, 'a backend without setDown says why in cannot.outage');
      await r.ledger.banMany(addresses(10, 100).map((a) => ban(a)));
      await r.reconciler.idle();
      assert.deepEqual(sorted(await r.backend.entries()), sorted(['192.0.2.3', ...addresses(10, 100)]));
      assert.equal(r.reconciler.status().state, 'in-sync');
      assert.equal(r.reconciler.status().pending, 0);
      return;
    }
    await r.backend.setDown(true);
    await r.ledger.banMany(addresses(10, 100).map((a) => ban(a)));
    await r.reconciler.idle();
    assert.equal(r.reconciler.status().state, 'unreachable');
    assert.ok(r.reconciler.status().pending > 0, 'bans wait in the queue');
    await r.backend.setDown(false);
    await nextPass(r);
    assert.deepEqual(sorted(await r.backend.entries()), sorted(['192.0.2.3', ...addresses(10, 100)]));
    assert.equal(r.reconciler.status().state, 'in-sync');
    assert.equal(r.reconciler.status().pending, 0);
  });

  contract(`${name} contract: an edgeban restart restores what is missing and removes bans that ended while it was down`, makeBackend, {}, async (r) => {
    await r.ledger.ban(ban('192.0.2.4', 2 * MINUTE));
    await r.ledger.ban(ban('192.0.2.5'));
    await r.reconciler.start();
    await r.restart();
    await advanceBoth(r, 3 * MINUTE); // 192.0.2.4 ends while edgeban is down
    await r.ledger.ban(ban('192.0.2.6'));
    const result = await r.reconciler.start();
    await r.reconciler.idle();
    assert.equal(result.ok, true, result.error ?? '');
    // A backend with its own expiry (advanceClock) has dropped it already; the others hold it for edgeban to remove.
    assert.deepEqual(result.remove, r.backend.advanceClock ? [] : ['192.0.2.4']);
    assert.deepEqual(sorted(await r.backend.entries()), ['192.0.2.5', '192.0.2.6']);
  });

  contract(`${name} contract: a reboot that empties the list is repaired by the next full pass`, makeBackend, {}, async (r) => {
    const wanted = addresses(30, 200);
    await r.ledger.banMany(wanted.map((a) => ban(a)));
    await r.reconciler.start();
    await r.backend.reboot();
    assert.deepEqual(await r.backend.entries(), []);
    await nextPass(r);
    assert.deepEqual(sorted(await r.backend.entries()), sorted(wanted));
    assert.deepEqual(sorted(r.reconciler.status().lastSuccess?.add ?? []), sorted(wanted));
  });

  contract(
    `${name} contract: native expiry: a longer re-ban or a permanent ban over a timed one reaches the backend, which then keeps the entry without edgeban`,
    makeBackend,
    {},
    async (r) => {
      if (!r.backend.advanceClock) return;
      await r.reconciler.start();
      await r.ledger.banMany([ban('192.0.2.30', 10 * MINUTE), ban('192.0.2.31', 10 * MINUTE), ban('2001:db8::31', 10 * MINUTE)]);
      await r.reconciler.idle();
      await r.ledger.ban(ban('192.0.2.30', 60 * MINUTE)); // bantime.increment, or a manual ban with a longer time
      await r.ledger.ban(ban('192.0.2.31', null)); // a permanent ban over a timed one
      await r.ledger.ban(ban('2001:db8::31', 60 * MINUTE, 'other-jail')); // a second jail's longer ban
      await r.reconciler.idle();
      // edgeban stops: only the backend's own expiry decides from here (no full pass re-adds anything).
      await r.reconciler.stop();
      await advanceBoth(r, 15 * MINUTE);
      assert.deepEqual(
        sorted(await r.backend.entries()),
        ['192.0.2.30', '192.0.2.31', '2001:db8::31'],
        'the backend dropped an extended ban at its old expiry',
      );
      await advanceBoth(r, 50 * MINUTE);
      assert.deepEqual(await r.backend.entries(), ['192.0.2.31'], 'the extended bans end at their new expiry; the permanent one stays');
    },
  );

  contract(`${name} contract: native expiry: a full pass re-sends an entry whose ban grew while the reconciler was standing by`, makeBackend, {}, async (r) => {
    if (!r.backend.advanceClock) return;
    await r.reconciler.start();
    await r.ledger.ban(ban('192.0.2.40', 10 * MINUTE));
    await r.reconciler.idle();
    // A cluster follower records the longer ban but sends nothing; leader again, its full pass must send the new expiry.
    r.reconciler.standBy();
    await r.ledger.ban(ban('192.0.2.40', 60 * MINUTE));
    const result = await r.reconciler.start();
    assert.equal(result.ok, true, result.error ?? '');
    await r.reconciler.idle();
    await r.reconciler.stop();
    await advanceBoth(r, 15 * MINUTE);
    assert.deepEqual(await r.backend.entries(), ['192.0.2.40'], 'the backend dropped the ban at the expiry it was first sent with');
  });

  contract(
    `${name} contract: native expiry: after a restart, an entry whose ban grew while edgeban was down (an offline \`edgeban ban\`) is sent again`,
    makeBackend,
    {},
    async (r) => {
      if (!r.backend.advanceClock) return;
      await r.ledger.ban(ban('192.0.2.50', 10 * MINUTE));
      await r.reconciler.start();
      await r.reconciler.idle();
      await r.restart();
      await r.ledger.ban(ban('192.0.2.50', 60 * MINUTE)); // recorded while no reconciler runs
      const result = await r.reconciler.start();
      assert.equal(result.ok, true, result.error ?? '');
      await r.reconciler.idle();
      await r.reconciler.stop();
      await advanceBoth(r, 15 * MINUTE);
      assert.deepEqual(await r.backend.entries(), ['192.0.2.50'], 'the backend dropped the ban at the expiry the previous edgeban sent');
    },
  );

  contract(`${name} contract: at most 3 (the concurrency setting) calls in flight, whatever the burst`, makeBackend, { concurrency: 3 }, async (r) => {
    await r.reconciler.start();
    await r.backend.setLatency(20);
    await r.backend.resetMaxInFlight();
    const burst = addresses(24, 300);
    await r.ledger.banMany(burst.map((a) => ban(a)));
    await r.reconciler.idle();
    await r.backend.setLatency(0);
    assert.deepEqual(sorted(await r.backend.entries()), sorted(burst));
    const most = await r.backend.maxInFlight();
    assert.ok(most <= 3, `${most} calls in flight at once`);
    assert.ok(most >= 2, `calls overlapped (${most}): the bound was exercised`);
  });
}
