// `edgeban run` without EDGEBAN_DATA_DIR on a host refuses to create /data and says what to set;
// in a container (here: a /.dockerenv marker) /data stays the default. The host is made by a
// chroot into a copy of / that lacks the container markers of the machine running the tests
// (fresh mount namespace, every top-level directory bind-mounted; needs root, as CI has).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { EDGEBAN } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';

/** What marks a container, left out of the copy of /. */
const MARKERS = new Set(['.dockerenv', 'data']);

async function hostRoot(root: string): Promise<string> {
  const script = ['set -eu'];
  for (const entry of await readdir('/', { withFileTypes: true })) {
    if (MARKERS.has(entry.name)) continue;
    const target = path.join(root, entry.name);
    if (entry.isSymbolicLink()) {
      await symlink(await readlink(`/${entry.name}`), target);
    } else if (entry.isDirectory()) {
      await mkdir(target);
      // Podman's marker lives in /run: then /run stays an empty directory.
      if (entry.name === 'run' && existsSync('/run/.containerenv')) continue;
      script.push(`mount --rbind /${entry.name} ${target}`);
    }
  }
  script.push(`exec chroot ${root} "$@"`);
  return script.join('\n');
}

function runIn(script: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, EDGEBAN, ...args],
      {
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
        cwd: '/',
        timeout: 60_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('edgeban run without EDGEBAN_DATA_DIR: refused on a host, naming the variable; /data in a container', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test runs as root (as CI does): it builds a mount namespace and a chroot');
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const script = await hostRoot(root);
  const configDir = path.join(dir, 'config');
  await mkdir(configDir);
  await writeFile(path.join(configDir, 'jail.local'), '[dovecot]\nenabled = maybe\n');
  const env = {
    OPNSENSE_URL: 'http://127.0.0.1:9',
    OPNSENSE_KEY: 'dataDirTestKey0123456789',
    OPNSENSE_SECRET: 'dataDirTestSecret0123456789',
    EDGEBAN_CONFIG_DIR: configDir,
  };

  const onHost = await runIn(script, ['run'], env);
  assert.equal(onHost.code, 2, onHost.stderr);
  assert.match(onHost.stderr, /EDGEBAN_DATA_DIR is not set and this is not a container: edgeban does not create \/data on a host\. Set EDGEBAN_DATA_DIR/);
  assert.ok(!existsSync(path.join(root, 'data')), '/data was created');

  // The same host with the variable set gets past the check (to the broken jail.local).
  const withVariable = await runIn(script, ['run'], { ...env, EDGEBAN_DATA_DIR: path.join(dir, 'state') });
  assert.equal(withVariable.code, 2);
  assert.match(withVariable.stderr, /jail\.local:2: \[dovecot\] enabled/);

  // In a container, /data is the default: the check passes, and the run stops at the same config error.
  await writeFile(path.join(root, '.dockerenv'), '');
  const inContainer = await runIn(script, ['run'], env);
  assert.equal(inContainer.code, 2);
  assert.doesNotMatch(inContainer.stderr, /EDGEBAN_DATA_DIR is not set/);
  assert.match(inContainer.stderr, /jail\.local:2: \[dovecot\] enabled/);
});
