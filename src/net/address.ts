import ipaddr from 'ipaddr.js';

export type AddressFamily = 4 | 6;

/** An address or network in the spelling pf prints and matches (`pfctl -T show`). */
export interface PfAddress {
  /** `192.0.2.1`, `198.51.100.0/24`, `2001:db8::1`, `2001:db8:1::/64`: no /32 or /128, host bits masked, lowercase compressed IPv6. */
  readonly text: string;
  readonly family: AddressFamily;
  /** Prefix length; 32 or 128 for a single host. */
  readonly prefix: number;
}

export class InvalidAddressError extends Error {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid address ${JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input)}: ${reason}`);
    this.name = 'InvalidAddressError';
    this.input = input;
  }
}

/**
 * Parses an IPv4/IPv6 address or CIDR and returns it as pf stores it. Strict on purpose:
 * legacy IPv4 forms (`127.1`, `0x7f.0.0.1`), zone ids and host names are rejected, because
 * OPNsense answers `done` for whatever pfctl silently fails to add.
 */
export function parsePfAddress(input: string): PfAddress {
  const raw = input.trim();
  if (raw === '') throw new InvalidAddressError(input, 'empty');
  if (raw.includes('%')) throw new InvalidAddressError(input, 'zone ids are not addresses pf can block');
  const slash = raw.indexOf('/');
  const addressPart = slash === -1 ? raw : raw.slice(0, slash);
  const prefixPart = slash === -1 ? null : raw.slice(slash + 1);
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  if (ipaddr.IPv4.isValidFourPartDecimal(addressPart)) {
    address = ipaddr.IPv4.parse(addressPart);
  } else if (addressPart.includes(':') && ipaddr.IPv6.isValid(addressPart)) {
    address = ipaddr.IPv6.parse(addressPart);
  } else {
    throw new InvalidAddressError(input, 'not an IPv4 or IPv6 address');
  }
  let prefix: number;
  if (prefixPart === null) {
    prefix = address.kind() === 'ipv4' ? 32 : 128;
  } else {
    if (!/^\d{1,3}$/.test(prefixPart)) throw new InvalidAddressError(input, 'prefix length must be a number');
    prefix = Number(prefixPart);
  }
  // An IPv4-mapped IPv6 host is the IPv4 attacker; pf would not match it against IPv4 traffic.
  if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() && prefix >= 96) {
    address = address.toIPv4Address();
    prefix -= 96;
  }
  const family: AddressFamily = address.kind() === 'ipv4' ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  if (prefix > max) throw new InvalidAddressError(input, `prefix length ${prefix} exceeds ${max}`);
  const network = maskHostBits(address, prefix);
  const spelled = family === 4 ? network.toString() : (network as ipaddr.IPv6).toRFC5952String();
  return { text: prefix === max ? spelled : `${spelled}/${prefix}`, family, prefix };
}

/** pf spelling of `input`; throws InvalidAddressError. */
export function toPfSpelling(input: string): string {
  return parsePfAddress(input).text;
}

export function isValidAddress(input: string): boolean {
  try {
    parsePfAddress(input);
    return true;
  } catch {
    return false;
  }
}

function maskHostBits(address: ipaddr.IPv4 | ipaddr.IPv6, prefix: number): ipaddr.IPv4 | ipaddr.IPv6 {
  const bytes = address.toByteArray();
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const index = bit >> 3;
    bytes[index] = (bytes[index] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return ipaddr.fromByteArray(bytes);
}
