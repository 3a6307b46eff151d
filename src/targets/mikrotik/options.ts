import { readFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { FAIL2BAN_ACTION_PARAMS } from '../target-options.ts';

/** Validated `mikrotik[url=, user=, password=, list=, ca_file=, tls_insecure=, api_timeout=]` parameters. */
export interface MikrotikOptions {
  /** Router base URL (`https://192.0.2.1` or with a port), without `/rest`, credentials or trailing slash. */
  url: string;
  user: string;
  password: string;
  /** The address list a drop rule matches (`src-address-list=`); one name for the IPv4 and the IPv6 menu. */
  list: string;
  /** PEM of the CA that signed the router's certificate (RouterOS makes self-signed ones), or null for the system CAs. */
  ca: string | null;
  tlsInsecure: boolean;
  timeoutMs: number;
}

/** A bad parameter; `key` names it so the config layer can point at file, line and key. */
export class MikrotikOptionError extends Error {
  readonly key: string;
  constructor(key: string, problem: string) {
    super(`${key}: ${problem}`);
    this.name = 'MikrotikOptionError';
    this.key = key;
  }
}

export const MIKROTIK_ENV: Readonly<Record<string, string>> = {
  MIKROTIK_URL: 'url',
  MIKROTIK_USER: 'user',
  MIKROTIK_PASSWORD: 'password',
  MIKROTIK_LIST: 'list',
  MIKROTIK_CA_FILE: 'ca_file',
  MIKROTIK_TLS_INSECURE: 'tls_insecure',
  MIKROTIK_TIMEOUT: 'api_timeout',
};

export const DEFAULT_LIST = 'edgeban';

/**
 * RouterOS list names are free text, but they travel in query strings and appear in firewall
 * rules typed by hand: letters, digits and `_ - . :` keep both unambiguous.
 */
const LIST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$/;

/** fail2ban's action machinery's parameters, and its automatic action `name` (a list has its own `list`). */
const isIgnored = (key: string): boolean => key === 'name' || FAIL2BAN_ACTION_PARAMS.has(key);

const schema = z.object({
  url: z.string({ error: 'required (the router, e.g. https://192.0.2.1)' }).min(1, 'required (the router, e.g. https://192.0.2.1)'),
  user: z.string({ error: 'required (a RouterOS user, see README "MikroTik RouterOS")' }).min(1, 'required (a RouterOS user, see README "MikroTik RouterOS")'),
  // RouterOS allows an empty password (the factory admin has one); edgeban does not.
  password: z.string({ error: 'required (or MIKROTIK_PASSWORD_FILE)' }).min(1, 'required (or MIKROTIK_PASSWORD_FILE)'),
  list: z.string().regex(LIST_NAME, 'must be 1-64 characters of letters, digits, _ - . : (the address list name)').default(DEFAULT_LIST),
  ca_file: z.string().min(1, 'must be a file path').optional(),
  tls_insecure: z.enum(['0', '1', 'true', 'false', 'yes', 'no']).default('0'),
  api_timeout: z
    .string()
    .regex(/^\d{1,3}$/, 'must be whole seconds (1-600)')
    .transform(Number)
    .refine((s) => s >= 1 && s <= 600, 'must be whole seconds (1-600)')
    .default(30),
});

/**
 * Validates a jail action's parameters (merged over the env defaults). Values are strings as
 * jail.conf gives them; a secret's value never appears in an error, only its key.
 */
export function parseMikrotikOptions(params: Readonly<Record<string, string>>): MikrotikOptions {
  const given: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (isIgnored(key)) continue;
    if (!(key in schema.shape)) throw new MikrotikOptionError(key, `unknown parameter (known: ${Object.keys(schema.shape).join(', ')})`);
    // An action file's empty [Init] default (`ca_file =`) means "not set".
    if (typeof value === 'string' && value.trim() !== '') given[key] = key === 'password' ? value : value.trim();
  }
  const parsed = schema.safeParse(given);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MikrotikOptionError(String(issue?.path[0] ?? 'options'), issue?.message ?? 'invalid');
  }
  const o = parsed.data;
  return {
    url: checkRouterUrl(o.url),
    user: o.user,
    password: o.password,
    list: o.list,
    ca: o.ca_file === undefined ? null : readCa(o.ca_file),
    tlsInsecure: ['1', 'true', 'yes'].includes(o.tls_insecure),
    timeoutMs: o.api_timeout * 1000,
  };
}

/** `https://host[:port]`, an optional `/rest` dropped; plain http only to loopback (basic auth would travel in clear). */
function checkRouterUrl(candidate: string): string {
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    throw new MikrotikOptionError('url', 'is not a URL (expected https://ROUTER)');
  }
  if (url.username || url.password) throw new MikrotikOptionError('url', 'put credentials in user= and password=, not in the URL');
  if (url.search || url.hash) throw new MikrotikOptionError('url', `${url.origin}: no query string or fragment expected`);
  const bare = url.hostname.replace(/^\[|\]$/g, '');
  const loopback = bare === 'localhost' || (ipaddr.isValid(bare) && ipaddr.process(bare).range() === 'loopback');
  if (url.protocol === 'http:' && !loopback)
    throw new MikrotikOptionError('url', `${url.origin}: plain http sends the password in clear; use https (the www-ssl service)`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MikrotikOptionError('url', `${url.origin}: expected https://`);
  const path = url.pathname.replace(/\/+$/, '').replace(/\/rest$/, '');
  return `${url.origin}${path}`;
}

function readCa(file: string): string {
  let ca: string;
  try {
    ca = readFileSync(file, 'utf8');
  } catch (error) {
    throw new MikrotikOptionError('ca_file', `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new MikrotikOptionError('ca_file', `${file} holds no PEM certificate`);
  return ca;
}
