import { parseArgs } from 'node:util';
import { loadEnv, type EdgebanEnv } from '../config/env.ts';
import { parseDuration } from '../config/fail2ban/duration.ts';
import { ControlClient, DaemonNotRunningError, type ControlEndpoint } from '../control/control-client.ts';
import { createLedgerHandlers, type JailDirectory } from '../control/ledger-handlers.ts';
import { configJails, guardFacts, loadDaemonConfig } from '../daemon/daemon-config.ts';
import { NO_NETWORK_FACTS } from '../jails/network-facts.ts';
import type { BanOutcome, BannedEntry, ControlHandlers } from '../control/protocol.ts';
import { InvalidAddressError, parsePfAddress } from '../net/address.ts';
import { createLogger, type Logger } from '../logging/logger.ts';
import { SecretScrubber } from '../logging/secret-scrubber.ts';
import { openLedgerForCommand } from '../targets/enforcement.ts';
import { systemClock } from '../util/clock.ts';
import { UserFacingError } from '../util/errors.ts';
import { formatJail, formatOverview, type DaemonStatus } from './status-format.ts';

// fail2ban-client's everyday verbs against the running daemon. ban, unban and banned also work
// while the daemon is stopped: they then act on the ledger directly, and the daemon applies the
// change when it starts.

const MANUAL_BANTIME_SEC = 86_400;
/** A full pass lists every page of every alias and applies the difference. */
const RECONCILE_TIMEOUT_MS = 30 * 60_000;
const out = (line: string) => process.stdout.write(`${line}\n`);

interface CommonFlags {
  socket?: string | undefined;
  tcp?: boolean | undefined;
}
const COMMON = { socket: { type: 'string' }, tcp: { type: 'boolean' } } as const;

function parse<T extends Record<string, { type: 'string' | 'boolean' }>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UserFacingError(`${(error as Error).message}\nusage: ${usage}`);
  }
}

function endpointFor(env: EdgebanEnv, flags: CommonFlags): ControlEndpoint {
  if (flags.tcp) {
    if (!env.controlListen || !env.controlToken) throw new UserFacingError('--tcp needs EDGEBAN_CONTROL_LISTEN and EDGEBAN_CONTROL_TOKEN');
    const host = env.controlListen.host.includes(':') ? `[${env.controlListen.host}]` : env.controlListen.host;
    return { url: `http://${host}:${env.controlListen.port}`, token: env.controlToken };
  }
  return { socketPath: flags.socket ?? env.controlSocket };
}

/**
 * Runs `action` against the daemon, or (when `offline` allows) against the ledger if no daemon
 * answers; `offline = 'jails'` (bans) first reads the jails and discovers the network facts as
 * the daemon does, so the same guard, jails, targets and bantimes apply.
 */
async function withHandlers<T>(
  flags: CommonFlags,
  offline: false | 'ledger' | 'jails',
  action: (handlers: ControlHandlers, viaDaemon: boolean) => Promise<T>,
): Promise<T> {
  const env = loadEnv({ requireFirewall: false });
  const client = new ControlClient(endpointFor(env, flags));
  try {
    return await action(remoteHandlers(client), true);
  } catch (error) {
    if (!(error instanceof DaemonNotRunningError) || !offline) throw error;
  } finally {
    await client.close();
  }
  const logger = createLogger({ level: 'warn', scrubber: new SecretScrubber(env.secrets), format: env.logFormat });
  const jails = offline === 'jails' ? await offlineJails(env, logger) : LEDGER_ONLY;
  const { ledger, readOnly } = await openLedgerForCommand(env, systemClock, logger);
  try {
    if (readOnly) throw new UserFacingError('the ledger is locked by a running edgeban, but its control socket does not answer; try again, or pass --socket');
    return await action(createLedgerHandlers({ ledger, targets: () => [], manualBantimeSec: MANUAL_BANTIME_SEC, jails }), false);
  } finally {
    await ledger.close();
  }
}

/** The jails as the daemon would run them, for a ban recorded while it is stopped. */
async function offlineJails(env: EdgebanEnv, logger: Logger): Promise<JailDirectory> {
  const config = await loadDaemonConfig(env);
  return configJails(config, await guardFacts(config, env, logger));
}

/** For unban and banned, which need no jail. */
const LEDGER_ONLY: JailDirectory = { jail: () => null, manualTarget: () => null, facts: () => NO_NETWORK_FACTS };

