import { isClaimActive, type BanClaim, type LedgerMutation } from './ban-claim.ts';

/**
 * An address's claims: most addresses are banned by one jail, so a lone claim is held as itself,
 * and a Map (a hash table per address, most of an entry's memory) only once a second jail claims it.
 */
type Claims = BanClaim | Map<string, BanClaim>;

/** Claims indexed target → address → jail; applying a mutation is idempotent. */
export class ClaimIndex {
  private readonly byTarget = new Map<string, Map<string, Claims>>();
  private count = 0;
  /**
   * One copy of each target, jail and origin name: a claim read from the store (JSON) carries its
   * own copy of each (40 heap bytes per claim measured at 100,000 bans), where a few names are shared by all.
   */
  private readonly names = new Map<string, string>();

  get size(): number {
    return this.count;
  }

  /** Applies a mutation; returns whether it touched anything. */
  apply(mutation: LedgerMutation): boolean {
    switch (mutation.op) {
      case 'ban':
        this.insert(this.interned(mutation.claim));
        return true;
      case 'end': {
        const addresses = this.byTarget.get(mutation.target);
        const held = addresses?.get(mutation.address);
        if (!addresses || held === undefined) return false;
        const ended = (claim: BanClaim): boolean => (mutation.jail === null || claim.jail === mutation.jail) && claim.endedAt === null;
        if (!(held instanceof Map)) {
          if (!ended(held)) return false;
          addresses.set(mutation.address, heldCopy(held, held.target, held.jail, held.origin, mutation.at));
          return true;
        }
        let touched = false;
        for (const [jail, claim] of held) {
          if (!ended(claim)) continue;
          held.set(jail, heldCopy(claim, claim.target, claim.jail, claim.origin, mutation.at));
          touched = true;
        }
        return touched;
      }
      case 'purge': {
        const addresses = this.byTarget.get(mutation.target);
        const held = addresses?.get(mutation.address);
        if (!addresses || held === undefined) return false;
        if (held instanceof Map) {
          if (!held.delete(mutation.jail)) return false;
          if (held.size === 0) addresses.delete(mutation.address);
        } else {
          if (held.jail !== mutation.jail) return false;
          addresses.delete(mutation.address);
        }
        this.count--;
        return true;
      }
    }
  }

  /**
   * Holds claims handed over from another index (a store's load), whose names are already one copy
   * each: kept as they are, where `apply` would copy each claim to share its names.
   */
  adopt(claim: BanClaim): void {
    this.intern(claim.target);
    this.intern(claim.jail);
    this.intern(claim.origin);
    this.insert(claim);
  }

  private insert(claim: BanClaim): void {
    const { target, address, jail } = claim;
    let addresses = this.byTarget.get(target);
    if (!addresses) this.byTarget.set(target, (addresses = new Map()));
    const held = addresses.get(address);
    if (held === undefined) {
      addresses.set(address, claim);
      this.count++;
    } else if (held instanceof Map) {
      if (!held.has(jail)) this.count++;
      held.set(jail, claim);
    } else if (held.jail === jail) {
      addresses.set(address, claim);
    } else {
      addresses.set(
        address,
        new Map([
          [held.jail, held],
          [jail, claim],
        ]),
      );
      this.count++;
    }
  }

  claimsOf(target: string, address: string): readonly BanClaim[] {
    const held = this.held(target, address);
    if (held === undefined) return [];
    return held instanceof Map ? [...held.values()] : [held];
  }

  get(target: string, address: string, jail: string): BanClaim | undefined {
    const held = this.held(target, address);
    if (held === undefined) return undefined;
    if (held instanceof Map) return held.get(jail);
    return held.jail === jail ? held : undefined;
  }

  isActive(target: string, address: string, now: number): boolean {
    const held = this.held(target, address);
    if (held === undefined) return false;
    if (!(held instanceof Map)) return isClaimActive(held, now);
    for (const claim of held.values()) if (isClaimActive(claim, now)) return true;
    return false;
  }

  isKnown(target: string, address: string): boolean {
    const held = this.held(target, address);
    return held !== undefined && (!(held instanceof Map) || held.size > 0);
  }

  addresses(target: string): IterableIterator<string> {
    return (this.byTarget.get(target) ?? new Map<string, Claims>()).keys();
  }

  targets(): string[] {
    return [...this.byTarget.keys()];
  }

  *all(): Generator<BanClaim> {
    for (const addresses of this.byTarget.values()) {
      for (const held of addresses.values()) {
        if (held instanceof Map) yield* held.values();
        else yield held;
      }
    }
  }

  private intern(name: string): string {
    const known = this.names.get(name);
    if (known !== undefined) return known;
    this.names.set(name, name);
    return name;
  }

  private interned(claim: BanClaim): BanClaim {
    return heldCopy(claim, this.intern(claim.target), this.intern(claim.jail), this.intern(claim.origin) as BanClaim['origin'], claim.endedAt);
  }

  private held(target: string, address: string): Claims | undefined {
    return this.byTarget.get(target)?.get(address);
  }
}

/**
 * The copy the index holds: every field named in one literal, so V8 keeps them all inside the
 * object. A spread or a parsed object gets a separate property array for the fields past its
 * first four (about 60 bytes more per claim at 100,000 bans).
 */
function heldCopy(claim: BanClaim, target: string, jail: string, origin: BanClaim['origin'], endedAt: number | null): BanClaim {
  return {
    target,
    address: claim.address,
    jail,
    origin,
    bannedAt: claim.bannedAt,
    expiresAt: claim.expiresAt,
    endedAt,
    banCount: claim.banCount,
  };
}
