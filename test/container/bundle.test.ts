// The bundle `npm run build` makes runs on its own: no node_modules, shipped filters and actions
// found next to dist/, commands still loaded lazily.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { SHIMS } from '../../deploy/docker/build.ts';
import { PACKAGE_ROOT } from '../../src/config/shipped-dirs.ts';
import { REPO } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { buildBundle, stageImage } from './stage.ts';

function runNode(node: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(node, args, { cwd, env: { PATH: '/usr/bin:/bin', TZ: 'UTC' }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

test('from src/, the package root is the repository', () => {
  assert.equal(PACKAGE_ROOT, REPO);
});

test('the bundle runs without node_modules and finds the shipped filters next to dist/', { timeout: 180_000 }, async (t) => {
  const root = await tempDir(t, 'edgeban-bundle-');
  const image = await stageImage(root, path.dirname(await buildBundle(path.join(root, 'build'))));
  for (let dir = path.dirname(image.bundle); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    assert.ok(!existsSync(path.join(dir, 'node_modules')), `${dir}/node_modules exists: the bundle could lean on it`);
  }
  const help = await runNode(image.node, [image.bundle, '--help'], root);
  assert.equal(help.code, 0, help.stderr);
  for (const command of ['run', 'status', 'health', 'simulate', 'test-filter']) assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));

  // `edgeban` and `fail2ban-client` from PATH, through links as the Dockerfile makes them (COPY keeps the build's 0755).
  const pathDir = path.join(root, 'usr-local-bin');
  await mkdir(pathDir);
  await copyFile(image.node, path.join(pathDir, 'node'));
  await chmod(path.join(pathDir, 'node'), 0o755);
  for (const name of Object.keys(SHIMS)) {
    await chmod(path.join(image.appDir, 'dist/bin', name), 0o755);
    await symlink(path.join(image.appDir, 'dist/bin', name), path.join(pathDir, name));
  }
  const onPath = (command: string, args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(command, args, { cwd: '/', env: { PATH: `${pathDir}:/usr/bin:/bin`, EDGEBAN_DATA_DIR: root }, timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      });
    });
  assert.match((await onPath('edgeban', ['version'])).stdout, /^edgeban \d+\.\d+\.\d+/);
  assert.match((await onPath('fail2ban-client', ['version'])).stdout, /fail2ban-client shim/);
  const shimStatus = await onPath('fail2ban-client', ['status', 'sshd']);
  assert.equal(shimStatus.code, 1);
  assert.match(shimStatus.stderr, /edgeban is not running \(nothing answers on .*edgeban\.sock\)/, 'the shim ran `edgeban status sshd`');

  // test-filter resolves the filter by name among the shipped ones: from a cwd unrelated to the image.
  const log = path.join(root, 'mail.log');
  await writeFile(
    log,
    'Jan  1 00:00:00 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, method=PLAIN, rip=198.51.100.4, lip=10.0.0.2, TLS, session=<x>\n',
  );
  const matched = await runNode(image.node, [image.bundle, 'test-filter', 'dovecot', log, '--json'], '/');
  assert.equal(matched.code, 0, matched.stderr);
  assert.deepEqual(JSON.parse(matched.stdout), { line: 1, match: true, host: '198.51.100.4', time: 1767225600, user: 'a' });
});

/** The files a module loads before it runs: its static imports, transitively (dynamic import() excluded). */
async function staticClosure(dir: string, file: string, seen = new Set<string>()): Promise<Set<string>> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = await readFile(path.join(dir, file), 'utf8');
  for (const match of text.matchAll(/(?:^|[;\n])\s*(?:import|export)\s*(?:[^'"();]*?\sfrom\s*)?["'](\.\/[^"']+)["']/g)) {
    await staticClosure(dir, path.posix.normalize(match[1]!), seen);
  }
  return seen;
}

test('the bundle keeps commands lazy: the entry and `health` do not load the simulator', { timeout: 180_000 }, async (t) => {
  const outdir = path.join(await tempDir(t, 'edgeban-bundle-'), 'dist');
  const entry = await buildBundle(outdir);
  const files = await readdir(outdir);
  // One chunk per lazily imported command module (esbuild names them after the source file).
  for (const command of ['run-command', 'health-command', 'simulate-command', 'test-filter-command']) {
    assert.ok(
      files.some((f) => f.startsWith(`${command}-`) && f.endsWith('.mjs')),
      `no separate chunk for ${command}`,
    );
  }
  const holdsSimulator = async (file: string) => (await readFile(path.join(outdir, file), 'utf8')).includes('GET /__simulator/state');
  const simulate = files.find((f) => f.startsWith('simulate-command-'))!;
  assert.ok((await Promise.all([...(await staticClosure(outdir, simulate))].map(holdsSimulator))).some(Boolean), 'the marker finds the simulator where it is');
  for (const start of [path.basename(entry), files.find((f) => f.startsWith('health-command-'))!]) {
    const closure = [...(await staticClosure(outdir, start))];
    assert.ok(closure.length >= 1);
    assert.deepEqual(
      (await Promise.all(closure.map(async (f) => ((await holdsSimulator(f)) ? f : null)))).filter(Boolean),
      [],
      `${start} loads the simulator up front`,
    );
  }
});
