import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { FileLedgerStore } from '../src/ledger/file-ledger-store.ts';
import { Ledger } from '../src/ledger/ledger.ts';
import { silentLogger } from '../src/logging/logger.ts';
import { toPfSpelling } from '../src/net/address.ts';
import { TargetReconciler } from '../src/targets/target-reconciler.ts';
import { OpnsenseClient } from '../src/targets/opnsense/client.ts';
import { OpnsenseTarget } from '../src/targets/opnsense/target.ts';
import { systemClock } from '../src/util/clock.ts';
import { grouped, type BenchResult } from './bench-result.ts';
import { startSimulatorProcess } from './processes.ts';
import { durableRestore } from './restore-durable.ts';

const ALIAS = 'fail2ban_blocklist';
/** The durable-mode URL table, beside the External alias on the same simulator. */
const DURABLE_ALIAS = 'fail2ban_durable';

export interface RestoreOptions {
  bans: number;
  /**
   * Adds the ideal client makes (its rate is steady after the first second, and at the lock's
   * 500 adds/s a full 100,000 would cost the suite another 200 s); capped at `bans`.
   */
  idealBans: number;
  latencyMs: number;
  lockMs: number;
  concurrency: number;
}

/** Documentation-space addresses: 2001:db8::/32 holds as many as any benchmark needs. */
function addresses(count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(toPfSpelling(`2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`));
  return out;
}

/**
 * OPNsense rebooted (External tables emptied) while the ledger holds `bans` bans: how fast does
 * edgeban put them back, next to an ideal client on the same simulator in the same run? The
 * simulator runs as its own process, as the firewall would, so it does not share an event loop.
 */
