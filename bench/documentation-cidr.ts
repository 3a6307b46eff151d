import type { Cidr } from '../src/jails/cidr.ts';

/**
 * The `i`-th distinct address 2001:db8:XXXX:YYYY::1 (documentation space), built as bytes directly:
 * the engine parses each address once, so memory measurements leave parsing out.
 */
export function documentationCidr6(i: number): Cidr {
  const bytes = new Uint8Array(16);
  bytes[0] = 0x20;
  bytes[1] = 0x01;
  bytes[2] = 0x0d;
  bytes[3] = 0xb8;
  bytes[4] = (i >>> 24) & 0xff;
  bytes[5] = (i >>> 16) & 0xff;
  bytes[6] = (i >>> 8) & 0xff;
  bytes[7] = i & 0xff;
  bytes[15] = 1;
  return { family: 6, bytes, prefix: 128, text: '' };
}
