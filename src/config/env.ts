import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import dotenv from 'dotenv';
import { z } from 'zod';
import ipaddr from 'ipaddr.js';
import { UserFacingError } from '../util/errors.ts';

/** How the reconciler treats alias entries edgeban never banned (an admin's manual entries). */
export const FOREIGN_POLICIES = ['keep', 'adopt', 'exclusive'] as const;
export type ForeignPolicy = (typeof FOREIGN_POLICIES)[number];

/** Where the ban ledger lives: a crash-safe local file (one replica), or Redis shared by several replicas. */
export const LEDGER_KINDS = ['file', 'redis'] as const;
export type LedgerSettings =
  | { kind: 'file' }
  | {
      kind: 'redis';
      /** redis:// or rediss:// (TLS), as given (it may carry a password; never log it). */
      url: string;
      /** From EDGEBAN_REDIS_PASSWORD(_FILE); null when none or when the URL carries it. */
      password: string | null;
      /** Prefix of every key, so several deployments can share one Redis. */
      prefix: string;
      /** EDGEBAN_LEADER_LEASE: how long a target's leader lease lives without renewal (ms); a follower takes over within it. */
      leaseTtlMs: number;
    };

/** One firewall to enforce on (an HA pair is two of these: pf tables are not synced between CARP nodes). */
export interface FirewallEndpoint {
  /** Base URL without trailing slash and without credentials. */
  url: string;
  key: string;
  secret: string;
  /** PEM of the CA that signed the firewall's certificate, when it is not a public one. */
  ca: string | null;
  tlsInsecure: boolean;
  timeoutMs: number;
}

export type LogFormatSetting = 'pretty' | 'json';

export interface EdgebanEnv {
  firewalls: FirewallEndpoint[];
  alias: string;
  dataDir: string;
  /** True when EDGEBAN_DATA_DIR was not set and dataDir is the default, /data. */
  dataDirDefaulted: boolean;
  configDir: string;
  reconcileIntervalMs: number;
  killStates: boolean;
  foreignPolicy: ForeignPolicy;
  /** Bantime (seconds) given to foreign entries taken over under `adopt`. */
  adoptBantimeSec: number;
  apiConcurrency: number;
  listPageSize: number;
  logLevel: string;
  /** EDGEBAN_LOG_FORMAT; null: pretty when stderr is a terminal, JSON otherwise. */
  logFormat: LogFormatSetting | null;
  /** The control API's unix socket (mode 0600). */
  controlSocket: string;
  /** Optional loopback TCP listener for the control API; requires controlToken. */
  controlListen: { host: string; port: number } | null;
  controlToken: string | null;
  /** Prometheus metrics, /healthz and /readyz; null when not served (EDGEBAN_METRICS_LISTEN unset). */
  metricsListen: { host: string; port: number } | null;
  /** The pull feed's token (EDGEBAN_FEED_TOKEN(_FILE)); null: `/blocklist/…` is off (404), never open. */
  feedToken: string | null;
  /** A watched log silent this long raises a watchdog notification; 0 turns the watchdog off. */
  watchdogSilenceSec: number;
  /** A target unreachable or refusing this long raises an enforcement-failing notification. */
  enforcementAlertAfterSec: number;
  /** At most one notification per channel per this many seconds; the rest go into a digest. */
  notifyIntervalSec: number;
  /** The ledger store (EDGEBAN_LEDGER). */
  ledger: LedgerSettings;
  /** Local firewall actions in jails (iptables, …): edge bans, skipped jails or an error (EDGEBAN_LOCAL_ACTIONS; a jail's `localactions` wins). */
  localActions: 'edge' | 'skip' | 'error';
  /** Start with no runnable jail (a ban-only setup driven by the CLI): EDGEBAN_ALLOW_NO_JAILS. */
  allowNoJails: boolean;
  /** Where this host's routing tables are read (gateways the guard protects); /proc/net, or a test's fixture. */
  procNet: string;
  /** Every secret value, for scrubbing logs. */
  secrets: readonly string[];
  /** The environment (process and .env file) as read, for the env defaults of registry backends (MIKROTIK_URL, …). */
  targetEnv?: Readonly<Record<string, string>>;
}