function remoteHandlers(client: ControlClient): ControlHandlers {
  return {
    status: (jail) => client.call('GET', jail === null ? '/status' : `/status?jail=${encodeURIComponent(jail)}`),
    ban: (command) => client.call('POST', '/ban', command),
    unban: (command) => client.call('POST', '/unban', command),
    banned: async () => (await client.call<{ banned: BannedEntry[] }>('GET', '/banned')).banned,
    reload: () => client.call('POST', '/reload'),
    reconcile: (command) => client.call('POST', '/reconcile', command, RECONCILE_TIMEOUT_MS),
  };
}

function bantimeSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^(-1|permanent|forever)$/i.test(text)) return -1;
  const seconds = parseDuration(text);
  if (seconds === null || seconds <= 0)
    throw new UserFacingError(`--bantime: ${JSON.stringify(text)} is not a duration (600, 10m, 1h, 1d, 1w, or -1 for permanent)`);
  return Math.round(seconds);
}

function printOutcome(outcome: BanOutcome, viaDaemon: boolean): number {
  if (!outcome.banned) {
    out(`not banned: ${outcome.reason}`);
    return 1;
  }
  const e = outcome.entry;
  out(
    `banned ${e.address} in ${e.target} (jail ${e.jail}, until ${e.expiresAt ?? 'unbanned'})${viaDaemon ? '' : '; edgeban is not running: recorded in the ledger, enforced when it starts'}`,
  );
  return 0;
}

export async function runBanCommand(argv: string[]): Promise<number> {
  const usage = 'edgeban ban IP [--jail J] [--bantime 1h | --bantime=-1 | --bantime permanent]';
  const { values, positionals } = parse(argv, { jail: { type: 'string' }, bantime: { type: 'string' } }, usage);
  if (positionals.length !== 1) throw new UserFacingError(`expected one address\nusage: ${usage}`);
  const bantimeSec = bantimeSeconds(values.bantime);
  return withHandlers(values, 'jails', async (handlers, viaDaemon) =>
    printOutcome(
      await handlers.ban({
        address: positionals[0]!,
        ...(values.jail ? { jail: values.jail } : {}),
        ...(bantimeSec !== undefined ? { bantimeSec } : {}),
      }),
      viaDaemon,
    ),
  );
}

export async function runUnbanCommand(argv: string[]): Promise<number> {
  const usage = 'edgeban unban IP [IP…] [--jail J] [--foreign] | edgeban unban --all';
  const { values, positionals } = parse(argv, { all: { type: 'boolean' }, jail: { type: 'string' }, foreign: { type: 'boolean' } }, usage);
  if (values.all ? positionals.length !== 0 : positionals.length === 0) throw new UserFacingError(`expected addresses or --all\nusage: ${usage}`);
  return withHandlers(values, 'ledger', async (handlers, viaDaemon) => {
    if (values.foreign && !viaDaemon) throw new UserFacingError('--foreign deletes alias entries through the running daemon, and edgeban is not running', 1);
    const offlineNote = viaDaemon ? '' : ' (edgeban is not running: removed from the alias when it starts)';
    if (values.all) {
      const { ended } = await handlers.unban({ all: true });
      out(`${bansEnded(ended)}${offlineNote}`);
      return 0;
    }
    let code = 0;
    for (const address of positionals) {
      const outcome = await handlers.unban({ address, ...(values.jail ? { jail: values.jail } : {}), ...(values.foreign ? { foreign: true } : {}) });
      const prefix = positionals.length > 1 ? `${address}: ` : '';
      if (outcome.foreignRemoved && outcome.foreignRemoved.length > 0) {
        out(`${prefix}removed from ${outcome.foreignRemoved.join(', ')} (an entry edgeban never banned)`);
      } else if (outcome.foreign && outcome.foreign.length > 0) {
        // Still blocked, and no ban of ours to end: say why and how to remove it.
        out(
          `${prefix}${bansEnded(outcome.ended)}; ${address} is in ${outcome.foreign.join(', ')} but edgeban never banned it, so it stays blocked. ` +
            `Remove it with \`edgeban unban --foreign ${address}\`, or let edgeban remove entries it did not ban with EDGEBAN_FOREIGN_ENTRIES=exclusive`,
        );
        code = 1;
      } else {
        out(`${prefix}${bansEnded(outcome.ended)}${offlineNote}`);
      }
    }
    return code;
  });
}

const bansEnded = (n: number) => `${n} ban${n === 1 ? '' : 's'} ended`;

