import { parsePfAddress } from '../net/address.ts';
import { BUILTIN_TABLES } from './pf-table-store.ts';
import { randomUuid, type Rng } from './rng.ts';

/** Every `alias.type` option of M/Firewall/Alias.xml, with its GUI label, in model order. */
export const ALIAS_TYPES: Record<string, string> = {
  host: 'Host(s)',
  network: 'Network(s)',
  port: 'Port(s)',
  url: 'URL (IPs)',
  urltable: 'URL Table (IPs)',
  urljson: 'URL Table in JSON format (IPs)',
  geoip: 'GeoIP',
  networkgroup: 'Network group',
  mac: 'MAC address',
  asn: 'BGP ASN',
  dynipv6host: 'Dynamic IPv6 Host',
  authgroup: 'OpenVPN group',
  internal: 'Internal (automatic)',
  external: 'External (advanced)',
};

export interface ConfiguredAlias {
  uuid: string;
  name: string;
  type: string;
  enabled: boolean;
  /** config.xml content, one item per line, empty lines dropped as the model does */
  content: string[];
  description: string;
  counters: boolean;
  builtin: boolean;
  /** URL tables: refresh period in days (may be fractional), empty for never. */
  updatefreq?: string;
  /** URL tables (25.7+): `Basic`, `Bearer`, `Header` (26.1+) or empty, with the user (or header name) and password (or token). */
  authtype?: string;
  username?: string;
  password?: string;
}

/** pf keywords and service/protocol names AliasNameField refuses (a representative subset). */
const RESERVED_NAMES = new Set([
  'all',
  'any',
  'self',
  'port',
  'from',
  'to',
  'in',
  'out',
  'on',
  'inet',
  'inet6',
  'pass',
  'block',
  'quick',
  'table',
  'persist',
  'const',
  'counters',
  'file',
  'label',
  'keep',
  'state',
  'flags',
  'proto',
  'route',
  'tcp',
  'udp',
  'icmp',
  'icmp6',
  'ip',
  'ipv6',
  'esp',
  'ah',
  'gre',
  'carp',
  'pfsync',
  'ssh',
  'http',
  'https',
  'smtp',
  'smtps',
  'submission',
  'imap',
  'imaps',
  'pop3',
  'pop3s',
  'domain',
  'ftp',
  'telnet',
  'ntp',
  'snmp',
  'ldap',
  'ldaps',
  'www',
  'dns',
  'bgp',
  'syslog',
]);

/** AliasNameField: letter or one `_` first, then [A-Za-z0-9_], at most 31 characters. */
export function aliasNameProblem(name: string, existing: (n: string) => boolean): string | null {
  if (!/^(?:[A-Za-z]|_[A-Za-z0-9])[A-Za-z0-9_]*$/.test(name) || name.length > 31) {
    return 'The name must be less than 32 characters long and may only consist of the following characters: a-z, A-Z, 0-9, _';
  }
  if (RESERVED_NAMES.has(name.toLowerCase())) return 'Reserved protocol or service names may not be used.';
  if (existing(name)) return 'An alias with this name already exists.';
  return null;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;

/** Is `item` acceptable content for an alias of `type` (AliasContentField)? */
export function contentItemValid(type: string, item: string, isAlias: (n: string) => boolean): boolean {
  if (isAlias(item)) return true;
  let parsed: ReturnType<typeof parsePfAddress> | null = null;
  try {
    parsed = item.trim() === item ? parsePfAddress(item) : null;
  } catch {
    parsed = null;
  }
  if (type === 'host') {
    // Addresses or host names; a CIDR is rejected (→ HTTP 500 from alias_util/add).
    if (item.includes('/')) return false;
    return parsed !== null || HOSTNAME.test(item);
  }
  if (type === 'network') return parsed !== null;
  return true;
}

/**
 * The alias section of config.xml plus the backup revisions its saves write. Built-in aliases
 * (bogons, …) are external with uuid = name, as in M/Firewall/static_aliases/core.json.
 */
export class AliasConfig {
  private readonly aliases: ConfiguredAlias[] = [];
  private revisions = 0;
  private readonly rng: Rng;

  constructor(rng: Rng) {
    this.rng = rng;
    for (const name of BUILTIN_TABLES) {
      this.aliases.push({ uuid: name, name, type: 'external', enabled: true, content: [], description: '', counters: false, builtin: true });
    }
  }

  /** Exact, case-sensitive name lookup, user aliases and built-ins alike. */
  byName(name: string): ConfiguredAlias | undefined {
    return this.aliases.find((a) => a.name === name);
  }

  byUuid(uuid: string): ConfiguredAlias | undefined {
    return this.aliases.find((a) => a.uuid === uuid);
  }

  all(): readonly ConfiguredAlias[] {
    return this.aliases;
  }

  create(spec: Omit<ConfiguredAlias, 'uuid' | 'builtin'>): ConfiguredAlias {
    const alias: ConfiguredAlias = { ...spec, uuid: randomUuid(this.rng), builtin: false };
    this.aliases.push(alias);
    return alias;
  }

  /** Removes a user alias (built-ins stay); false when there is none by that name. */
  remove(name: string): boolean {
    const index = this.aliases.findIndex((a) => a.name === name && !a.builtin);
    if (index === -1) return false;
    this.aliases.splice(index, 1);
    return true;
  }

  /** Config::save(): every save writes one backup revision. */
  save(): void {
    this.revisions++;
  }

  revisionCount(): number {
    return this.revisions;
  }
}
