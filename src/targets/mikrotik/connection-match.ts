import ipaddr from 'ipaddr.js';
import { parsePfEntry } from '../../net/address.ts';

/**
 * The addresses a connection-tracking `src-address`/`dst-address` may mean. RouterOS prints an
 * IPv4 endpoint with its port (`198.51.100.7:40000`; ICMP and other portless protocols bare). For
 * IPv6 the spelling is unverified (bare with a separate `src-port`, `[2001:db8::7]:40000`, or
 * `2001:db8::7:40000`), so every reading is offered: `2001:db8::7:443` is both the address itself
 * and `2001:db8::7` on port 443. The cost of the ambiguity is at worst one extra dropped
 * connection of a neighbour in the same /112; the cost of missing the attacker's is the attack
 * going on.
 */
export function connectionHosts(printed: string): string[] {
  const text = printed.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text);
  if (bracketed) return valid([bracketed[1] ?? '']);
  const ipv4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d{1,5})?$/.exec(text);
  if (ipv4) return valid([ipv4[1] ?? '']);
  const ported = /^(.*:.*):(\d{1,5})$/.exec(text);
  return valid(ported ? [text, ported[1] ?? ''] : [text]);
}

/** Whether a printed connection endpoint lies inside `banned` (an address or network in pf spelling). */
export function endpointWithin(printed: string, banned: string): boolean {
  const { text, prefix } = parsePfEntry(banned);
  const network = ipaddr.parse(text.replace(/\/\d+$/, ''));
  return connectionHosts(printed).some((host) => {
    const address = ipaddr.parse(host);
    return address.kind() === network.kind() && address.match(network, prefix);
  });
}

function valid(candidates: string[]): string[] {
  return candidates.filter((candidate) => {
    try {
      parsePfEntry(candidate);
      return !candidate.includes('/');
    } catch {
      return false;
    }
  });
}
