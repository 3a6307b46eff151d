// The target contract for the feed kind: its "backend" is the HTTP route, so the list is read over
// HTTP, with the token, from a listener serving the feed kind's board, as a firewall fetches it.
import { createLogger } from '../../src/logging/logger.ts';
import { MetricsServer } from '../../src/metrics/metrics-server.ts';
import { createFeedKind } from '../../src/targets/feed/feed-kind.ts';
import { systemClock } from '../../src/util/clock.ts';
import { countedAtSeam } from './counted-target.ts';
import { runTargetContract } from './target-contract.ts';

const TOKEN = 'feed-contract-token-0123456789';

runTargetContract('feed', async (t) => {
  // A kind of its own per test: its board is this test's feeds (the daemon's is the process's).
  const kind = createFeedKind();
  const options = kind.parseOptions({ name: 'edgeban_contract', token: TOKEN });
  const ledgerTarget = `feed:${kind.identity(options)}`;
  const logger = createLogger({ level: 'silent' });
  // Served from the board alone, not from a ledger: only the reconciler, through the seam, fills it.
  const server = await MetricsServer.start({
    host: '127.0.0.1',
    port: 0,
    logger,
    scrape: async () => ({ contentType: 'text/plain', body: '' }),
    readiness: () => ({ ready: true, reason: null, phase: 'running', targets: [] }),
    feed: { token: () => TOKEN, isTarget: (id) => id === ledgerTarget, document: (id, family) => kind.board.get(id)?.document(family) ?? null },
  });
  t.after(() => server.stop());
  const counter = { now: 0, max: 0 };
  let latencyMs = 0;
  return {
    // The feed lives in edgeban's process: calls complete at once, so the latency is held at the seam to make them overlap.
    connect: () => countedAtSeam(kind.create(options, { clock: systemClock, logger }), counter, () => latencyMs),
    entries: async () => {
      const response = await fetch(`${server.url()}/blocklist/${encodeURIComponent(ledgerTarget)}.txt`, { headers: { authorization: `Bearer ${TOKEN}` } });
      if (response.status !== 200) throw new Error(`the feed answered ${response.status}: ${await response.text()}`);
      return (await response.text()).split('\n').filter((line) => line !== '');
    },
    // A daemon restart is the feed's reboot: the new process's feed starts empty.
    reboot: async () => {
      const feed = kind.board.target(ledgerTarget);
      feed.dropCanonical((await feed.list()).map((e) => e.address));
    },
    setLatency: async (ms) => {
      latencyMs = ms;
    },
    flushes: async () => 0,
    maxInFlight: async () => counter.max,
    resetMaxInFlight: async () => {
      counter.max = counter.now;
    },
    cannot: {
      foreign: "the feed is edgeban's own document: no one else writes to it",
      outage: "the feed is held in edgeban's process: no network or API between the reconciler and it",
      dropAdds: 'an add to the feed is stored when it returns',
    },
  };
});
