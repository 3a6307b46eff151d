import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { runCli, startCliDaemon, type CliDaemon } from '../helpers/cli.ts';
import { mailSetup } from '../helpers/mail-setup.ts';

export const KEY = 'leaseTestKey0123456789abcdef';
export const SECRET = 'leaseTestSecret0123456789abcdef+/=';
export const ALIAS = 'fail2ban_blocklist';
export const LEASE_SEC = 4;

export interface Call {
  seq: number;
  path: string;
  requestBody: string;
}
export interface Node {
  daemon: CliDaemon;
  env: Record<string, string>;
  mailLog: string;
}

/** One `edgeban run` replica with its own data dir and log, on the shared Redis ledger. */
export async function startNode(
  t: TestContext,
  simUrl: string,
  redisUrl: string,
  jail = { maxretry: 3 },
  extraEnv: Record<string, string> = {},
): Promise<Node> {
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = ${jail.maxretry}\nfindtime = 10m\nbantime = 1h\n`,
  );
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: simUrl,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '3600',
    EDGEBAN_LEDGER: 'redis',
    EDGEBAN_REDIS_URL: redisUrl,
    EDGEBAN_LEADER_LEASE: String(LEASE_SEC),
    ...extraEnv,
  };
  return { daemon: await startCliDaemon(t, env), env, mailLog };
}

export async function targetStates(node: Node): Promise<string[]> {
  const status = await runCli(['status', '--json'], { env: node.env });
  assert.equal(status.code, 0, status.stderr);
  return (JSON.parse(status.stdout) as { targets: Array<{ state: string }> }).targets.map((t) => t.state);
}
