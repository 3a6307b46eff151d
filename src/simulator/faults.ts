import { z } from 'zod';
import type { Rng } from './rng.ts';

export interface SimulatorFaults {
  /** Added to every API call (concurrent, not serialized). */
  latencyMs: number;
  /** How long each alias_util add/delete/flush holds the one global config lock (FIFO). */
  lockMs: number;
  /** Fraction of API calls answered 500 Unexpected error, without touching state. */
  errorRate: number;
  /** Fraction of API calls never answered. */
  hangRate: number;
  /** Listener closed: connections refused, open sockets destroyed. */
  refuse: boolean;
  /** 0 = off; else alternating healthy / failing (503) periods of this length, healthy first. */
  flapPeriodMs: number;
  /** 0 = off; else alias_util/list answers at most this many rows per page, whatever was asked (a capping firewall or proxy); `total` stays true. */
  listPageCap: number;
  /** alias_util/list answers page 1 whatever page was asked (a caching proxy). */
  listIgnoresPage: boolean;
  /** How list rows spell entries: as pf prints them, with `/32` and `/128`, or in upper case (other firewall software, proxies). */
  listSpelling: ListSpelling;
  /** alias_util/add answers `done` and pf stores nothing (pfctl failing silently for a reason other than the table limit). */
  discardAdds: boolean;
}

export const LIST_SPELLINGS = ['pf', 'host-prefix', 'upper-case'] as const;
export type ListSpelling = (typeof LIST_SPELLINGS)[number];

export const DEFAULT_FAULTS: SimulatorFaults = {
  latencyMs: 0,
  lockMs: 0,
  errorRate: 0,
  hangRate: 0,
  refuse: false,
  flapPeriodMs: 0,
  listPageCap: 0,
  listIgnoresPage: false,
  listSpelling: 'pf',
  discardAdds: false,
};

const ms = z.number().int().min(0).max(3_600_000);
const rate = z.number().min(0).max(1);

/** Partial fault settings, strict so a misspelt field is an error rather than silently ignored. */
export const faultsSchema = z.strictObject({
  latencyMs: ms.optional(),
  lockMs: ms.optional(),
  errorRate: rate.optional(),
  hangRate: rate.optional(),
  refuse: z.boolean().optional(),
  flapPeriodMs: ms.optional(),
  listPageCap: z.number().int().min(0).max(1_000_000).optional(),
  listIgnoresPage: z.boolean().optional(),
  listSpelling: z.enum(LIST_SPELLINGS).optional(),
  discardAdds: z.boolean().optional(),
});

/** First problem of a zod error as `field: message`, naming the field. */
export function describeZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid input';
  if (issue.code === 'unrecognized_keys') return `unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  const path = issue.path.length > 0 ? issue.path.join('.') : '(body)';
  return `${path}: ${issue.message}`;
}

export type FaultVerdict = 'ok' | 'hang' | 'error' | 'unavailable';

/** Decides per call which fault strikes; draws from the seeded RNG only for active rates. */
export class FaultPlan {
  private current: SimulatorFaults = { ...DEFAULT_FAULTS };
  private flapStart = 0;
  private readonly rng: Rng;
  private readonly now: () => number;

  constructor(rng: Rng, now: () => number) {
    this.rng = rng;
    this.now = now;
    this.flapStart = now();
  }

  settings(): SimulatorFaults {
    return { ...this.current };
  }

  /** Validates and merges; returns the previous settings. Throws on bad values. */
  update(partial: Partial<SimulatorFaults>): SimulatorFaults {
    const parsed = faultsSchema.safeParse(partial);
    if (!parsed.success) throw new RangeError(`invalid faults: ${describeZodError(parsed.error)}`);
    const previous = this.current;
    const next: SimulatorFaults = { ...previous };
    for (const [k, v] of Object.entries(parsed.data)) {
      if (v !== undefined) (next as unknown as Record<string, unknown>)[k] = v;
    }
    if (next.flapPeriodMs !== previous.flapPeriodMs) this.flapStart = this.now();
    this.current = next;
    return previous;
  }

  verdict(): FaultVerdict {
    const f = this.current;
    if (f.flapPeriodMs > 0) {
      const period = Math.floor((this.now() - this.flapStart) / f.flapPeriodMs);
      if (period % 2 === 1) return 'unavailable';
    }
    if (f.hangRate > 0 && this.rng.next() < f.hangRate) return 'hang';
    if (f.errorRate > 0 && this.rng.next() < f.errorRate) return 'error';
    return 'ok';
  }
}
