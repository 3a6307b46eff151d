import { createHash, timingSafeEqual } from 'node:crypto';

export interface SimulatorKey {
  key: string;
  secret: string;
  privileges: string[];
  readOnly?: boolean;
  user?: string;
}

export type AuthOutcome = { kind: 'missing' } | { kind: 'malformed' } | { kind: 'failed' } | { kind: 'ok'; key: SimulatorKey; user: string };

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * ApiControllerBase: any Authorization header means API mode. The scheme word is never
 * checked; the 2nd space-separated token is base64 of `key:secret`.
 */
export function authenticate(header: string | undefined, keys: readonly SimulatorKey[]): AuthOutcome {
  if (header === undefined) return { kind: 'missing' };
  const token = header.split(' ')[1];
  if (token === undefined || token === '') return { kind: 'malformed' };
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return { kind: 'malformed' };
  const key = decoded.slice(0, colon);
  const secret = decoded.slice(colon + 1);
  const entry = keys.find((k) => k.key === key);
  // Compare digests in constant time, and do the work even for unknown keys.
  const expected = digest(entry ? entry.secret : `\u0000no-such-key\u0000${secret}`);
  const matches = timingSafeEqual(expected, digest(secret)) && entry !== undefined;
  if (!matches || !entry) return { kind: 'failed' };
  return { kind: 'ok', key: entry, user: entry.user ?? 'apiuser' };
}

/** The key id of a header, only when it names a configured key (it is logged; a mistyped secret must not be). */
export function knownKeyId(header: string | undefined, keys: readonly SimulatorKey[]): string | null {
  if (header === undefined) return null;
  const token = header.split(' ')[1];
  if (!token) return null;
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return null;
  const key = decoded.slice(0, colon);
  return keys.some((k) => k.key === key) ? key : null;
}
