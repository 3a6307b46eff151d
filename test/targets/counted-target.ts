import type { EdgeTarget } from '../../src/targets/edge-target.ts';

/** Calls in flight through a target, now and at most (reset by setting `max = now`). */
export interface InFlight {
  now: number;
  max: number;
}

/**
 * An EdgeTarget that counts its calls in flight at the seam, where the reconciler's concurrency
 * bound applies: for backends whose simulator cannot count them (RouterOS) or whose calls meet
 * one at a time further down (Cloudflare's one bulk operation per account), or that have no
 * process at all (the feed). `delay` (read on each call) holds every call that long before it
 * goes on, for a backend without a simulator to slow down.
 */
export function countedAtSeam(target: EdgeTarget, counter: InFlight, delay: () => number = () => 0): EdgeTarget {
  const track = async <T>(call: () => Promise<T>): Promise<T> => {
    counter.now++;
    counter.max = Math.max(counter.max, counter.now);
    try {
      const ms = delay();
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
      return await call();
    } finally {
      counter.now--;
    }
  };
  return {
    kind: target.kind,
    id: target.id,
    capabilities: target.capabilities,
    canonical: (address) => target.canonical(address),
    check: () => track(() => target.check()),
    list: () => track(() => target.list()),
    add: (entry) => track(() => target.add(entry)),
    delete: (address) => track(() => target.delete(address)),
    ...(target.killConnections ? { killConnections: (address: string) => track(() => target.killConnections!(address)) } : {}),
    ...(target.explainUnstored ? { explainUnstored: () => target.explainUnstored!() } : {}),
    close: () => target.close(),
  };
}
