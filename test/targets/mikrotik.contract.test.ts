// The target contract against `edgeban simulate --kind mikrotik` run as a process, through the MikroTik backend.
import { createLogger } from '../../src/logging/logger.ts';
import { parsePfEntry } from '../../src/net/address.ts';
import { mikrotikKind } from '../../src/targets/mikrotik/index.ts';
import { startCliSimulator } from '../helpers/cli.ts';
import { countedAtSeam } from './counted-target.ts';
import { runTargetContract } from './target-contract.ts';

const LIST = 'edgeban_contract';
const PASSWORD = 'contract-password-0123';

runTargetContract('mikrotik', async (t) => {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--user', 'edgeban', '--password', PASSWORD, '--list', LIST]);
  type Row = { list: string; address: string };
  const rows = async () => {
    const state = (await sim.admin('state')) as { ip: Row[]; ipv6: Row[] };
    return [...state.ip, ...state.ipv6].filter((r) => r.list === LIST);
  };
  const options = mikrotikKind.parseOptions({ url: sim.url, user: 'edgeban', password: PASSWORD, list: LIST, api_timeout: '5' });
  const logger = createLogger({ level: 'silent' });
  const counter = { now: 0, max: 0 };
  return {
    // The simulator does not count calls in flight: they are counted at the seam. The suite's clock: the timeout
    // sent is the ban's end by that clock, which advanceClock keeps in step with the router's.
    connect: (clock) => countedAtSeam(mikrotikKind.create(options, { clock, logger }), counter),
    entries: async () => (await rows()).map((r) => parsePfEntry(r.address).text),
    seedForeign: async (addresses) => {
      for (const address of addresses) await sim.admin('entries', { menu: address.includes(':') ? 'ipv6' : 'ip', list: LIST, address });
    },
    reboot: async () => {
      await sim.admin('reboot', {});
    },
    setDown: async (down) => {
      await sim.admin('faults', { errorRate: down ? 1 : 0 });
    },
    setLatency: async (ms) => {
      await sim.admin('faults', { latencyMs: ms });
    },
    // RouterOS has no call that empties a list at once: there is nothing to count.
    flushes: async () => 0,
    cannot: { dropAdds: 'RouterOS answers a PUT with the stored entry (or "already have such entry"): it has no full table that accepts and drops' },
    maxInFlight: async () => counter.max,
    resetMaxInFlight: async () => {
      counter.max = counter.now;
    },
    advanceClock: async (ms) => {
      await sim.admin('clock', { advanceMs: ms });
    },
  };
});
