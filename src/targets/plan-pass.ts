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
 * @param listed what the backend holds, canonical, with its ownership mark
 * @param ownedByLedger whether the ledger ever banned this canonical address here (history kept
 *   for its retention): decides ownership of entries without the backend's mark (`owned` not true)
 */
export function planPass(
  desired: Iterable<string>,
  listed: Iterable<ListedEntry>,
  ownedByLedger: (address: string) => boolean,
  foreignPolicy: ForeignPolicy,
): PassPlan {
  // A full pass hands over its Set of every active ban (100,000 addresses): read, not copied.
  const wanted: ReadonlySet<string> = desired instanceof Set ? desired : new Set(desired);
  const present = new Set<string>();
  const remove: string[] = [];
  const foreign: string[] = [];
  for (const entry of listed) {
    if (present.has(entry.address)) continue;
    present.add(entry.address);
    if (wanted.has(entry.address)) continue;
    // A backend's tag makes an entry edgeban's however old its ledger history; an untagged one is
    // judged by the ledger (an adopted entry, or a ban edgeban made before the backend had tags).
    const ours = entry.owned === true || ownedByLedger(entry.address);
    (ours ? remove : foreign).push(entry.address);
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
