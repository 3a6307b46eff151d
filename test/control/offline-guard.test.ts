import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { systemClock } from '../../src/util/clock.ts';
import { runCli, startCliDaemon, startCliSimulator, type CliResult } from '../helpers/cli.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { fakeProcNet } from '../helpers/proc-net.ts';
import { until } from '../helpers/until.ts';

const KEY = 'guardTestKey0123456789abcdef';
const SECRET = 'guardTestSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';

/** Each refused request and what must come of it, the same with the daemon stopped and running. */
const REFUSED: Array<{ args: string[]; code: number; output: RegExp }> = [
  { args: ['ban', '127.0.0.1'], code: 1, output: /not banned: 127\.0\.0\.1 is protected \(loopback/ },
  { args: ['ban', '0.0.0.0/0'], code: 1, output: /not banned: 0\.0\.0\.0\/0 is wider than/ },
  { args: ['ban', '::/0'], code: 1, output: /not banned: ::\/0 is wider than/ },
  { args: ['ban', '32.0.0.0/3'], code: 1, output: /not banned: 32\.0\.0\.0\/3 is wider than/ },
  { args: ['ban', '2000::/3'], code: 1, output: /not banned: 2000::\/3 is wider than/ },
  { args: ['ban', '224.0.0.251'], code: 1, output: /not banned: 224\.0\.0\.251 is protected \(multicast/ },
  { args: ['ban', '10.0.0.5'], code: 1, output: /not banned: 10\.0\.0\.5 is protected \(private.*banprivate/ },
  { args: ['ban', '172.18.0.1', '--jail', 'dovecot'], code: 1, output: /not banned: 172\.18\.0\.1 is protected \(gateway: 172\.18\.0\.1\)/ },
  { args: ['ban', '127.0.0.1', '--jail', 'dovecot'], code: 1, output: /not banned: 127\.0\.0\.1 is protected \(loopback/ },
  { args: ['ban', '203.0.113.5', '--jail', 'nosuch'], code: 1, output: /no jail named nosuch/ },
];

function outputOf(result: CliResult): string {
  return result.stdout + result.stderr;
}

test("offline ban obeys the daemon's guard, jails and bantimes; refusals read the same with the daemon running", async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  // A default route via 172.18.0.1, a Docker bridge gateway.
  const procNet = await fakeProcNet(root, '172.18.0.1');
  // banprivate: the gateway (a private address) is refused as the gateway, not merely as private.
  await writeFile(
    path.join(configDir, 'jail.local'),
    ['[dovecot]', 'enabled = true', `logpath = ${mailLog}`, 'bantime = 1h', 'bantime.increment = true', 'banprivate = true', ''].join('\n'),
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_PROC_NET: procNet,
  };

  const offline: CliResult[] = [];
  for (const { args, code, output } of REFUSED) {
    const result = await runCli(args, { env });
    assert.equal(result.code, code, `${args.join(' ')}: ${outputOf(result)}`);
    assert.match(outputOf(result), output, args.join(' '));
    offline.push(result);
  }
  const listed = await runCli(['banned', '--json'], { env });
  assert.deepEqual((JSON.parse(listed.stdout) as { banned: unknown[] }).banned, [], 'a refused ban reached the ledger');

  // The jail's bantime (1h), then bantime.increment doubles it for the second ban.
  const expiry = async () => {
    const banned = (
      JSON.parse((await runCli(['banned', '--json'], { env })).stdout) as {
        banned: Array<{ address: string; jail: string; target: string; expiresAt: string }>;
      }
    ).banned;
    assert.equal(banned.length, 1);
    assert.equal(banned[0]!.jail, 'dovecot');
    assert.equal(banned[0]!.target, ALIAS);
    return (Date.parse(banned[0]!.expiresAt) - Date.now()) / 1000;
  };
  const first = await runCli(['ban', '203.0.113.5', '--jail', 'dovecot'], { env });
  assert.equal(first.code, 0, outputOf(first));
  const firstSec = await expiry();
  assert.ok(firstSec > 3600 - 120 && firstSec <= 3600, `first ban lasts the jail's bantime, not ${firstSec} s`);
  assert.equal((await runCli(['unban', '203.0.113.5'], { env })).code, 0);
  assert.equal((await runCli(['ban', '203.0.113.5', '--jail', 'dovecot'], { env })).code, 0);
  const secondSec = await expiry();
  assert.ok(secondSec > 7200 - 120 && secondSec <= 7200, `second ban is doubled by bantime.increment, not ${secondSec} s`);

  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  for (const [i, { args, code }] of REFUSED.entries()) {
    const result = await runCli(args, { env });
    assert.equal(result.code, code, `${args.join(' ')} online: ${outputOf(result)}`);
    assert.equal(outputOf(result), outputOf(offline[i]!), `${args.join(' ')}: online and offline answers differ`);
  }
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  await until('the offline ban in the alias', async () => (await alias()).includes('203.0.113.5'));
  assert.deepEqual(await alias(), ['203.0.113.5'], 'only the allowed ban reaches the alias');
  assert.equal(await daemon.stop(), 0);
});

test('bans an older edgeban recorded unguarded are ended at start, before any reaches the firewall', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\n`);
  const dataDir = path.join(root, 'data');
  // What the unguarded offline CLI used to write.
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
  for (const address of ['0.0.0.0/0', '32.0.0.0/3', '127.0.0.1', '10.0.0.5', '203.0.113.20']) {
    await ledger.ban({ target: ALIAS, address, jail: 'manual', origin: 'manual', durationMs: 3_600_000 });
  }
  await ledger.close();
  const env = { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir, EDGEBAN_CONFIG_DIR: configDir };
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  await until('the allowed ban in the alias', async () => (await alias()).includes('203.0.113.20'));
  const calls = (await sim.admin('calls')) as Array<{ path: string; requestBody: string }>;
  const added = calls.filter((c) => c.path.includes('alias_util/add')).map((c) => (JSON.parse(c.requestBody) as { address: string }).address);
  assert.deepEqual(added, ['203.0.113.20'], 'only the allowed ban was sent');
  for (const address of ['0.0.0.0/0', '32.0.0.0/3', '127.0.0.1', '10.0.0.5']) {
    assert.ok(
      daemon.stderr.some((line) => line.includes(`ended the recorded ban of ${address} is`)),
      `no log line for ${address}`,
    );
  }
  const banned = (JSON.parse((await runCli(['banned', '--json'], { env })).stdout) as { banned: Array<{ address: string }> }).banned;
  assert.deepEqual(
    banned.map((b) => b.address),
    ['203.0.113.20'],
  );
  assert.equal(await daemon.stop(), 0);
});
