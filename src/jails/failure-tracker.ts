import type { Cidr } from './cidr.ts';

/**
 * fail2ban's FailManager for one jail: per address a ticket of (first failure time, last
 * failure time, retry count), with FailTicket.adjustTime's rate estimate when a failure arrives
 * more than findtime after the ticket's first one, a ban at retry >= maxretry (the ticket is then
 * dropped: the counter starts again), and cleanup of tickets whose last failure is findtime old.
 *
 * Why not a list of failure times: fail2ban keeps none, and this is what lets one million
 * addresses fit in ~50 MB. Tickets live in typed arrays (struct of arrays) indexed by an
 * open-addressing hash table of 128-bit keys; a doubly linked list in touch order gives the
 * oldest ticket for the hard cap and the findtime sweep. No object is allocated per address.
 */

export interface FailureTrackerOptions {
  maxretry: number;
  findtimeSec: number;
  /** Hard cap on tracked addresses; the least recently failing one is evicted beyond it. */
  cap?: number;
  /** Initial slots; the table doubles up to `cap`. */
  initialCapacity?: number;
}

export type AddResult =
  /** Older than findtime relative to now: ignored, as fail2ban ignores it. */
  | { kind: 'old' }
  | { kind: 'counted'; retry: number }
  /** maxretry reached: the ticket is removed. `lastTime` is the ticket's time (fail2ban bans from it). */
  | { kind: 'ban'; retry: number; firstTime: number; lastTime: number };

export interface TrackerStats {
  tracked: number;
  /** Whether the cap has ever been reached (sticky, for status). */
  capReached: boolean;
  evictedByCap: number;
  evictedByFindtime: number;
}

export const DEFAULT_TRACKER_CAP = 1_000_000;
const NONE = -1;
// A few expired tickets are dropped on each add, so memory follows findtime without a timer.
const SWEEP_PER_ADD = 2;

export class FailureTracker {
  private maxretry: number;
  private findtime: number;
  private cap: number;
  private capacity: number;
  private size = 0;
  // Slot arrays.
  private words: Uint32Array;
  private tags: Uint8Array;
  private first: Float64Array;
  private last: Float64Array;
  private retry: Uint32Array;
  private prev: Int32Array;
  private next: Int32Array;
  private freeHead = NONE;
  private used = 0;
  private head = NONE;
  private tail = NONE;
  // Hash index: slot + 1, 0 = empty; power-of-two size, load <= 1/2.
  private index: Int32Array;
  private mask: number;
  private capReachedFlag = false;
  private evictedByCapCount = 0;
  private evictedByFindtimeCount = 0;
  // Separate scratch keys: removal (cap eviction) runs while a looked-up key is still in use.
  private readonly keyScratch = new Uint32Array(5);
  private readonly slotScratch = new Uint32Array(5);

  constructor(options: FailureTrackerOptions) {
    this.maxretry = options.maxretry;
    this.findtime = options.findtimeSec;
    this.cap = Math.max(1, options.cap ?? DEFAULT_TRACKER_CAP);
    this.capacity = Math.min(this.cap, Math.max(16, options.initialCapacity ?? 1024));
    this.words = growable(Uint32Array, 4, this.capacity, this.cap);
    this.tags = growable(Uint8Array, 1, this.capacity, this.cap);
    this.first = growable(Float64Array, 1, this.capacity, this.cap);
    this.last = growable(Float64Array, 1, this.capacity, this.cap);
    this.retry = growable(Uint32Array, 1, this.capacity, this.cap);
    this.prev = growable(Int32Array, 1, this.capacity, this.cap);
    this.next = growable(Int32Array, 1, this.capacity, this.cap);
    this.index = new Int32Array(indexSizeFor(this.capacity));
    this.mask = this.index.length - 1;
  }

  /** New maxretry/findtime/cap (reload); tickets are kept, beyond a lower cap the oldest go. */
  reconfigure(options: { maxretry: number; findtimeSec: number; cap?: number }): void {
    this.maxretry = options.maxretry;
    this.findtime = options.findtimeSec;
    if (options.cap !== undefined) this.cap = Math.max(1, options.cap);
    while (this.size > this.cap) {
      this.removeSlot(this.head);
      this.evictedByCapCount++;
      this.capReachedFlag = true;
    }
  }

