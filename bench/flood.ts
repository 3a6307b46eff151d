/**
 * Flood: N distinct attackers each cross maxretry within one window (10,000 in 60 s by default).
 * The bench appends Dovecot failure lines to a live log at a steady rate while `edgeban run`
 * follows it, against the simulator at 20 ms per call. Measured: time until every attacker is in
 * the alias, ban latency under that load (crossing line appended → add request at the simulator),
 * the daemon's peak RSS (VmHWM) and the most API calls the simulator had in flight at once.
 */
import { open, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { toPfSpelling } from '../src/net/address.ts';
import { grouped, type BenchResult } from './bench-result.ts';
import { syslogStamp } from './log-generators.ts';
import { mib, percentile, procMemory, sleep, startDaemonProcess, startSimulatorProcess } from './processes.ts';

export interface FloodOptions {
  attackers: number;
  windowMs: number;
  maxretry: number;
  latencyMs: number;
}

const ALIAS = 'fail2ban_blocklist';
/** Addresses whose failures are interleaved (round-robin) before the next group starts. */
const GROUP = 50;
const TICK_MS = 50;

/** Attacker i: both IPv4 documentation /24s first, then IPv6 from 2001:db8::/32. */
export function floodAddress(i: number): string {
  if (i < 254) return `198.51.100.${i + 1}`;
  if (i < 508) return `203.0.113.${i - 253}`;
  const n = i - 508;
  return toPfSpelling(`2001:db8:${(0xf000 + (n >>> 16)).toString(16)}:${(n & 0xffff).toString(16)}::1`);
}

/** Failure lines in append order: per group of GROUP addresses, round r for each address. */
function failureOrder(attackers: number, maxretry: number): Array<{ address: number; crossing: boolean }> {
  const order: Array<{ address: number; crossing: boolean }> = [];
  for (let start = 0; start < attackers; start += GROUP) {
    const end = Math.min(attackers, start + GROUP);
    for (let round = 1; round <= maxretry; round++) {
      for (let a = start; a < end; a++) order.push({ address: a, crossing: round === maxretry });
    }
  }
  return order;
}

export async function runFloodBenchmark(options: FloodOptions): Promise<BenchResult> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-flood-'));
  const sim = await startSimulatorProcess({ latencyMs: options.latencyMs, tableEntries: Math.max(200_000, options.attackers * 2) });
  const log = path.join(root, 'mail.log');
  await writeFile(log, '');
  const jailLocal = `[dovecot]\nenabled = true\nlogpath = ${log}\nmaxretry = ${options.maxretry}\nfindtime = 10m\nbantime = 1h\n`;
  const addresses = Array.from({ length: options.attackers }, (_, i) => floodAddress(i));
  const order = failureOrder(options.attackers, options.maxretry);
  const crossedAt = new Map<string, number>();
  let allInAliasMs = NaN;
  let lastLineMs = NaN;
  let inAlias = 0;
  let maxInFlight = NaN;
  let peak = NaN;
  let idleRss = NaN;
  let latencies: number[] = [];
  let jailStatus: { failures?: number; bans?: number } = {};
  let listCalls = 0;
  try {
    const daemon = await startDaemonProcess(root, sim, jailLocal);
    try {
      // Let the first full pass (an empty alias) finish, then count only the flood's calls.
      await sleep(1000);
      idleRss = (await procMemory(daemon.child.pid))?.rss ?? NaN;
      await sim.admin('clear-calls', {});
      await sim.admin('reset-max-in-flight', {});

      const handle = await open(log, 'a');
      const started = Date.now();
      try {
        let next = 0;
        while (next < order.length) {
          const due = Math.min(order.length, Math.ceil(((Date.now() - started) / options.windowMs) * order.length));
          if (due > next) {
            const stamp = syslogStamp(new Date());
            const now = Date.now();
            let chunk = '';
            for (; next < due; next++) {
              const line = order[next]!;
              const address = addresses[line.address]!;
              if (line.crossing) crossedAt.set(address, now);
              chunk += `${stamp} mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u${line.address}>, method=PLAIN, rip=${address}, lip=10.0.0.2, TLS, session=<s${next}>\n`;
            }
            await handle.write(chunk);
          }
          await sleep(TICK_MS);
        }
        lastLineMs = Date.now() - started;
      } finally {
        await handle.close();
      }

      // Bounded wait: every attacker in the alias, or five minutes after the last line.
      const deadline = Date.now() + 5 * 60_000;
      for (;;) {
        const state = await sim.admin<{ tables: Record<string, string[]>; maxInFlight: number }>('state');
        inAlias = state.tables[ALIAS]?.length ?? 0;
        maxInFlight = state.maxInFlight;
        if (inAlias >= options.attackers) {
          allInAliasMs = Date.now() - started;
          break;
        }
        if (Date.now() > deadline) break;
        await sleep(100);
      }
      peak = (await procMemory(daemon.child.pid))?.hwm ?? NaN;
      const status = await daemon.control.call<{ jails: Array<{ jail: string; failures?: number; bans?: number }> }>('GET', '/status');
      jailStatus = status.jails.find((j) => j.jail === 'dovecot') ?? {};

      const calls = await sim.admin<Array<{ at: number; path: string; status: number; requestBody: string }>>('calls');
      for (const call of calls) {
        if (call.path.includes('/alias_util/list/')) listCalls++;
        if (!call.path.includes('/alias_util/add/')) continue;
        let address: string;
        try {
          address = (JSON.parse(call.requestBody) as { address: string }).address;
        } catch {
          continue;
        }
        const t0 = crossedAt.get(address);
        if (t0 !== undefined) {
          latencies.push(call.at - t0);
          crossedAt.delete(address); // the first add counts; a retry is not a second ban
        }
      }
      latencies = latencies.sort((a, b) => a - b);
    } finally {
      await daemon.stop();
    }
  } finally {
    await sim.stop();
    await rm(root, { recursive: true, force: true });
  }
  const complete = inAlias >= options.attackers;
  const flood = `${grouped(options.attackers)} attackers in ${options.windowMs / 1000} s, ${options.latencyMs} ms per call`;
  return {
    summary: [
      {
        figure: `Flood: all in the alias after the first line (s; ${flood})`,
        edgeban: complete ? `${round1(allInAliasMs / 1000)} (${round1((allInAliasMs - lastLineMs) / 1000)} after the last line)` : `NOT ALL: ${inAlias}`,
        peer: `fail2ban + curl actions: ${grouped(options.attackers / 5)}–${grouped(options.attackers)} at the 1–5/s users report (not measured)`,
      },
      {
        figure: 'Flood: ban latency p50 / p99 / max (ms)',
        edgeban: `${percentile(latencies, 50)} / ${percentile(latencies, 99)} / ${latencies.at(-1) ?? NaN}`,
        peer: 'no peer',
      },
      { figure: 'Flood: peak RSS of the daemon (MiB, VmHWM)', edgeban: String(mib(peak)), peer: 'no peer' },
      { figure: 'Flood: most API calls in flight at once', edgeban: String(maxInFlight), peer: 'no peer' },
    ],
    name: `Flood (${options.attackers} attackers crossing maxretry within ${options.windowMs / 1000} s)`,
    rows: [
      {
        tool: 'edgeban run',
        attackers: options.attackers,
        'failure lines': order.length,
        'lines appended in s': round1(lastLineMs / 1000),
        'all in alias after s': complete ? round1(allInAliasMs / 1000) : `NOT ALL: ${inAlias} after ${round1(lastLineMs / 1000 + 300)} s`,
        'after last line s': complete ? round1((allInAliasMs - lastLineMs) / 1000) : '',
        'ban latency p50 ms': percentile(latencies, 50),
        'p99 ms': percentile(latencies, 99),
        'max ms': latencies.at(-1) ?? NaN,
        'peak RSS MiB': mib(peak),
        'RSS before MiB': mib(idleRss),
        'max API calls in flight': maxInFlight,
      },
      {
        tool: 'fail2ban + curl actions (users report, fail2ban#3088)',
        attackers: options.attackers,
        'failure lines': '',
        'lines appended in s': '',
        'all in alias after s': `${Math.round(options.attackers / 5)}–${options.attackers} (1–5 addresses/s)`,
      },
    ],
    notes: [
      `Dovecot jail, maxretry ${options.maxretry}: ${order.length} failure lines appended in ${TICK_MS} ms ticks at a steady rate over ${options.windowMs / 1000} s, the failures of ${GROUP} attackers interleaved at a time; ${Math.min(508, options.attackers)} IPv4 attackers (198.51.100.0/24, 203.0.113.0/24), the rest IPv6 (2001:db8::/32). kill_states off.`,
      `Simulator in its own process at ${options.latencyMs} ms per call (no lock); "max API calls in flight" is the simulator's own in-flight counter (reset after the daemon's first pass). edgeban's pool allows 16 adds/deletes per firewall (EDGEBAN_API_CONCURRENCY); a periodic full pass (every 60 s) lists the alias beside them: ${listCalls} list calls during the flood.`,
      `Times from the first appended line; "all in alias" polls the simulator's table every 100 ms after the last line. Ban latency: the add request's arrival at the simulator minus the append time of the attacker's crossing line. Jail status at the end: ${jailStatus.failures ?? '?'} failures counted, ${jailStatus.bans ?? '?'} bans.`,
      'The fail2ban row is not measured here: its OPNsense actions run one curl per ban, serially, at the rates users report.',
    ],
  };
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { attackers: { type: 'string', default: '10000' }, window: { type: 'string', default: '60' } } });
  console.log(
    JSON.stringify(
      await runFloodBenchmark({ attackers: Number(values.attackers), windowMs: Number(values.window) * 1000, maxretry: 5, latencyMs: 20 }),
      null,
      2,
    ),
  );
}