/** Shortest pull-feed token accepted: a shorter one is guessable by a firewall-side brute force. */
export const FEED_TOKEN_MIN_LENGTH = 16;

/** OPNsense alias names: letter or one `_` first, then letters, digits, `_`; at most 31 (AliasNameField.php). */
export const ALIAS_NAME = /^(?:[A-Za-z]|_(?!_))[A-Za-z0-9_]{0,30}$/;

export function isValidAliasName(name: string): boolean {
  return ALIAS_NAME.test(name);
}

const flag = (fallback: boolean) =>
  z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return fallback;
      if (/^(1|true|yes|on)$/i.test(value)) return true;
      if (/^(0|false|no|off)$/i.test(value)) return false;
      ctx.addIssue({ code: 'custom', message: `expected 1 or 0 (or true/false), got ${JSON.stringify(value)}` });
      return z.NEVER;
    });

/** A whole number from min to max; `fallback` when unset or empty. */
const wholeNumberIn = (min: number, fallback: number, max: number) =>
  z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return fallback;
      if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
        ctx.addIssue({ code: 'custom', message: `expected a whole number from ${min} to ${max}, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return Number(value);
    });
const positiveInt = (fallback: number, max: number) => wholeNumberIn(1, fallback, max);
const nonNegativeInt = (fallback: number, max: number) => wholeNumberIn(0, fallback, max);

/** HOST:PORT or [IPv6]:PORT. */
function parseListen(value: string): { host: string; port: number } | null {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!host || !(port >= 1 && port <= 65535)) return null;
  return { host, port };
}

const RawEnvSchema = z.object({
  OPNSENSE_URL: z.string().trim().optional(),
  OPNSENSE_KEY: z.string().optional(),
  OPNSENSE_KEY_FILE: z.string().optional(),
  OPNSENSE_SECRET: z.string().optional(),
  OPNSENSE_SECRET_FILE: z.string().optional(),
  OPNSENSE_ALIAS: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      const alias = value === undefined || value === '' ? 'fail2ban_blocklist' : value;
      if (!isValidAliasName(alias)) {
        ctx.addIssue({
          code: 'custom',
          message: `${JSON.stringify(alias)} is not a valid OPNsense alias name (a letter or _ first, then letters, digits or _, at most 31)`,
        });
        return z.NEVER;
      }
      return alias;
    }),
  OPNSENSE_CA_FILE: z.string().optional(),
  OPNSENSE_TLS_INSECURE: flag(false),
  OPNSENSE_TIMEOUT: positiveInt(30, 600),
  EDGEBAN_DATA_DIR: z.string().optional(),
  EDGEBAN_CONFIG_DIR: z.string().optional(),
  EDGEBAN_RECONCILE_INTERVAL: positiveInt(60, 86_400),
  EDGEBAN_KILL_STATES: flag(true),
  EDGEBAN_FOREIGN_ENTRIES: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return 'keep' as ForeignPolicy;
      if ((FOREIGN_POLICIES as readonly string[]).includes(value)) return value as ForeignPolicy;
      ctx.addIssue({ code: 'custom', message: `expected one of ${FOREIGN_POLICIES.join(', ')}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }),
  EDGEBAN_ADOPT_BANTIME: positiveInt(600, 10 * 365 * 86_400),
  EDGEBAN_API_CONCURRENCY: positiveInt(16, 256),
  EDGEBAN_LIST_PAGE_SIZE: positiveInt(9999, 1_000_000),
  EDGEBAN_CONTROL_SOCKET: z.string().optional(),
  EDGEBAN_CONTROL_LISTEN: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return null;
      const listen = parseListen(value);
      if (!listen || !isLoopbackHost(listen.host)) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a loopback HOST:PORT such as 127.0.0.1:9191 (the control API is never exposed beyond this host), got ${JSON.stringify(value)}`,
        });
        return z.NEVER;
      }
      return listen;
    }),
  // Metrics carry counts, never addresses or secrets; a pod or container network address is allowed so Prometheus can scrape.
  EDGEBAN_METRICS_LISTEN: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return null;
      const listen = parseListen(value);
      if (!listen) {
        ctx.addIssue({ code: 'custom', message: `expected HOST:PORT such as 127.0.0.1:9464, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return listen;
    }),
  EDGEBAN_WATCHDOG_SILENCE: nonNegativeInt(21_600, 30 * 86_400),
  EDGEBAN_ENFORCEMENT_ALERT_AFTER: positiveInt(300, 86_400),
  EDGEBAN_NOTIFY_INTERVAL: positiveInt(60, 86_400),
  EDGEBAN_LEDGER: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return 'file' as LedgerSettings['kind'];
      if ((LEDGER_KINDS as readonly string[]).includes(value)) return value as LedgerSettings['kind'];
      ctx.addIssue({ code: 'custom', message: `expected one of ${LEDGER_KINDS.join(', ')}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }),
  EDGEBAN_REDIS_URL: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return null;
      const checked = checkRedisUrl(value);
      if (typeof checked !== 'string') {
        ctx.addIssue({ code: 'custom', message: checked.problem });
        return z.NEVER;
      }
      return checked;
    }),
  EDGEBAN_REDIS_PREFIX: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return 'edgeban:';
      if (!/^[\x21-\x7e]{1,64}$/.test(value)) {
        ctx.addIssue({ code: 'custom', message: `expected 1 to 64 printable characters without spaces, such as edgeban:prod:, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return value;
    }),
  EDGEBAN_LEADER_LEASE: positiveInt(15, 600),
  EDGEBAN_LOCAL_ACTIONS: z.enum(['edge', 'skip', 'error']).optional(),
  EDGEBAN_ALLOW_NO_JAILS: flag(false),
  EDGEBAN_PROC_NET: z.string().trim().optional(),
  EDGEBAN_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  EDGEBAN_LOG_FORMAT: z.enum(['pretty', 'json']).optional(),
});