  /** Counts one failure of `address` at `timeSec` (the log line's time), the clock being at `nowSec`. */
  add(address: Cidr, timeSec: number, nowSec: number): AddResult {
    const horizon = nowSec - this.findtime;
    // Filter.processLine: a line older than findtime is ignored.
    if (timeSec < horizon) return { kind: 'old' };
    // Filter.processLineAndAdd: never in the future.
    const time = Math.min(timeSec, nowSec);
    const key = this.keyOf(address);
    let slot = this.find(key);
    // FailManager.cleanup drops a ticket whose last failure is findtime old; do it on access.
    if (slot !== NONE && this.last[slot]! <= horizon) {
      this.removeSlot(slot);
      this.evictedByFindtimeCount++;
      slot = NONE;
    }
    let retry: number;
    if (slot === NONE) {
      slot = this.insert(key);
      this.first[slot] = time;
      this.last[slot] = time;
      this.retry[slot] = 1;
      retry = 1;
    } else {
      // FailTicket.adjustTime, then inc().
      retry = this.retry[slot]!;
      const first = this.first[slot]!;
      if (time > this.last[slot]!) {
        if (first < time - this.findtime) {
          retry = pythonRound((retry / (time - first)) * this.findtime);
          this.first[slot] = time - this.findtime;
        }
        this.last[slot] = time;
      }
      retry += 1;
      this.retry[slot] = retry;
      this.touch(slot);
    }
    if (retry >= this.maxretry) {
      // FailManager.toBan deletes the ticket.
      const result: AddResult = { kind: 'ban', retry, firstTime: this.first[slot]!, lastTime: this.last[slot]! };
      this.removeSlot(slot);
      this.sweep(nowSec, SWEEP_PER_ADD);
      return result;
    }
    this.sweep(nowSec, SWEEP_PER_ADD);
    return { kind: 'counted', retry };
  }

  /**
   * Puts back a ticket saved by forEachTicket (the failure journal's compaction), unless its last
   * failure is findtime old at `nowSec`. It becomes the most recently failing one, so tickets put
   * back in forEachTicket's order keep their eviction order.
   */
  restoreTicket(address: Cidr, firstSec: number, lastSec: number, retry: number, nowSec: number): boolean {
    if (lastSec <= nowSec - this.findtime || retry < 1) return false;
    const key = this.keyOf(address);
    let slot = this.find(key);
    if (slot === NONE) slot = this.insert(key);
    else this.touch(slot);
    this.first[slot] = firstSec;
    this.last[slot] = lastSec;
    this.retry[slot] = retry;
    return true;
  }

  /**
   * Visits every ticket from the least to the most recently failing. `address` is one reused
   * object, valid only during the call. The tracker must not change during the visit.
   */
  forEachTicket(visit: (address: Cidr, firstSec: number, lastSec: number, retry: number) => void): void {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    const address = { family: 4 as 4 | 6, bytes, prefix: 32, text: '' };
    for (let slot = this.head; slot !== NONE; slot = this.next[slot]!) {
      const o = slot * 4;
      const tag = this.tags[slot]!;
      if (tag >= 129) {
        // IPv4, kept as ::ffff:a.b.c.d (keyOf): the address is the last word.
        address.family = 4;
        address.prefix = tag - 129;
        view.setUint32(0, this.words[o + 3]!);
      } else {
        address.family = 6;
        address.prefix = tag;
        for (let w = 0; w < 4; w++) view.setUint32(w * 4, this.words[o + w]!);
      }
      visit(address, this.first[slot]!, this.last[slot]!, this.retry[slot]!);
    }
  }

  /** Current retry count of an address (0 if untracked). */
  retryOf(address: Cidr): number {
    const slot = this.find(this.keyOf(address));
    return slot === NONE ? 0 : this.retry[slot]!;
  }

  /** Forgets an address (a manual unban resets its count, as fail2ban's delFailure). */
  delete(address: Cidr): boolean {
    const slot = this.find(this.keyOf(address));
    if (slot === NONE) return false;
    this.removeSlot(slot);
    return true;
  }

