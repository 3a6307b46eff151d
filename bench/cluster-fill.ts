import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ledger } from '../src/ledger/ledger.ts';
import { RedisLedgerStore } from '../src/ledger/redis-ledger-store.ts';
import { silentLogger } from '../src/logging/logger.ts';
import { toPfSpelling } from '../src/net/address.ts';
import { systemClock } from '../src/util/clock.ts';
import { parseArgs } from 'node:util';
import { grouped, type BenchResult } from './bench-result.ts';
import { envArguments, takeHeapSnapshot, withHeapSnapshotSignal } from './memory.ts';
import { cpuSeconds, mib, procMemory, sleep, startDaemonProcess, startSimulatorProcess, stopChild, waitForLine, type DaemonProcess } from './processes.ts';

const ALIAS = 'fail2ban_blocklist';

export interface ClusterFillOptions {
  /** Bans in the shared ledger that the replicas put into the empty alias. */
  bans: number;
  /** Active bans held by the replica whose memory is measured. */
  rssBans: number;
  latencyMs: number;
  lockMs: number;
  /** Extra environment of the replica whose memory is measured (NODE_OPTIONS, MALLOC_ARENA_MAX…), to try settings. */
  daemonEnv?: Record<string, string>;
  /** Where that replica writes a heap snapshot once its RSS is read (none when unset). */
  heapSnapshotDir?: string;
}

/**
 * The Redis ledger with several `edgeban run` replicas (processes, as on several hosts) against
 * one simulator process: the time to fill an empty alias with `bans` bans already in the shared
 * ledger with 1 and with 3 replicas (only the leader of the alias sends adds, so 3 must not be
 * slower than 1), and the resident memory of a replica holding `rssBans` active bans.
 */
export async function runClusterFillBenchmark(options: ClusterFillOptions): Promise<BenchResult> {
  const redis = await startRedis();
  const rows: Array<Record<string, string | number>> = [];
  try {
    const fills: Record<number, Fill> = {};
    for (const replicas of [1, 3]) {
      const prefix = `bench-fill-${replicas}:`;
      await fillLedger(redis.url, prefix, options.bans);
      fills[replicas] = await timeFill(redis.url, prefix, replicas, options);
      rows.push({
        measure: `fill an empty alias, ${grouped(options.bans)} bans`,
        replicas,
        seconds: round(fills[replicas]!.seconds),
        'first to last add, s': round(fills[replicas]!.sendingSeconds),
        'adds/s': grouped(options.bans / fills[replicas]!.seconds),
        'adds sent': grouped(fills[replicas]!.adds),
      });
    }
    const memory = await replicaMemory(redis.url, 'bench-rss:', options);
    rows.push({
      measure: `RSS of a replica holding ${grouped(options.rssBans)} active bans (Redis ledger)`,
      replicas: 1,
      seconds: '',
      'first to last add, s': '',
      'adds/s': '',
      'adds sent': '',
      'RSS MiB': memory.rss,
      'peak MiB': memory.hwm,
    });
    const one = fills[1]!;
    const three = fills[3]!;
    return {
      name: `Cluster: fill an empty alias from the Redis ledger (1 and 3 replicas), and a replica's memory`,
      summary: [
        {
          figure: `Fill an empty alias with ${grouped(options.bans)} bans from the Redis ledger (s; ${options.latencyMs} ms per call + ${options.lockMs} ms lock)`,
          edgeban: `1 replica ${round(one.seconds)} (adds over ${round(one.sendingSeconds)}), 3 replicas ${round(three.seconds)} (adds over ${round(three.sendingSeconds)}; ${grouped(three.adds)} adds)`,
          peer: 'before the leader lease: 3 replicas 3.3× slower than 1 (21.0 s vs 68.5 s for 50,000 bans, issue 14, other simulator settings)',
        },
        {
          figure: `RSS of a replica holding ${grouped(options.rssBans)} active bans (Redis ledger)`,
          edgeban: `${memory.rss} MiB (peak ${memory.hwm})`,
          peer: 'before: 280–530 MB with 50,000 bans (issue 14)',
        },
      ],
      rows,
      notes: [
        'Every replica is an `edgeban run` process with its own data dir; the simulator is its own process; Redis is a local redis-server (appendonly, appendfsync always).',
        'Fill time: from starting the replicas (start-up and the lease election included) until the alias holds every ban; "first to last add" is the span of the add calls at the simulator; "adds sent" counts them (one per ban when only the leader sends).',
      ],
    };
  } finally {
    await redis.stop();
  }
}

