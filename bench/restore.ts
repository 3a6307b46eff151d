import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { FileLedgerStore } from '../src/ledger/file-ledger-store.ts';
import { Ledger } from '../src/ledger/ledger.ts';
import { silentLogger } from '../src/logging/logger.ts';
import { toPfSpelling } from '../src/net/address.ts';
import { AliasReconciler } from '../src/targets/alias-reconciler.ts';
import { OpnsenseClient } from '../src/targets/opnsense/client.ts';
import { systemClock } from '../src/util/clock.ts';
import type { BenchResult } from './bench-result.ts';

const KEY = 'benchKey0123456789abcdefghijklmnop';
const SECRET = 'benchSecret0123456789abcdefghijklmnop';
const ALIAS = 'fail2ban_blocklist';
const EDGEBAN = path.resolve(import.meta.dirname, '../bin/edgeban.js');

export interface RestoreOptions {
  bans: number;
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
  const sim = await startSimulatorProcess(options);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-restore-'));
  const list = addresses(options.bans);
  try {
    const ideal = await idealClient(sim.url, list, 32);
    await sim.admin('reboot');

    const store = await FileLedgerStore.open({ dir: dataDir, logger: silentLogger() });
    const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
    await ledger.banMany(list.map((address) => ({ target: ALIAS, address, jail: 'bench', origin: 'jail' as const, durationMs: 86_400_000 })));
    const client = new OpnsenseClient({
      endpoint: { url: sim.url, key: KEY, secret: SECRET, ca: null, tlsInsecure: false, timeoutMs: 30_000 },
      logger: silentLogger(),
      connections: options.concurrency + 4,
    });
    const reconciler = new AliasReconciler({
      id: 'bench', ledgerTarget: ALIAS, alias: ALIAS, api: client, ledger, clock: systemClock, logger: silentLogger(),
      intervalMs: 3_600_000, concurrency: options.concurrency, foreignPolicy: 'keep', adoptBantimeMs: 600_000,
      killStates: false, listPageSize: 9999,
    });
    const started = performance.now();
    const pass = await reconciler.start();
    const seconds = (performance.now() - started) / 1000;
    await reconciler.stop();
    await client.close();
    await ledger.close();
    const state = await sim.admin('state') as { tables: Record<string, string[]>; maxInFlight: number };
    const restored = state.tables[ALIAS]?.length ?? 0;
    if (!pass.ok || restored !== options.bans) throw new Error(`restore incomplete: ${restored}/${options.bans} (${pass.error ?? 'unconfirmed'})`);
    const edgebanRate = options.bans / seconds;
    return {
      name: 'Restore after an OPNsense reboot',
      rows: [
        { client: 'ideal (32 keep-alive connections, adds back to back)', bans: options.bans, seconds: round(ideal.seconds), 'addresses/s': Math.round(ideal.rate), 'of ideal': '100%' },
        {
          client: `edgeban full pass (list, ${options.concurrency} concurrent adds, verifying list)`, bans: options.bans, seconds: round(seconds),
          'addresses/s': Math.round(edgebanRate), 'of ideal': `${Math.round((edgebanRate / ideal.rate) * 100)}%`,
        },
        { client: 'fail2ban + curl actions (users report, fail2ban#3088)', bans: options.bans, seconds: `${Math.round(options.bans / 5)}–${options.bans}`, 'addresses/s': '1–5', 'of ideal': '' },
      ],
      notes: [
        `Simulator in its own process: ${options.latencyMs} ms per call plus ${options.lockMs} ms under one global lock per add (OPNsense serializes alias_util add/delete on its config lock), so no client can exceed ${Math.round(1000 / options.lockMs)} adds/s.`,
        'edgeban\'s figure includes listing the emptied alias first and the verifying list after the adds (it does not trust `done`).',
      ],
    };
  } finally {
    sim.child.kill('SIGTERM');
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function idealClient(url: string, list: readonly string[], connections: number): Promise<{ seconds: number; rate: number }> {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const authorization = `Basic ${Buffer.from(`${KEY}:${SECRET}`).toString('base64')}`;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < list.length) {
      const address = list[next++]!;
      const response = await pool.request({
        path: `/api/firewall/alias_util/add/${ALIAS}`, method: 'POST',
        headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ address }),
      });
      await response.body.text();
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  return { seconds, rate: list.length / seconds };
}

interface SimulatorProcess { child: ChildProcess; url: string; admin: (p: string) => Promise<unknown> }

async function startSimulatorProcess(options: RestoreOptions): Promise<SimulatorProcess> {
  const child = spawn(process.execPath, [EDGEBAN, 'simulate', '--port', '0', '--key', KEY, '--secret', SECRET,
    '--latency', String(options.latencyMs), '--lock-ms', String(options.lockMs), '--table-entries', String(Math.max(1_000_000, options.bans * 2))],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('simulator did not start')), 30_000);
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /listening on (\S+)/.exec(line);
      if (match) { clearTimeout(timer); resolve(match[1]!); }
    });
  });
  const admin = async (adminPath: string) => {
    const response = await fetch(`${url}/__simulator/${adminPath}`, adminPath === 'state' ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    return response.json();
  };
  return { child, url, admin };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { bans: { type: 'string', default: '20000' } } });
  const result = await runRestoreBenchmark({ bans: Number(values.bans), latencyMs: 20, lockMs: 2, concurrency: 16 });
  console.log(JSON.stringify(result, null, 2));
}
