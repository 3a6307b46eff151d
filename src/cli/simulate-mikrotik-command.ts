import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { RouterOsSimulator, type RouterOsSimulatorOptions } from '../simulator/mikrotik/routeros-simulator.ts';
import {
  checkTlsPair,
  ERROR_RATE_SCHEMA,
  LISTEN_SCHEMAS,
  parseSimulateFlags,
  readTlsFlags,
  serveUntilSignal,
  startSimulator,
  TLS_FLAGS,
  TLS_SCHEMAS,
  wholeNumber,
} from './simulate-flags.ts';

const USAGE =
  'usage: edgeban simulate --kind mikrotik --port P [--host 127.0.0.1] [--user U --password P] [--policies read,write,api,rest-api]\n' +
  '         [--list NAME | --no-rules] [--latency MS] [--error-rate R] [--seed N] [--tls-cert FILE --tls-key FILE] [--routeros-version V]\n' +
  'A RouterOS v7 REST API (address lists) on loopback; --list gets raw drop rules in /ip and /ipv6 firewall (default list "edgeban").';

const POLICIES = [
  'local',
  'telnet',
  'ssh',
  'ftp',
  'reboot',
  'read',
  'write',
  'policy',
  'test',
  'winbox',
  'password',
  'web',
  'sniff',
  'sensitive',
  'api',
  'rest-api',
  'romon',
];

const optionsSchema = z
  .object({
    ...LISTEN_SCHEMAS,
    user: z.string().min(1, '--user must not be empty').default('edgeban'),
    password: z.string().min(1, '--password must not be empty').optional(),
    policies: z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((p) => p.trim())
          .filter((p) => p !== ''),
      )
      .refine((list) => list.every((p) => POLICIES.includes(p)), `--policies must be a comma-separated list of ${POLICIES.join(', ')}`)
      .default(['read', 'write', 'api', 'rest-api']),
    list: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$/, '--list must be an address list name')
      .default('edgeban'),
    'no-rules': z.boolean().default(false),
    latency: wholeNumber('latency', 0, 3_600_000).optional(),
    'error-rate': ERROR_RATE_SCHEMA,
    seed: wholeNumber('seed', 0, 2 ** 32 - 1).optional(),
    ...TLS_SCHEMAS,
    'routeros-version': z
      .string()
      .regex(/^7\.\d+(?:\.\d+)?$/, '--routeros-version must be a RouterOS 7 release such as 7.16.2')
      .optional(),
  })
  .superRefine(checkTlsPair);

/** `edgeban simulate --kind mikrotik`: runs the RouterOS simulator until SIGINT/SIGTERM. */
export async function runMikrotikSimulateCommand(argv: string[]): Promise<number> {
  const o = parseSimulateFlags(
    argv,
    {
      user: { type: 'string' },
      password: { type: 'string' },
      policies: { type: 'string' },
      list: { type: 'string' },
      'no-rules': { type: 'boolean' },
      latency: { type: 'string' },
      'error-rate': { type: 'string' },
      seed: { type: 'string' },
      ...TLS_FLAGS,
      'routeros-version': { type: 'string' },
    },
    USAGE,
    optionsSchema,
  );
  if (o === null) return 0;
  const password = o.password ?? randomBytes(18).toString('base64url');
  const drop = [{ chain: 'prerouting', action: 'drop', 'src-address-list': o.list }];
  const options: RouterOsSimulatorOptions = {
    host: o.host,
    port: o.port,
    users: [{ name: o.user, password, policies: o.policies }],
    rules: o['no-rules'] ? {} : { 'ip/firewall/raw': drop, 'ipv6/firewall/raw': drop },
    faults: { latencyMs: o.latency ?? 0, errorRate: o['error-rate'] ?? 0 },
  };
  if (o.seed !== undefined) options.seed = o.seed;
  if (o['routeros-version'] !== undefined) options.version = `${o['routeros-version']} (stable)`;
  const tls = readTlsFlags(o);
  if (tls !== undefined) options.tls = tls;
  const simulator = await startSimulator(o.host, o.port, () => RouterOsSimulator.start(options));
  // Printed once so the user can configure edgeban with it; never logged elsewhere.
  if (o.password === undefined) process.stdout.write(`edgeban simulate: generated password for ${o.user}: ${password}\n`);
  process.stdout.write(`edgeban simulate: RouterOS REST API listening on ${simulator.url}\n`);
  return serveUntilSignal(simulator);
}
