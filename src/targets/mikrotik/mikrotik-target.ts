import { canonicalEntry, parsePfEntry, pfEntryOrNull } from '../../net/address.ts';
import {
  TargetError,
  type DesiredEntry,
  type EdgeTarget,
  type ListedEntry,
  type TargetCapabilities,
  type TargetCheckResult,
  type TargetDeps,
} from '../edge-target.ts';
import { MikrotikClient, type Family, type RouterEntry } from './client.ts';
import { endpointWithin } from './connection-match.ts';
import type { MikrotikOptions } from './options.ts';
import { backendId } from '../target-ids.ts';

/** Every comment edgeban writes starts with this word, so its entries are visible (and told apart) on the router. */
export const OWNER_TAG = 'edgeban';

/**
 * RouterOS keeps time values in a signed 32-bit count of centiseconds, so the longest timeout it
 * takes is 35w3d13h13m56s (21,474,836 s, about 248 days). This is the limit RouterOS users report,
 * not a documented one; a longer ban gets it and is added again by the next full pass after the
 * router drops it.
 */
export const MAX_TIMEOUT_SECONDS = 21_474_836;

export function isOwnedComment(comment: string): boolean {
  return comment === OWNER_TAG || comment.startsWith(`${OWNER_TAG} `);
}

/** `3h25m7s`, RouterOS's own time notation (whole seconds, rounded up so a ban never ends early). */
export function routerTimeout(ms: number): string {
  let rest = Math.min(MAX_TIMEOUT_SECONDS, Math.max(1, Math.ceil(ms / 1000)));
  let text = '';
  for (const [unit, size] of [
    ['w', 604_800],
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0) text += `${count}${unit}`;
  }
  return text;
}

/**
 * How RouterOS prints address-list entries (help.mikrotik.com "Address-lists", and RouterOS 7
 * replies as others recorded them):
 * - IPv4 host: without `/32` (`add address=192.0.34.166/32` prints `192.0.34.166`);
 * - IPv4 network: `198.51.100.0/24`; an `a-b` range is stored as the CIDR it equals;
 * - IPv6 host: WITH `/128` (`2606:4700:4700::1111/128`), lower case, zero-compressed;
 * - IPv6 network: `2001:db8::/64`.
 * edgeban's canonical spelling is pf's (no /32, no /128, host bits masked, compressed lower-case
 * IPv6), so a row is read back through parsePfEntry and compares equal to what was added: an
 * IPv6 ban never looks missing (re-added every pass) because of the `/128` the router appends.
 */
export function routerSpelling(canonical: string): { family: Family; text: string } {
  const parsed = parsePfEntry(canonical);
  return { family: parsed.family, text: parsed.family === 6 && parsed.prefix === 128 ? `${parsed.text}/128` : parsed.text };
}

/** The later of two entry ends (null: never ends; undefined: unknown, which wins over a known end). */
function laterEnd(a: number | null | undefined, b: number | null | undefined): number | null | undefined {
  if (a === undefined || b === undefined) return undefined;
  if (a === null || b === null) return null;
  return Math.max(a, b);
}

/**
 * A RouterOS v7 address list (IPv4 and IPv6 menus under one name) as an EdgeTarget. Entries carry
 * the ban's remaining time as their native `timeout`, so RouterOS drops them on time even if
 * edgeban is gone; permanent bans are static entries (saved to disk, kept across reboots). A
 * timed entry is dynamic and lives in RAM only: a router reboot drops it, and the reconciler's
 * next pass adds it back from the ledger.
 */
export class MikrotikTarget implements EdgeTarget {
  readonly kind = 'mikrotik';
  readonly id: string;
  readonly capabilities: TargetCapabilities = { nativeExpiry: true, bulk: false, killConnections: true, comments: true };
  private readonly client: MikrotikClient;
  private readonly list_: string;
  private readonly deps: TargetDeps;
  /** canonical address → row id, learnt from list and add replies, so a delete needs no lookup. */
  private readonly ids = new Map<string, string>();

