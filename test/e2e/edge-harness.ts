// The pieces every real-server scenario shares: the namespaces, the simulator driving the edge's
// nftables set (as root, in this namespace, on loopback), and edgeban as uid 65534 without any
// capability, reading the servers' real logs.
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { LEAST_PRIVILEGES, OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { buildBundle, stageImage, type StagedImage } from '../container/stage.ts';
import { buildInternet, nftSetEntries, requireTools, tryInNs, type Internet } from './netns.ts';
import { selfSignedCertificate } from '../helpers/self-signed-certificate.ts';

export const ALIAS = 'fail2ban_blocklist';
const KEY = 'e2eTestKey0123456789abcdefghij';
const SECRET = 'e2eTestSecret+/0123456789abcdefghij=';
export const RECONCILE_S = 2;
const NOBODY = 65534;

export interface Edge {
  net: Internet;
  sim: OpnsenseSimulator;
  /** A directory every server (and uid 65534) can read: configs and the servers' logs. */
  dir: string;
  /** The edge set's entries (IPv4 and IPv6), read from nftables itself. */
  setEntries(): string[];
  /** The built edgeban, staged on first start. */
  image?: StagedImage;
}

export async function startEdge(t: TestContext): Promise<Edge> {
  requireTools();
  const net = buildInternet(t);
  const sim = await OpnsenseSimulator.start({
    keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' }],
    authFailDelayMs: 0,
    nft: { netns: net.edge, table: 'edgeban' },
  });
  t.after(() => sim.stop());
  const dir = await mkdtemp(path.join(tmpdir(), 'edgeban-e2e-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const setEntries = (): string[] => [4, 6].flatMap((family) => nftSetEntries(net.edge, 'edgeban', `${ALIAS}_v${family}`));
  return { net, sim, dir, setEntries };
}

/** An empty log file the server appends to and uid 65534 may read. */
export async function logFile(dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, '', { mode: 0o644 });
  await chmod(file, 0o644);
  return file;
}

/**
 * `edgeban run` as uid 65534 with no capability (setpriv), outside the namespaces: it reaches only
 * the simulator on loopback. Resolves once it logged "edgeban running"; killed when the test ends.
 */
export async function startEdgebanAsNobody(t: TestContext, edge: Edge, jailLocal: string): Promise<{ stderr: string[]; stop: () => Promise<void> }> {
  // A second start finds the first one's data dir: a restart.
  const home = path.join(edge.dir, 'edgeban');
  await mkdir(home, { mode: 0o700, recursive: true });
  await writeFile(path.join(home, 'jail.local'), jailLocal);
  await chown(home, NOBODY, NOBODY);
  await chown(path.join(home, 'jail.local'), NOBODY, NOBODY);
  // The image's bundle, staged where uid 65534 can read it (a checkout under /root is not).
  const image = (edge.image ??= await stageImage(path.join(edge.dir, 'image'), path.dirname(await buildBundle(path.join(edge.dir, 'build')))));
  const child = spawn(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--', image.node, image.bundle, 'run'],
    {
      cwd: image.appDir,
      env: {
        PATH: '/usr/bin:/bin',
        TZ: 'UTC',
        OPNSENSE_URL: edge.sim.url,
        OPNSENSE_KEY: KEY,
        OPNSENSE_SECRET: SECRET,
        EDGEBAN_DATA_DIR: home,
        EDGEBAN_CONFIG_DIR: home,
        EDGEBAN_RECONCILE_INTERVAL: String(RECONCILE_S),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const stderr: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`edgeban not up within 30 s:\n${stderr.join('\n')}`)), 30_000);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`edgeban exited:\n${stderr.join('\n')}`));
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (line.includes('edgeban running')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const stop = async (): Promise<void> => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(timer);
  };
  return { stderr, stop };
}

/** A TCP connect from `ns` to address:port: 'open', 'refused' or 'silent' (no answer within 2 s: dropped). */
export async function tcpProbe(ns: string, address: string, port: number): Promise<'open' | 'refused' | 'silent'> {
  const script =
    `const s = require("net").connect({ host: ${JSON.stringify(address)}, port: ${port}, timeout: 2000 }, () => process.exit(0));` +
    ' s.on("timeout", () => process.exit(3)); s.on("error", () => process.exit(4));';
  const { code } = await tryInNs(ns, [process.execPath, '-e', script]);
  return code === 0 ? 'open' : code === 3 ? 'silent' : 'refused';
}

/** curl's HTTP status for GET `urlPath` on `address` from `ns`, with basic auth as `user` when given ('000': no answer). */
export async function httpStatus(ns: string, address: string, urlPath: string, user?: string, timeoutS = 5): Promise<string> {
  const host = address.includes(':') ? `[${address}]` : address;
  const auth = user === undefined ? [] : ['-u', user];
  return (
    await tryInNs(ns, [
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--connect-timeout',
      '2',
      '-m',
      String(timeoutS),
      ...auth,
      `http://${host}${urlPath}`,
    ])
  ).stdout;
}

/**
 * With EDGEBAN_E2E_SAVE_SAMPLES=1, keeps a server's real log as a filter sample
 * (test/filters/samples/real/NAME.log, NAME carrying the server version), so the unit tests
 * check the shipped filters against real lines even where namespaces cannot run.
 */
export async function saveSample(name: string, text: string): Promise<void> {
  if (process.env.EDGEBAN_E2E_SAVE_SAMPLES !== '1') return;
  await writeFile(path.join(import.meta.dirname, '../filters/samples/real', `${name}.log`), text);
}

/** A self-signed certificate for mail.example.org in `dir` (openssl, EC key; the servers read it as root). */
export function mailCertificate(dir: string): { cert: string; key: string } {
  return selfSignedCertificate(dir, 'mail.example.org', 'mail');
}
