import { cidrContains, cidrList, cidrOverlaps, parseCidr, type Cidr } from './cidr.ts';
import type { NetworkFacts } from './network-facts.ts';

/** Why an address was not banned; stable codes for status and metrics. */
export const REFUSAL_REASONS = [
  'invalid',
  'too-wide',
  'unspecified',
  'loopback',
  'link-local',
  'multicast',
  'broadcast',
  'firewall',
  'self',
  'gateway',
  'ignoreip',
  'private',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export type GuardVerdict = { ok: true } | { ok: false; reason: RefusalReason /** The protected address or range involved. */; match: string };

// Ranges no edge ban can mean anything for. Documentation ranges and shared address space
// (100.64.0.0/10) are deliberately absent: they are banned like public addresses.
const SPECIAL: readonly (readonly [RefusalReason, Cidr[]])[] = [
  ['unspecified', cidrList(['0.0.0.0/8', '::/128'])],
  ['loopback', cidrList(['127.0.0.0/8', '::1/128'])],
  ['link-local', cidrList(['169.254.0.0/16', 'fe80::/10'])],
  ['multicast', cidrList(['224.0.0.0/4', 'ff00::/8'])],
  ['broadcast', cidrList(['255.255.255.255/32'])],
];
/** RFC 1918 and ULA, nothing else: a WAN rule cannot block internal hosts. */
export const PRIVATE_RANGES: readonly Cidr[] = cidrList(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']);

export interface BanGuardOptions {
  facts: NetworkFacts;
  ignoreip: readonly Cidr[];
  /** Send private offenders to the edge anyway (off by default). */
  banprivate: boolean;
  /** The widest IPv6 network a ban may cover (the jail's ipv6prefix; 128 = single hosts). IPv4 bans are single hosts. */
  ipv6prefix: number;
}

/** The guard of a manual ban (CLI, control API): the jail's limits when one is named, single hosts and no private ranges otherwise. ignoreip is the jail's counting filter, not applied to an explicit ban. */
export function manualBanGuard(facts: NetworkFacts, jail: { banprivate: boolean; ipv6prefix: number } | null): BanGuard {
  return new BanGuard({ facts, ignoreip: [], banprivate: jail?.banprivate ?? false, ipv6prefix: jail?.ipv6prefix ?? 128 });
}

/**
 * The guard of an alias entry taken over under EDGEBAN_FOREIGN_ENTRIES=adopt: as a ban without a
 * jail (single hosts, no private ranges, never this host, its gateway or the firewall). Returns why
 * the entry must not become a ban of edgeban's, or null.
 */
export function adoptionRefusal(facts: NetworkFacts): (address: string) => string | null {
  const guard = manualBanGuard(facts, null);
  return (address) => {
    let host: Cidr;
    try {
      host = parseCidr(address);
    } catch {
      return `${address} is not an address`;
    }
    const verdict = guard.check(host);
    return verdict.ok ? null : describeRefusal(host.text, verdict, null);
  };
}

/**
 * Decides whether a ban may reach the edge; every way into the ledger asks it (jails, manual
 * bans online and offline). `host` is the offender, `network` what would be banned (the host,
 * or its covering /64 …): a network wider than the jail allows is refused, and so is one that
 * touches a special range or covers a protected address.
 */
export class BanGuard {
  private readonly protectedHosts: readonly (readonly [RefusalReason, readonly Cidr[]])[];
  private readonly ignoreip: readonly Cidr[];
  private readonly banprivate: boolean;
  private readonly minPrefix: Readonly<Record<4 | 6, number>>;

  constructor(options: BanGuardOptions) {
    const parse = (list: readonly string[]) => cidrList(list);
    this.protectedHosts = [
      ['firewall', parse(options.facts.firewallAddresses)],
      ['self', parse(options.facts.selfAddresses)],
      ['gateway', parse(options.facts.gateways)],
    ];
    this.ignoreip = options.ignoreip;
    this.banprivate = options.banprivate;
    this.minPrefix = { 4: 32, 6: options.ipv6prefix };
  }

  check(host: Cidr, network: Cidr = host): GuardVerdict {
    const widest = this.minPrefix[network.family];
    if (network.prefix < widest || host.prefix < widest) return { ok: false, reason: 'too-wide', match: `/${widest}` };
    for (const [reason, ranges] of SPECIAL) {
      for (const range of ranges) if (cidrOverlaps(range, network)) return { ok: false, reason, match: range.text };
    }
    for (const [reason, hosts] of this.protectedHosts) {
      for (const protectedHost of hosts) if (cidrContains(network, protectedHost)) return { ok: false, reason, match: protectedHost.text };
    }
    for (const range of this.ignoreip) if (cidrOverlaps(range, network)) return { ok: false, reason: 'ignoreip', match: range.text };
    if (!this.banprivate) {
      for (const range of PRIVATE_RANGES) if (cidrOverlaps(range, network)) return { ok: false, reason: 'private', match: range.text };
    }
    return { ok: true };
  }
}

/** What a user reads when a manual ban is refused. */
export function describeRefusal(address: string, verdict: Extract<GuardVerdict, { ok: false }>, jail: { name: string; ipv6prefix: number } | null): string {
  if (verdict.reason === 'too-wide') {
    const who = jail ? `jail ${jail.name}` : 'a ban without --jail';
    return `${address} is wider than ${who} bans (single IPv4 hosts, IPv6 up to /${jail?.ipv6prefix ?? 128}${jail ? "; the jail's ipv6prefix sets that" : ''})`;
  }
  if (verdict.reason === 'private') {
    return `${address} is protected (private: ${verdict.match}); a WAN rule cannot block internal hosts. To ban it anyway, ban with --jail JAIL where the jail sets banprivate = true`;
  }
  return `${address} is protected (${verdict.reason}: ${verdict.match})`;
}

const LOOPBACK = SPECIAL.find(([reason]) => reason === 'loopback')?.[1] ?? [];

/** Whether an address is RFC 1918 / ULA. */
export function isPrivate(host: Cidr): boolean {
  return PRIVATE_RANGES.some((range) => cidrContains(range, host));
}

/** Private or loopback: what a proxy in front of the service shows up as. */
export function isInternal(host: Cidr): boolean {
  return isPrivate(host) || LOOPBACK.some((range) => cidrContains(range, host));
}