  constructor(options: MikrotikOptions, deps: TargetDeps) {
    this.id = backendId(options.url, options.list);
    this.list_ = options.list;
    this.deps = deps;
    this.client = new MikrotikClient({ options, logger: deps.logger, target: this.id, ...(deps.onCall ? { onCall: deps.onCall } : {}) });
  }

  canonical(address: string): string | null {
    return pfEntryOrNull(address);
  }

  async check(): Promise<TargetCheckResult> {
    const errors: string[] = [];
    const warnings: string[] = [];
    // Off once the router refused it (killConnections): status and doctor show why sessions survive bans.
    const facts: Record<string, string> = { list: this.list_, kill_connections: this.capabilities.killConnections ? 'on' : 'off (refused by the router)' };
    try {
      const resource = await this.client.systemResource();
      facts.version = resource.version;
      if (resource.board) facts.board = resource.board;
      const entries = await this.list();
      facts.entries = String(entries.length);
      facts.owned = String(entries.filter((e) => e.owned).length);
      // A list no rule drops from blocks nothing: the silent non-protection edgeban must not hide.
      for (const family of [4, 6] as const) {
        const prefix = family === 4 ? 'ip' : 'ipv6';
        const rules = [
          ...(await this.client.rules(`${prefix}/firewall/filter`, { 'src-address-list': this.list_ })),
          ...(await this.client.rules(`${prefix}/firewall/raw`, { 'src-address-list': this.list_ })),
        ].filter((r) => r.disabled !== 'true' && r.disabled !== 'yes' && ['drop', 'reject', 'tarpit'].includes(r.action ?? ''));
        facts[`rules_ipv${family}`] = String(rules.length);
        const missing = `no enabled drop rule in /${prefix}/firewall/filter or raw matches src-address-list=${this.list_}: add one (README "MikroTik RouterOS")`;
        if (rules.length === 0) (family === 4 ? errors : warnings).push(family === 4 ? missing : `${missing}, or IPv6 bans block nothing`);
      }
    } catch (error) {
      if (error instanceof TargetError && error.kind === 'operator') errors.push(error.message);
      else throw error;
    }
    return { errors, warnings, facts };
  }

  async list(): Promise<ListedEntry[]> {
    const [v4, v6] = await Promise.all([this.client.listEntries(4, this.list_), this.client.listEntries(6, this.list_)]);
    this.ids.clear();
    const listed = new Map<string, ListedEntry>();
    const twice = new Set<string>();
    const now = this.deps.clock.now();
    for (const row of [...v4, ...v6]) {
      // A disabled entry blocks nothing: not listed, so the ban is added (and add() reports why it cannot be).
      if (row.disabled) continue;
      // A DNS-name entry, or an IPv4 range that is no CIDR, stays as it is: foreign.
      const address = canonicalEntry(row.address);
      const owned = isOwnedComment(row.comment);
      const previous = listed.get(address);
      if (previous !== undefined) twice.add(address);
      // A static row never ends; a dynamic one when its timeout runs out (unknown if the router printed none).
      const ends = !row.dynamic ? null : row.remainingMs === null ? undefined : now + row.remainingMs;
      const expiresAt = previous === undefined ? ends : laterEnd(previous.expiresAt, ends);
      listed.set(address, { address, owned: owned || previous?.owned === true, ...(expiresAt === undefined ? {} : { expiresAt }) });
      this.ids.set(address, row.id);
    }
    // RouterOS refuses duplicate adds, but a list restored from an export or made by older firmware
    // can hold one address twice: no id is cached for it, so a delete looks up and removes every row.
    for (const address of twice) this.ids.delete(address);
    return [...listed.values()];
  }

  async add(entry: DesiredEntry): Promise<void> {
    const { family, text } = this.spelled(entry.address);
    const comment = isOwnedComment(entry.comment) ? entry.comment : `${OWNER_TAG} ${entry.comment}`.trim();
    const timeout = entry.expiresAt === null ? undefined : routerTimeout(entry.expiresAt - this.deps.clock.now());
    const id = await this.client.addEntry(family, { list: this.list_, address: text, comment, ...(timeout === undefined ? {} : { timeout }) });
    if (id !== null) {
      this.ids.set(entry.address, id);
      return;
    }
    await this.adoptDuplicate(family, text, entry.address, comment, timeout);
  }

