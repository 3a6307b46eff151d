import { isClaimActive, type BanClaim, type LedgerMutation } from './ban-claim.ts';

/** Claims indexed target → address → jail; applying a mutation is idempotent. */
export class ClaimIndex {
  private readonly byTarget = new Map<string, Map<string, Map<string, BanClaim>>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Applies a mutation; returns whether it touched anything. */
  apply(mutation: LedgerMutation): boolean {
    switch (mutation.op) {
      case 'ban': {
        const { target, address, jail } = mutation.claim;
        const jails = this.jailsOf(target, address, true);
        if (!jails.has(jail)) this.count++;
        jails.set(jail, mutation.claim);
        return true;
      }
      case 'end': {
        const jails = this.jailsOf(mutation.target, mutation.address, false);
        if (!jails) return false;
        let touched = false;
        for (const [jail, claim] of jails) {
          if (mutation.jail !== null && jail !== mutation.jail) continue;
          if (claim.endedAt !== null) continue;
          jails.set(jail, { ...claim, endedAt: mutation.at });
          touched = true;
        }
        return touched;
      }
      case 'purge': {
        const jails = this.jailsOf(mutation.target, mutation.address, false);
        if (!jails?.delete(mutation.jail)) return false;
        this.count--;
        if (jails.size === 0) this.byTarget.get(mutation.target)?.delete(mutation.address);
        return true;
      }
    }
  }

  claimsOf(target: string, address: string): readonly BanClaim[] {
    const jails = this.jailsOf(target, address, false);
    return jails ? [...jails.values()] : [];
  }

  get(target: string, address: string, jail: string): BanClaim | undefined {
    return this.jailsOf(target, address, false)?.get(jail);
  }

  isActive(target: string, address: string, now: number): boolean {
    const jails = this.jailsOf(target, address, false);
    if (!jails) return false;
    for (const claim of jails.values()) if (isClaimActive(claim, now)) return true;
    return false;
  }

  isKnown(target: string, address: string): boolean {
    return (this.jailsOf(target, address, false)?.size ?? 0) > 0;
  }

  addresses(target: string): IterableIterator<string> {
    return (this.byTarget.get(target) ?? new Map<string, Map<string, BanClaim>>()).keys();
  }

  targets(): string[] {
    return [...this.byTarget.keys()];
  }

  *all(): Generator<BanClaim> {
    for (const addresses of this.byTarget.values()) {
      for (const jails of addresses.values()) yield* jails.values();
    }
  }

  private jailsOf(target: string, address: string, create: true): Map<string, BanClaim>;
  private jailsOf(target: string, address: string, create: false): Map<string, BanClaim> | undefined;
  private jailsOf(target: string, address: string, create: boolean): Map<string, BanClaim> | undefined {
    let addresses = this.byTarget.get(target);
    if (!addresses) {
      if (!create) return undefined;
      addresses = new Map();
      this.byTarget.set(target, addresses);
    }
    let jails = addresses.get(address);
    if (!jails && create) {
      jails = new Map();
      addresses.set(address, jails);
    }
    return jails;
  }
}
