import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LedgerChange } from '../../src/ledger/ledger.ts';
import { eventsOfChange } from '../../src/notifications/ledger-events.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { CapturedLog, openLedger, TARGET } from './helpers.ts';

test('ledger changes read as events: a ban names its jail; an unban only when the address leaves the alias, one per jail whose claim ended', async (t) => {
  const clock = new ManualClock();
  const ledger = await openLedger(t, clock, new CapturedLog());
  const seen: Array<{ kind: string; jail: string; address: string }> = [];
  ledger.onChange((changes: readonly LedgerChange[]) => {
    for (const change of changes) for (const e of eventsOfChange(ledger, change, clock.now())) seen.push({ kind: e.kind, jail: e.jail, address: e.address });
  });
  const a = '198.51.100.20';
  await ledger.ban({ target: TARGET, address: a, jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await clock.advance(1_000);
  await ledger.ban({ target: TARGET, address: a, jail: 'postfix', origin: 'jail', durationMs: 600_000 });
  await clock.advance(1_000);
  await ledger.unban({ address: a, jail: 'dovecot' });
  assert.deepEqual(
    seen,
    [
      { kind: 'ban', jail: 'dovecot', address: a },
      { kind: 'ban', jail: 'postfix', address: a },
    ],
    "dovecot's claim ending while postfix still bans is no unban",
  );
  await ledger.unban({ address: a });
  assert.deepEqual(seen.at(-1), { kind: 'unban', jail: 'postfix', address: a });

  const b = '198.51.100.21';
  await ledger.ban({ target: TARGET, address: b, jail: 'dovecot', origin: 'jail', durationMs: 60_000 });
  await ledger.ban({ target: TARGET, address: b, jail: 'postfix', origin: 'jail', durationMs: 60_000 });
  seen.length = 0;
  await clock.advance(61_000);
  assert.deepEqual(seen.map((e) => `${e.kind} ${e.jail}`).sort(), ['unban dovecot', 'unban postfix'], 'both expired together');
});
