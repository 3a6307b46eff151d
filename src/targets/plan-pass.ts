import type { ForeignPolicy } from '../config/env.ts';
import type { ListedEntry } from './edge-target.ts';

/**
 * What a full pass does to one target, decided without I/O: the diff of what the ledger wants
 * against what the backend lists, and the one place where the foreign-entry policy applies. The
 * reconciler uses it for full passes and, with one address on each side, for single changes.
 */
export interface PassPlan {
  /** Wanted, not listed. */
  add: string[];
  /** Listed, not wanted, and edgeban's (ended bans). */
  remove: string[];
  /** Listed, not wanted, and not edgeban's: reported under every policy. */
  foreign: string[];
  /** Foreign entries the policy deletes (`exclusive`), else empty. */
  deleteForeign: string[];
  /** Foreign entries the policy takes on as bans (`adopt`; the ban guard still judges each), else empty. */
  adopt: string[];
  /** Entries listed. */
  inAlias: number;
  /** Entries wanted. */
  desired: number;
}

/**
 * @param desired canonical spellings the ledger wants on the backend now
 * @param listed what the backend holds, canonical, with its ownership mark: entries, or a map of
 *   them (address → mark; its keys are unique, so it serves as the set of listed addresses)
 * @param ownedByLedger whether the ledger ever banned this canonical address here (history kept
 *   for its retention): decides ownership of entries without the backend's mark (`owned` not true)
 */
export function planPass(
  desired: Iterable<string>,
  listed: Iterable<ListedEntry> | ReadonlyMap<string, boolean | null>,
  ownedByLedger: (address: string) => boolean,
  foreignPolicy: ForeignPolicy,
): PassPlan {
  // A full pass hands over its Set of every active ban and its Map of the list (100,000 addresses
  // each): read, not copied.
  const wanted: ReadonlySet<string> = desired instanceof Set ? desired : new Set(desired);
  const remove: string[] = [];
  const foreign: string[] = [];
  const judge = (address: string, owned: boolean | null): void => {
    if (wanted.has(address)) return;
    // A backend's tag makes an entry edgeban's however old its ledger history; an untagged one is
    // judged by the ledger (an adopted entry, or a ban edgeban made before the backend had tags).
    const ours = owned === true || ownedByLedger(address);
    (ours ? remove : foreign).push(address);
  };
  let present: ReadonlySet<string> | ReadonlyMap<string, boolean | null>;
  if (listed instanceof Map) {
    present = listed;
    for (const [address, owned] of listed) judge(address, owned);
  } else {
    const seen = new Set<string>();
    for (const entry of listed as Iterable<ListedEntry>) {
      if (seen.has(entry.address)) continue;
      seen.add(entry.address);
      judge(entry.address, entry.owned);
    }
    present = seen;
  }
  const add: string[] = [];
  for (const address of wanted) if (!present.has(address)) add.push(address);
  return {
    add,
    remove,
    foreign,
    deleteForeign: foreignPolicy === 'exclusive' ? [...foreign] : [],
    adopt: foreignPolicy === 'adopt' ? [...foreign] : [],
    inAlias: present.size,
    desired: wanted.size,
  };
}