  async delete(address: string): Promise<void> {
    const { family, text } = this.spelled(address);
    const cached = this.ids.get(address);
    this.ids.delete(address);
    // A cached id may be stale (the entry expired and was added again): then look it up by address.
    if (cached !== undefined && (await this.client.deleteEntry(family, cached))) return;
    for (const row of await this.client.listEntries(family, this.list_, text)) await this.client.deleteEntry(family, row.id);
  }

  /**
   * Removes the connection-tracking rows from (or to) a freshly banned address or network, so an
   * established session (IMAP brute force inside one login connection) meets the drop rule with
   * its next packet instead of running on as `established`. A refusal the operator must fix (the
   * user's group lacks `read`/`write` on the connection table) is thrown once and turns the
   * capability off for this target's life: the ban itself is in place, and nagging on every ban
   * would bury the one message that names the fix.
   */
  async killConnections(address: string): Promise<number> {
    if (!this.capabilities.killConnections) return 0;
    const { family } = this.spelled(address);
    try {
      let killed = 0;
      for (const row of await this.client.listConnections(family)) {
        if (!endpointWithin(row.srcAddress, address) && !endpointWithin(row.dstAddress, address)) continue;
        if (await this.client.deleteConnection(family, row.id)) killed += 1;
      }
      return killed;
    } catch (error) {
      if (!(error instanceof TargetError) || error.kind !== 'operator') throw error;
      // Concurrent kills may each be refused; one message is enough.
      if (!this.capabilities.killConnections) return 0;
      this.capabilities.killConnections = false;
      throw new TargetError(
        'operator',
        error.reason,
        error.call,
        `${error.message}; established connections of banned addresses are no longer cut on ${this.id} until edgeban restarts with the policy granted (README "MikroTik RouterOS")`,
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /**
   * "already have such entry": the address is on the list. Success, but not blindly: a disabled
   * row blocks nothing (reported as rejected, for a human to enable or remove), and edgeban's own
   * row gets the new ban's timeout, or a re-ban would end when the old one did.
   */
  private async adoptDuplicate(family: Family, text: string, address: string, comment: string, timeout: string | undefined): Promise<void> {
    const rows = await this.client.listEntries(family, this.list_, text);
    const row: RouterEntry | undefined = rows[0];
    if (row === undefined) {
      // Gone in between (it expired, or was removed by hand): added once more, now that the place is free.
      const id = await this.client.addEntry(family, { list: this.list_, address: text, comment, ...(timeout === undefined ? {} : { timeout }) });
      if (id !== null) this.ids.set(address, id);
      return;
    }
    this.ids.set(address, row.id);
    if (row.disabled) {
      throw new TargetError(
        'rejected',
        'entry-disabled',
        `PUT /rest/${family === 4 ? 'ip' : 'ipv6'}/firewall/address-list`,
        `${address} is already on list ${this.list_} but the entry is disabled, so it blocks nothing: enable or remove it on the router`,
      );
    }
    if (!isOwnedComment(row.comment)) return; // a foreign entry blocks the address as well; left as it is
    if (timeout !== undefined && row.dynamic) {
      await this.client.patchEntry(family, row.id, { timeout, comment });
    } else if (timeout === undefined && row.dynamic) {
      // Now permanent: a dynamic row cannot become static, so it is replaced (a gap of one call).
      await this.client.deleteEntry(family, row.id);
      const id = await this.client.addEntry(family, { list: this.list_, address: text, comment });
      if (id !== null) this.ids.set(address, id);
    }
  }

  private spelled(address: string): { family: Family; text: string } {
    try {
      return routerSpelling(address);
    } catch (error) {
      throw new TargetError('rejected', 'invalid-address', 'address check', (error as Error).message);
    }
  }
}
