import type { Ledger } from '../src/ledger/ledger.ts';
import { silentLogger } from '../src/logging/logger.ts';
import { MetricsServer } from '../src/metrics/metrics-server.ts';
import { LedgerFeeds } from '../src/targets/feed/ledger-feeds.ts';
import { OpnsenseAdminClient } from '../src/targets/opnsense/admin-client.ts';
import { durableSource } from '../src/setup/feed-check.ts';
import type { SimulatorProcess } from './processes.ts';

const ADMIN_KEY = 'benchDurableAdminKey0123456789abcdef';
const ADMIN_SECRET = 'benchDurableAdminSecret0123456789abcdef';
const TOKEN = 'bench-durable-feed-token-0123456789';

export interface DurableRestore {
  /** alias/reconfigure that made the URL table fetch the whole feed and load it. */
  firstFetchSeconds: number;
  /** The reboot call, after which the table holds what it held (from OPNsense's cache). */
  rebootSeconds: number;
  restored: number;
  /** API calls edgeban made to bring the bans back: none, the firewall did it. */
  edgebanCalls: number;
  /** A refresh whose TTL passed: fetch the feed again, `pfctl -T replace`. */
  refreshSeconds: number;
}

/**
 * Durable mode (deploy/opnsense-durable.md) on the simulator process: the ledger's bans served by
 * the daemon's own listener code as the pull feed, a URL Table alias `table` fetching it with the
 * feed token, then a reboot. What is timed is the simulator's work; on a real OPNsense the boot
 * load is one `pfctl -T replace -f` of the cached file, and edgeban makes no call at all.
 */
export async function durableRestore(sim: SimulatorProcess, ledger: Ledger, target: string, table: string): Promise<DurableRestore> {
  await sim.admin('keys', { key: ADMIN_KEY, secret: ADMIN_SECRET, privileges: ['page-all'], user: 'bench-admin' });
  const feeds = new LedgerFeeds(ledger, () => [target]);
  // The listener as the daemon runs it (any free loopback port), only its feed route used.
  const listener = await MetricsServer.start({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    scrape: () => Promise.resolve({ contentType: 'text/plain', body: '' }),
    readiness: () => ({ ready: true, reason: null, phase: 'running', targets: [] }),
    feed: { token: () => TOKEN, isTarget: (id) => feeds.isTarget(id), document: (id, family) => feeds.document(id, family) },
  });
  const client = new OpnsenseAdminClient({
    endpoint: { url: sim.url, key: ADMIN_KEY, secret: ADMIN_SECRET, ca: null, tlsInsecure: false, timeoutMs: 600_000 },
    logger: silentLogger(),
    connections: 2,
  });
  try {
    const source = durableSource(`${listener.url()}/blocklist/${encodeURIComponent(target)}.txt`, TOKEN, 1);
    await client.createUrlTableAlias(table, source, 'bench: durable mode');
    let started = performance.now();
    await client.reconfigureAliases();
    const firstFetchSeconds = (performance.now() - started) / 1000;
    await sim.admin('clear-calls', {});
    started = performance.now();
    await sim.admin('reboot', {});
    const rebootSeconds = (performance.now() - started) / 1000;
    const state = await sim.admin<{ tables: Record<string, string[]>; calls: number }>('state');
    const restored = state.tables[table]?.length ?? 0;
    started = performance.now();
    await sim.admin('refresh-aliases', { expire: true });
    const refreshSeconds = (performance.now() - started) / 1000;
    return { firstFetchSeconds, rebootSeconds, restored, edgebanCalls: state.calls, refreshSeconds };
  } finally {
    await client.close();
    await listener.stop();
    feeds.close();
  }
}
