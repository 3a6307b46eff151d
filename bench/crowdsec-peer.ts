/**
 * CrowdSec (Debian's `crowdsec` 1.4.6) as a peer: its agent in replay mode (`-dsn file://… -type
 * syslog|nginx`) over the same generated logs, against its own local API on loopback with a fresh
 * database. Nothing comes from the internet: the config is a copy of Debian's with the Central
 * API left out, and the postfix, dovecot, nginx and linux collections (with what they need) are
 * linked from the offline hub Debian ships in /usr/share/crowdsec/hub.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { measuredRun, type MeasuredRun } from './measured-run.ts';
import { sleep, stopChild } from './processes.ts';

const HUB = '/usr/share/crowdsec/hub';
const ETC = '/etc/crowdsec';
const COLLECTIONS = ['crowdsecurity/linux', 'crowdsecurity/postfix', 'crowdsecurity/dovecot', 'crowdsecurity/nginx'];
/** Debian enables the whitelists parser too (private ranges; the logs' attackers are documentation ranges). */
const EXTRA_PARSERS = ['crowdsecurity/whitelists'];
const ITEM_TYPES = ['collections', 'parsers', 'scenarios', 'postoverflows'] as const;
type ItemType = (typeof ITEM_TYPES)[number];
type HubIndex = Record<ItemType, Record<string, { path: string } & Partial<Record<ItemType, string[]>>>>;

export interface CrowdsecReplay {
  file: string;
  /** Its acquisition label: `syslog` for the mail logs, `nginx` for the access log. */
  type: 'syslog' | 'nginx';
  lines: number;
}

export interface CrowdsecFigures {
  version: string;
  runs: Array<CrowdsecReplay & MeasuredRun>;
  /** Alerts the local API holds after every replay. */
  alerts: number;
}

export async function crowdsecInstalled(): Promise<boolean> {
  const binaries = await Promise.all(
    ['crowdsec', 'cscli'].map(
      (b) =>
        new Promise<boolean>((resolve) => {
          execFile(b, ['-version'], (error) => resolve(error === null || (error as { code?: unknown }).code !== 'ENOENT'));
        }),
    ),
  );
  return (
    binaries.every(Boolean) &&
    (await access(path.join(HUB, '.index.json')).then(
      () => true,
      () => false,
    ))
  );
}

