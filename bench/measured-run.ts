/**
 * Runs a peer's process to its end and reads what the kernel accounted for it: wall seconds, CPU
 * seconds (user + system) and peak RSS (ru_maxrss), through getrusage(RUSAGE_CHILDREN) in a small
 * python3 wrapper (python3 is there wherever fail2ban is; Node cannot read a child's rusage).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface MeasuredRun {
  seconds: number;
  cpuSeconds: number;
  /** Peak resident set of the process (the largest of it and its children), bytes. */
  peakRss: number;
  exitCode: number;
  /** Its stderr's tail, for the error when it failed. */
  stderr: string;
}

const WRAPPER = `
import json, resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], 'w') as f:
    json.dump({'code': code, 'cpu': u.ru_utime + u.ru_stime, 'maxrss_kib': u.ru_maxrss}, f)
`;

export async function measuredRun(command: string, args: string[], env: Record<string, string> = {}): Promise<MeasuredRun> {
  const dir = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-rusage-'));
  const out = path.join(dir, 'rusage.json');
  try {
    const started = performance.now();
    const { stderr } = await new Promise<{ stderr: string }>((resolve, reject) => {
      const child = spawn('python3', ['-c', WRAPPER, out, command, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
      let tail = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        tail = (tail + d).slice(-4000);
      });
      child.on('error', reject);
      child.on('close', () => resolve({ stderr: tail }));
    });
    const seconds = (performance.now() - started) / 1000;
    const usage = JSON.parse(await readFile(out, 'utf8')) as { code: number; cpu: number; maxrss_kib: number };
    return { seconds, cpuSeconds: usage.cpu, peakRss: usage.maxrss_kib * 1024, exitCode: usage.code, stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
