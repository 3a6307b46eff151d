import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { UserFacingError } from '../util/errors.ts';
import { isLoopbackHost } from '../simulator/http-util.ts';
import { RouterOsSimulator, type RouterOsSimulatorOptions } from '../simulator/mikrotik/routeros-simulator.ts';

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

const intText = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `--${name} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `--${name} must be between ${min} and ${max}`);

const optionsSchema = z
  .object({
    port: intText('port', 0, 65535),
    host: z.string().refine(isLoopbackHost, '--host must be a loopback address (127.0.0.1 or ::1)').default('127.0.0.1'),
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
    latency: intText('latency', 0, 3_600_000).optional(),
    'error-rate': z
      .string()
      .regex(/^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$/, '--error-rate must be a number from 0 to 1')
      .transform(Number)
      .optional(),
    seed: intText('seed', 0, 2 ** 32 - 1).optional(),
    'tls-cert': z.string().min(1).optional(),
    'tls-key': z.string().min(1).optional(),
    'routeros-version': z
      .string()
      .regex(/^7\.\d+(?:\.\d+)?$/, '--routeros-version must be a RouterOS 7 release such as 7.16.2')
      .optional(),
  })
  .superRefine((o, ctx) => {
    if ((o['tls-cert'] === undefined) !== (o['tls-key'] === undefined))
      ctx.addIssue({ code: 'custom', path: ['tls-cert'], message: '--tls-cert and --tls-key go together' });
  });

function readPem(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserFacingError(`${option}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** `edgeban simulate --kind mikrotik`: runs the RouterOS simulator until SIGINT/SIGTERM. */
export async function runMikrotikSimulateCommand(argv: string[]): Promise<number> {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        user: { type: 'string' },
        password: { type: 'string' },
        policies: { type: 'string' },
        list: { type: 'string' },
        'no-rules': { type: 'boolean' },
        latency: { type: 'string' },
        'error-rate': { type: 'string' },
        seed: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'routeros-version': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UserFacingError(`${(error as Error).message}\n${USAGE}`);
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  delete values.help;
  if (values.port === undefined) throw new UserFacingError(`--port is required (0 picks a free port)\n${USAGE}`);
  const parsed = optionsSchema.safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const message = issue?.message ?? 'invalid options';
    throw new UserFacingError(message.startsWith('--') ? message : `--${String(issue?.path[0] ?? 'options')}: ${message}`);
  }
  const o = parsed.data;
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
  if (o['tls-cert'] !== undefined && o['tls-key'] !== undefined) {
    options.tls = { cert: readPem(o['tls-cert'], '--tls-cert'), key: readPem(o['tls-key'], '--tls-key') };
  }
  let simulator: RouterOsSimulator;
  try {
    simulator = await RouterOsSimulator.start(options);
  } catch (error) {
    throw new UserFacingError(`cannot listen on ${o.host}:${o.port}: ${(error as Error).message}`, 1);
  }
  // Printed once so the user can configure edgeban with it; never logged elsewhere.
  if (o.password === undefined) process.stdout.write(`edgeban simulate: generated password for ${o.user}: ${password}\n`);
  process.stdout.write(`edgeban simulate: RouterOS REST API listening on ${simulator.url}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`edgeban simulate: ${signal}, stopping\n`);
  await simulator.stop();
  return 0;
}
