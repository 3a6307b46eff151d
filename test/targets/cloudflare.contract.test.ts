// The target contract against `edgeban simulate --kind cloudflare` run as a process, through the Cloudflare backend.
import { createLogger } from '../../src/logging/logger.ts';
import { cloudflareKind } from '../../src/targets/cloudflare/cloudflare-kind.ts';
import { listedSpelling } from '../../src/targets/cloudflare/cloudflare-address.ts';
import { systemClock } from '../../src/util/clock.ts';
import { startCliSimulator } from '../helpers/cli.ts';
import { countedAtSeam } from './counted-target.ts';
import { runTargetContract } from './target-contract.ts';

const ACCOUNT = 'c0ffee00c0ffee00c0ffee00c0ffee00';
const LIST = 'edgeban_contract';
const TOKEN = 'contract-token-0123456789abcdef';

runTargetContract('cloudflare', async (t) => {
  // Operations applied at once: the client still submits, polls and waits for each, one per account at a time.
  const sim = await startCliSimulator(t, ['--kind', 'cloudflare', '--account', ACCOUNT, '--list', LIST, '--token', TOKEN, '--operation-delay-ms', '0']);
  type State = { accounts: Record<string, Array<{ name: string; items: Array<{ ip: string }> }>>; calls: Record<string, number> };
  const state = async () => (await sim.admin('state')) as State;
  const options = cloudflareKind.parseOptions({ account: ACCOUNT, list: LIST, token: TOKEN, api: sim.url });
  const logger = createLogger({ level: 'silent' });
  const counter = { now: 0, max: 0 };
  return {
    // Writes meet one at a time at the account's lock (one pending bulk operation per account): the reconciler's bound is at the seam.
    connect: () => countedAtSeam(cloudflareKind.create(options, { clock: systemClock, logger }), counter),
    entries: async () => ((await state()).accounts[ACCOUNT]?.find((l) => l.name === LIST)?.items ?? []).map((i) => listedSpelling(i.ip)),
    seedForeign: async (addresses) => {
      await sim.admin('items', { account: ACCOUNT, list: LIST, items: addresses.map((ip) => ({ ip, comment: 'added by hand' })) });
    },
    // Cloudflare never empties a list by itself: the equivalent is someone emptying it in the dashboard.
    reboot: async () => {
      await sim.admin('empty', { account: ACCOUNT, list: LIST });
    },
    setDown: async (down) => {
      await sim.admin('faults', { down });
    },
    setLatency: async (ms) => {
      await sim.admin('faults', { latencyMs: ms });
    },
    // PUT items replaces the whole list.
    flushes: async () => (await state()).calls['PUT items'] ?? 0,
    dropAdds: async (drop) => {
      await sim.admin('faults', { discardAdds: drop });
    },
    maxInFlight: async () => counter.max,
    resetMaxInFlight: async () => {
      counter.max = counter.now;
    },
  };
});
