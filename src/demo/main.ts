import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileLedgerStore } from '../ledger/file-ledger-store.ts';
import { Ledger } from '../ledger/ledger.ts';
import { createLogger } from '../logging/logger.ts';
import { LEAST_PRIVILEGES, OpnsenseSimulator } from '../simulator/opnsense-simulator.ts';
import { AliasReconciler } from '../targets/alias-reconciler.ts';
import { OpnsenseClient } from '../targets/opnsense/client.ts';
import { systemClock } from '../util/clock.ts';

// `npm run demo`: edgeban's enforcement on embedded defaults, nothing beyond loopback. A simulated
// OPNsense, a ledger in a temporary data dir, and the reconciler keeping the alias in line
// through bans, an OPNsense reboot, expiries and an edgeban restart.
const ALIAS = 'fail2ban_blocklist';
const KEY = 'demoKey0123456789abcdefghij';
const SECRET = 'demoSecret0123456789abcdefghij';
const started = Date.now();
const say = (line: string) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const sim = await OpnsenseSimulator.start({ keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES }], authFailDelayMs: 0, faults: { latencyMs: 20 } });
const dataDir = await mkdtemp(path.join(tmpdir(), 'edgeban-demo-'));
const logger = createLogger({ level: 'warn', secrets: [SECRET] });
say(`OPNsense simulator on ${sim.url} (alias ${ALIAS}, External); ledger in ${dataDir}`);

async function startEdgeban() {
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger });
  const ledger = await Ledger.open({ store, clock: systemClock, logger });
  const client = new OpnsenseClient({ endpoint: { url: sim.url, key: KEY, secret: SECRET, ca: null, tlsInsecure: false, timeoutMs: 5000 }, logger });
  const reconciler = new AliasReconciler({
    id: sim.url, ledgerTarget: ALIAS, alias: ALIAS, api: client, ledger, clock: systemClock, logger,
    intervalMs: 2000, concurrency: 16, foreignPolicy: 'keep', adoptBantimeMs: 600_000, killStates: true, listPageSize: 9999,
  });
  await reconciler.start();
  return { ledger, client, reconciler, stop: async () => { await reconciler.stop(); await client.close(); await ledger.close(); } };
}

async function waitFor(what: string, predicate: () => boolean, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await sleep(20);
  }
}

const alias = () => sim.tableEntries(ALIAS);
let failed = false;
let edgeban = await startEdgeban();
try {
  const bans = [
    { address: '192.0.2.10', jail: 'dovecot', seconds: 4 },
    { address: '198.51.100.23', jail: 'postfix', seconds: 6 },
    { address: '2001:db8:bad::7', jail: 'traefik', seconds: 6 },
    { address: '203.0.113.5', jail: 'nginx', seconds: 60 },
  ];
  for (const ban of bans) {
    const t0 = performance.now();
    await edgeban.ledger.ban({ target: ALIAS, address: ban.address, jail: ban.jail, origin: 'jail', durationMs: ban.seconds * 1000 });
    await waitFor(ban.address, () => alias().includes(ban.address));
    say(`ban ${ban.address.padEnd(16)} jail ${ban.jail.padEnd(8)} bantime ${String(ban.seconds).padStart(2)} s -> in the alias after ${(performance.now() - t0).toFixed(0)} ms`);
  }
  say(`alias now: ${alias().join(', ')}`);

  sim.reboot();
  say(`OPNsense reboots: External tables are emptied (alias: ${alias().length} entries)`);
  await waitFor('restore after reboot', () => bans.every((b) => alias().includes(b.address)));
  say(`the next reconcile pass put them back: ${alias().join(', ')}`);
  sim.seedTableEntries(ALIAS, ['203.0.113.250']);
  say('an admin adds 203.0.113.250 to the alias by hand: edgeban leaves it alone (EDGEBAN_FOREIGN_ENTRIES=keep)');

  await edgeban.stop();
  say('edgeban stops (an upgrade): nothing is unbanned or flushed');
  say(`alias while edgeban is down: ${alias().join(', ')}`);
  await sleep(500);
  edgeban = await startEdgeban();
  const kept = edgeban.ledger.claimsOf(ALIAS, '192.0.2.10')[0];
  say(`edgeban starts again: 192.0.2.10 keeps its original expiry (${new Date(kept?.expiresAt ?? 0).toISOString()})`);

  for (const ban of bans.filter((b) => b.seconds < 60)) {
    await waitFor(`expiry of ${ban.address}`, () => !alias().includes(ban.address));
    say(`ban of ${ban.address} ended -> removed from the alias`);
  }
  await edgeban.ledger.unban({ address: '203.0.113.5' });
  await waitFor('manual unban', () => !alias().includes('203.0.113.5'));
  say('manual unban of 203.0.113.5 -> removed from the alias');

  const status = edgeban.reconciler.status();
  say(`final alias: ${alias().join(', ') || '(empty)'}; target state ${status.state}`);
  const writes = sim.calls().filter((c) => /alias_util\/(add|delete)/.test(c.path)).length;
  const flushes = sim.calls().filter((c) => c.path.includes('/flush/')).length;
  say(`summary: ${bans.length} bans, 1 OPNsense reboot, 1 edgeban restart; ${writes} add/delete calls, ${flushes} flushes; the admin's entry survived: ${alias().includes('203.0.113.250')}`);
  if (flushes > 0 || !alias().includes('203.0.113.250') || alias().length !== 1) failed = true;
} catch (error) {
  failed = true;
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
} finally {
  await edgeban.stop();
  await sim.stop();
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
