import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { fakeProcNet, routeVia } from '../helpers/proc-net.ts';
import { until } from '../helpers/until.ts';

const KEY = 'reloadGuardKey0123456789abcdef';
const SECRET = 'reloadGuardSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';

test('reload reads the network again: a new gateway is protected from the next ban, and its recorded ban ends and leaves the alias', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  const procNet = await fakeProcNet(root, '198.51.100.1');
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nbantime = 1h\n`);
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_PROC_NET: procNet,
  };
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const banned = async () =>
    (JSON.parse((await runCli(['banned', '--json'], { env })).stdout) as { banned: Array<{ address: string }> }).banned.map((b) => b.address);

  const gateway = await runCli(['ban', '198.51.100.1', '--jail', 'dovecot'], { env });
  assert.equal(gateway.code, 1, 'the gateway at start is protected');
  const before = await runCli(['ban', '198.51.100.254', '--jail', 'dovecot'], { env });
  assert.equal(before.code, 0, before.stdout + before.stderr);
  await until('the ban in the alias', async () => (await alias()).includes('198.51.100.254'));

  // The container's network changed: its default route now goes through 198.51.100.254.
  await writeFile(path.join(procNet, 'route'), routeVia('198.51.100.254'));
  const reloaded = await runCli(['reload'], { env });
  assert.equal(reloaded.code, 0, reloaded.stdout + reloaded.stderr);
  assert.deepEqual(await banned(), [], 'the ban of the new gateway ended at the reload');
  await until('the new gateway out of the alias', async () => !(await alias()).includes('198.51.100.254'));
  const after = await runCli(['ban', '198.51.100.254', '--jail', 'dovecot'], { env });
  assert.equal(after.code, 1, after.stdout + after.stderr);
  assert.match(after.stdout + after.stderr, /not banned: 198\.51\.100\.254 is protected \(gateway: 198\.51\.100\.254\)/);
  assert.equal(await daemon.stop(), 0);
});