export interface LoadEnvOptions {
  /** The process environment; wins over the .env file, as dotenv does. */
  env?: NodeJS.ProcessEnv;
  /** Path of the .env file; default `.env` in the working directory (a missing file is fine). */
  envFile?: string;
  /**
   * Whether OPNSENSE_URL is required. By default it is not: jails may name their firewalls, and
   * building the targets fails (naming the jail) when something needs the environment's firewall.
   */
  requireFirewall?: boolean;
}

/** Reads `.env` and the environment, validates, and returns the configuration or throws a UserFacingError naming each bad variable. */
export function loadEnv(options: LoadEnvOptions = {}): EdgebanEnv {
  const merged: Record<string, string | undefined> = { ...(options.env ?? process.env) };
  const envFile = options.envFile ?? merged.EDGEBAN_ENV_FILE ?? path.resolve('.env');
  if (existsSync(envFile)) {
    const result = dotenv.config({ path: envFile, quiet: true, processEnv: merged });
    if (result.error) throw new UserFacingError(`cannot read ${envFile}: ${result.error.message}`);
  }
  const parsed = RawEnvSchema.safeParse(merged);
  // Every problem is reported at once, so a user fixes the file in one go.
  const problems: string[] = parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  const key = readSecret('OPNSENSE_KEY', merged.OPNSENSE_KEY, merged.OPNSENSE_KEY_FILE, problems);
  const controlToken = readSecret('EDGEBAN_CONTROL_TOKEN', merged.EDGEBAN_CONTROL_TOKEN, merged.EDGEBAN_CONTROL_TOKEN_FILE, problems);
  const secret = readSecret('OPNSENSE_SECRET', merged.OPNSENSE_SECRET, merged.OPNSENSE_SECRET_FILE, problems);
  const feedToken = readSecret('EDGEBAN_FEED_TOKEN', merged.EDGEBAN_FEED_TOKEN, merged.EDGEBAN_FEED_TOKEN_FILE, problems);
  const redisPassword = readSecret('EDGEBAN_REDIS_PASSWORD', merged.EDGEBAN_REDIS_PASSWORD, merged.EDGEBAN_REDIS_PASSWORD_FILE, problems);
  const raw = parsed.success ? parsed.data : RawEnvSchema.parse({});
  let ca: string | null = null;
  if (merged.OPNSENSE_CA_FILE) {
    try {
      ca = readFileSync(merged.OPNSENSE_CA_FILE, 'utf8');
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) problems.push(`OPNSENSE_CA_FILE: ${merged.OPNSENSE_CA_FILE} holds no PEM certificate`);
    } catch (error) {
      problems.push(`OPNSENSE_CA_FILE: cannot read ${merged.OPNSENSE_CA_FILE} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const urls = (merged.OPNSENSE_URL ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  const requireFirewall = options.requireFirewall ?? false;
  if (requireFirewall && urls.length === 0) problems.push('OPNSENSE_URL: not set (the firewall API, e.g. https://192.0.2.1 or several separated by commas)');
  const firewalls: FirewallEndpoint[] = [];
  for (const candidate of urls) {
    const checked = checkFirewallUrl(candidate);
    if (typeof checked !== 'string') {
      problems.push(`OPNSENSE_URL: ${checked.problem}`);
      continue;
    }
    if (firewalls.some((f) => f.url === checked)) continue;
    firewalls.push({ url: checked, key: key ?? '', secret: secret ?? '', ca, tlsInsecure: raw.OPNSENSE_TLS_INSECURE, timeoutMs: raw.OPNSENSE_TIMEOUT * 1000 });
  }
  if (urls.length > 0 || requireFirewall) {
    if (!key && !problems.some((p) => p.startsWith('OPNSENSE_KEY'))) problems.push('OPNSENSE_KEY: not set (or OPNSENSE_KEY_FILE)');
    if (!secret && !problems.some((p) => p.startsWith('OPNSENSE_SECRET'))) problems.push('OPNSENSE_SECRET: not set (or OPNSENSE_SECRET_FILE)');
  }
  if (raw.EDGEBAN_CONTROL_LISTEN && (controlToken === null || controlToken.length < 16)) {
    problems.push('EDGEBAN_CONTROL_TOKEN: required (at least 16 characters) when EDGEBAN_CONTROL_LISTEN is set');
  }
  if (feedToken !== null && feedToken.length < FEED_TOKEN_MIN_LENGTH) {
    problems.push(`EDGEBAN_FEED_TOKEN: at least ${FEED_TOKEN_MIN_LENGTH} characters (e.g. openssl rand -hex 24)`);
  }
  const ledger = ledgerSettings(raw, redisPassword, problems);
  if (problems.length > 0) throw new UserFacingError(`invalid environment:\n  ${problems.join('\n  ')}`);
  const dataDir = path.resolve(raw.EDGEBAN_DATA_DIR ?? '/data');
  return {
    firewalls,
    alias: raw.OPNSENSE_ALIAS,
    dataDir,
    dataDirDefaulted: raw.EDGEBAN_DATA_DIR === undefined,
    // The fail2ban images keep jail.d/filter.d/action.d in the data volume, so that is the default.
    configDir: path.resolve(raw.EDGEBAN_CONFIG_DIR ?? dataDir),
    reconcileIntervalMs: raw.EDGEBAN_RECONCILE_INTERVAL * 1000,
    killStates: raw.EDGEBAN_KILL_STATES,
    foreignPolicy: raw.EDGEBAN_FOREIGN_ENTRIES,
    adoptBantimeSec: raw.EDGEBAN_ADOPT_BANTIME,
    apiConcurrency: raw.EDGEBAN_API_CONCURRENCY,
    listPageSize: raw.EDGEBAN_LIST_PAGE_SIZE,
    logLevel: raw.EDGEBAN_LOG_LEVEL ?? 'info',
    logFormat: raw.EDGEBAN_LOG_FORMAT ?? null,
    controlSocket: path.resolve(raw.EDGEBAN_CONTROL_SOCKET ?? path.join(dataDir, 'edgeban.sock')),
    controlListen: raw.EDGEBAN_CONTROL_LISTEN,
    controlToken,
    metricsListen: raw.EDGEBAN_METRICS_LISTEN,
    feedToken,
    watchdogSilenceSec: raw.EDGEBAN_WATCHDOG_SILENCE,
    enforcementAlertAfterSec: raw.EDGEBAN_ENFORCEMENT_ALERT_AFTER,
    notifyIntervalSec: raw.EDGEBAN_NOTIFY_INTERVAL,
    ledger,
    localActions: raw.EDGEBAN_LOCAL_ACTIONS ?? 'edge',
    allowNoJails: raw.EDGEBAN_ALLOW_NO_JAILS,
    procNet: path.resolve(raw.EDGEBAN_PROC_NET || '/proc/net'),
    targetEnv: Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => typeof e[1] === 'string')),
    secrets: [key, secret, controlToken, feedToken, redisPassword, ...redisUrlSecrets(raw.EDGEBAN_REDIS_URL)].filter(
      (s): s is string => typeof s === 'string' && s !== '',
    ),
  };
}

function ledgerSettings(raw: z.infer<typeof RawEnvSchema>, password: string | null, problems: string[]): LedgerSettings {
  const url = raw.EDGEBAN_REDIS_URL;
  if (raw.EDGEBAN_LEDGER === 'file') {
    // A URL without EDGEBAN_LEDGER=redis would leave each replica on its own file, silently unshared.
    if (url !== null)
      problems.push(
        'EDGEBAN_REDIS_URL: set, but EDGEBAN_LEDGER is file; set EDGEBAN_LEDGER=redis to share the ledger through Redis, or unset EDGEBAN_REDIS_URL',
      );
    return { kind: 'file' };
  }
  if (url === null) {
    if (!problems.some((p) => p.startsWith('EDGEBAN_REDIS_URL')))
      problems.push('EDGEBAN_REDIS_URL: required when EDGEBAN_LEDGER=redis (redis://HOST:6379/0, or rediss:// for TLS)');
    return { kind: 'file' };
  }
  if (password !== null && new URL(url).password !== '') problems.push('EDGEBAN_REDIS_PASSWORD: the password is also in EDGEBAN_REDIS_URL; keep one');
  return { kind: 'redis', url, password, prefix: raw.EDGEBAN_REDIS_PREFIX, leaseTtlMs: raw.EDGEBAN_LEADER_LEASE * 1000 };
}

/** The URL's password, as written and decoded, so log scrubbing catches either spelling. */
function redisUrlSecrets(url: string | null): string[] {
  if (url === null) return [];
  const password = new URL(url).password;
  if (password === '') return [];
  let decoded = password;
  try {
    decoded = decodeURIComponent(password);
  } catch {
    // keep the raw spelling only
  }
  return [password, decoded];
}

/** Accepts redis:// and rediss:// (TLS) URLs with an optional database number; never echoes the URL (it may hold a password). */
export function checkRedisUrl(candidate: string): string | { problem: string } {
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return { problem: 'not a URL (expected redis://HOST:6379/0 or rediss://HOST:6380/0)' };
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return { problem: `expected redis:// or rediss:// (TLS), got ${url.protocol}//` };
  if (url.hostname === '') return { problem: 'no host (expected redis://HOST:6379/0)' };
  if (url.hash) return { problem: 'no fragment expected' };
  if (!/^\/?(\d{1,2})?$/.test(url.pathname)) return { problem: `the path must be a database number such as /0, got ${JSON.stringify(url.pathname)}` };
  return candidate;
}

function readSecret(name: string, inline: string | undefined, file: string | undefined, problems: string[]): string | null {
  if (inline && file) {
    problems.push(`${name}: set both ${name} and ${name}_FILE; keep one`);
    return null;
  }
  if (file) {
    try {
      const value = readFileSync(file, 'utf8').trim();
      if (value === '') problems.push(`${name}_FILE: ${file} is empty`);
      return value || null;
    } catch (error) {
      problems.push(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return null;
    }
  }
  const value = inline?.trim();
  return value ? value : null;
}

/** Accepts https URLs, and http only towards loopback (the simulator): credentials must not cross a network in clear. */
export function checkFirewallUrl(candidate: string): string | { problem: string } {
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return { problem: `${JSON.stringify(candidate)} is not a URL` };
  }
  if (url.username || url.password) return { problem: `${url.protocol}//${url.host}: put credentials in OPNSENSE_KEY/OPNSENSE_SECRET, not in the URL` };
  if (url.search || url.hash) return { problem: `${url.origin}: no query string or fragment expected` };
  if (url.protocol === 'http:') {
    if (!isLoopbackHost(url.hostname)) return { problem: `${url.origin}: plain http is accepted only for loopback addresses; use https` };
  } else if (url.protocol !== 'https:') {
    return { problem: `${url.origin}: expected https://` };
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost') return true;
  const bare = hostname.replace(/^\[|\]$/g, '');
  if (!ipaddr.isValid(bare)) return false;
  return ipaddr.process(bare).range() === 'loopback';
}