function output(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 256 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')}: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Every hub item the collections need, by type, each once. */
function resolveItems(index: HubIndex): Map<ItemType, Set<string>> {
  const items = new Map<ItemType, Set<string>>(ITEM_TYPES.map((t) => [t, new Set<string>()]));
  const add = (type: ItemType, name: string): void => {
    if (items.get(type)!.has(name)) return;
    const entry = index[type][name];
    if (entry === undefined) throw new Error(`CrowdSec offline hub has no ${type} ${name}`);
    items.get(type)!.add(name);
    for (const t of ITEM_TYPES) for (const dep of entry[t] ?? []) add(t, dep);
  };
  for (const c of COLLECTIONS) add('collections', c);
  for (const p of EXTRA_PARSERS) add('parsers', p);
  return items;
}

/** A copy of Debian's config under `root`, its items linked from the offline hub, a machine registered. */
async function prepare(root: string, port: number): Promise<string> {
  const etc = path.join(root, 'etc');
  const data = path.join(root, 'data');
  await mkdir(etc, { recursive: true });
  await mkdir(data, { recursive: true });
  await mkdir(path.join(root, 'log'), { recursive: true });
  const index = JSON.parse(await readFile(path.join(HUB, '.index.json'), 'utf8')) as HubIndex;
  for (const [type, names] of resolveItems(index)) {
    for (const name of names) {
      const hubPath = index[type][name]!.path; // e.g. parsers/s01-parse/crowdsecurity/postfix-logs.yaml
      const parts = hubPath.split('/');
      // CrowdSec wants etc/TYPE/[STAGE/]NAME.yaml: the author directory dropped (as Debian links them).
      const link = path.join(etc, ...parts.slice(0, -2), parts.at(-1)!);
      await mkdir(path.dirname(link), { recursive: true });
      await symlink(path.join(HUB, hubPath), link);
    }
  }
  await symlink(path.join(ETC, 'patterns'), path.join(etc, 'patterns'));
  for (const file of ['profiles.yaml', 'simulation.yaml']) await copyFile(path.join(ETC, file), path.join(etc, file));
  await writeFile(path.join(etc, 'acquis.yaml'), '');
  for (const file of await readdir('/usr/share/crowdsec/data')) await copyFile(path.join('/usr/share/crowdsec/data', file), path.join(data, file));

  const config = parse(await readFile(path.join(ETC, 'config.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  config.common = { ...config.common, daemonize: false, log_media: 'file', log_dir: path.join(root, 'log'), working_dir: root };
  config.config_paths = {
    ...config.config_paths,
    config_dir: etc,
    data_dir: data,
    simulation_path: path.join(etc, 'simulation.yaml'),
    hub_dir: HUB,
    index_path: path.join(HUB, '.index.json'),
    notification_dir: path.join(etc, 'notifications'),
  };
  config.crowdsec_service = { ...config.crowdsec_service, acquisition_path: path.join(etc, 'acquis.yaml') };
  delete config.crowdsec_service.acquisition_dir;
  config.db_config = { ...config.db_config, db_path: path.join(data, 'crowdsec.db'), use_wal: true };
  const api = config.api as { client: Record<string, unknown>; server: Record<string, unknown> };
  api.client = { ...api.client, credentials_path: path.join(etc, 'local_api_credentials.yaml') };
  api.server = { ...api.server, listen_uri: `127.0.0.1:${port}`, profiles_path: path.join(etc, 'profiles.yaml'), console_path: path.join(etc, 'console.yaml') };
  delete api.server.online_client; // no Central API: offline, and not part of what is measured
  config.prometheus = { ...config.prometheus, enabled: false };
  const configPath = path.join(etc, 'config.yaml');
  await writeFile(configPath, stringify(config));
  await output('cscli', [
    '-c',
    configPath,
    'machines',
    'add',
    'edgeban-bench',
    '--auto',
    '--force',
    '-f',
    path.join(etc, 'local_api_credentials.yaml'),
    '-u',
    `http://127.0.0.1:${port}`,
  ]);
  return configPath;
}

export async function runCrowdsecPeer(replays: CrowdsecReplay[]): Promise<CrowdsecFigures> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-crowdsec-'));
  let lapi: ChildProcess | undefined;
  try {
    const port = await freePort();
    const configPath = await prepare(root, port);
    const version = await new Promise<string>((resolve) => {
      // It prints its version through its logger, on stderr.
      execFile('crowdsec', ['-version'], (_error, stdout, stderr) => resolve(/version:\s*v?(\S+)/.exec(`${stdout}${stderr}`)?.[1] ?? 'unknown'));
    });
    // The local API alone (-no-cs): the replays below log in to it and push their alerts.
    lapi = spawn('crowdsec', ['-c', configPath, '-no-cs', '-no-capi'], { stdio: 'ignore' });
    const deadline = Date.now() + 60_000;
    while (!(await portOpen(port))) {
      if (lapi.exitCode !== null) throw new Error(`CrowdSec's local API exited ${lapi.exitCode} (log in ${root}/log)`);
      if (Date.now() > deadline) throw new Error("CrowdSec's local API did not listen within 60 s");
      await sleep(100);
    }
    const runs: CrowdsecFigures['runs'] = [];
    for (const replay of replays) {
      const run = await measuredRun('crowdsec', ['-c', configPath, '-dsn', `file://${replay.file}`, '-type', replay.type, '-no-api']);
      if (run.exitCode !== 0) throw new Error(`crowdsec replay of ${replay.file} exited ${run.exitCode}: ${run.stderr}`);
      runs.push({ ...replay, ...run, stderr: '' });
    }
    const listed = JSON.parse(await output('cscli', ['-c', configPath, 'alerts', 'list', '-o', 'json', '--limit', '0'])) as unknown[] | null;
    return { version, runs, alerts: listed?.length ?? 0 };
  } finally {
    if (lapi !== undefined) await stopChild(lapi);
    await rm(root, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const [mail, access_] = [process.argv[2]!, process.argv[3]!];
  console.log(
    JSON.stringify(
      await runCrowdsecPeer([
        { file: mail, type: 'syslog', lines: 0 },
        { file: access_, type: 'nginx', lines: 0 },
      ]),
      null,
      2,
    ),
  );
}
