import { ConfigError } from '../../config/fail2ban/config-error.ts';
import { parsePfEntry, type PfAddress } from '../../net/address.ts';

/*
 * What a Cloudflare IP list holds (verified 2026-12-07):
 * - developers.cloudflare.com/waf/tools/lists/custom-lists/ (current, changed by cloudflare-docs
 *   PR #23502, July 2025): individual IPv4 and IPv6 addresses, IPv4 CIDRs /8–/32, IPv6 CIDRs
 *   /12–/128; IPv6 is stored lower case.
 * - The same page before that change, and IBM CIS's copy of it today: IPv6 only as CIDRs /12–/64
 *   (earlier /4–/64: blog.cloudflare.com/introducing-ip-lists), "to specify an IPv6 address, enter
 *   it as a CIDR range with a /64 prefix".
 * edgeban sends IPv6 only as /64 or wider: that is accepted under both rules, and a single IPv6
 * host is no ban at all (every client holds a /64 and picks addresses from it at will). The finer
 * limit is this one constant.
 */
export const CLOUDFLARE_FINEST_IPV6_PREFIX = 64;
const WIDEST_IPV4_PREFIX = 8;
const WIDEST_IPV6_PREFIX = 12;

/**
 * The one spelling of an address on a Cloudflare list (pf spelling: IPv4 host without /32, host
 * bits masked, IPv6 compressed lower case), or null when a Cloudflare list cannot hold it: IPv6
 * finer than /64, or wider than Cloudflare accepts. The reconciler reports null as rejected.
 */
export function cloudflareCanonical(address: string): string | null {
  let parsed: PfAddress;
  try {
    parsed = parsePfEntry(address);
  } catch {
    return null;
  }
  if (parsed.family === 4) return parsed.prefix >= WIDEST_IPV4_PREFIX ? parsed.text : null;
  return parsed.prefix >= WIDEST_IPV6_PREFIX && parsed.prefix <= CLOUDFLARE_FINEST_IPV6_PREFIX ? parsed.text : null;
}

/** How a listed item is spelled for the reconciler: canonical when edgeban could hold it, else pf spelling (a foreign entry). */
export function listedSpelling(ip: string): string {
  const canonical = cloudflareCanonical(ip);
  if (canonical !== null) return canonical;
  try {
    return parsePfEntry(ip).text;
  } catch {
    return ip.trim();
  }
}

/**
 * The config error for a jail that sends bans to a Cloudflare target while banning IPv6 finer
 * than /64 (its `ipv6prefix`, default 128): those bans could never be enforced. Null when the jail
 * is fine. The config layer calls it for each jail with a cloudflare action, at load and reload.
 */
export function cloudflareIpv6PrefixError(jail: string, ipv6prefix: number, where: { file: string; line?: number | null }): ConfigError | null {
  if (ipv6prefix <= CLOUDFLARE_FINEST_IPV6_PREFIX) return null;
  return new ConfigError(
    `is ${ipv6prefix}, but jail ${jail} bans through a Cloudflare list, which edgeban fills with IPv6 networks of /${CLOUDFLARE_FINEST_IPV6_PREFIX} or wider only (a single IPv6 address is no ban: its owner holds the whole /64); set ipv6prefix = ${CLOUDFLARE_FINEST_IPV6_PREFIX} (or wider, e.g. 56 or 48) in [${jail}]`,
    { file: where.file, line: where.line ?? null, section: jail, key: 'ipv6prefix' },
  );
}
