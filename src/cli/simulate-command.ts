import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { UserFacingError } from '../util/errors.ts';
import { KNOWN_PRIVILEGES, LEAST_PRIVILEGES } from '../simulator/acl.ts';
import { isLoopbackHost } from '../simulator/http-util.ts';
import { OpnsenseSimulator, type SimulatorAlias, type SimulatorOptions } from '../simulator/opnsense-simulator.ts';
import { isFirmwareVersionText } from '../simulator/firmware.ts';
import { NftEdgeError } from '../simulator/nft-table-store.ts';
import { runMikrotikSimulateCommand } from './simulate-mikrotik-command.ts';

const USAGE =
  'usage: edgeban simulate [--kind opnsense|mikrotik|cloudflare] --port P [--host 127.0.0.1] [--key K --secret S] [--privileges p1,p2] [--read-only]\n' +
  '         [--alias NAME[:external|host|network]]... | --no-alias] [--latency MS] [--lock-ms MS] [--error-rate R]\n' +
  '         [--table-entries N] [--auth-fail-delay MS] [--seed N] [--tls-cert FILE --tls-key FILE]\n' +
  '         [--opnsense-version 26.7.2] [--admin-key K --admin-secret S] [--nft-netns NS [--nft-table edgeban]]\n' +
  "The --key gets the daemon's least privileges (or --privileges); --admin-key gets page-all (for setup-opnsense).\n" +
  '`edgeban simulate --kind cloudflare --help` for the Cloudflare API simulator.';

const intText = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `--${name} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `--${name} must be between ${min} and ${max}`);

const aliasText = z.string().transform((text, ctx): SimulatorAlias => {
  const [name = '', type = 'external', ...rest] = text.split(':');
  if (rest.length > 0 || !/^(?:[A-Za-z]|_[A-Za-z0-9])[A-Za-z0-9_]{0,30}$/.test(name)) {
    ctx.addIssue({ code: 'custom', message: `--alias ${JSON.stringify(text)} is not NAME[:external|host|network] with a valid alias name` });
    return z.NEVER;
  }
  if (type !== 'external' && type !== 'host' && type !== 'network') {
    ctx.addIssue({ code: 'custom', message: `--alias ${JSON.stringify(text)}: type must be external, host or network` });
    return z.NEVER;
  }
  return { name, type };
});

const optionsSchema = z
  .object({
    port: intText('port', 0, 65535),
    host: z.string().refine(isLoopbackHost, '--host must be a loopback address (127.0.0.1 or ::1)').default('127.0.0.1'),
    key: z.string().min(1, '--key must not be empty').optional(),
    secret: z.string().min(1, '--secret must not be empty').optional(),
    privileges: z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((p) => p.trim())
          .filter((p) => p !== ''),
      )
      .refine(
        (list) => list.length > 0 && list.every((p) => KNOWN_PRIVILEGES.includes(p)),
        `--privileges must be a comma-separated list of ${KNOWN_PRIVILEGES.join(', ')}`,
      )
      .optional(),
    'read-only': z.boolean().default(false),
    alias: z.array(aliasText).optional(),
    'no-alias': z.boolean().default(false),
    'opnsense-version': z.string().refine(isFirmwareVersionText, '--opnsense-version must be a release such as 24.7, 25.1.3 or 26.7.2').optional(),
    'admin-key': z.string().min(1, '--admin-key must not be empty').optional(),
    'admin-secret': z.string().min(1, '--admin-secret must not be empty').optional(),
    latency: intText('latency', 0, 3_600_000).optional(),
    'lock-ms': intText('lock-ms', 0, 3_600_000).optional(),
    'error-rate': z
      .string()
      .regex(/^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$/, '--error-rate must be a number from 0 to 1')
      .transform(Number)
      .optional(),
    'table-entries': intText('table-entries', 1, 100_000_000).optional(),
    'auth-fail-delay': intText('auth-fail-delay', 0, 60_000).optional(),
    seed: intText('seed', 0, 2 ** 32 - 1).optional(),
    'tls-cert': z.string().min(1).optional(),
    'tls-key': z.string().min(1).optional(),
    'nft-netns': z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/, '--nft-netns must be a network namespace name')
      .optional(),
    'nft-table': z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/, '--nft-table must be an nftables table name')
      .optional(),
  })
  .superRefine((o, ctx) => {
    // Never the root namespace's firewall: the tables are a test edge's, wiped at start.
    if (o['nft-table'] !== undefined && o['nft-netns'] === undefined)
      ctx.addIssue({ code: 'custom', path: ['nft-table'], message: '--nft-table needs --nft-netns' });
    if ((o.key === undefined) !== (o.secret === undefined)) ctx.addIssue({ code: 'custom', path: ['key'], message: '--key and --secret go together' });
    if ((o['tls-cert'] === undefined) !== (o['tls-key'] === undefined))
      ctx.addIssue({ code: 'custom', path: ['tls-cert'], message: '--tls-cert and --tls-key go together' });
    if ((o['admin-key'] === undefined) !== (o['admin-secret'] === undefined))
      ctx.addIssue({ code: 'custom', path: ['admin-key'], message: '--admin-key and --admin-secret go together' });
    if (o['no-alias'] && o.alias !== undefined) ctx.addIssue({ code: 'custom', path: ['no-alias'], message: '--no-alias and --alias exclude each other' });
  });

/** Key and secret as OPNsense makes them: base64 of 60 random bytes each. */
function generateCredential(): string {
  return randomBytes(60).toString('base64');
}

function readPem(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserFacingError(`${option}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** `--kind K` / `--kind=K` taken out of argv: which backend to simulate (default opnsense). */
function takeKind(argv: string[]): { kind: string; rest: string[] } {
  const rest: string[] = [];
  let kind = 'opnsense';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--kind') kind = argv[++i] ?? '';
    else if (arg.startsWith('--kind=')) kind = arg.slice('--kind='.length);
    else rest.push(arg);
  }
  return { kind, rest };
}

