import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endRefusedBans } from '../../src/control/ledger-handlers.ts';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const T = 'fail2ban_blocklist';

test('bans of a jail that is not running now keep what only its settings allowed (ipv6prefix, banprivate); protected addresses still end', async (t) => {
  const clock = new ManualClock();
  const store = await FileLedgerStore.open({ dir: await tempDir(t), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock, logger: silentLogger() });
  t.after(() => ledger.close());
  const ban = (address: string, jail: string) => ledger.ban({ target: T, address, jail, origin: 'jail', durationMs: 3_600_000 });
  await ban('2001:db8:5::/64', 'dovecot6'); // the jail had ipv6prefix = 64
  await ban('10.0.0.5', 'internal'); // the jail had banprivate = true
  await ban('127.0.0.1', 'internal'); // never allowed, whatever the jail said
  await ban('10.0.0.6', 'manual'); // a ban without a jail never had banprivate
  const facts = { selfAddresses: [], gateways: [], firewallAddresses: [] };
  // Neither jail runs now (disabled, or its filter is missing): no settings for them.
  const ended = await endRefusedBans(ledger, { jail: () => null, manualTarget: () => T, facts: () => facts }, silentLogger());
  assert.equal(ended, 2);
  assert.deepEqual(
    ledger
      .activeClaims()
      .map((c) => `${c.jail} ${c.address}`)
      .sort(),
    ['dovecot6 2001:db8:5::/64', 'internal 10.0.0.5'],
  );
});
