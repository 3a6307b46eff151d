// The container contract without a container engine: the built bundle runs as uid 65534 with no
// capability and no_new_privs, as PID 1 of its own pid namespace, with every mount read-only but
// its data dir; it reads a log it may only read, bans an attacker in the simulator's alias,
// answers `edgeban health`, and stops cleanly on SIGTERM. CI runs as root on Debian with util-linux.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure, syslogNow } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { buildBundle, snapshot, stageImage } from './stage.ts';

const NOBODY = 65534;
const KEY = 'containerTestKey0123456789ab';
const SECRET = 'containerTestSecret0123456789+/=';
const ALIAS = 'fail2ban_blocklist';
const CONFINE = path.join(import.meta.dirname, 'confine.sh');
/** Fresh pid and mount namespaces; the forked child is their PID 1 and dies with unshare. */
const UNSHARE = ['--pid', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private', '--'];
const SETPRIV_NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'];
const postfixFailure = (address: string) =>
  `${syslogNow()} mail postfix/submission/smtpd[4242]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n`;

/** The tools the contract needs: missing ones fail the test with the reason, never skip it. */
function requireConfinementTools(): void {
  assert.equal(process.getuid?.(), 0, 'this test runs as root (as CI does): it drops to uid 65534 with setpriv and builds namespaces with unshare');
  for (const tool of ['setpriv', 'unshare', 'mount', 'awk', 'sh']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    assert.equal(found.status, 0, `${tool} is missing: install util-linux (setpriv, unshare, mount) and mawk/gawk`);
  }
  const version = spawnSync('setpriv', ['--version'], { encoding: 'utf8' }).stdout;
  const match = /(\d+)\.(\d+)/.exec(version);
  assert.ok(
    match && (Number(match[1]) > 2 || Number(match[2]) >= 33),
    `setpriv from util-linux >= 2.33 needed (--inh-caps=-all, --bounding-set=-all), found ${version.trim()}`,
  );
}

/** Runs a command as uid 65534 without capabilities (outside the namespaces): a probe or a CLI call. */
function asNobody(argv: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'setpriv',
      [...SETPRIV_NOBODY, ...argv],
      { env: { PATH: '/usr/bin:/bin', ...options.env }, cwd: options.cwd ?? '/', timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Runs a command confined like the daemon (read-only mounts but `writable`, uid 65534, no capabilities), as `docker exec` would. */
function confined(writable: string, argv: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'unshare',
      [...UNSHARE, 'sh', CONFINE, writable, ...argv],
      { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env }, cwd, timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

/** The pid (in this namespace) of unshare's forked child, the PID 1 of the new namespace. */
async function childOf(pid: number): Promise<number> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
  const child = Number(children.trim().split(/\s+/)[0]);
  assert.ok(child > 0, `unshare (${pid}) has no child`);
  return child;
}

function statusField(status: string, field: string): string {
  return new RegExp(`^${field}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
}

/** Top-level entries owned by uid 65534 in the world-writable places an escaping process would use. */
async function nobodyOwnedInSharedTmp(): Promise<string[]> {
  const found: string[] = [];
  for (const dir of ['/tmp', '/var/tmp', '/dev/shm']) {
    for (const name of await readdir(dir).catch(() => [])) {
      const facts = await stat(path.join(dir, name)).catch(() => null);
      if (facts?.uid === NOBODY) found.push(path.join(dir, name));
    }
  }
  return found.sort();
}

test('container contract: the bundle as uid 65534, no capabilities, read-only root, PID 1, bans an attacker in the alias and stops on SIGTERM', {
  timeout: 300_000,
}, async (t) => {
  requireConfinementTools();
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];

  // The image: node, /app/dist, /app/filters, /app/actions; root-owned, world-readable.
  const root = await tempDir(t, 'edgeban-container-');
  const image = await stageImage(root, path.dirname(await buildBundle(path.join(root, 'build'))));
  for (let dir = path.dirname(image.bundle); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    assert.ok(!existsSync(path.join(dir, 'node_modules')), `${dir}/node_modules exists: the bundle could lean on it, the image has none`);
  }

  // /remotelogs/mail, mounted read-only: a root-owned 0644 file in a root-owned 0755 dir.
  const logDir = path.join(root, 'remotelogs', 'mail');
  await mkdir(logDir, { recursive: true });
  await chmod(path.join(root, 'remotelogs'), 0o755);
  await chmod(logDir, 0o755);
  const mailLog = path.join(logDir, 'mail.log');
  await writeFile(mailLog, '', { mode: 0o644 });

  // /data as in the fail2ban images: jail.local and jail.d/ (root-owned, read-only to the daemon) in
  // the volume that belongs to uid 65534 and is the only place it may write.
  const dataDir = path.join(root, 'data');
  await mkdir(path.join(dataDir, 'jail.d'), { recursive: true });
  await writeFile(path.join(dataDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${logDir}/*.log\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\n`, {
    mode: 0o644,
  });
  await writeFile(path.join(dataDir, 'jail.d', 'postfix.conf'), `[postfix]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 3\nbantime = 1h\n`, {
    mode: 0o644,
  });
  await chmod(path.join(dataDir, 'jail.d'), 0o755);
  await chown(dataDir, NOBODY, NOBODY);
  await chmod(dataDir, 0o700);

  // The setup is what it claims: uid 65534 reads the log and cannot write it, its dir, or the image.
  assert.equal((await asNobody(['cat', mailLog])).code, 0, 'uid 65534 can read the log');
  for (const target of [mailLog, path.join(logDir, 'new.log'), path.join(image.appDir, 'filters', 'x.conf')]) {
    assert.notEqual((await asNobody(['sh', '-c', `echo x >> '${target}'`])).code, 0, `uid 65534 can write ${target}`);
  }

  // The confinement bites: /tmp is writable by uid 65534 outside, read-only inside; the data dir is not.
  const probe = path.join(path.dirname(root), `edgeban-probe-${process.pid}`);
  const inside = await confined(dataDir, ['sh', '-c', `touch '${probe}' || touch '${dataDir}/probe' && echo data-ok`], {}, '/');
  assert.equal(
    inside.stdout.trim(),
    'data-ok',
    `the confinement did not work (unshare --pid --mount needs real root with CAP_SYS_ADMIN, e.g. a privileged CI container):\n${inside.stderr}`,
  );
  assert.match(inside.stderr, /Read-only file system/, 'a write outside the data dir fails with EROFS');
  assert.ok(!existsSync(probe));
  await rm(path.join(dataDir, 'probe'));

  const outsideBefore = await snapshot(root, [dataDir, logDir]);
  const tmpBefore = await nobodyOwnedInSharedTmp();
  const env = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const unshare = spawn('unshare', [...UNSHARE, 'sh', CONFINE, dataDir, image.node, image.bundle, 'run'], {
    cwd: image.appDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => unshare.once('exit', (code) => resolve(code)));
  t.after(async () => {
    // --kill-child's death signal does not survive setpriv's credential change: kill PID 1 itself.
    const inner = unshare.exitCode === null ? await childOf(unshare.pid!).catch(() => null) : null;
    if (inner !== null) process.kill(inner, 'SIGKILL');
    if (unshare.exitCode === null) unshare.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start within 60 s:\n${stderr.join('\n')}`)), 60_000);
    void exited.then((code) => reject(new Error(`the confined daemon exited with ${code}:\n${stderr.join('\n')}`)));
    createInterface({ input: unshare.stderr }).on('line', (line) => {
      stderr.push(line);
      if (line.includes('edgeban running')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });

  const running = JSON.parse(stderr.find((line) => line.includes('edgeban running'))!) as { jails: string[] };
  assert.deepEqual(
    running.jails.sort(),
    ['dovecot', 'postfix'],
    `the jails of /data/jail.local and /data/jail.d run, with the shipped filters:\n${stderr.join('\n')}`,
  );

  // Who is running: the bundle, PID 1 of its namespace, uid/gid 65534, no groups, no capability, no_new_privs.
  const pid = await childOf(unshare.pid!);
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  assert.deepEqual(cmdline.slice(0, 3), [image.node, image.bundle, 'run'], 'node runs the bundle directly (exec all the way down)');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  assert.equal(statusField(status, 'NSpid').split(/\s+/).at(-1), '1', 'PID 1 in its namespace');
  assert.deepEqual(statusField(status, 'Uid').split(/\s+/), ['65534', '65534', '65534', '65534']);
  assert.deepEqual(statusField(status, 'Gid').split(/\s+/), ['65534', '65534', '65534', '65534']);
  assert.equal(statusField(status, 'Groups'), '');
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.match(statusField(status, set), /^0+$/, `${set} empty`);
  assert.equal(statusField(status, 'NoNewPrivs'), '1');
  const socket = await stat(path.join(dataDir, 'edgeban.sock'));
  assert.ok(socket.isSocket() && socket.uid === NOBODY, 'the control socket is in the data dir, owned by the daemon');

  // The attack, written by the mail server (root) into the log the daemon may only read.
  for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure('198.51.100.31') + postfixFailure('198.51.100.32'));
  await until(
    'both attackers in the alias',
    async () => {
      const entries = await alias();
      return entries.includes('198.51.100.31') && entries.includes('198.51.100.32');
    },
    60_000,
  );

  // The HEALTHCHECK, as the image runs it: same user, same environment, through the socket.
  const healthy = await confined(dataDir, [image.node, image.bundle, 'health'], { EDGEBAN_DATA_DIR: dataDir }, image.appDir);
  assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
  assert.match(healthy.stdout, /^healthy: daemon answers; target [^;]+: in-sync; 2 active bans\n$/);
  const banned = await confined(dataDir, [image.node, image.bundle, 'banned', '--json'], { EDGEBAN_DATA_DIR: dataDir }, image.appDir);
  const jails = (JSON.parse(banned.stdout) as { banned: Array<{ address: string; jail: string }> }).banned.map((b) => `${b.address} ${b.jail}`).sort();
  assert.deepEqual(jails, ['198.51.100.31 dovecot', '198.51.100.32 postfix'], 'each jail of /data/jail.local and /data/jail.d banned its attacker');

  // docker stop: SIGTERM to PID 1 (from outside its namespace, as the engine sends it).
  process.kill(pid, 'SIGTERM');
  let stopTimer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    exited,
    new Promise<string>((resolve) => {
      stopTimer = setTimeout(() => resolve('still running after 30 s'), 30_000);
    }),
  ]);
  clearTimeout(stopTimer);
  assert.equal(code, 0, `PID 1 exits 0 on SIGTERM:\n${stderr.join('\n')}`);
  assert.deepEqual((await alias()).sort(), ['198.51.100.31', '198.51.100.32'], 'stopping unbans nothing');
  const down = await confined(dataDir, [image.node, image.bundle, 'health'], { EDGEBAN_DATA_DIR: dataDir }, image.appDir);
  assert.equal(down.code, 1, 'health fails when the daemon is gone');
  assert.match(down.stdout, /^unhealthy: edgeban is not running/);

  // It wrote only its data dir: nothing else changed, nothing it owns appeared in the shared temp
  // dirs, and it never ran into the read-only root (a write attempt would have logged EROFS).
  assert.deepEqual(await snapshot(root, [dataDir, logDir]), outsideBefore, 'files outside the data dir changed');
  assert.deepEqual(await nobodyOwnedInSharedTmp(), tmpBefore, 'uid 65534 left files in /tmp, /var/tmp or /dev/shm');
  assert.ok(!stderr.some((line) => /EROFS|EACCES|EPERM|confine:/.test(line)), `the daemon hit a permission wall:\n${stderr.join('\n')}`);
  const written = (await readdir(dataDir, { recursive: true })).sort();
  assert.ok(
    written.some((f) => /ledger/i.test(f)),
    `the ledger is in the data dir (found ${written.join(', ')})`,
  );
  assert.ok(!stderr.some((line) => line.includes(SECRET)), 'the secret reached the log');
});
