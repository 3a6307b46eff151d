// edgeban_bans_total / edgeban_unbans_total from a real ledger's changes, edgeban_build_info and
// edgeban_jail_running from the sources.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { EdgebanMetrics } from '../../src/metrics/edgeban-metrics.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { CapturedLog } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { parseExposition, select, sampleValue } from './prom-text.ts';

test('bans and unbans are counted per jail, family and reason; one ban into two targets counts once', async (t) => {
  const log = new CapturedLog('warn');
  const clock = new ManualClock();
  const ledger = await Ledger.open({ store: await FileLedgerStore.open({ dir: await tempDir(t), logger: log.logger }), clock, logger: log.logger });
  t.after(() => ledger.close());
  const running = [
    { jail: 'dovecot', running: true },
    { jail: 'nginx', running: false },
  ];
  const metrics = new EdgebanMetrics(
    { activeClaims: () => ledger.activeClaims(), targets: () => [], jails: () => running },
    { processMetrics: false, version: '9.9.9' },
  );
  ledger.onChange((changes) => metrics.ledgerChanged(ledger, changes, clock.now()));

  const ban = (target: string, address: string, jail: string, durationMs: number) => ({ target, address, jail, origin: 'jail' as const, durationMs });
  await ledger.banMany([ban('fw1', '192.0.2.1', 'dovecot', 60_000), ban('fw2', '192.0.2.1', 'dovecot', 60_000)]);
  await ledger.ban(ban('fw1', '2001:db8::5', 'dovecot', 600_000));
  await ledger.ban(ban('fw1', '198.51.100.9', 'postfix', 600_000));
  await ledger.unban({ address: '198.51.100.9' });
  await clock.advance(61_000); // 192.0.2.1 expires in both targets

  const samples = parseExposition((await metrics.scrape()).body);
  assert.equal(sampleValue(samples, 'edgeban_bans_total', { jail: 'dovecot', family: 'ipv4' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_bans_total', { jail: 'dovecot', family: 'ipv6' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_bans_total', { jail: 'postfix', family: 'ipv4' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_unbans_total', { jail: 'postfix', reason: 'unbanned' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_unbans_total', { jail: 'dovecot', reason: 'expired' }), 1);
  assert.equal(select(samples, 'edgeban_unbans_total', { jail: 'dovecot', reason: 'unbanned' }).length, 0);
  assert.equal(sampleValue(samples, 'edgeban_build_info', { version: '9.9.9' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_jail_running', { jail: 'dovecot' }), 1);
  assert.equal(sampleValue(samples, 'edgeban_jail_running', { jail: 'nginx' }), 0);
});
