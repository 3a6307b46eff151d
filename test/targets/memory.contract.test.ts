// The target contract against the in-memory backend (the reference the others are held to).
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryTarget } from '../../src/targets/memory/target.ts';
import { runTargetContract } from './target-contract.ts';

for (const nativeExpiry of [false, true])
  runTargetContract(nativeExpiry ? 'memory (native expiry)' : 'memory', async () => {
    // One list outlives the EdgeTargets made on it (an edgeban restart reconnects to the same list).
    const list = new MemoryTarget({ name: 'contract', capabilities: { nativeExpiry } });
    let latencyMs = 0;
    list.gate = async () => {
      if (latencyMs > 0) await sleep(latencyMs);
    };
    return {
      // With native expiry the list drops entries by the suite's clock, as a router by its own.
      connect: (clock) => {
        list.clock = clock;
        return list;
      },
      entries: async () => list.addresses(),
      seedForeign: async (addresses) => {
        list.seed(addresses);
      },
      reboot: async () => {
        list.reboot();
      },
      setDown: async (down) => {
        list.faults = { ...list.faults, down };
      },
      setLatency: async (ms) => {
        latencyMs = ms;
      },
      flushes: async () => 0,
      dropAdds: async (drop) => {
        list.faults = { ...list.faults, dropAdds: drop };
      },
      maxInFlight: async () => list.maxInFlight,
      resetMaxInFlight: async () => {
        list.maxInFlight = 0;
      },
      ...(nativeExpiry ? { advanceClock: async () => {} } : {}),
    };
  });
