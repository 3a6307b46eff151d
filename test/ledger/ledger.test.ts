import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger, type LedgerChange } from '../../src/ledger/ledger.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { InvalidAddressError } from '../../src/net/address.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const T = 'fail2ban_blocklist';

async function open(t: import('node:test').TestContext, clock: ManualClock) {
  const dir = await tempDir(t);
  const store = await FileLedgerStore.open({ dir, logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock, logger: silentLogger() });
  t.after(() => ledger.close());
  return ledger;
}

test('an address banned by two jails stays banned until the last ban ends', async (t) => {
  const clock = new ManualClock();
  const ledger = await open(t, clock);
  await ledger.ban({ target: T, address: '192.0.2.5', jail: 'dovecot', origin: 'jail', durationMs: 60_000 });
  await ledger.ban({ target: T, address: '192.0.2.5', jail: 'postfix', origin: 'jail', durationMs: 600_000 });
  await clock.advance(120_000);
  assert.equal(ledger.isActive(T, '192.0.2.5'), true, 'postfix still bans it');
  await clock.advance(600_000);
  assert.equal(ledger.isActive(T, '192.0.2.5'), false);
});

test('expiry is announced by a timer on the injected clock', async (t) => {
  const clock = new ManualClock();
  const ledger = await open(t, clock);
  const seen: LedgerChange[] = [];
  ledger.onChange((changes) => seen.push(...changes));
  await ledger.ban({ target: T, address: '198.51.100.1', jail: 'j', origin: 'jail', durationMs: 30_000 });
  await ledger.ban({ target: T, address: '198.51.100.2', jail: 'j', origin: 'jail', durationMs: 90_000 });
  seen.length = 0;
  await clock.advance(31_000);
  assert.deepEqual(seen, [{ target: T, address: '198.51.100.1' }]);
  await clock.advance(60_000);
  assert.deepEqual(
    seen.map((c) => c.address),
    ['198.51.100.1', '198.51.100.2'],
  );
});

test("a repeat ban counts the repeat, and a manual unban ends every jail's claim", async (t) => {
  const clock = new ManualClock();
  const ledger = await open(t, clock);
  await ledger.ban({ target: T, address: '203.0.113.9', jail: 'sshd', origin: 'jail', durationMs: 1000 });
  await clock.advance(2000);
  const again = await ledger.ban({ target: T, address: '203.0.113.9', jail: 'sshd', origin: 'jail', durationMs: 1000 });
  assert.equal(again.banCount, 2);
  await ledger.ban({ target: T, address: '203.0.113.9', jail: 'nginx', origin: 'jail', durationMs: null });
  assert.equal(await ledger.unban({ address: '203.0.113.9' }), 2);
  assert.equal(ledger.isActive(T, '203.0.113.9'), false);
});

test('addresses are stored in pf spelling, and an invalid one is refused before anything is written', async (t) => {
  const clock = new ManualClock();
  const ledger = await open(t, clock);
  const claim = await ledger.ban({ target: T, address: '2001:DB8:0:0:0:0:0:AB/128', jail: 'j', origin: 'manual', durationMs: null });
  assert.equal(claim.address, '2001:db8::ab');
  await assert.rejects(ledger.ban({ target: T, address: 'mail.example.org', jail: 'j', origin: 'manual', durationMs: null }), InvalidAddressError);
  assert.equal(ledger.activeClaims().length, 1);
});
