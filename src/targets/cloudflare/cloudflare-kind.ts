import { z } from 'zod';
import { FAIL2BAN_ACTION_PARAMS } from '../target-options.ts';
import { UserFacingError } from '../../util/errors.ts';
import type { TargetKind } from '../edge-target.ts';
import { CLOUDFLARE_API_URL } from './cloudflare-api.ts';
import { AccountLocks, CloudflareTarget, DEFAULT_TUNING, type CloudflareOptions } from './cloudflare-target.ts';

/** A bad `cloudflare[…]` parameter; the message names the key, never a token's value. */
export class CloudflareOptionsError extends UserFacingError {
  readonly key: string;
  constructor(key: string, message: string) {
    super(`cloudflare[${key}=]: ${message}`);
    this.name = 'CloudflareOptionsError';
    this.key = key;
  }
}

const loopbackHttp = (url: URL) => url.protocol === 'http:' && (url.hostname === '127.0.0.1' || url.hostname === '[::1]' || url.hostname === 'localhost');

const OptionsSchema = z.object({
  account: z
    .string({ error: 'is required (or CLOUDFLARE_ACCOUNT_ID): the 32-hex-digit account id from the dashboard URL' })
    .regex(/^[0-9a-f]{32}$/, 'must be the 32-hex-digit account id (dashboard ▸ Account home ▸ Account ID)'),
  list: z
    .string({ error: "is required (or CLOUDFLARE_LIST): the IP list's name or 32-hex-digit id" })
    .regex(/^(?:[0-9a-f]{32}|[a-z0-9_]{1,50})$/, "must be an IP list's id (32 hex digits) or name (lowercase letters, digits, _; at most 50)"),
  token: z
    .string({ error: 'is required (or CLOUDFLARE_API_TOKEN): an API token with Account Filter Lists Edit' })
    .regex(/^[\x21-\x7e]{20,200}$/, 'must be a Cloudflare API token (20–200 printable characters, no spaces)'),
  api: z
    .string()
    .default(CLOUDFLARE_API_URL)
    .refine((text) => {
      try {
        const url = new URL(text);
        return url.protocol === 'https:' || loopbackHttp(url);
      } catch {
        return false;
      }
    }, 'must be an https:// URL (http:// only on loopback, for the simulator)'),
});

/** Parameters of `cloudflare[account=, list=, token=, api=]`, over the env defaults. */
export function parseCloudflareOptions(params: Readonly<Record<string, string>>): CloudflareOptions {
  const known = new Set(['account', 'list', 'token', 'api']);
  const own: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (FAIL2BAN_ACTION_PARAMS.has(key)) continue;
    own[key] = value;
    if (!known.has(key)) throw new CloudflareOptionsError(key, 'unknown parameter; cloudflare takes account, list, token and api');
  }
  const parsed = OptionsSchema.safeParse(own);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CloudflareOptionsError(String(issue?.path[0] ?? 'options'), issue?.message ?? 'invalid');
  }
  return parsed.data;
}

/** The registry entry. The kind owns one lock per Cloudflare account, shared by every target it creates. */
export function createCloudflareKind(): TargetKind<CloudflareOptions> {
  const locks = new AccountLocks();
  return {
    kind: 'cloudflare',
    parseOptions: parseCloudflareOptions,
    env: {
      CLOUDFLARE_ACCOUNT_ID: 'account',
      CLOUDFLARE_LIST: 'list',
      CLOUDFLARE_API_TOKEN: 'token',
      CLOUDFLARE_API_URL: 'api',
    },
    secretParams: ['token'],
    identity: (options) => `${options.account}/${options.list}`,
    create: (options, deps) => new CloudflareTarget(options, deps, locks, DEFAULT_TUNING),
  };
}

export const cloudflareKind: TargetKind<CloudflareOptions> = createCloudflareKind();
