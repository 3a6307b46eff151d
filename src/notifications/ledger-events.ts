import { claimEnd, isClaimActive, type BanClaim } from '../ledger/ban-claim.ts';
import type { LedgerChange } from '../ledger/ledger.ts';
import type { BanEvent } from './messages.ts';

/** The read-only part of the ledger the notifier looks at. */
export interface LedgerView {
  claimsOf(target: string, address: string): readonly BanClaim[];
}

/**
 * What a ledger change meant. The ledger announces only "(target, address) may have changed"; the
 * claims tell the rest: the most recent thing that happened to them is either a claim starting
 * (a ban by that jail) or claims ending (an unban, reported only when the address left the alias:
 * one jail's claim ending while another still bans it changes nothing at the firewall).
 * Claims ending together (an unban of every jail) give one event per jail.
 */
export function eventsOfChange(ledger: LedgerView, change: LedgerChange, now: number): BanEvent[] {
  const claims = ledger.claimsOf(change.target, change.address);
  if (claims.length === 0) return [];
  let latestStart: BanClaim | null = null;
  let latestEnd = -Infinity;
  for (const claim of claims) {
    if (isClaimActive(claim, now) && (latestStart === null || claim.bannedAt > latestStart.bannedAt)) latestStart = claim;
    const end = claimEnd(claim);
    if (end !== null && end <= now && !isClaimActive(claim, now)) latestEnd = Math.max(latestEnd, end);
  }
  if (latestStart !== null && latestStart.bannedAt >= latestEnd) {
    return [
      {
        kind: 'ban',
        jail: latestStart.jail,
        origin: latestStart.origin,
        target: change.target,
        address: change.address,
        at: latestStart.bannedAt,
        expiresAt: latestStart.expiresAt,
        banCount: latestStart.banCount,
      },
    ];
  }
  if (latestStart !== null || latestEnd === -Infinity) return [];
  const ended = claims.filter((c) => claimEnd(c) === latestEnd);
  return [...new Set(ended.map((c) => c.jail))].map((jail) => {
    const claim = ended.find((c) => c.jail === jail)!;
    return {
      kind: 'unban' as const,
      jail,
      origin: claim.origin,
      target: change.target,
      address: change.address,
      at: latestEnd,
      expiresAt: null,
      banCount: claim.banCount,
    };
  });
}
