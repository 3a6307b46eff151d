import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchResult } from './bench-result.ts';
import { syslogStamp } from './log-generators.ts';
import { percentile, sleep, startDaemonProcess, startSimulatorProcess } from './processes.ts';

/**
 * Ban latency: from appending the failure line that crosses maxretry to the add request arriving
 * at the simulator. `edgeban run` and `edgeban simulate` run as their own processes; both stamp
 * with the same machine clock.
 */
export async function runBanLatencyBenchmark(options: { bans: number; paceMs: number }): Promise<BenchResult> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-latency-'));
  const sim = await startSimulatorProcess();
  const latencies: number[] = [];
  try {
    const log = path.join(root, 'mail.log');
    await writeFile(log, '');
    const daemon = await startDaemonProcess(root, sim, `[dovecot]\nenabled = true\nlogpath = ${log}\nmaxretry = 1\nbantime = 1h\n`);
    try {
      await sleep(500);
      const appendedAt = new Map<string, number>();
      for (let i = 0; i < options.bans; i++) {
        const address = `2001:db8:1:${(i + 1).toString(16)}::1`;
        appendedAt.set(address, Date.now());
        await appendFile(
          log,
          `${syslogStamp(new Date())} mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u${i}>, method=PLAIN, rip=${address}, lip=10.0.0.2, TLS, session=<b>\n`,
        );
        await sleep(options.paceMs);
      }
      let calls: Array<{ at: number; path: string; requestBody: string }> = [];
      for (let i = 0; i < 200; i++) {
        calls = await sim.admin<typeof calls>('calls');
        if (calls.filter((c) => c.path.includes('/add/')).length >= options.bans) break;
        await sleep(50);
      }
      for (const call of calls) {
        if (!call.path.includes('/add/')) continue;
        const address = (JSON.parse(call.requestBody) as { address: string }).address;
        const t0 = appendedAt.get(address);
        if (t0 !== undefined) {
          latencies.push(call.at - t0);
          appendedAt.delete(address);
        }
      }
    } finally {
      await daemon.stop();
    }
  } finally {
    await sim.stop();
    await rm(root, { recursive: true, force: true });
  }
  latencies.sort((a, b) => a - b);
  return {
    summary: [
      {
        figure: `Ban latency, log line → add at the firewall (p50 / p99 / max ms, ${latencies.length} bans)`,
        edgeban: `${percentile(latencies, 50)} / ${percentile(latencies, 99)} / ${latencies.at(-1) ?? NaN}`,
        peer: 'fail2ban 1.0.2: p50 ~405 (pyinotify), ~920 (polling); measured earlier, not in this run',
      },
    ],
    name: 'Ban latency (failure line appended → add request at the firewall)',
    rows: [
      {
        tool: 'edgeban run (inotify)',
        bans: latencies.length,
        'p50 ms': percentile(latencies, 50),
        'p99 ms': percentile(latencies, 99),
        'max ms': latencies.at(-1) ?? NaN,
      },
      {
        tool: 'fail2ban 1.0.2 (measured earlier on this machine, not in this run)',
        bans: '',
        'p50 ms': '~405 (pyinotify), ~920 (polling)',
        'p99 ms': '',
        'max ms': '',
      },
    ],
    notes: [
      `${options.bans} distinct attackers, one line every ${options.paceMs} ms, maxretry = 1; the simulator answers without added latency. Times are the simulator's receive stamp minus the append stamp (same clock).`,
    ],
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { bans: { type: 'string', default: '300' } } });
  console.log(JSON.stringify(await runBanLatencyBenchmark({ bans: Number(values.bans), paceMs: 20 }), null, 2));
}
