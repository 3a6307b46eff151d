// The target contract against the in-memory backend (the reference the others are held to).
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryTarget } from '../../src/targets/memory/target.ts';
import { runTargetContract } from './target-contract.ts';

runTargetContract('memory', async () => {
  // One list outlives the EdgeTargets made on it (an edgeban restart reconnects to the same list).
  const list = new MemoryTarget({ name: 'contract' });
  let latencyMs = 0;
  list.gate = async () => { if (latencyMs > 0) await sleep(latencyMs); };
  return {
    connect: () => list,
    entries: async () => list.addresses(),
    seedForeign: async (addresses) => { list.seed(addresses); },
    reboot: async () => { list.reboot(); },
    setDown: async (down) => { list.faults = { ...list.faults, down }; },
    setLatency: async (ms) => { latencyMs = ms; },
    flushes: async () => 0,
    dropAdds: async (drop) => { list.faults = { ...list.faults, dropAdds: drop }; },
    maxInFlight: async () => list.maxInFlight,
    resetMaxInFlight: async () => { list.maxInFlight = 0; },
  };
});
