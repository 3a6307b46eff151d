import ipaddr from 'ipaddr.js';
import { InvalidAddressError, parsePfAddress, type AddressFamily } from '../net/address.ts';

/**
 * An address or network as bytes, for containment tests without re-parsing. IPv4-mapped IPv6
 * hosts arrive as IPv4 (parsePfAddress does that), so IPv4 and IPv6 never need comparing.
 */
export interface Cidr {
  readonly family: AddressFamily;
  /** 4 or 16 bytes, host bits zero. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** pf spelling: `192.0.2.1`, `2001:db8::/64`. */
  readonly text: string;
}

/** Parses `192.0.2.1`, `198.51.100.0/24`, `2001:db8::/32`, and fail2ban's `192.0.2.0/255.255.255.0`. Throws InvalidAddressError. */
export function parseCidr(input: string): Cidr {
  // Every matched failure comes here: the common case, a plain dotted IPv4 host, without ipaddr.js.
  const quad = plainIPv4(input);
  if (quad !== null) return { family: 4, bytes: quad, prefix: 32, text: input };
  const raw = input.trim();
  const dotted = /^([^/]+)\/(\d+\.\d+\.\d+\.\d+)$/.exec(raw);
  let spec = raw;
  if (dotted) {
    // fail2ban's IPAddr accepts a dotted mask; it must be contiguous to be a prefix.
    if (!ipaddr.IPv4.isValidFourPartDecimal(dotted[2] ?? '')) throw new InvalidAddressError(input, 'invalid netmask');
    const bits = ipaddr.IPv4.parse(dotted[2] ?? '').prefixLengthFromSubnetMask();
    if (bits === null) throw new InvalidAddressError(input, 'netmask is not contiguous');
    spec = `${dotted[1] ?? ''}/${bits}`;
  }
  const pf = parsePfAddress(spec);
  const slash = pf.text.indexOf('/');
  const base = ipaddr.parse(slash === -1 ? pf.text : pf.text.slice(0, slash));
  return { family: pf.family, bytes: Uint8Array.from(base.toByteArray()), prefix: pf.prefix, text: pf.text };
}

/**
 * The bytes of `a.b.c.d` in the spelling parsePfAddress would give back unchanged (decimal parts
 * 0–255, no leading zeros, no spaces), else null for the general path.
 */
function plainIPv4(text: string): Uint8Array | null {
  const length = text.length;
  if (length < 7 || length > 15) return null;
  const bytes = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= length; i++) {
    const code = i === length ? 46 : text.charCodeAt(i);
    if (code === 46) {
      if (digits === 0 || part > 3) return null;
      bytes[part++] = value;
      value = 0;
      digits = 0;
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && value === 0) return null;
      value = value * 10 + (code - 48);
      if (++digits > 3 || value > 255) return null;
    } else {
      return null;
    }
  }
  return part === 4 ? bytes : null;
}

/** The network of `prefix` bits covering `host` (host bits cleared). */
export function coveringNetwork(host: Cidr, prefix: number): Cidr {
  if (prefix >= host.prefix) return host;
  const bytes = Uint8Array.from(host.bytes);
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const i = bit >> 3;
    bytes[i] = (bytes[i] ?? 0) & ~(0x80 >> (bit & 7));
  }
  const base = ipaddr.fromByteArray([...bytes]);
  const spelled = host.family === 4 ? base.toString() : (base as ipaddr.IPv6).toRFC5952String();
  return { family: host.family, bytes, prefix, text: `${spelled}/${prefix}` };
}

/** Whether `inner` lies entirely inside `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const full = outer.prefix >> 3;
  for (let i = 0; i < full; i++) if (outer.bytes[i] !== inner.bytes[i]) return false;
  const rest = outer.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((outer.bytes[full] ?? 0) & mask) === ((inner.bytes[full] ?? 0) & mask);
}

/** Whether two networks share any address (for CIDRs: one contains the other). */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

export function cidrList(texts: readonly string[]): Cidr[] {
  return texts.map(parseCidr);
}