  /**
   * Drops tickets whose last failure is findtime old, from the least recently failing on; stops
   * at the first live one (lines may come out of order, so a few stale tickets can wait a little
   * longer: they are also dropped when touched, and the cap bounds them).
   */
  sweep(nowSec: number, limit = Infinity): number {
    const horizon = nowSec - this.findtime;
    let removed = 0;
    while (removed < limit && this.head !== NONE && this.last[this.head]! <= horizon) {
      this.removeSlot(this.head);
      this.evictedByFindtimeCount++;
      removed++;
    }
    return removed;
  }

  get tracked(): number {
    return this.size;
  }

  stats(): TrackerStats {
    return { tracked: this.size, capReached: this.capReachedFlag, evictedByCap: this.evictedByCapCount, evictedByFindtime: this.evictedByFindtimeCount };
  }

  /** Bytes held by the typed arrays (for status and the memory report). */
  get allocatedBytes(): number {
    return (
      this.words.byteLength +
      this.tags.byteLength +
      this.first.byteLength +
      this.last.byteLength +
      this.retry.byteLength +
      this.prev.byteLength +
      this.next.byteLength +
      this.index.byteLength
    );
  }

  // --- keys -------------------------------------------------------------------------------

  /** 128-bit key (IPv4 as ::ffff:a.b.c.d) plus a tag telling family and prefix apart. */
  private keyOf(address: Cidr): Uint32Array {
    const k = this.keyScratch;
    const b = address.bytes;
    if (address.family === 4) {
      k[0] = 0;
      k[1] = 0;
      k[2] = 0xffff;
      k[3] = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      k[4] = 129 + address.prefix;
    } else {
      for (let w = 0; w < 4; w++) k[w] = ((b[w * 4]! << 24) | (b[w * 4 + 1]! << 16) | (b[w * 4 + 2]! << 8) | b[w * 4 + 3]!) >>> 0;
      k[4] = address.prefix;
    }
    return k;
  }

