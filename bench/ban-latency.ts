import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { BenchResult } from './bench-result.ts';

const KEY = 'latencyKey0123456789abcdefghij';
const SECRET = 'latencySecret0123456789abcdefghij';
const EDGEBAN = path.resolve(import.meta.dirname, '../bin/edgeban.js');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Ban latency: from appending the failure line that crosses maxretry to the add request arriving
 * at the simulator. `edgeban run` and `edgeban simulate` run as their own processes; both stamp
 * with the same machine clock.
 */
export async function runBanLatencyBenchmark(options: { bans: number; paceMs: number }): Promise<BenchResult> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-latency-'));
  const children: ChildProcess[] = [];
  try {
    const sim = spawn(process.execPath, [EDGEBAN, 'simulate', '--port', '0', '--key', KEY, '--secret', SECRET], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(sim);
    const url = await waitForLine(sim.stdout!, /listening on (\S+)/);
    const log = path.join(root, 'mail.log');
    await writeFile(log, '');
    await mkdir(path.join(root, 'config'));
    await writeFile(path.join(root, 'config', 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${log}\nmaxretry = 1\nbantime = 1h\n`);
    const daemon = spawn(process.execPath, [EDGEBAN, 'run'], {
      env: { PATH: process.env.PATH ?? '', TZ: 'UTC', OPNSENSE_URL: url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: path.join(root, 'config'), EDGEBAN_KILL_STATES: '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(daemon);
    await waitForLine(daemon.stderr!, /edgeban running/);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const appendedAt = new Map<string, number>();
    for (let i = 0; i < options.bans; i++) {
      const address = `2001:db8:1:${(i + 1).toString(16)}::1`;
      const d = new Date();
      const pad = (n: number) => String(n).padStart(2, '0');
      const stamp = `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
      appendedAt.set(address, Date.now());
      await appendFile(log, `${stamp} mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u${i}>, method=PLAIN, rip=${address}, lip=10.0.0.2, TLS, session=<b>\n`);
      await new Promise((resolve) => setTimeout(resolve, options.paceMs));
    }
    let calls: Array<{ at: number; path: string; requestBody: string }> = [];
    for (let i = 0; i < 200; i++) {
      calls = await (await fetch(`${url}/__simulator/calls`)).json() as typeof calls;
      if (calls.filter((c) => c.path.includes('/add/')).length >= options.bans) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const latencies: number[] = [];
    for (const call of calls) {
      if (!call.path.includes('/add/')) continue;
      const t0 = appendedAt.get((JSON.parse(call.requestBody) as { address: string }).address);
      if (t0 !== undefined) latencies.push(call.at - t0);
    }
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
    return {
      name: 'Ban latency (failure line appended → add request at the firewall)',
      rows: [
        { tool: 'edgeban run (inotify)', bans: latencies.length, 'p50 ms': pct(50), 'p99 ms': pct(99), 'max ms': latencies.at(-1) ?? NaN },
        { tool: 'fail2ban 1.0.2 (figures from the issue, this machine)', bans: '', 'p50 ms': '~405 (pyinotify), ~920 (polling)', 'p99 ms': '', 'max ms': '' },
      ],
      notes: [`${options.bans} distinct attackers, one line every ${options.paceMs} ms, maxretry = 1; the simulator answers without added latency. Times are the simulator's receive stamp minus the append stamp (same clock).`],
    };
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await rm(root, { recursive: true, force: true });
  }
}

function waitForLine(stream: NodeJS.ReadableStream, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}`)), 30_000);
    createInterface({ input: stream }).on('line', (line) => {
      const match = pattern.exec(line);
      if (match) { clearTimeout(timer); resolve(match[1] ?? line); }
    });
  });
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { bans: { type: 'string', default: '300' } } });
  console.log(JSON.stringify(await runBanLatencyBenchmark({ bans: Number(values.bans), paceMs: 20 }), null, 2));
}
