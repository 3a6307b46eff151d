import type { BanClaim } from '../ledger/ban-claim.ts';
import type { Ledger } from '../ledger/ledger.ts';
import { InvalidAddressError, parsePfAddress } from '../net/address.ts';
import type { TargetStatus } from '../targets/alias-reconciler.ts';
import { ControlRequestError, type BanCommand, type BannedEntry, type ControlHandlers, type UnbanCommand } from './protocol.ts';

/** What the control API needs to know about jails; the daemon provides it. */
export interface JailDirectory {
  /** The ledger target a jail bans into, or null for an unknown jail. */
  targetOf(jail: string): string | null;
  /** The jail's bantime in seconds (-1 permanent). */
  bantimeSecOf(jail: string): number;
  /** Why this address must not be banned (own address, gateway, …), or null. */
  refusal(address: string): string | null;
  /** Drops failure counters of an unbanned address, so it starts afresh. */
  forget(address: string, jail?: string): void;
  status(jail: string | null): unknown;
  /** An enabled jail by this name exists, running or not (status lists it with the reason). */
  isJail?(jail: string): boolean;
  reload(): Promise<{ ok: boolean; message: string }>;
}

export interface LedgerHandlersOptions {
  ledger: Ledger;
  targets: () => TargetStatus[];
  defaultTarget: string;
  /** Bantime of a manual ban given neither --bantime nor a jail. */
  manualBantimeSec: number;
  jails?: JailDirectory;
}

/** Control handlers that act on the ledger: manual bans go through it like any other. */
export function createLedgerHandlers(options: LedgerHandlersOptions): ControlHandlers {
  const { ledger, jails } = options;
  return {
    async status(jail) {
      if (jail !== null && jails && jails.targetOf(jail) === null && !(jails.isJail?.(jail) ?? false)) throw new ControlRequestError(`no jail named ${jail}`, 'jail', 404);
      const active = ledger.activeClaims();
      return {
        activeBans: new Set(active.map((c) => `${c.target} ${c.address}`)).size,
        targets: options.targets(),
        jails: jails?.status(jail) ?? null,
      };
    },
    async ban(command: BanCommand) {
      let address: string;
      try {
        address = parsePfAddress(command.address).text;
      } catch (error) {
        if (error instanceof InvalidAddressError) throw new ControlRequestError(error.message, 'address');
        throw error;
      }
      const refusal = jails?.refusal(address) ?? null;
      if (refusal !== null) return { banned: false, reason: refusal };
      let target = options.defaultTarget;
      let bantimeSec = command.bantimeSec ?? options.manualBantimeSec;
      if (command.jail !== undefined && jails) {
        const jailTarget = jails.targetOf(command.jail);
        if (jailTarget === null) throw new ControlRequestError(`no jail named ${command.jail}`, 'jail', 404);
        target = jailTarget;
        bantimeSec = command.bantimeSec ?? jails.bantimeSecOf(command.jail);
      }
      const claim = await ledger.ban({
        target, address, jail: command.jail ?? 'manual', origin: 'manual', durationMs: bantimeSec < 0 ? null : bantimeSec * 1000,
      });
      return { banned: true, entry: toEntry(claim) };
    },
    async unban(command: UnbanCommand) {
      if ('all' in command) return { ended: await ledger.unbanAll() };
      try {
        const ended = await ledger.unban({ address: command.address, ...(command.jail ? { jail: command.jail } : {}) });
        jails?.forget(parsePfAddress(command.address).text, command.jail);
        return { ended };
      } catch (error) {
        if (error instanceof InvalidAddressError) throw new ControlRequestError(error.message, 'address');
        throw error;
      }
    },
    async banned() {
      return ledger.activeClaims().map(toEntry).sort((a, b) => a.address.localeCompare(b.address) || a.jail.localeCompare(b.jail));
    },
    async reload() {
      return jails ? jails.reload() : { ok: true, message: 'nothing to reload' };
    },
  };
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