/** Writes `count` active bans into the shared ledger under `prefix`, as replicas would have. */
async function fillLedger(url: string, prefix: string, count: number): Promise<void> {
  const store = await RedisLedgerStore.open({ url, prefix, logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
  const all = addresses(count);
  for (let i = 0; i < all.length; i += 1000) {
    await ledger.banMany(all.slice(i, i + 1000).map((address) => ({ target: ALIAS, address, jail: 'bench', origin: 'jail' as const, durationMs: 86_400_000 })));
  }
  await ledger.close();
}

async function startReplicas(
  url: string,
  prefix: string,
  count: number,
  sim: Awaited<ReturnType<typeof startSimulatorProcess>>,
  daemonEnv: Record<string, string> = {},
): Promise<{ daemons: DaemonProcess[]; roots: string[] }> {
  const roots: string[] = [];
  for (let i = 0; i < count; i++) roots.push(await mkdtemp(path.join(tmpdir(), 'edgeban-bench-cluster-')));
  const daemons = await Promise.all(
    roots.map(async (root) => {
      const log = path.join(root, 'mail.log');
      await writeFile(log, '');
      return startDaemonProcess(root, sim, `[dovecot]\nenabled = true\nlogpath = ${log}\nmaxretry = 5\nbantime = 1h\n`, {
        EDGEBAN_LEDGER: 'redis',
        EDGEBAN_REDIS_URL: url,
        EDGEBAN_REDIS_PREFIX: prefix,
        EDGEBAN_RECONCILE_INTERVAL: '3600',
        ...daemonEnv,
      });
    }),
  );
  return { daemons, roots };
}

interface Fill {
  seconds: number;
  sendingSeconds: number;
  adds: number;
}

async function timeFill(url: string, prefix: string, replicas: number, options: ClusterFillOptions): Promise<Fill> {
  const sim = await startSimulatorProcess({ latencyMs: options.latencyMs, lockMs: options.lockMs, tableEntries: Math.max(1_000_000, options.bans * 2) });
  let started: { daemons: DaemonProcess[]; roots: string[] } | null = null;
  try {
    const t0 = performance.now();
    started = await startReplicas(url, prefix, replicas, sim);
    await untilAliasHolds(sim, options.bans);
    const seconds = (performance.now() - t0) / 1000;
    const adds = (await sim.admin<Array<{ path: string; at: number }>>('calls')).filter((c) => c.path.includes('/alias_util/add/'));
    let first = Infinity;
    let last = -Infinity;
    for (const call of adds) {
      first = Math.min(first, call.at);
      last = Math.max(last, call.at);
    }
    return { seconds, sendingSeconds: adds.length === 0 ? 0 : (last - first) / 1000, adds: adds.length };
  } finally {
    await stopAll(started);
    await sim.stop();
  }
}

async function replicaMemory(
  url: string,
  prefix: string,
  options: ClusterFillOptions,
): Promise<{ rss: number; hwm: number; startMs: number; cpuSeconds: number }> {
  await fillLedger(url, prefix, options.rssBans);
  const sim = await startSimulatorProcess({ tableEntries: Math.max(1_000_000, options.rssBans * 2) });
  let started: { daemons: DaemonProcess[]; roots: string[] } | null = null;
  try {
    const { daemonEnv = {}, heapSnapshotDir } = options;
    started = await startReplicas(url, prefix, 1, sim, heapSnapshotDir === undefined ? daemonEnv : withHeapSnapshotSignal(daemonEnv, heapSnapshotDir));
    // Enforcing them all (the alias listed and filled) is the steady state whose memory counts.
    await untilAliasHolds(sim, options.rssBans);
    // Settled as the file-ledger daemon in bench/memory.ts is: past the daemon's first quiet check (5 s) after the fill.
    await sleep(12_000);
    const memory = await procMemory(started.daemons[0]!.child.pid);
    if (memory === null) throw new Error('the replica exited');
    const cpu = await cpuSeconds(started.daemons[0]!.child.pid);
    if (heapSnapshotDir !== undefined) await takeHeapSnapshot(started.daemons[0]!.child, heapSnapshotDir);
    return { rss: mib(memory.rss), hwm: mib(memory.hwm), startMs: started.daemons[0]!.startMs, cpuSeconds: cpu };
  } finally {
    await stopAll(started);
    await sim.stop();
  }
}

async function untilAliasHolds(sim: Awaited<ReturnType<typeof startSimulatorProcess>>, count: number): Promise<void> {
  const deadline = performance.now() + 30 * 60_000;
  for (;;) {
    const state = await sim.admin<{ tables: Record<string, string[]> }>('state');
    if ((state.tables[ALIAS]?.length ?? 0) >= count) return;
    if (performance.now() > deadline) throw new Error(`the alias holds ${state.tables[ALIAS]?.length ?? 0} of ${count} after 30 min`);
    await sleep(250);
  }
}

async function stopAll(started: { daemons: DaemonProcess[]; roots: string[] } | null): Promise<void> {
  if (!started) return;
  await Promise.all(started.daemons.map((d) => d.stop()));
  await Promise.all(started.roots.map((root) => rm(root, { recursive: true, force: true })));
}

/** Documentation-space addresses: 2001:db8::/32 holds as many as any benchmark needs. */
function addresses(count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(toPfSpelling(`2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`));
  return out;
}

/** A local redis-server (AOF, fsync always, as deployed) on a free loopback port. */
async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-redis-'));
  const port = await freePort();
  let child: ChildProcess;
  try {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
  } catch (error) {
    throw new Error(`redis-server could not be started (is it installed?): ${(error as Error).message}`);
  }
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`redis-server could not be started (is it installed?): ${error.message}`)));
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  failed.catch(() => undefined);
  await Promise.race([waitForLine(child.stdout!, /Ready to accept connections/, 30_000), failed]);
  child.stdout!.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

if (import.meta.main) {
  // Only the memory of a replica holding --bans active bans (Redis ledger), to try changes and settings quickly;
  // --env NAME=VALUE (repeatable) goes to that replica; --heap-snapshot DIR writes one from it.
  const { values } = parseArgs({
    options: {
      bans: { type: 'string', default: '100000' },
      env: { type: 'string', multiple: true, default: [] },
      'heap-snapshot': { type: 'string' },
    },
  });
  const daemonEnv = envArguments(values.env);
  const redis = await startRedis();
  try {
    const options = { bans: 0, rssBans: Number(values.bans), latencyMs: 0, lockMs: 0, daemonEnv, heapSnapshotDir: values['heap-snapshot'] };
    const memory = await replicaMemory(redis.url, 'bench-rss:', options);
    console.log(
      JSON.stringify({
        bans: options.rssBans,
        'RSS MiB': memory.rss,
        'peak RSS MiB': memory.hwm,
        'start ms': Math.round(memory.startMs),
        'CPU s': memory.cpuSeconds,
        env: daemonEnv,
      }),
    );
  } finally {
    await redis.stop();
  }
}
