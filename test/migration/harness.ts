import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { syslogNow } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/temp-dir.ts';

export const FIXTURES = path.join(import.meta.dirname, 'fixtures');
export const KEY = 'migrationKey0123456789abcdefABCDEF';
export const SECRET = 'migrationSecret0123456789abcdef+/=';

/** A fixture config dir as a user mounts it, with `@NAME@` placeholders filled (log paths, firewall URL…). */
export interface Mounted {
  root: string;
  configDir: string;
  dataDir: string;
  mailLog: string;
  webLog: string;
}

async function copyFilled(from: string, to: string, vars: Record<string, string>): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) {
      await copyFilled(source, target, vars);
      continue;
    }
    let text = await readFile(source, 'utf8');
    for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`@${name}@`, value);
    await writeFile(target, text);
  }
}

export async function mountFixture(t: TestContext, fixture: string, vars: Record<string, string> = {}): Promise<Mounted> {
  const root = await tempDir(t);
  const mailLog = path.join(root, 'mail.log');
  const webLog = path.join(root, 'error.log');
  await writeFile(mailLog, '');
  await writeFile(webLog, '');
  const configDir = path.join(root, 'config');
  await copyFilled(path.join(FIXTURES, fixture), configDir, { MAILLOG: mailLog, WEBLOG: webLog, KEY, SECRET, ...vars });
  return { root, configDir, dataDir: path.join(root, 'data'), mailLog, webLog };
}

/** Postfix's SASL failure as syslog writes it (stamp: now, UTC). */
export function postfixSaslFailure(address: string): string {
  return `${syslogNow()} mail postfix/submission/smtpd[2101]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n`;
}

/** Apache 2.4's AH01630 in its error log (stamp: now, UTC). */
export function apacheDenied(address: string): string {
  const d = new Date();
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${days[d.getUTCDay()]} ${months[d.getUTCMonth()]} ${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}000 ${d.getUTCFullYear()}`;
  return `[${stamp}] [authz_core:error] [pid 77:tid 140] [client ${address}:51234] AH01630: client denied by server configuration: /var/www/html/.env\n`;
}

export interface JailStatus {
  jail: string;
  running?: boolean;
  reason?: string;
  manualOnly?: boolean;
  bans?: number;
  notes?: Array<{ kind: string; subject: string; message: string }>;
}

/** `edgeban status --json` of the running daemon. */
export async function statusJson(env: Record<string, string>): Promise<{ jails: JailStatus[]; targets: Array<{ id: string }> }> {
  const result = await runCli(['status', '--json'], { env });
  if (result.code !== 0) throw new Error(`status exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as { jails: JailStatus[]; targets: Array<{ id: string }> };
}

/** The simulator's alias content. */
export async function aliasContent(sim: { admin: (p: string) => Promise<unknown> }, alias = 'fail2ban_blocklist'): Promise<string[]> {
  return ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[alias] ?? [];
}
