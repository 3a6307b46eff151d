import type { BanClaim } from '../ledger/ban-claim.ts';
import type { ClockStatus } from '../cluster/server-clock.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import { describeRefusal, manualBanGuard, type BanGuard } from '../jails/ban-guard.ts';
import { banDurationMs } from '../jails/ban-time.ts';
import { parseCidr, type Cidr } from '../jails/cidr.ts';
import { countPreviousBans } from '../jails/jail-engine.ts';
import type { NetworkFacts } from '../jails/network-facts.ts';
import type { JailSettings } from '../jails/settings.ts';
import { InvalidAddressError, parsePfAddress } from '../net/address.ts';
import type { ReportedTargetStatus } from '../cluster/target-report.ts';
import type { ReconcileReport } from '../targets/enforcement.ts';
import { ControlRequestError, type BanCommand, type BannedEntry, type ControlHandlers, type ReconcileCommand, type UnbanCommand } from './protocol.ts';

/**
 * What a manual ban needs to know of the jails, the same for the running daemon and for the CLI
 * acting on the ledger while the daemon is stopped: both build it from the one configuration.
 */
export interface JailDirectory {
  /** A running jail's settings, or null for an unknown jail. */
  jail(name: string): JailSettings | null;
  /** Where a ban without a jail goes (OPNSENSE_ALIAS on the environment's firewalls), or null without OPNSENSE_URL. */
  manualTarget(): string | null;
  /** This host's addresses, gateways and the firewalls' addresses, for the guard. */
  facts(): NetworkFacts;
  /** Targets whose alias holds `address` as an entry edgeban never banned. */
  foreignIn?(address: string): string[];
  /** Deletes such entries; returns the targets they were deleted from. */
  removeForeign?(address: string): Promise<string[]>;
  /** Drops failure counters of an unbanned address, so it starts afresh. */
  forget?(address: string, jail?: string): void;
  status?(jail: string | null): unknown;
  /** An enabled jail by this name exists, running or not (status lists it with the reason). */
  isJail?(jail: string): boolean;
  /** Why an enabled jail does not run (with the fix), or null when it runs or is unknown. */
  whyNotRunning?(jail: string): string | null;
  reload?(): Promise<{ ok: boolean; message: string }>;
  /** Told of the targets a manual ban went to (the daemon starts enforcing a target on its first ban). */
  banned?(targets: readonly string[]): void;
}

export interface LedgerHandlersOptions {
  ledger: Ledger;
  targets: () => ReportedTargetStatus[];
  /** Bantime of a manual ban given neither --bantime nor a jail. */
  manualBantimeSec: number;
  jails: JailDirectory;
  /** One full pass of every reconciler (the daemon's); absent where no reconciler runs. */
  reconcile?: (command: ReconcileCommand) => Promise<ReconcileReport>;
  /** [0, 1), for bantime.rndtime. */
  random?: () => number;
  /** Cluster mode: how far this host's clock is from Redis's (the clock bans are dated by). */
  clock?: () => ClockStatus | null;
}