export async function runBannedCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, 'edgeban banned [IP…] [--json]');
  const addresses = positionals.map(canonicalAddress);
  return withHandlers(values, 'ledger', async (handlers) => {
    const all = await handlers.banned();
    const banned = addresses.length === 0 ? all : all.filter((e) => addresses.includes(e.address));
    if (values.json) {
      const byAddress = addresses.map((address) => ({ address, jails: [...new Set(banned.filter((e) => e.address === address).map((e) => e.jail))] }));
      out(JSON.stringify(addresses.length === 0 ? { banned } : { addresses: byAddress, banned }));
      return 0;
    }
    // With addresses, fail2ban-client's question: which jails ban each of them.
    for (const address of addresses) {
      const bans = banned.filter((e) => e.address === address);
      if (bans.length === 0) out(`${address} is not banned`);
      else out(`${address} is banned by ${bans.map((e) => `${e.jail} (${e.target}, until ${e.expiresAt ?? 'unbanned'})`).join(', ')}`);
    }
    if (addresses.length > 0) return 0;
    if (banned.length === 0) out('no active bans');
    for (const e of banned)
      out(
        `${e.address.padEnd(40)} ${e.jail.padEnd(16)} ${e.target.padEnd(24)} until ${e.expiresAt ?? 'unbanned'}${e.banCount > 1 ? ` (ban #${e.banCount})` : ''}`,
      );
    return 0;
  });
}

function canonicalAddress(text: string): string {
  try {
    return parsePfAddress(text).text;
  } catch (error) {
    if (error instanceof InvalidAddressError) throw new UserFacingError(error.message);
    throw error;
  }
}

export async function runStatusCommand(argv: string[]): Promise<number> {
  const usage = 'edgeban status [JAIL] [--json]';
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, usage);
  if (positionals.length > 1) throw new UserFacingError(`expected at most one jail\nusage: ${usage}`);
  const jail = positionals[0] ?? null;
  return withHandlers(values, false, async (handlers) => {
    const status = (await handlers.status(jail)) as DaemonStatus;
    if (values.json) out(JSON.stringify(status));
    else out(jail === null ? formatOverview(status) : formatJail(jail, status));
    return status.targets.some((t) => t.state === 'degraded') || status.ledgerDamage ? 1 : 0;
  });
}

export async function runReloadCommand(argv: string[]): Promise<number> {
  const usage = 'edgeban reload [JAIL]';
  const { values, positionals } = parse(argv, {}, usage);
  if (positionals.length > 1) throw new UserFacingError(`expected at most one jail\nusage: ${usage}`);
  const jail = positionals[0] ?? null;
  return withHandlers(values, false, async (handlers) => {
    // edgeban re-reads the whole configuration (counters and bans are kept either way); with a
    // JAIL it then checks that this jail runs, as fail2ban-client's `reload JAIL` would.
    const result = await handlers.reload();
    out(result.message);
    if (!result.ok) return 2;
    if (jail !== null) {
      let status: DaemonStatus;
      try {
        status = (await handlers.status(jail)) as DaemonStatus;
      } catch (error) {
        if (error instanceof UserFacingError) throw new UserFacingError(`${error.message} in the reloaded configuration`, 1);
        throw error;
      }
      const entry = status.jails?.find((j) => j.jail === jail);
      if (entry?.running === false) throw new UserFacingError(`jail ${jail} is enabled but not running: ${entry.reason ?? 'no reason given'}`, 1);
      out(`jail ${jail} is running`);
    }
    return 0;
  });
}

/** fail2ban-client's `ping`: the daemon answers on its control API. */
export async function runPingCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, 'fail2ban-client ping');
  const client = new ControlClient(endpointFor(loadEnv({ requireFirewall: false }), values));
  try {
    await client.call('GET', '/health');
  } finally {
    await client.close();
  }
  out('Server replied: pong');
  return 0;
}

/** fail2ban-client's `set JAIL banip IP…` and `set JAIL unbanip IP…`. */
export async function runSetCommand(argv: string[]): Promise<number> {
  const usage = 'edgeban set JAIL banip|unbanip IP [IP…]';
  const { values, positionals } = parse(argv, {}, usage);
  const [jail, verb, ...addresses] = positionals;
  if (!jail || (verb !== 'banip' && verb !== 'unbanip') || addresses.length === 0) throw new UserFacingError(`usage: ${usage}`);
  return withHandlers(values, verb === 'banip' ? 'jails' : 'ledger', async (handlers, viaDaemon) => {
    let code = 0;
    for (const address of addresses) {
      if (verb === 'banip') code = Math.max(code, printOutcome(await handlers.ban({ address, jail }), viaDaemon));
      else out(`${address}: ${(await handlers.unban({ address, jail })).ended} ended`);
    }
    return code;
  });
}
