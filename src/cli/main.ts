import { errorMessage, UserFacingError } from '../util/errors.ts';

/** A subcommand: gets its own argv (after the command word), returns the exit code. */
type CommandRunner = (argv: string[]) => Promise<number>;

interface CommandEntry {
  summary: string;
  load: () => Promise<CommandRunner>;
}

// Loaded lazily so `edgeban status` does not pay for the simulator or the filter engine.
const COMMANDS: Record<string, CommandEntry> = {
  demo: {
    summary: 'the main job on embedded defaults: simulator, sample logs with attacks, the daemon (loopback only)',
    load: async () => (await import('../demo/demo.ts')).runDemo,
  },
  run: {
    summary: 'the daemon: follow logs, run jails, enforce bans at the edge [--reset-state]',
    load: async () => (await import('./run-command.ts')).runRunCommand,
  },
  status: {
    summary: 'the running daemon: jails, counters, active bans, each target\'s enforcement state [JAIL] [--json]',
    load: async () => (await import('./control-commands.ts')).runStatusCommand,
  },
  ban: {
    summary: 'ban an address through the ledger (IP [--jail J] [--bantime 1h|permanent])',
    load: async () => (await import('./control-commands.ts')).runBanCommand,
  },
  unban: {
    summary: 'end bans of an address, or every ban (IP [--jail J] | --all)',
    load: async () => (await import('./control-commands.ts')).runUnbanCommand,
  },
  banned: {
    summary: 'list active bans [--json]',
    load: async () => (await import('./control-commands.ts')).runBannedCommand,
  },
  reload: {
    summary: 'make the running daemon re-read its configuration',
    load: async () => (await import('./control-commands.ts')).runReloadCommand,
  },
  set: {
    summary: 'fail2ban-client forms: set JAIL banip IP… / set JAIL unbanip IP…',
    load: async () => (await import('./control-commands.ts')).runSetCommand,
  },
  reconcile: {
    summary: 'one reconcile pass of every OPNsense target against the ledger [--dry-run]',
    load: async () => (await import('./reconcile-command.ts')).runReconcileCommand,
  },
  doctor: {
    summary: 'check the setup: firewall, TLS, credentials, privileges, alias, headroom, logs, time zones, proxies',
    load: async () => (await import('./doctor-command.ts')).runDoctorCommand,
  },
  'setup-opnsense': {
    summary: 'create the External alias and the WAN block rule on OPNsense (idempotent; needs an admin key)',
    load: async () => (await import('./setup-opnsense-command.ts')).runSetupOpnsenseCommand,
  },
  health: {
    summary: 'container health check: exit 0 when the daemon answers on its control socket and enforces',
    load: async () => (await import('./health-command.ts')).runHealthCommand,
  },
  simulate: {
    summary: 'run the OPNsense API simulator on loopback (--port P --key K --secret S --alias NAME[:external|host])',
    load: async () => (await import('./simulate-command.ts')).runSimulateCommand,
  },
  'test-filter': {
    summary: 'run a filter over a log file, like fail2ban-regex (FILTER LOG [--config-dir DIR] [--now EPOCH] [--json])',
    load: async () => (await import('./test-filter-command.ts')).runTestFilterCommand,
  },
};

function usage(): string {
  const lines = ['usage: edgeban <command> [options]', '', 'commands:'];
  for (const [name, entry] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(13)} ${entry.summary}`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`edgeban: unknown command ${JSON.stringify(name)}\n${usage()}\n`);
    return 2;
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

// Long-running commands (simulate, later run) resolve only when they are told to stop; exiting
// here keeps a keep-alive socket or a stray timer from holding a finished command open.
process.exit(await main(process.argv.slice(2)));
