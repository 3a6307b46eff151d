// The feed kind (`feed[name=…]`, EDGEBAN_FEED_NAME): its targets from jail actions, and the route's
// feeds being the very FeedTargets its reconcilers drive, filled from the ledger when first served.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileLedgerStore } from '../../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../../src/ledger/ledger.ts';
import { createFeedKind, feedKind } from '../../../src/targets/feed/feed-kind.ts';
import { LedgerFeeds } from '../../../src/targets/feed/ledger-feeds.ts';
import { parseTargetAction } from '../../../src/targets/registry.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { CapturedLog } from '../../helpers/enforcement-harness.ts';
import { tempDir } from '../../helpers/temp-dir.ts';

const TOKEN = 'feed-kind-token-0123456789';

test("feed[name=…] and EDGEBAN_FEED_NAME give the ledger target feed:NAME; fail2ban's action parameters are ignored, others refused by key; no feed without EDGEBAN_FEED_TOKEN", () => {
  const env = { EDGEBAN_FEED_TOKEN: TOKEN };
  const spec = parseTargetAction('feed', { name: 'pfsense', port: 'ssh', protocol: 'tcp', chain: 'INPUT' }, env);
  assert.equal(spec.ledgerTarget, 'feed:pfsense');
  assert.deepEqual(spec.secrets, [TOKEN], 'the token is scrubbed from logs');
  assert.equal(parseTargetAction('feed', {}, { ...env, EDGEBAN_FEED_NAME: 'fortigate' }).ledgerTarget, 'feed:fortigate');
  assert.equal(
    parseTargetAction('feed', { name: 'pfsense' }, { ...env, EDGEBAN_FEED_NAME: 'fortigate' }).ledgerTarget,
    'feed:pfsense',
    'the action wins over the env default',
  );
  const refused = (params: Record<string, string>, key: string, withEnv: Record<string, string> = env) =>
    assert.throws(
      () => parseTargetAction('feed', params, withEnv),
      (error: unknown) => (error as { key?: string }).key === key,
      key,
    );
  refused({ name: 'pfsense' }, 'token', {});
  refused({}, 'name');
  refused({ name: 'has/slash' }, 'name');
  refused({ name: 'pfsense', nmae: 'x' }, 'nmae');
});

test("LedgerFeeds serves the feed kind's FeedTarget: made equal to the ledger when first asked, by ledger target or by name alone", async (t) => {
  const log = new CapturedLog('warn');
  const clock = new ManualClock();
  const ledger = await Ledger.open({ store: await FileLedgerStore.open({ dir: await tempDir(t), logger: log.logger }), clock, logger: log.logger });
  t.after(() => ledger.close());
  const kind = createFeedKind();
  const target = kind.create(kind.parseOptions({ name: 'pfsense', token: TOKEN }), { clock, logger: log.logger });
  // A ban made before the feed is served (edgeban just started, its reconciler not through a pass yet).
  await ledger.ban({ target: 'feed:pfsense', address: '192.0.2.80', jail: 'a', origin: 'jail', durationMs: 60_000 });
  // Left on the feed by an earlier ledger (a daemon started again in the same process): not served.
  await target.add({ address: '198.51.100.9', expiresAt: null, comment: '' });
  const feeds = new LedgerFeeds(ledger, () => ['feed:pfsense'], kind.board);
  t.after(() => feeds.close());
  assert.equal(feeds.feed('feed:pfsense'), target, 'the route serves the target the reconciler drives');
  assert.equal(feeds.feed('pfsense'), target);
  assert.equal(feeds.document('pfsense', null)?.body, '192.0.2.80\n');
  await ledger.ban({ target: 'feed:pfsense', address: '192.0.2.81', jail: 'a', origin: 'jail', durationMs: 60_000 });
  assert.equal(feeds.document('pfsense', null)?.body, '192.0.2.80\n192.0.2.81\n');
  await target.delete('192.0.2.80');
  assert.equal(feeds.document('feed:pfsense', null)?.body, '192.0.2.81\n', "the reconciler's delete is served");
  assert.equal(feeds.feed('nothing'), null);
  assert.notEqual(createFeedKind().board, feedKind.board, 'each kind its own board');
});
