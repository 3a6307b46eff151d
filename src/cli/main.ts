import { errorMessage, UserFacingError } from '../util/errors.ts';
import { edgebanVersion } from './version.ts';

/** A subcommand: gets its own argv (after the command word), returns the exit code. */
type CommandRunner = (argv: string[]) => Promise<number>;

interface CommandEntry {
  /** The arguments after the command word, for the usage line. */
  args: string;
  summary: string;
  load: () => Promise<CommandRunner>;
  /** The command prints a longer --help of its own; others get `usage: edgeban NAME ARGS` and the summary. */
  ownHelp?: true;
}

// Loaded lazily so `edgeban status` does not pay for the simulator or the filter engine.
const COMMANDS: Record<string, CommandEntry> = {
  demo: {
    args: '',
    summary: 'the main job on embedded defaults: simulator, sample logs with attacks, the daemon (loopback only)',
    load: async () => (await import('../demo/demo.ts')).runDemo,
  },
  run: {
    args: '[--reset-state]',
    summary: 'the daemon: follow logs, run jails, enforce bans at the edge',
    load: async () => (await import('./run-command.ts')).runRunCommand,
  },
  status: {
    args: '[JAIL] [--json]',
    summary: "the running daemon: its jails like fail2ban-client status; with JAIL its counters, banned list and files; each target's enforcement state",
    load: async () => (await import('./control-commands.ts')).runStatusCommand,
  },
  ban: {
    args: 'IP [--jail J] [--bantime 1h|permanent]',
    summary: 'ban an address through the ledger',
    load: async () => (await import('./control-commands.ts')).runBanCommand,
  },
  unban: {
    args: 'IP [IP…] [--jail J] [--foreign] | --all',
    summary: 'end bans of addresses, or every ban; --foreign also removes alias entries edgeban never banned',
    load: async () => (await import('./control-commands.ts')).runUnbanCommand,
  },
  banned: {
    args: '[IP…] [--json]',
    summary: 'list active bans; with addresses, the jails that ban each',
    load: async () => (await import('./control-commands.ts')).runBannedCommand,
  },
  reload: {
    args: '[JAIL]',
    summary: 'make the running daemon re-read its configuration, the .env file and secret files',
    load: async () => (await import('./control-commands.ts')).runReloadCommand,
  },
  set: {
    args: 'JAIL banip|unbanip IP [IP…]',
    summary: "fail2ban-client's set JAIL banip / unbanip",
    load: async () => (await import('./control-commands.ts')).runSetCommand,
  },
  reconcile: {
    args: '[--dry-run] [--json] [--all]',
    summary: 'one reconcile pass of every OPNsense target against the ledger',
    load: async () => (await import('./reconcile-command.ts')).runReconcileCommand,
  },
  doctor: {
    args: '[--json] [--stale-after SECONDS] [--lines N]',
    summary: 'check the setup: firewall, TLS, credentials, privileges, alias, headroom, logs, time zones, proxies',
    load: async () => (await import('./doctor-command.ts')).runDoctorCommand,
    ownHelp: true,
  },
  'setup-opnsense': {
    args: '[--dry-run] [--interface wan] [--json]',
    summary: 'create the External alias and the WAN block rule on OPNsense (idempotent; needs an admin key)',
    load: async () => (await import('./setup-opnsense-command.ts')).runSetupOpnsenseCommand,
    ownHelp: true,
  },
  'setup-cloudflare': {
    args: '--zone ZONE_ID… [--dry-run]',
    summary: 'create the Cloudflare IP list and a WAF custom rule blocking it in each zone (idempotent)',
    load: async () => (await import('./setup-cloudflare-command.ts')).runSetupCloudflareCommand,
    ownHelp: true,
  },
  'setup-mikrotik': {
    args: '[--dry-run]',
    summary: 'add the raw drop rules for the address list on a MikroTik router (idempotent; needs a user with write)',
    load: async () => (await import('./setup-mikrotik-command.ts')).runSetupMikrotikCommand,
    ownHelp: true,
  },
  health: {
    args: '[--live] [--timeout SECONDS] [--socket PATH | --tcp]',
    summary: 'container health check: exit 0 when the daemon answers on its control socket and enforces',
    load: async () => (await import('./health-command.ts')).runHealthCommand,
  },
  simulate: {
    args: '[--kind opnsense|cloudflare] --port P [--key K --secret S] [--alias NAME[:external|host]]…',
    summary: 'run the OPNsense (or --kind cloudflare: Cloudflare) API simulator on loopback',
    load: async () => (await import('./simulate-command.ts')).runSimulateCommand,
    ownHelp: true,
  },
  'test-filter': {
    args: 'FILTER LOG | LOG FILTER [--config-dir DIR] [--now EPOCH] [--logformat F] [--json]',
    summary: 'run a filter (a name, a file or a raw regex) over a log file or a single line, like fail2ban-regex',
    load: async () => (await import('./test-filter-command.ts')).runTestFilterCommand,
    ownHelp: true,
  },
  'fail2ban-client': {
    args: '[-s SOCKET] status [JAIL] | set JAIL banip|unbanip IP… | unban IP… | banned [IP…] | reload [JAIL] | ping | version',
    summary: "fail2ban-client's commands mapped onto edgeban's (the image's fail2ban-client shim runs this)",
    load: async () => (await import('./fail2ban-client-command.ts')).runFail2banClientCommand,
    ownHelp: true,
  },
  version: {
    args: '',
    summary: "print edgeban's version (also --version)",
    load: async () => async () => {
      process.stdout.write(`edgeban ${edgebanVersion()}\n`);
      return 0;
    },
  },
};

function usage(): string {
  const lines = ['usage: edgeban <command> [options]   (edgeban <command> --help for one command)', '', 'commands:'];
  for (const [name, entry] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(14)} ${entry.summary}`);
  return lines.join('\n');
}

/** True when argv asks for help: -h or --help before a `--` (after it, the words are arguments). */
function asksHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name === '--version' || name === '-V' ? 'version' : name];
  if (!entry) {
    process.stderr.write(`edgeban: unknown command ${JSON.stringify(name)}\n${usage()}\n`);
    return 2;
  }
  if (!entry.ownHelp && asksHelp(rest)) {
    process.stdout.write(`usage: edgeban ${name}${entry.args ? ` ${entry.args}` : ''}\n\n${entry.summary}\n`);
    return 0;
  }
  try {
    const run = await entry.load();
    return await run(rest);
  } catch (error) {
    if (error instanceof UserFacingError) {
      process.stderr.write(`edgeban ${name}: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`edgeban ${name}: ${errorMessage(error)}\n`);
    return 1;
  }
}

/** Resolves once everything written so far to `stream` has been handed to the OS. */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

const code = await main(process.argv.slice(2));
// process.exit drops what a pipe has not taken yet (`banned --json | jq` was cut at 64 KiB):
// wait until stdout and stderr are written out. Exiting then keeps a keep-alive socket or a
// stray timer from holding a finished command (simulate, run) open.
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