export async function runRestoreBenchmark(options: RestoreOptions): Promise<BenchResult> {
  const sim = await startSimulatorProcess({ latencyMs: options.latencyMs, lockMs: options.lockMs, tableEntries: Math.max(1_000_000, options.bans * 2) });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-restore-'));
  const list = addresses(options.bans);
  const idealBans = Math.min(options.bans, options.idealBans);
  try {
    const ideal = await idealClient(sim.url, sim.key, sim.secret, list.slice(0, idealBans), 32);
    await sim.admin('reboot', {});
    await sim.admin('reset-max-in-flight', {});

    const store = await FileLedgerStore.open({ dir: dataDir, logger: silentLogger() });
    const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
    await ledger.banMany(list.map((address) => ({ target: ALIAS, address, jail: 'bench', origin: 'jail' as const, durationMs: 86_400_000 })));
    const client = new OpnsenseClient({
      endpoint: { url: sim.url, key: sim.key, secret: sim.secret, ca: null, tlsInsecure: false, timeoutMs: 30_000 },
      logger: silentLogger(),
      connections: options.concurrency + 4,
    });
    const reconciler = new TargetReconciler({
      ledgerTarget: ALIAS,
      list: ALIAS,
      target: new OpnsenseTarget(client, ALIAS),
      ledger,
      clock: systemClock,
      logger: silentLogger(),
      intervalMs: 3_600_000,
      concurrency: options.concurrency,
      foreignPolicy: 'keep',
      adoptBantimeMs: 600_000,
      adoptionRefusal: () => null,
      killConnections: false,
    });
    const started = performance.now();
    const pass = await reconciler.start();
    const seconds = (performance.now() - started) / 1000;
    await reconciler.stop();
    await client.close();
    const state = await sim.admin<{ tables: Record<string, string[]>; maxInFlight: number }>('state');
    const restored = state.tables[ALIAS]?.length ?? 0;
    if (!pass.ok || restored !== options.bans) throw new Error(`restore incomplete: ${restored}/${options.bans} (${pass.error ?? 'unconfirmed'})`);
    const durable = await durableRestore(sim, ledger, ALIAS, DURABLE_ALIAS);
    await ledger.close();
    if (durable.restored !== options.bans || durable.edgebanCalls !== 0)
      throw new Error(`durable restore incomplete: ${durable.restored}/${options.bans} after the reboot, ${durable.edgebanCalls} API calls`);
    const edgebanRate = options.bans / seconds;
    return {
      summary: [
        {
          figure: `Restore ${grouped(options.bans)} bans into an emptied alias (addresses/s; ${options.latencyMs} ms per call + ${options.lockMs} ms lock)`,
          edgeban: `${grouped(edgebanRate)} (${Math.round((edgebanRate / ideal.rate) * 100)}% of ideal; ${round(seconds)} s)`,
          peer: `ideal client ${grouped(ideal.rate)}; fail2ban + curl actions 1–5 (users report, not measured)`,
        },
        {
          figure: `Restore ${grouped(options.bans)} bans after an OPNsense reboot, durable mode (URL Table fed by edgeban's feed)`,
          edgeban: `all ${grouped(durable.restored)} back at boot from OPNsense's own cache, 0 API calls by edgeban (simulator reboot ${Math.round(durable.rebootSeconds * 1000)} ms)`,
          peer: `alias_util restore by edgeban: ${round(seconds)} s`,
        },
      ],
      name: 'Restore after an OPNsense reboot',
      rows: [
        {
          client: 'ideal (32 keep-alive connections, adds back to back)',
          bans: idealBans,
          seconds: round(ideal.seconds),
          'addresses/s': Math.round(ideal.rate),
          'of ideal': '100%',
          'max in flight': '',
        },
        {
          client: `edgeban full pass (list, ${options.concurrency} concurrent adds, verifying list)`,
          bans: options.bans,
          seconds: round(seconds),
          'addresses/s': Math.round(edgebanRate),
          'of ideal': `${Math.round((edgebanRate / ideal.rate) * 100)}%`,
          'max in flight': state.maxInFlight,
        },
        {
          client: 'fail2ban + curl actions (users report, fail2ban#3088; not measured)',
          bans: options.bans,
          seconds: `${Math.round(options.bans / 5)}–${options.bans}`,
          'addresses/s': '1–5',
          'of ideal': '',
        },
        {
          client: 'OPNsense durable mode: URL Table reloaded from its cache at boot (edgeban makes no call)',
          bans: durable.restored,
          seconds: Math.round(durable.rebootSeconds * 1000) / 1000,
          'addresses/s': Math.round(durable.restored / Math.max(durable.rebootSeconds, 0.001)),
          'of ideal': '',
          'max in flight': 0,
        },
      ],
      notes: [
        `Simulator in its own process: ${options.latencyMs} ms per call plus ${options.lockMs} ms under one global lock per add (OPNsense serializes alias_util add/delete on its config lock), so no client can exceed ${Math.round(1000 / options.lockMs)} adds/s.`,
        'edgeban\'s figure includes listing the emptied alias first and the verifying list after the adds (it does not trust `done`); the ledger is filled before the clock starts. "max in flight" is the simulator\'s own count of concurrent API calls.',
        `Durable mode (deploy/opnsense-durable.md), same simulator and ledger: the bans are served by the daemon's listener code as the pull feed, a URL Table alias fetches them with the feed token (first fetch and load ${Math.round(durable.firstFetchSeconds * 1000)} ms), then the firewall reboots: the table is back from OPNsense's cache in the reboot itself, with no fetch and no call from edgeban. The seconds are the simulator's reboot call; a real OPNsense does it with one \`pfctl -T replace -f\` at boot. A later refresh (fetch ${grouped(options.bans)} lines, replace the table) took ${Math.round(durable.refreshSeconds * 1000)} ms.`,
        ...(idealBans < options.bans
          ? [
              `The ideal client adds the first ${idealBans} of the addresses (its rate is steady after the first second), then the simulator reboots (tables emptied) before edgeban's pass.`,
            ]
          : []),
      ],
    };
  } finally {
    await sim.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function idealClient(url: string, key: string, secret: string, list: readonly string[], connections: number): Promise<{ seconds: number; rate: number }> {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const authorization = `Basic ${Buffer.from(`${key}:${secret}`).toString('base64')}`;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < list.length) {
      const address = list[next++]!;
      const response = await pool.request({
        path: `/api/firewall/alias_util/add/${ALIAS}`,
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: JSON.stringify({ address }),
      });
      await response.body.text();
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  return { seconds, rate: list.length / seconds };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { bans: { type: 'string', default: '100000' }, 'ideal-bans': { type: 'string', default: '25000' } } });
  const result = await runRestoreBenchmark({ bans: Number(values.bans), idealBans: Number(values['ideal-bans']), latencyMs: 20, lockMs: 2, concurrency: 16 });
  console.log(JSON.stringify(result, null, 2));
}