/** Control handlers that act on the ledger: manual bans go through the same guard and jail rules as the jails' own. */
export function createLedgerHandlers(options: LedgerHandlersOptions): ControlHandlers {
  const { ledger, jails } = options;
  const random = options.random ?? Math.random;
  return {
    async status(jail) {
      if (jail !== null && jails.jail(jail) === null && !(jails.isJail?.(jail) ?? false)) throw new ControlRequestError(`no jail named ${jail}`, 'jail', 404);
      const active = ledger.activeClaims();
      return {
        activeBans: ledger.activeCount(),
        targets: options.targets(),
        jails: withBannedLists(jails.status?.(jail) ?? null, active),
        ledgerDamage: ledger.damage(),
        ...(ledger.unknownMutations() ? { unknownMutations: ledger.unknownMutations() } : {}),
        ...(options.clock?.() ? { clock: options.clock() } : {}),
      };
    },
    async ban(command: BanCommand) {
      let host: Cidr;
      try {
        host = parseCidr(command.address);
      } catch (error) {
        if (error instanceof InvalidAddressError) throw new ControlRequestError(error.message, 'address');
        throw error;
      }
      const settings = command.jail === undefined ? null : jails.jail(command.jail);
      if (command.jail !== undefined && settings === null) {
        const why = jails.whyNotRunning?.(command.jail) ?? null;
        if (why !== null) throw new ControlRequestError(`jail ${command.jail} is enabled but not running: ${why}`, 'jail', 409);
        throw new ControlRequestError(`no jail named ${command.jail}`, 'jail', 404);
      }
      const verdict = manualBanGuard(jails.facts(), settings).check(host);
      if (!verdict.ok) return { banned: false, reason: describeRefusal(host.text, verdict, settings) };
      const targets = settings ? settings.targets.map((t) => t.id) : [jails.manualTarget()].filter((t) => t !== null);
      if (targets.length === 0) {
        throw new ControlRequestError(
          settings
            ? `jail ${settings.name} has no opnsense action: it bans at no firewall`
            : 'OPNSENSE_URL is not set, so a ban without a jail has no firewall to go to; set it, or ban with --jail JAIL (a jail naming its firewall)',
          'jail',
          409,
        );
      }
      let durationMs: number | null;
      if (command.bantimeSec !== undefined) durationMs = command.bantimeSec < 0 ? null : command.bantimeSec * 1000;
      else if (settings) durationMs = banDurationMs(settings, countPreviousBans(ledger, settings, host.text), random);
      else durationMs = options.manualBantimeSec * 1000;
      const jail = settings?.name ?? 'manual';
      const claims = await ledger.banMany(targets.map((target) => ({ target, address: host.text, jail, origin: 'manual' as const, durationMs })));
      jails.banned?.(targets);
      return { banned: true, entry: toEntry(claims[0]!) };
    },
    async unban(command: UnbanCommand) {
      if ('all' in command) return { ended: await ledger.unbanAll() };
      try {
        const ended = await ledger.unban({ address: command.address, ...(command.jail ? { jail: command.jail } : {}) });
        const address = parsePfAddress(command.address).text;
        jails.forget?.(address, command.jail);
        if (ended > 0 || !jails.foreignIn || !jails.removeForeign) return { ended };
        if (command.foreign) return { ended, foreignRemoved: await jails.removeForeign(address) };
        const foreign = jails.foreignIn(address);
        return foreign.length > 0 ? { ended, foreign } : { ended };
      } catch (error) {
        if (error instanceof InvalidAddressError) throw new ControlRequestError(error.message, 'address');
        throw error;
      }
    },
    async banned() {
      return ledger
        .activeClaims()
        .map(toEntry)
        .sort((a, b) => a.address.localeCompare(b.address) || a.jail.localeCompare(b.jail));
    },
    async reload() {
      return jails.reload ? jails.reload() : { ok: true, message: 'nothing to reload' };
    },
    async reconcile(command: ReconcileCommand) {
      if (!options.reconcile) throw new ControlRequestError('no reconciler runs here', null, 409);
      return options.reconcile(command);
    },
  };
}

/**
 * Adds each jail's currently banned addresses (`banned`, fail2ban-client's "Banned IP list") to
 * the daemon's per-jail status entries.
 */
function withBannedLists(jailStatus: unknown, active: readonly BanClaim[]): unknown {
  if (!Array.isArray(jailStatus)) return jailStatus;
  const byJail = new Map<string, Set<string>>();
  for (const claim of active) {
    let set = byJail.get(claim.jail);
    if (!set) byJail.set(claim.jail, (set = new Set()));
    set.add(claim.address);
  }
  return jailStatus.map((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null || typeof (entry as { jail?: unknown }).jail !== 'string') return entry;
    return { ...entry, banned: [...(byJail.get((entry as { jail: string }).jail) ?? [])].sort() };
  });
}

/**
 * Ends the active bans the guard refuses, before any reaches a firewall: ones an older edgeban
 * recorded unguarded (its offline CLI took `ban 0.0.0.0/0`), or that a jail's limits no longer
 * allow. Each is logged as an error. Adopted entries were in the alias before edgeban: left alone.
 */
export async function endRefusedBans(ledger: Ledger, jails: JailDirectory, logger: Logger): Promise<number> {
  let ended = 0;
  const guards = new Map<string, BanGuard>();
  for (const claim of ledger.activeClaims()) {
    if (claim.origin === 'adopted') continue;
    const settings = jails.jail(claim.jail);
    let guard = guards.get(claim.jail);
    if (!guard) guards.set(claim.jail, (guard = manualBanGuard(jails.facts(), settings)));
    const verdict = guard.check(parseCidr(claim.address));
    if (verdict.ok) continue;
    // A jail that is not running now (disabled, its filter missing) may have allowed wider or private
    // bans: without its settings only protected and special addresses end its bans.
    if (settings === null && claim.jail !== 'manual' && (verdict.reason === 'too-wide' || verdict.reason === 'private')) continue;
    ended += await ledger.unban({ address: claim.address, target: claim.target, jail: claim.jail });
    logger.error(
      { address: claim.address, jail: claim.jail, target: claim.target, reason: verdict.reason },
      `ended the recorded ban of ${describeRefusal(claim.address, verdict, settings)}; it is not sent to the firewall`,
    );
  }
  return ended;
}

export function toEntry(claim: BanClaim): BannedEntry {
  return {
    target: claim.target,
    address: claim.address,
    jail: claim.jail,
    origin: claim.origin,
    bannedAt: new Date(claim.bannedAt).toISOString(),
    expiresAt: claim.expiresAt === null ? null : new Date(claim.expiresAt).toISOString(),
    banCount: claim.banCount,
  };
}
