import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';

/** The machine a run measured, for the results' header. */
export interface MachineDescription {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  fail2ban: string;
  python: string;
  /** 1-, 5- and 15-minute load averages when the run started (other work on the machine makes figures noisy). */
  loadAtStart: LoadAverages;
  date: string;
}

export type LoadAverages = [number, number, number];

export function loadAverages(): LoadAverages {
  return os.loadavg().map((l) => Math.round(l * 100) / 100) as LoadAverages;
}

export const loadText = (l: LoadAverages): string => l.join(' / ');

function commandOutput(command: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve(error ? 'not found' : (`${stdout}${stderr}`.trim().split('\n')[0] ?? ''));
    });
  });
}

async function osName(): Promise<string> {
  const release = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1];
  return `${pretty ?? os.type()}, kernel ${os.release()}`;
}

async function cpuModel(): Promise<string> {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
}

export async function describeMachine(): Promise<MachineDescription> {
  return {
    cpu: await cpuModel(),
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: await osName(),
    node: process.version,
    fail2ban: (await commandOutput('fail2ban-regex', ['--version'])).replace(/^fail2ban-regex\s*/, ''),
    python: await commandOutput('python3', ['--version']),
    loadAtStart: loadAverages(),
    date: new Date().toISOString(),
  };
}

export function machineLine(m: MachineDescription): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, ${m.os}, Node ${m.node}, fail2ban ${m.fail2ban} (${m.python}); load average (1 / 5 / 15 min) ${loadText(m.loadAtStart)} at start; ${m.date}.`;
}
