import ipaddr from 'ipaddr.js';
import { formatRouterTime, MAX_ROUTER_SECONDS, parseRouterTime } from './duration.ts';

export type Menu = 'ip' | 'ipv6';

export interface StoredEntry {
  /** `*1A`: hex, counted per menu. */
  id: string;
  list: string;
  /** As RouterOS prints it (see printAddress). */
  address: string;
  comment: string | null;
  disabled: boolean;
  /** Epoch ms when the timeout ends; null for a static entry. */
  expiresAt: number | null;
  createdAt: number;
}

/** A refusal RouterOS answers with HTTP 400 and this `detail`. */
export class RouterFailure extends Error {
  readonly status: number;
  constructor(detail: string, status = 400) {
    super(detail);
    this.status = status;
  }
}

/**
 * How RouterOS stores what it is given (help.mikrotik.com "Address-lists"): an IPv4 `/32` prints
 * bare (`add address=192.0.34.166/32` → `192.0.34.166`), an IPv4 range that equals a CIDR is saved
 * as that CIDR (`192.168.0.0-192.168.1.255` → `192.168.0.0/23`), other ranges stay ranges, a DNS
 * name stays a name (the simulator resolves nothing). The IPv6 menu prints every prefix,
 * `/128` included (`2606:4700:4700::1111/128`), lower case and zero-compressed. Host bits of a
 * network are masked (an assumption: the docs do not say; edgeban never sends them).
 */
export function printAddress(menu: Menu, input: string): string {
  const text = input.trim();
  const invalid = new RouterFailure('invalid value for argument address');
  if (menu === 'ip') {
    const range = /^([\d.]+)-([\d.]+)$/.exec(text);
    if (range) {
      if (!ipaddr.IPv4.isValidFourPartDecimal(range[1]!) || !ipaddr.IPv4.isValidFourPartDecimal(range[2]!)) throw invalid;
      const from = ipv4Number(range[1]!);
      const to = ipv4Number(range[2]!);
      if (to < from) throw invalid;
      const size = to - from + 1;
      const prefix = 32 - Math.log2(size);
      if (Number.isInteger(prefix) && from % size === 0) return prefix === 32 ? range[1]! : `${range[1]}/${prefix}`;
      return `${range[1]}-${range[2]}`;
    }
    const [address = '', prefixText] = text.split('/');
    if (ipaddr.IPv4.isValidFourPartDecimal(address)) {
      const prefix = prefixText === undefined ? 32 : Number(prefixText);
      if (prefixText !== undefined && !/^\d{1,2}$/.test(prefixText)) throw invalid;
      if (prefix > 32) throw invalid;
      const network = ipaddr.IPv4.networkAddressFromCIDR(`${address}/${prefix}`).toString();
      return prefix === 32 ? network : `${network}/${prefix}`;
    }
    if (/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$/.test(text) && /[A-Za-z]/.test(text)) return text;
    throw invalid;
  }
  const [address = '', prefixText] = text.split('/');
  if (!ipaddr.IPv6.isValid(address) || address.includes('%')) throw invalid;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) throw invalid;
  const prefix = prefixText === undefined ? 128 : Number(prefixText);
  if (prefix > 128) throw invalid;
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${address}/${prefix}`).toString()}/${prefix}`;
}

