import { lookup as dnsLookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { isValidAddress, toPfSpelling } from '../net/address.ts';

/**
 * The addresses a jail must never ban because they are the system itself: this container's
 * own addresses, its gateways (the Docker bridge gateway is what a proxy that hides client IPs
 * looks like, docker-mailserver#523), and the firewall the bans go to. Gathered once at start
 * (and on reload), passed in, so tests use fixtures.
 */
export interface NetworkFacts {
  selfAddresses: readonly string[];
  gateways: readonly string[];
  firewallAddresses: readonly string[];
}

export const NO_NETWORK_FACTS: NetworkFacts = { selfAddresses: [], gateways: [], firewallAddresses: [] };

type Interfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

/** Addresses of every interface (zone ids dropped), in pf spelling. */
export function interfaceAddresses(interfaces: Interfaces): string[] {
  const out = new Set<string>();
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) {
      const bare = info.address.replace(/%.*$/, '');
      if (isValidAddress(bare)) out.add(toPfSpelling(bare));
    }
  }
  return [...out];
}

/**
 * Gateways of /proc/net/route: every route's next hop (RTF_GATEWAY), default route first.
 * Addresses there are hex in host (little-endian) byte order.
 */
export function parseIpv4Routes(text: string): string[] {
  const defaults: string[] = [];
  const others: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const [, destination, gateway, flags, , , , mask] = fields;
    if (!gateway || !/^[0-9a-f]{8}$/i.test(gateway) || /^0{8}$/.test(gateway)) continue;
    if ((parseInt(flags ?? '0', 16) & 0x2) === 0) continue;
    const value = parseInt(gateway, 16);
    const address = [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24].join('.');
    (destination === '00000000' && mask === '00000000' ? defaults : others).push(address);
  }
  return unique([...defaults, ...others]);
}

/** Gateways of /proc/net/ipv6_route (dest, dest prefix, src, src prefix, next hop, metric, refcnt, use, flags, iface). */
export function parseIpv6Routes(text: string): string[] {
  const defaults: string[] = [];
  const others: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const [destination, prefix, , , nextHop, , , , flags] = fields;
    if (!nextHop || !/^[0-9a-f]{32}$/i.test(nextHop) || /^0{32}$/.test(nextHop)) continue;
    if ((parseInt(flags ?? '0', 16) & 0x2) === 0) continue;
    const address = ipaddr.fromByteArray(nextHop.match(/../g)!.map((h) => parseInt(h, 16))) as ipaddr.IPv6;
    (destination === '0'.repeat(32) && prefix === '00' ? defaults : others).push(toPfSpelling(address.toRFC5952String()));
  }
  return unique([...defaults, ...others]);
}

export interface DiscoveryInput {
  interfaces?: Interfaces;
  /** Text of /proc/net/route; read from `procNet` when omitted (null: none). */
  ipv4Routes?: string | null;
  ipv6Routes?: string | null;
  /** Where `route` and `ipv6_route` are read from: /proc/net unless given (EDGEBAN_PROC_NET, for tests). */
  procNet?: string;
  firewallAddresses?: readonly string[];
}

/** This container's addresses and gateways, from os.networkInterfaces() and /proc/net. */
export async function discoverNetworkFacts(input: DiscoveryInput = {}): Promise<NetworkFacts> {
  const procNet = input.procNet ?? '/proc/net';
  const v4 = input.ipv4Routes !== undefined ? input.ipv4Routes : await readOptional(path.join(procNet, 'route'));
  const v6 = input.ipv6Routes !== undefined ? input.ipv6Routes : await readOptional(path.join(procNet, 'ipv6_route'));
  return {
    selfAddresses: interfaceAddresses(input.interfaces ?? os.networkInterfaces()),
    gateways: unique([...(v4 === null ? [] : parseIpv4Routes(v4)), ...(v6 === null ? [] : parseIpv6Routes(v6))]),
    firewallAddresses: [...(input.firewallAddresses ?? [])],
  };
}

export type Lookup = (host: string) => Promise<string[]>;

const systemLookup: Lookup = async (host) => (await dnsLookup(host, { all: true })).map((r) => r.address);

/**
 * The firewalls' own addresses, from their API URLs: literals as they are, names resolved.
 * A name that does not resolve is returned in `unresolved` for the caller to report.
 */
export async function resolveFirewallAddresses(urls: readonly string[], lookup: Lookup = systemLookup): Promise<{ addresses: string[]; unresolved: string[] }> {
  const addresses: string[] = [];
  const unresolved: string[] = [];
  for (const url of urls) {
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    } catch {
      unresolved.push(url);
      continue;
    }
    if (isValidAddress(host)) {
      addresses.push(toPfSpelling(host));
      continue;
    }
    try {
      for (const address of await lookup(host)) if (isValidAddress(address)) addresses.push(toPfSpelling(address));
    } catch {
      unresolved.push(host);
    }
  }
  return { addresses: unique(addresses), unresolved };
}

/**
 * The facts every guard uses, gathered one way for the daemon and the offline CLI: this host's
 * interfaces and routes, and the addresses of every firewall bans go to (`unresolved` names the
 * firewall names that did not resolve: their addresses are not protected).
 */
export async function gatherNetworkFacts(
  firewallUrls: readonly string[],
  procNet: string,
  lookup: Lookup = systemLookup,
): Promise<{ facts: NetworkFacts; unresolved: string[] }> {
  const resolved = await resolveFirewallAddresses(firewallUrls, lookup);
  return { facts: await discoverNetworkFacts({ firewallAddresses: resolved.addresses, procNet }), unresolved: resolved.unresolved };
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}

function unique(list: readonly string[]): string[] {
  return [...new Set(list)];
}
