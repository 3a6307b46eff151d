import { createHash, timingSafeEqual } from 'node:crypto';

/** The challenge a 401 carries: both schemes a firewall may be configured with. */
export const FEED_CHALLENGE = 'Bearer realm="edgeban feed", Basic realm="edgeban feed"';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Compares through fixed-length digests, so neither content nor length leaks through timing. */
function sameSecret(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

/**
 * `Authorization: Bearer TOKEN`, or `Basic` with the token as the password (any user name: pfSense
 * and OPNsense URL tables ask for a user and a password, FortiGate for both too).
 */
export function feedAuthorized(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const match = /^(\S+)\s+(\S+)\s*$/.exec(header);
  if (!match) return false;
  const scheme = match[1]!.toLowerCase();
  const value = match[2]!;
  if (scheme === 'bearer') return sameSecret(value, token);
  if (scheme !== 'basic') return false;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon !== -1 && sameSecret(decoded.slice(colon + 1), token);
}
