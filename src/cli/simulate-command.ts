import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { UserFacingError } from '../util/errors.ts';
import { KNOWN_PRIVILEGES, LEAST_PRIVILEGES } from '../simulator/acl.ts';
import { OpnsenseSimulator, type SimulatorAlias, type SimulatorOptions } from '../simulator/opnsense-simulator.ts';
import { isFirmwareVersionText } from '../simulator/firmware.ts';
import { NftEdgeError } from '../simulator/nft-table-store.ts';
import { runMikrotikSimulateCommand } from './simulate-mikrotik-command.ts';
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
  'usage: edgeban simulate [--kind opnsense|mikrotik|cloudflare] --port P [--host 127.0.0.1] [--key K --secret S] [--privileges p1,p2] [--read-only]\n' +
  '         [--alias NAME[:external|host|network]]... | --no-alias] [--latency MS] [--lock-ms MS] [--error-rate R]\n' +
  '         [--table-entries N] [--auth-fail-delay MS] [--seed N] [--tls-cert FILE --tls-key FILE]\n' +
  '         [--opnsense-version 26.7.2] [--admin-key K --admin-secret S] [--nft-netns NS [--nft-table edgeban]]\n' +
  "The --key gets the daemon's least privileges (or --privileges); --admin-key gets page-all (for setup-opnsense).\n" +
  '`edgeban simulate --kind cloudflare --help` for the Cloudflare API simulator.';

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
    ...LISTEN_SCHEMAS,
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
    latency: wholeNumber('latency', 0, 3_600_000).optional(),
    'lock-ms': wholeNumber('lock-ms', 0, 3_600_000).optional(),
    'error-rate': ERROR_RATE_SCHEMA,
    'table-entries': wholeNumber('table-entries', 1, 100_000_000).optional(),
    'auth-fail-delay': wholeNumber('auth-fail-delay', 0, 60_000).optional(),
    seed: wholeNumber('seed', 0, 2 ** 32 - 1).optional(),
    ...TLS_SCHEMAS,
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
    checkTlsPair(o, ctx);
    if ((o['admin-key'] === undefined) !== (o['admin-secret'] === undefined))
      ctx.addIssue({ code: 'custom', path: ['admin-key'], message: '--admin-key and --admin-secret go together' });
    if (o['no-alias'] && o.alias !== undefined) ctx.addIssue({ code: 'custom', path: ['no-alias'], message: '--no-alias and --alias exclude each other' });
  });

/** Key and secret as OPNsense makes them: base64 of 60 random bytes each. */
function generateCredential(): string {
  return randomBytes(60).toString('base64');
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
  const o = parseSimulateFlags(
    argv,
    {
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
      ...TLS_FLAGS,
      'no-alias': { type: 'boolean' },
      'opnsense-version': { type: 'string' },
      'admin-key': { type: 'string' },
      'admin-secret': { type: 'string' },
      'nft-netns': { type: 'string' },
      'nft-table': { type: 'string' },
    },
    USAGE,
    optionsSchema,
  );
  if (o === null) return 0;
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
  const tls = readTlsFlags(o);
  if (tls !== undefined) options.tls = tls;
  const simulator = await startSimulator(o.host, o.port, () =>
    OpnsenseSimulator.start(options).catch((error: unknown) => {
      // RangeError: a configuration the simulator refuses (e.g. a reserved alias name); anything else: the listen failed.
      if (error instanceof NftEdgeError) throw new UserFacingError(`--nft-netns: ${error.message}`);
      if (error instanceof RangeError) throw new UserFacingError(`--alias: ${error.message}`);
      throw error;
    }),
  );
  if (generated) {
    // Printed once, so the user can put them in edgeban's target config; never logged elsewhere.
    process.stdout.write(`edgeban simulate: generated API key: ${key}\nedgeban simulate: generated API secret: ${secret}\n`);
  }
  process.stdout.write(`edgeban simulate: listening on ${simulator.url}\n`);
  return serveUntilSignal(simulator);
}
