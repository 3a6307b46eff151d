import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { runCli, startCliSimulator, type CliResult } from '../helpers/cli.ts';
import { dovecotFailure as dovecotLine, syslogStamp } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/temp-dir.ts';

export const KEY = 'doctorKey0123456789abcdef';
export const SECRET = 'doctorSecret0123456789abcdef+/=';
export const ALIAS = 'fail2ban_blocklist';
/** Written in UTC like the doctor runs (TZ=UTC). */
export { syslogStamp } from '../helpers/log-lines.ts';

/** A failed login of alice from `address`, logged at `ms`. */
export function dovecotFailure(ms: number, address: string): string {
  return dovecotLine(address, 'alice', syslogStamp(ms));
}

export interface DoctorSetup {
  root: string;
  mailLog: string;
  env: Record<string, string>;
  admin: (path: string, body?: unknown) => Promise<unknown>;
  run: (args?: string[]) => Promise<CliResult>;
}

/**
 * `edgeban simulate` with the daemon's key, a config dir with the dovecot jail on `mailLog`
 * (written with `lines`), and a runner for `edgeban doctor` against both.
 */
export async function doctorSetup(t: TestContext, simArgs: string[], lines: string): Promise<DoctorSetup> {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0', ...simArgs]);
  const root = await tempDir(t, 'edgeban-doctor-');
  // Readable by another uid (the setpriv test); mkdtemp makes it 0700.
  await chmod(root, 0o755);
  const configDir = path.join(root, 'config');
  const logDir = path.join(root, 'logs');
  await mkdir(configDir, { mode: 0o755 });
  await mkdir(logDir, { mode: 0o755 });
  const mailLog = path.join(logDir, 'mail.log');
  await writeFile(mailLog, lines);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 5\nfindtime = 10m\nbantime = 1h\n`);
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    TZ: 'UTC',
  };
  return { root, mailLog, env, admin: sim.admin, run: (args = []) => runCli(['doctor', ...args], { env, cwd: root }) };
}

export function freshFailures(count: number, address: (i: number) => string, atMs = Date.now()): string {
  let out = '';
  for (let i = 0; i < count; i++) out += dovecotFailure(atMs - (count - i) * 1000, address(i));
  return out;
}

/** The lines of a doctor report with a given status word. */
export function linesWith(stdout: string, status: 'PASS' | 'SKIP' | 'WARN' | 'FAIL'): string[] {
  return stdout.split('\n').filter((l) => l.startsWith(status));
}