export async function runSimulateCommand(args: string[]): Promise<number> {
  const { kind, rest: argv } = takeKind(args);
  if (kind === 'mikrotik') return runMikrotikSimulateCommand(argv);
  if (kind === 'cloudflare') return (await import('./simulate-cloudflare-command.ts')).runSimulateCloudflareCommand(argv);
  if (kind !== 'opnsense') throw new UserFacingError(`--kind must be opnsense, mikrotik or cloudflare, not ${JSON.stringify(kind)}\n${USAGE}`);
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        key: { type: 'string' },
        secret: { type: 'string' },
        privileges: { type: 'string' },
        'read-only': { type: 'boolean' },
        alias: { type: 'string', multiple: true },
        latency: { type: 'string' },
        'lock-ms': { type: 'string' },
        'error-rate': { type: 'string' },
        'table-entries': { type: 'string' },
        'auth-fail-delay': { type: 'string' },
        seed: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        'no-alias': { type: 'boolean' },
        'opnsense-version': { type: 'string' },
        'admin-key': { type: 'string' },
        'admin-secret': { type: 'string' },
        'nft-netns': { type: 'string' },
        'nft-table': { type: 'string' },
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
    const option = issue?.path[0] !== undefined ? `--${String(issue.path[0])}` : 'options';
    const message = issue?.message ?? 'invalid options';
    throw new UserFacingError(message.startsWith('--') ? message : `${option}: ${message}`);
  }
  const o = parsed.data;
  const generated = o.key === undefined;
  const key = o.key ?? generateCredential();
  const secret = o.secret ?? generateCredential();
  const options: SimulatorOptions = {
    host: o.host,
    port: o.port,
    keys: [{ key, secret, privileges: o.privileges ?? LEAST_PRIVILEGES, readOnly: o['read-only'], user: 'edgeban' }],
    faults: { latencyMs: o.latency ?? 0, lockMs: o['lock-ms'] ?? 0, errorRate: o['error-rate'] ?? 0 },
  };
  if (o.alias !== undefined) options.aliases = o.alias;
  if (o['no-alias']) options.aliases = [];
  if (o['opnsense-version'] !== undefined) options.firmwareVersion = o['opnsense-version'];
  if (o['admin-key'] !== undefined && o['admin-secret'] !== undefined) {
    options.keys?.push({ key: o['admin-key'], secret: o['admin-secret'], privileges: ['page-all'], user: 'root' });
  }
  if (o['table-entries'] !== undefined) options.tableEntriesLimit = o['table-entries'];
  if (o['auth-fail-delay'] !== undefined) options.authFailDelayMs = o['auth-fail-delay'];
  if (o.seed !== undefined) options.seed = o.seed;
  if (o['nft-netns'] !== undefined) options.nft = { netns: o['nft-netns'], table: o['nft-table'] ?? 'edgeban' };
  if (o['tls-cert'] !== undefined && o['tls-key'] !== undefined) {
    options.tls = { cert: readPem(o['tls-cert'], '--tls-cert'), key: readPem(o['tls-key'], '--tls-key') };
  }
  let simulator: OpnsenseSimulator;
  try {
    simulator = await OpnsenseSimulator.start(options);
  } catch (error) {
    // RangeError: a configuration the simulator refuses (e.g. a reserved alias name); anything else: the listen failed.
    if (error instanceof NftEdgeError) throw new UserFacingError(`--nft-netns: ${error.message}`);
    if (error instanceof RangeError) throw new UserFacingError(`--alias: ${error.message}`);
    throw new UserFacingError(`cannot listen on ${o.host}:${o.port}: ${(error as Error).message}`, 1);
  }
  if (generated) {
    // Printed once, so the user can put them in edgeban's target config; never logged elsewhere.
    process.stdout.write(`edgeban simulate: generated API key: ${key}\nedgeban simulate: generated API secret: ${secret}\n`);
  }
  process.stdout.write(`edgeban simulate: listening on ${simulator.url}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`edgeban simulate: ${signal}, stopping\n`);
  await simulator.stop();
  return 0;
}
