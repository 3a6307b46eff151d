import { pfEntryOrNull } from '../../net/address.ts';
import {
  TargetError,
  type DesiredEntry,
  type EdgeTarget,
  type ListedEntry,
  type TargetCapabilities,
  type TargetCheckResult,
  type TargetErrorKind,
} from '../edge-target.ts';
import { isRetryableKind, OpnsenseApiError, type ApiErrorKind } from './api-error.ts';
import { DEFAULT_LIST_PAGE_SIZE, killStatesFilter, type OpnsenseClient } from './client.ts';

const CAPABILITIES: TargetCapabilities = { nativeExpiry: false, bulk: false, killConnections: true, comments: false };

const UNREADABLE_ALIAS = 'cannot read the alias definition (privilege "Firewall: Aliases" missing): its type is not verified';

/** The reconciler's verdict on an OPNsense error kind: transient ones are retried, the rest need the operator or drop one entry. */
export function targetErrorKind(kind: ApiErrorKind): TargetErrorKind {
  if (isRetryableKind(kind)) return 'retry';
  if (kind === 'rejected') return 'rejected';
  return 'operator';
}

/** An OpnsenseApiError as the seam's TargetError (reason = the OPNsense kind: `auth`, `alias-missing`, …); other errors pass unchanged. */
export function toTargetError(error: unknown): unknown {
  if (!(error instanceof OpnsenseApiError)) return error;
  return new TargetError(targetErrorKind(error.kind), error.kind, error.call, error.message, { cause: error });
}

/**
 * One OPNsense firewall alias as an EdgeTarget: alias_util add/delete/list on the pf table, the
 * alias definition read by `check()`, kill_states for fresh IPv4 bans. A plain alias marks no
 * ownership (`owned: null`): the ledger's records decide.
 */
export class OpnsenseTarget implements EdgeTarget {
  readonly kind = 'opnsense';
  readonly id: string;
  readonly capabilities = CAPABILITIES;
  readonly client: OpnsenseClient;
  readonly alias: string;
  private readonly listPageSize: number;
  /** False once the key proved to lack "Firewall: Aliases": the type is then not read again. */
  private aliasReadable = true;

  constructor(client: OpnsenseClient, alias: string, options: { listPageSize?: number } = {}) {
    this.client = client;
    this.alias = alias;
    this.id = `${client.baseUrl} ${alias}`;
    this.listPageSize = options.listPageSize ?? DEFAULT_LIST_PAGE_SIZE;
  }

  /** pf's spelling, family kept (src/net/address.ts); ledger addresses are already in it. */
  canonical(address: string): string | null {
    return pfEntryOrNull(address);
  }

  /**
   * Reads the alias definition (two GETs), so an alias deleted or retyped while edgeban runs is
   * noticed as at start-up: a missing alias throws an operator error, a type other than External
   * or URL Table is a warning.
   */
  async check(): Promise<TargetCheckResult> {
    const facts: Record<string, string> = { firewall: this.client.baseUrl, alias: this.alias };
    if (!this.aliasReadable) return { errors: [], warnings: [UNREADABLE_ALIAS], facts };
    let info;
    try {
      info = await this.client.getAlias(this.alias);
    } catch (error) {
      if (error instanceof OpnsenseApiError && error.kind === 'forbidden') {
        this.aliasReadable = false;
        return { errors: [], warnings: [UNREADABLE_ALIAS], facts };
      }
      throw toTargetError(error);
    }
    if (info === null) {
      throw new TargetError(
        'operator',
        'alias-missing',
        `GET /api/firewall/alias/get_alias_u_u_i_d/${this.alias}`,
        `no alias named ${this.alias} on ${this.client.baseUrl}: create it as type External (advanced) in Firewall ▸ Aliases and block it in a WAN rule (edgeban setup-opnsense does both)`,
      );
    }
    facts.aliasType = info.type;
    // External and URL Table (IPs, durable mode) aliases take alias_util adds as plain pfctl adds, no config.xml write (deploy/opnsense-durable.md).
    const warnings =
      info.type === 'external' || info.type === 'urltable'
        ? []
        : [
            `alias ${this.alias} is of type ${info.type}, not External: every ban rewrites config.xml and adds a backup revision (slow, and it evicts real backups). Recreate it as External (advanced)`,
          ];
    return { errors: [], warnings, facts };
  }

  async list(): Promise<ListedEntry[]> {
    const entries = await this.mapped(() => this.client.listAlias(this.alias, this.listPageSize));
    return entries.map((address) => ({ address, owned: null }));
  }

  add(entry: DesiredEntry): Promise<void> {
    return this.mapped(() => this.client.addToAlias(this.alias, entry.address));
  }

  delete(address: string): Promise<void> {
    return this.mapped(() => this.client.deleteFromAlias(this.alias, address));
  }

  /** kill_states takes one IPv4 host (OPNsense strips `:` and `/`): anything else kills nothing and calls nothing. */
  async killConnections(address: string): Promise<number> {
    const filter = killStatesFilter(address);
    if (filter === null) return 0;
    try {
      return await this.client.killStates(filter);
    } catch (error) {
      if (error instanceof OpnsenseApiError && error.kind === 'forbidden') {
        throw new TargetError(
          'operator',
          'forbidden',
          error.call,
          'kill_states is forbidden for this API key (privilege "Diagnostics: Show States"); established connections of banned addresses are no longer cut. Grant it, or set EDGEBAN_KILL_STATES=0',
          { cause: error },
        );
      }
      throw toTargetError(error);
    }
  }

  /** Why adds answered `done` are missing from the table, from get_table_size: the global table-entries limit only when it is reached. */
  async explainUnstored(): Promise<string> {
    let table: { size: number; used: number } | null;
    try {
      table = await this.client.getTableSize();
    } catch {
      table = null;
    }
    if (table !== null && table.used >= table.size) {
      return `pf's table-entries limit is reached (${table.used} of ${table.size} entries used by all tables): raise Firewall ▸ Settings ▸ Advanced ▸ Firewall Maximum Table Entries`;
    }
    if (table !== null)
      return `pf has room (${table.used} of ${table.size} table entries used), so pfctl refused them for another reason: see the firewall's system log`;
    return 'the table-entries use could not be read (get_table_size); if the limit is reached, raise Firewall ▸ Settings ▸ Advanced ▸ Firewall Maximum Table Entries';
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private async mapped<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw toTargetError(error);
    }
  }
}