  private hashOf(k: Uint32Array): number {
    let h = Math.imul(k[4]! ^ 0x9e3779b9, 0x85ebca6b);
    for (let w = 0; w < 4; w++) {
      h = Math.imul(h ^ k[w]!, 0xcc9e2d51);
      h = (h << 15) | (h >>> 17);
      h = Math.imul(h, 0x1b873593);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return h >>> 0;
  }

  private matches(slot: number, k: Uint32Array): boolean {
    const o = slot * 4;
    return this.tags[slot] === k[4] && this.words[o] === k[0] && this.words[o + 1] === k[1] && this.words[o + 2] === k[2] && this.words[o + 3] === k[3];
  }

  private find(k: Uint32Array): number {
    for (let i = this.hashOf(k) & this.mask; ; i = (i + 1) & this.mask) {
      const entry = this.index[i]!;
      if (entry === 0) return NONE;
      if (this.matches(entry - 1, k)) return entry - 1;
    }
  }

  // --- slots ------------------------------------------------------------------------------

  private insert(k: Uint32Array): number {
    if (this.size >= this.cap) {
      this.removeSlot(this.head);
      this.evictedByCapCount++;
      this.capReachedFlag = true;
    }
    let slot: number;
    if (this.freeHead !== NONE) {
      slot = this.freeHead;
      this.freeHead = this.next[slot]!;
    } else {
      if (this.used === this.capacity) this.grow();
      slot = this.used++;
    }
    const o = slot * 4;
    this.words[o] = k[0]!;
    this.words[o + 1] = k[1]!;
    this.words[o + 2] = k[2]!;
    this.words[o + 3] = k[3]!;
    this.tags[slot] = k[4]!;
    this.placeInIndex(slot, k);
    this.linkAtTail(slot);
    this.size++;
    return slot;
  }

  private placeInIndex(slot: number, k: Uint32Array): void {
    let i = this.hashOf(k) & this.mask;
    while (this.index[i] !== 0) i = (i + 1) & this.mask;
    this.index[i] = slot + 1;
  }

  private removeSlot(slot: number): void {
    let i = this.hashOfSlot(slot) & this.mask;
    while (this.index[i] !== slot + 1) i = (i + 1) & this.mask;
    // Backward-shift deletion keeps linear probing free of tombstones.
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const entry = this.index[j]!;
      if (entry === 0) break;
      const home = this.hashOfSlot(entry - 1) & this.mask;
      // Move the entry back if its home is not cyclically in (i, j].
      if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
        this.index[i] = entry;
        i = j;
      }
    }
    this.index[i] = 0;
    this.unlink(slot);
    this.next[slot] = this.freeHead;
    this.freeHead = slot;
    this.size--;
  }

  /** The slot's key in a reused scratch array (valid until the next call). */
  private keyOfSlot(slot: number): Uint32Array {
    const k = this.slotScratch;
    const o = slot * 4;
    k[0] = this.words[o]!;
    k[1] = this.words[o + 1]!;
    k[2] = this.words[o + 2]!;
    k[3] = this.words[o + 3]!;
    k[4] = this.tags[slot]!;
    return k;
  }

  private hashOfSlot(slot: number): number {
    return this.hashOf(this.keyOfSlot(slot));
  }

  private grow(): void {
    const capacity = Math.min(this.cap, this.capacity * 2);
    this.words = grown(this.words, 4, capacity, this.cap);
    this.tags = grown(this.tags, 1, capacity, this.cap);
    this.first = grown(this.first, 1, capacity, this.cap);
    this.last = grown(this.last, 1, capacity, this.cap);
    this.retry = grown(this.retry, 1, capacity, this.cap);
    this.prev = grown(this.prev, 1, capacity, this.cap);
    this.next = grown(this.next, 1, capacity, this.cap);
    this.capacity = capacity;
    const size = indexSizeFor(capacity);
    if (size !== this.index.length) {
      this.index = new Int32Array(size);
      this.mask = size - 1;
      for (let slot = this.head; slot !== NONE; slot = this.next[slot]!) this.placeInIndex(slot, this.keyOfSlot(slot));
    }
  }

  private linkAtTail(slot: number): void {
    this.prev[slot] = this.tail;
    this.next[slot] = NONE;
    if (this.tail !== NONE) this.next[this.tail] = slot;
    else this.head = slot;
    this.tail = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }

  private touch(slot: number): void {
    if (slot === this.tail) return;
    this.unlink(slot);
    this.linkAtTail(slot);
  }
}

function indexSizeFor(capacity: number): number {
  let size = 16;
  while (size < capacity * 2) size *= 2;
  return size;
}

type SlotArray = Uint32Array | Uint8Array | Float64Array | Int32Array;
type SlotArrayClass<T extends SlotArray> = { new (buffer: ArrayBuffer): T; readonly BYTES_PER_ELEMENT: number };

/**
 * A length-tracking view on a resizable ArrayBuffer reserved up to the cap: growing commits
 * pages in place, so no copy is made and no freed old array lingers in the process's memory.
 */
function growable<T extends SlotArray>(type: SlotArrayClass<T>, perSlot: number, slots: number, maxSlots: number): T {
  const bytes = type.BYTES_PER_ELEMENT * perSlot;
  return new type(new ArrayBuffer(slots * bytes, { maxByteLength: Math.max(slots, maxSlots) * bytes }));
}

function grown<T extends SlotArray>(array: T, perSlot: number, slots: number, maxSlots: number): T {
  const buffer = array.buffer as ArrayBuffer;
  const bytes = array.BYTES_PER_ELEMENT * perSlot * slots;
  if (buffer.resizable && bytes <= buffer.maxByteLength) {
    buffer.resize(bytes);
    return array;
  }
  // The cap was raised by a reload beyond what was reserved: copy once into a new reservation.
  const type = array.constructor as SlotArrayClass<T>;
  const bigger = growable(type, perSlot, slots, maxSlots);
  bigger.set(array as never);
  return bigger;
}

/** Python 3's round(): halves go to the even neighbour (FailTicket.adjustTime uses int(round(x))). */
export function pythonRound(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}
