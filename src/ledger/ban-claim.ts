import { z } from 'zod';

/**
 * One jail's (or an operator's) claim that an address must be banned in a target alias.
 * Several claims on one address keep it banned until the last one ends.
 */
export const BanClaimSchema = z.object({
  /** Logical enforcement target: the alias name for the default firewalls, or a jail's own target id. */
  target: z.string().min(1),
  /** pf spelling (src/net/address.ts): a host or a network. */
  address: z.string().min(1),
  /** The jail that banned, or `manual` / `adopted`. */
  jail: z.string().min(1),
  origin: z.enum(['jail', 'manual', 'adopted']),
  bannedAt: z.number(),
  /** Epoch ms; null = permanent. Kept across restarts, never recomputed. */
  expiresAt: z.number().nullable(),
  /** Set when ended early (unban); the claim stays as history for repeat-offender counts. */
  endedAt: z.number().nullable(),
  /** How many times this jail has banned this address (bantime.increment). */
  banCount: z.number().int().positive(),
});
export type BanClaim = z.infer<typeof BanClaimSchema>;

export const LedgerMutationSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('ban'), claim: BanClaimSchema }),
  /** Ends claims early; jail null = every jail's claim on that address. */
  z.object({ op: z.literal('end'), target: z.string(), address: z.string(), jail: z.string().nullable(), at: z.number() }),
  /** Forgets a claim entirely (history past its retention). */
  z.object({ op: z.literal('purge'), target: z.string(), address: z.string(), jail: z.string() }),
]);
export type LedgerMutation = z.infer<typeof LedgerMutationSchema>;

export function isClaimActive(claim: BanClaim, now: number): boolean {
  return claim.endedAt === null && (claim.expiresAt === null || claim.expiresAt > now);
}

/** The map key of an address in a target: NUL occurs in no target name or address, so keys cannot collide. */
export function addressKey(target: string, address: string): string {
  return `${target}\u0000${address}`;
}

/** The map key of one jail's claim on an address in a target. */
export function claimKey(target: string, address: string, jail: string): string {
  return `${addressKey(target, address)}\u0000${jail}`;
}

/** The target and address an addressKey was built from. */
export function splitAddressKey(key: string): [target: string, address: string] {
  const at = key.indexOf('\u0000');
  return [key.slice(0, at), key.slice(at + 1)];
}

/** When the claim stopped (or will stop) banning; null while it is permanent and not ended. */
export function claimEnd(claim: BanClaim): number | null {
  if (claim.endedAt !== null) return claim.expiresAt === null ? claim.endedAt : Math.min(claim.endedAt, claim.expiresAt);
  return claim.expiresAt;
}

/** The mutation types this version knows; a journal may hold others, written by a newer edgeban. */
export const KNOWN_MUTATION_OPS: ReadonlySet<string> = new Set(LedgerMutationSchema.options.map((o) => o.shape.op.value));

/** The later of a claim's ban and its early end: between two versions of one claim, the later one wins. */
export function claimVersion(claim: BanClaim): number {
  return claim.endedAt === null ? claim.bannedAt : Math.max(claim.bannedAt, claim.endedAt);
}

/** Whether `current` is as recent as `other` or more (two versions of one claim): at the same moment an end wins. */
export function supersedes(current: BanClaim, other: BanClaim): boolean {
  const a = claimVersion(current);
  const b = claimVersion(other);
  return a > b || (a === b && (current.endedAt !== null || other.endedAt === null));
}
