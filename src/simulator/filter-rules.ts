import { randomUuid, type Rng } from './rng.ts';

/** A filter rule as M/Firewall/Filter.xml stores it (the fields a block rule needs). */
export interface FilterRule {
  uuid: string;
  enabled: string;
  sequence: string;
  action: string;
  quick: string;
  interface: string;
  direction: string;
  ipprotocol: string;
  protocol: string;
  source_net: string;
  source_not: string;
  source_port: string;
  destination_net: string;
  destination_not: string;
  destination_port: string;
  log: string;
  description: string;
}

export const RULE_DEFAULTS: Omit<FilterRule, 'uuid'> = {
  enabled: '1',
  sequence: '1',
  action: 'pass',
  quick: '1',
  interface: '',
  direction: 'in',
  ipprotocol: 'inet',
  protocol: 'any',
  source_net: 'any',
  source_not: '0',
  source_port: '',
  destination_net: 'any',
  destination_not: '0',
  destination_port: '',
  log: '0',
  description: '',
};

/** Option lists of the rule model: get_rule renders these as `{key:{value,selected}}`. */
export const RULE_OPTIONS: Record<string, Record<string, string>> = {
  action: { pass: 'Pass', block: 'Block', reject: 'Reject' },
  direction: { in: 'In', out: 'Out' },
  ipprotocol: { inet: 'IPv4', inet6: 'IPv6', inet46: 'IPv4+IPv6' },
  interface: { lan: 'LAN', wan: 'WAN', lo0: 'Loopback' },
  protocol: { any: 'any', TCP: 'TCP', UDP: 'UDP', 'TCP/UDP': 'TCP/UDP', ICMP: 'ICMP', IPV6_ICMP: 'IPV6-ICMP' },
};

/** The rollback armed by `apply/<revision>`: the Filter section comes back unless cancelled in time. */
interface PendingRollback {
  revision: string;
  deadline: number;
}

/** How long `apply/<revision>` waits for `cancel_rollback` before restoring (FilterBaseController). */
export const ROLLBACK_MS = 60_000;

export class FilterRules {
  private rules: FilterRule[] = [];
  private readonly rng: Rng;
  /** Rules are live in pf only after apply. */
  private appliedSnapshot: FilterRule[] = [];
  /** Savepoints (24.1–26.1): revision → the Filter section as it was. */
  private readonly savepoints = new Map<string, FilterRule[]>();
  private pending: PendingRollback | null = null;
  private rollbacks = 0;

  constructor(rng: Rng) {
    this.rng = rng;
  }

  add(fields: Omit<FilterRule, 'uuid'>): FilterRule {
    const rule: FilterRule = { ...fields, uuid: randomUuid(this.rng) };
    this.rules.push(rule);
    return rule;
  }

  get(uuid: string): FilterRule | undefined {
    return this.rules.find((r) => r.uuid === uuid);
  }

  delete(uuid: string): boolean {
    const index = this.rules.findIndex((r) => r.uuid === uuid);
    if (index === -1) return false;
    this.rules.splice(index, 1);
    return true;
  }

  all(): readonly FilterRule[] {
    return this.rules;
  }

  apply(): void {
    this.appliedSnapshot = this.rules.map((r) => ({ ...r }));
  }

  applied(): readonly FilterRule[] {
    return this.appliedSnapshot;
  }

  /** Rules applied and none waiting for apply. */
  inSync(): boolean {
    return JSON.stringify(this.rules) === JSON.stringify(this.appliedSnapshot);
  }

  savepoint(revision: string): void {
    this.savepoints.set(
      revision,
      this.rules.map((r) => ({ ...r })),
    );
  }

  /** apply/<revision>: arms the 60 s rollback timer (only for a known savepoint). */
  armRollback(revision: string, now: number): boolean {
    if (!this.savepoints.has(revision)) return false;
    this.pending = { revision, deadline: now + ROLLBACK_MS };
    return true;
  }

  cancelRollback(revision: string): boolean {
    if (this.pending?.revision !== revision) return false;
    this.pending = null;
    return true;
  }

  /** revert/<revision>: the Filter section as saved, applied. */
  revert(revision: string): boolean {
    const saved = this.savepoints.get(revision);
    if (!saved) return false;
    this.rules = saved.map((r) => ({ ...r }));
    if (this.pending?.revision === revision) this.pending = null;
    this.apply();
    return true;
  }

  /** The rollback timer, run lazily: a change nobody confirmed within 60 s is undone. */
  runRollbackTimer(now: number): void {
    if (this.pending === null || now < this.pending.deadline) return;
    const { revision } = this.pending;
    this.pending = null;
    if (this.revert(revision)) this.rollbacks++;
  }

  rollbackCount(): number {
    return this.rollbacks;
  }

  rollbackPending(): boolean {
    return this.pending !== null;
  }
}
