import { AliasConfig } from './alias-config.ts';
import { FifoLock } from './fifo-lock.ts';
import { PfStates } from './pf-states.ts';
import { PfTableStore, BUILTIN_TABLES } from './pf-table-store.ts';
import { NftTableStore, type NftEdge } from './nft-table-store.ts';
import type { Rng } from './rng.ts';
import type { SimulatorFaults } from './faults.ts';
import { FilterRules } from './filter-rules.ts';
import { UrlTables } from './url-tables.ts';
import { firmwareFeatures, type FirmwareFeatures, type FirmwareVersion } from './firmware.ts';

export interface StateOptions {
  tableEntriesLimit: number;
  rng: Rng;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** Current fault settings (they may change while running): the lock hold time, and what actions answer (paging, spelling, discarded adds). */
  faults: () => SimulatorFaults;
  firmware: FirmwareVersion;
  /** A real nftables edge behind the pf tables and states; absent: in memory only. */
  edge?: NftEdge;
}

/** Everything the firewall knows: config.xml parts, pf tables and states, and the config lock. */
export class SimulatorState {
  readonly pf: PfTableStore;
  readonly aliases: AliasConfig;
  readonly states: PfStates;
  readonly rules: FilterRules;
  /** URL Table aliases and their on-disk cache (/var/db/aliastables), which a reboot keeps. */
  readonly urlTables: UrlTables;
  readonly edge: NftEdge | undefined;
  readonly rng: Rng;
  readonly now: () => number;
  readonly faults: () => SimulatorFaults;
  /** The release played; changeable at run time through the admin API (an "upgrade"). */
  firmware: FirmwareVersion;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly configLock = new FifoLock();
  private lastCronMinute: number;

  constructor(options: StateOptions) {
    this.rng = options.rng;
    this.now = options.now;
    this.sleep = options.sleep;
    this.faults = options.faults;
    this.firmware = options.firmware;
    this.edge = options.edge;
    this.pf = options.edge ? new NftTableStore(options.tableEntriesLimit, options.now, options.edge) : new PfTableStore(options.tableEntriesLimit, options.now);
    this.aliases = new AliasConfig(options.rng);
    this.states = new PfStates(options.rng);
    this.rules = new FilterRules(options.rng);
    this.urlTables = new UrlTables(this.pf, options.now);
    for (const name of BUILTIN_TABLES) this.pf.declare(name);
    this.lastCronMinute = Math.floor(options.now() / 60_000);
  }

  features(): FirmwareFeatures {
    return firmwareFeatures(this.firmware);
  }

  /** Timers that fire between requests, run lazily before each one: the filter rollback. */
  runTimers(): void {
    this.runCron();
    this.rules.runRollbackTimer(this.now());
  }

  /**
   * The per-minute `update_tables.py --quick` cron, run lazily when the clock has crossed a minute:
   * host/network tables that drifted from config.xml (a flush, a stray pfctl add) are reloaded;
   * URL tables past their refresh time are fetched (in the background, as cron runs it).
   */
  runCron(): void {
    const minute = Math.floor(this.now() / 60_000);
    if (minute <= this.lastCronMinute) return;
    this.lastCronMinute = minute;
    for (const alias of this.aliases.all()) {
      if (!alias.enabled || (alias.type !== 'host' && alias.type !== 'network')) continue;
      const table = this.pf.get(alias.name);
      const current = new Set(table?.inPfOrder() ?? []);
      const wanted = new Set(this.pf.spellAll(alias.content));
      const same = current.size === wanted.size && [...wanted].every((e) => current.has(e));
      if (!same) this.pf.replace(alias.name, alias.content);
    }
    void this.urlTables.update(this.aliases.all(), { quick: true });
  }

  /** `filter refresh_aliases` (update_tables.py without --quick), as alias/reconfigure and a boot run it. */
  refreshAliases(options: { expireAll?: boolean } = {}): Promise<void> {
    return this.urlTables.update(this.aliases.all(), { quick: false, ...options });
  }

  /**
   * Runs `fn` holding the exclusive config.xml lock for lockMs: concurrent alias_util writes
   * queue FIFO behind it, as they do on OPNsense. The change lands at the end of the hold.
   */
  withConfigLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.configLock.run(async () => {
      const hold = this.faults().lockMs;
      if (hold > 0) await this.sleep(hold);
      return await fn();
    });
  }

  /** Aliases whose table the ruleset declares (`table <x> persist` for every non-port alias). */
  declaredAliasNames(): string[] {
    return this.aliases
      .all()
      .filter((a) => a.enabled && a.type !== 'port')
      .map((a) => a.name);
  }

  /**
   * Reboot: kernel memory is gone. Declared tables come back empty; host/network tables are
   * reloaded from config.xml; URL tables from their cache on disk (fetched again, in the
   * background, only when expired or never fetched); tables only pfctl had created vanish; states
   * are cleared.
   */
  reboot(): void {
    const declared = new Set(this.declaredAliasNames());
    for (const name of this.pf.names()) {
      if (!declared.has(name)) this.pf.destroy(name);
      else this.pf.flush(name);
    }
    for (const alias of this.aliases.all()) {
      if (!declared.has(alias.name)) continue;
      this.pf.declare(alias.name);
      if (alias.type === 'host' || alias.type === 'network') this.pf.replace(alias.name, alias.content);
    }
    this.urlTables.loadCached(this.aliases.all());
    if (this.urlTables.needsFetch(this.aliases.all())) void this.refreshAliases();
    this.states.clear();
  }
}
