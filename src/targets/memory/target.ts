import { parsePfEntry } from '../../net/address.ts';
import {
  TargetError,
  type DesiredEntry,
  type EdgeTarget,
  type ListedEntry,
  type TargetCapabilities,
  type TargetCheckResult,
  type TargetDeps,
  type TargetKind,
} from '../edge-target.ts';
import { requiredParam, TargetOptionError } from '../target-options.ts';

/** Faults a test (or the contract suite) switches on; every call checks them first. */
export interface MemoryFaults {
  /** Every call fails as `retry` (an outage). */
  down: boolean;
  /** Every call fails as `operator` with this reason (e.g. `auth`, `list-missing`). */
  operator: string | null;
  /** Adds of these addresses fail as `rejected`. */
  reject: ReadonlySet<string>;
  /** Adds answer success but store nothing (a full table). */
  dropAdds: boolean;
}

export interface MemoryTargetOptions {
  /** Name of the in-memory list (part of the id). */
  name: string;
  capabilities?: Partial<TargetCapabilities>;
  /** Only addresses this returns non-null for can be held (canonical spelling); default: pf's spelling. */
  canonical?: (address: string) => string | null;
}

export interface MemoryCall {
  op: 'list' | 'add' | 'delete' | 'kill' | 'check';
  address: string | null;
}

const DEFAULT_CAPABILITIES: TargetCapabilities = { nativeExpiry: false, bulk: false, killConnections: true, comments: false };

function pfSpelling(address: string): string | null {
  try {
    return parsePfEntry(address).text;
  } catch {
    return null;
  }
}

/**
 * An EdgeTarget held in memory, for tests and dry runs: entries with their expiry and comment, a
 * log of calls, the most calls ever in flight at once, and fault hooks (outage, operator error,
 * rejected entries, dropped adds, a `gate` every call awaits, e.g. to hold calls in flight).
 */
export class MemoryTarget implements EdgeTarget {
  readonly kind = 'memory';
  readonly id: string;
  readonly capabilities: TargetCapabilities;
  readonly entries = new Map<string, { entry: DesiredEntry | null; owned: boolean | null }>();
  readonly calls: MemoryCall[] = [];
  faults: MemoryFaults = { down: false, operator: null, reject: new Set(), dropAdds: false };
  /** Awaited by every call before it acts (default: nothing). */
  gate: (call: MemoryCall) => Promise<void> = async () => {};
  maxInFlight = 0;
  private inFlight = 0;
  private readonly spell: (address: string) => string | null;
  /**
   * With `nativeExpiry`: the list's own clock, by which it drops an entry at its `expiresAt` (as a
   * router drops an entry whose timeout ran out); a test sets it. Without it, entries never expire here.
   */
  clock: { now(): number } | null = null;
  private readonly deps: Pick<TargetDeps, 'onCall'> | undefined;

  constructor(options: MemoryTargetOptions, deps?: Pick<TargetDeps, 'onCall'>) {
    this.deps = deps;
    this.id = `memory ${options.name}`;
    this.capabilities = { ...DEFAULT_CAPABILITIES, ...options.capabilities };
    this.spell = options.canonical ?? pfSpelling;
  }

  canonical(address: string): string | null {
    return this.spell(address);
  }

  /** Puts entries there as someone else would (foreign unless `owned`). */
  seed(addresses: readonly string[], owned: boolean | null = null): void {
    for (const address of addresses) this.entries.set(this.spell(address) ?? address, { entry: null, owned });
  }

  /** Empties the list, as a firewall reboot empties a pf table. */
  reboot(): void {
    this.entries.clear();
  }

  addresses(): string[] {
    this.expire();
    return [...this.entries.keys()].sort();
  }

  async check(): Promise<TargetCheckResult> {
    await this.enter({ op: 'check', address: null });
    return { errors: [], warnings: [], facts: { entries: String(this.entries.size) } };
  }

  async list(): Promise<ListedEntry[]> {
    await this.enter({ op: 'list', address: null });
    // With native expiry the list says when each entry ends, as a router prints its timeout (a seeded entry never ends).
    return [...this.entries].map(([address, { entry, owned }]) => ({
      address,
      owned,
      ...(this.capabilities.nativeExpiry ? { expiresAt: entry?.expiresAt ?? null } : {}),
    }));
  }

  async add(entry: DesiredEntry): Promise<void> {
    await this.enter({ op: 'add', address: entry.address });
    if (this.faults.reject.has(entry.address)) throw new TargetError('rejected', 'rejected', 'add', `memory target refuses ${entry.address}`);
    if (this.faults.dropAdds) return;
    // An add of an address already held replaces its entry, expiry included (MikroTik's add patches its own row's timeout).
    this.entries.set(entry.address, { entry, owned: this.capabilities.comments ? true : null });
  }

  async delete(address: string): Promise<void> {
    await this.enter({ op: 'delete', address });
    this.entries.delete(address);
  }

  async killConnections(address: string): Promise<number> {
    await this.enter({ op: 'kill', address });
    return 0;
  }

  async close(): Promise<void> {}

  /** Native expiry: entries whose `expiresAt` has passed on the list's clock are gone, whoever looks. */
  private expire(): void {
    if (!this.capabilities.nativeExpiry || this.clock === null) return;
    const now = this.clock.now();
    for (const [address, { entry }] of this.entries) {
      if (entry !== null && entry.expiresAt !== null && entry.expiresAt <= now) this.entries.delete(address);
    }
  }

  private async enter(call: MemoryCall): Promise<void> {
    this.expire();
    this.calls.push(call);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const started = performance.now();
    let outcome: 'ok' | 'retry' | 'operator' = 'ok';
    let reason: string | undefined;
    try {
      await this.gate(call);
      if (this.faults.down) {
        outcome = 'retry';
        reason = 'network';
        throw new TargetError('retry', 'network', call.op, 'memory target is down');
      }
      if (this.faults.operator !== null) {
        outcome = 'operator';
        reason = this.faults.operator;
        throw new TargetError('operator', this.faults.operator, call.op, `memory target refuses: ${this.faults.operator}`);
      }
    } finally {
      this.inFlight--;
      this.deps?.onCall?.({
        kind: this.kind,
        target: this.id,
        endpoint: call.op,
        outcome,
        ...(reason === undefined ? {} : { reason }),
        durationMs: performance.now() - started,
      });
    }
  }
}

/** `memory[list=…]`: a list in the daemon's memory, lost on exit (tests, demos, dry runs). (`name` is fail2ban's jail name in every action.) */
export const memoryKind: TargetKind<{ name: string }> = {
  kind: 'memory',
  env: {},
  secretParams: [],
  parseOptions(params) {
    const name = requiredParam(params, 'list', "the in-memory list's name");
    if (!/^[\w.-]{1,64}$/.test(name)) throw new TargetOptionError('list', 'list: letters, digits, _, . or -, at most 64');
    return { name };
  },
  identity: (options) => `memory ${options.name}`,
  create: (options, deps) => new MemoryTarget(options, deps),
};