function ipv4Number(text: string): number {
  return text.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

/**
 * `/ip/firewall/address-list` and `/ipv6/firewall/address-list`: entries with `.id`, one per list
 * and address ("failure: already have such entry"), a `timeout` that makes the entry dynamic and
 * removes it when it runs out, and the reboot rule: static entries are saved to disk, dynamic ones
 * live in RAM and are gone after a reboot ("If a timeout is specified, the address will be stored
 * on the RAM and will be removed after a system's reboot").
 */
export class AddressListStore {
  private readonly entries: Record<Menu, Map<string, StoredEntry>> = { ip: new Map(), ipv6: new Map() };
  private readonly nextId: Record<Menu, number> = { ip: 1, ipv6: 1 };
  private readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  /** Live entries of a menu, in id order, expired ones dropped first. */
  all(menu: Menu): StoredEntry[] {
    this.expire();
    return [...this.entries[menu].values()];
  }

  get(menu: Menu, id: string): StoredEntry | undefined {
    this.expire();
    return this.entries[menu].get(id);
  }

  /** `restored`: skips the duplicate check, as a configuration import or older firmware did. */
  add(menu: Menu, input: { list: string; address: string; comment?: string; timeout?: string; disabled?: boolean; restored?: boolean }): StoredEntry {
    this.expire();
    if (input.list.trim() === '') throw new RouterFailure('missing value(s) of argument(s) list');
    const address = printAddress(menu, input.address);
    for (const entry of input.restored ? [] : this.entries[menu].values()) {
      if (entry.list === input.list && entry.address === address) throw new RouterFailure('failure: already have such entry');
    }
    const now = this.now();
    const seconds = input.timeout === undefined || input.timeout === '' ? null : checkedTimeout(input.timeout);
    const id = `*${(this.nextId[menu]++).toString(16).toUpperCase()}`;
    const entry: StoredEntry = {
      id,
      list: input.list,
      address,
      comment: input.comment === undefined || input.comment === '' ? null : input.comment,
      disabled: input.disabled ?? false,
      expiresAt: seconds === null ? null : now + seconds * 1000,
      createdAt: now,
    };
    this.entries[menu].set(id, entry);
    return entry;
  }

  /** `set`: a new timeout restarts the countdown. */
  update(menu: Menu, id: string, changes: { comment?: string; timeout?: string; disabled?: boolean }): StoredEntry | undefined {
    const entry = this.get(menu, id);
    if (!entry) return undefined;
    if (changes.timeout !== undefined) {
      const seconds = changes.timeout === '' ? null : checkedTimeout(changes.timeout);
      entry.expiresAt = seconds === null ? null : this.now() + seconds * 1000;
    }
    if (changes.comment !== undefined) entry.comment = changes.comment === '' ? null : changes.comment;
    if (changes.disabled !== undefined) entry.disabled = changes.disabled;
    return entry;
  }

  remove(menu: Menu, id: string): boolean {
    this.expire();
    return this.entries[menu].delete(id);
  }

  /** Dynamic (timeout) entries are gone; static ones come back from disk. */
  reboot(): void {
    for (const menu of ['ip', 'ipv6'] as const) {
      for (const [id, entry] of this.entries[menu]) if (entry.expiresAt !== null) this.entries[menu].delete(id);
    }
  }

  /** A row as the REST API prints it: every value a string. */
  print(entry: StoredEntry): Record<string, string> {
    const row: Record<string, string> = {
      '.id': entry.id,
      list: entry.list,
      address: entry.address,
      'creation-time': new Date(entry.createdAt).toISOString().replace('T', ' ').slice(0, 19),
      dynamic: String(entry.expiresAt !== null),
      disabled: String(entry.disabled),
    };
    if (entry.expiresAt !== null) row.timeout = formatRouterTime(Math.ceil((entry.expiresAt - this.now()) / 1000));
    if (entry.comment !== null) row.comment = entry.comment;
    return row;
  }

  private expire(): void {
    const now = this.now();
    for (const menu of ['ip', 'ipv6'] as const) {
      for (const [id, entry] of this.entries[menu]) if (entry.expiresAt !== null && entry.expiresAt <= now) this.entries[menu].delete(id);
    }
  }
}

function checkedTimeout(text: string): number {
  const seconds = parseRouterTime(text);
  if (seconds === null) throw new RouterFailure('invalid value for argument timeout');
  if (seconds > MAX_ROUTER_SECONDS) throw new RouterFailure('value of timeout out of range (0s..35w3d13h13m56s)');
  return seconds;
}
