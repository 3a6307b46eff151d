import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { CloudflareSimulator, type CloudflarePermission } from '../simulator/cloudflare/cloudflare-simulator.ts';
import { isLoopbackHost } from '../simulator/http-util.ts';
import { parseSimulateFlags, serveUntilSignal, startSimulator } from './simulate-flags.ts';

const USAGE = `usage: edgeban simulate --kind cloudflare --port P [--host 127.0.0.1] [--account ID] [--list NAME]... [--zone ID]...
         [--token T] [--read-token T] [--setup-token T] [--operation-delay-ms 300] [--max-items 10000]
         [--ipv6-finest-prefix 128|64] [--max-per-page 500]
A Cloudflare API (Lists, bulk operations, the WAF custom-rules entry point) on loopback, at
http://HOST:PORT/client/v4 (edgeban's api= / CLOUDFLARE_API_URL). --token may edit lists (the
daemon's token), --read-token only read them, --setup-token edit lists and zone WAF rules.
--ipv6-finest-prefix 64 plays the IPv6 rule of Cloudflare before July 2025 (/12–/64 only).`;

const whole = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `--${name} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `--${name} must be from ${min} to ${max}`);
const hex32 = (name: string) => z.string().regex(/^[0-9a-f]{32}$/, `--${name} must be 32 hex digits`);
const token = (name: string) => z.string().regex(/^[\x21-\x7e]{20,200}$/, `--${name} must be 20–200 printable characters`);

const Schema = z.object({
  port: whole('port', 0, 65535),
  host: z.string().refine(isLoopbackHost, '--host must be a loopback address').default('127.0.0.1'),
  account: hex32('account').optional(),
  list: z.array(z.string().regex(/^[a-z0-9_]{1,50}$/, '--list must be a list name (lowercase letters, digits, _)')).default([]),
  zone: z.array(hex32('zone')).default([]),
  token: token('token').optional(),
  'read-token': token('read-token').optional(),
  'setup-token': token('setup-token').optional(),
  'operation-delay-ms': whole('operation-delay-ms', 0, 600_000).optional(),
  'max-items': whole('max-items', 1, 10_000_000).optional(),
  'ipv6-finest-prefix': z.enum(['64', '128'], { error: '--ipv6-finest-prefix must be 64 or 128' }).transform(Number).optional(),
  'max-per-page': whole('max-per-page', 1, 100_000).optional(),
});

export async function runSimulateCloudflareCommand(argv: string[]): Promise<number> {
  const o = parseSimulateFlags(
    argv,
    {
      account: { type: 'string' },
      list: { type: 'string', multiple: true },
      zone: { type: 'string', multiple: true },
      token: { type: 'string' },
      'read-token': { type: 'string' },
      'setup-token': { type: 'string' },
      'operation-delay-ms': { type: 'string' },
      'max-items': { type: 'string' },
      'ipv6-finest-prefix': { type: 'string' },
      'max-per-page': { type: 'string' },
    },
    USAGE,
    Schema,
  );
  if (o === null) return 0;
  const account = o.account ?? randomBytes(16).toString('hex');
  // Like Cloudflare's: 40 URL-safe characters.
  const token = o.token ?? randomBytes(30).toString('base64url');
  const tokens: Array<{ token: string; permissions: CloudflarePermission[] }> = [{ token, permissions: ['lists:edit'] }];
  if (o['read-token'] !== undefined) tokens.push({ token: o['read-token'], permissions: ['lists:read'] });
  if (o['setup-token'] !== undefined) tokens.push({ token: o['setup-token'], permissions: ['lists:edit', 'waf:edit'] });
  const simulator = await startSimulator(o.host, o.port, () =>
    CloudflareSimulator.start({
      host: o.host,
      port: o.port,
      tokens,
      accounts: [{ id: account, zones: o.zone, lists: o.list.map((name) => ({ name })) }],
      ...(o['operation-delay-ms'] === undefined ? {} : { operationDelayMs: o['operation-delay-ms'] }),
      ...(o['max-items'] === undefined ? {} : { maxItems: o['max-items'] }),
      ...(o['ipv6-finest-prefix'] === undefined ? {} : { ipv6FinestPrefix: o['ipv6-finest-prefix'] }),
      ...(o['max-per-page'] === undefined ? {} : { maxPerPage: o['max-per-page'] }),
    }),
  );
  // Printed once, so the user can put it in edgeban's config; never logged elsewhere.
  if (o.token === undefined) process.stdout.write(`edgeban simulate: generated API token (Account Filter Lists Edit): ${token}\n`);
  process.stdout.write(`edgeban simulate: account ${account}\nedgeban simulate: listening on ${simulator.url}\n`);
  return serveUntilSignal(simulator);
}
