// The target contract against `edgeban simulate` run as a process, through OpnsenseTarget.
import { createLogger } from '../../src/logging/logger.ts';
import { opnsenseKind } from '../../src/targets/opnsense/kind.ts';
import { systemClock } from '../../src/util/clock.ts';
import { startCliSimulator } from '../helpers/cli.ts';
import { KEY, SECRET } from '../helpers/enforcement-harness.ts';
import { runTargetContract } from './target-contract.ts';

const ALIAS = 'edgeban_contract';

runTargetContract('opnsense', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--alias', `${ALIAS}:external`]);
  const state = async () => (await sim.admin('state')) as { tables: Record<string, string[]>; maxInFlight: number };
  const options = opnsenseKind.parseOptions({ firewall: sim.url, key: KEY, secret: SECRET, alias: ALIAS, timeout: '5' });
  const logger = createLogger({ level: 'silent' });
  return {
    connect: () => opnsenseKind.create(options, { clock: systemClock, logger }),
    entries: async () => (await state()).tables[ALIAS] ?? [],
    seedForeign: async (addresses) => {
      await sim.admin('seed', { table: ALIAS, entries: addresses });
    },
    reboot: async () => {
      await sim.admin('reboot', {});
    },
    // 5xx on every API call: refusing connections would close the admin routes too.
    setDown: async (down) => {
      await sim.admin('faults', { errorRate: down ? 1 : 0 });
    },
    setLatency: async (ms) => {
      await sim.admin('faults', { latencyMs: ms });
    },
    flushes: async () => ((await sim.admin('calls')) as Array<{ path: string }>).filter((c) => c.path.includes('/flush/')).length,
    dropAdds: async (drop) => {
      await sim.admin('faults', { discardAdds: drop });
    },
    maxInFlight: async () => (await state()).maxInFlight,
    resetMaxInFlight: async () => {
      await sim.admin('reset-max-in-flight', {});
    },
  };
});
