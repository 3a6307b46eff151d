/**
 * Spots a jail that sees its proxy instead of its clients: over the last `window` failures
 * (at least 20), one private address (or the container's gateway/loopback: whatever sits in
 * front) accounts for at least `share` (50%) of them. Reported once per jail.
 */

export interface ProxySuspicion {
  address: string;
  /** Share of the last `window` failures, 0..1. */
  share: number;
  window: number;
  /** Epoch ms when first detected. */
  at: number;
}

export interface ProxyDetectorOptions {
  window?: number;
  share?: number;
}

export const PROXY_WINDOW = 20;
export const PROXY_SHARE = 0.5;

export class ProxyDetector {
  private readonly window: number;
  private readonly share: number;
  /** The last `window` failures: the candidate address, or null for a public one. */
  private readonly ring: (string | null)[];
  private readonly counts = new Map<string, number>();
  private next = 0;
  private seen = 0;
  private found: ProxySuspicion | null = null;

  constructor(options: ProxyDetectorOptions = {}) {
    this.window = Math.max(PROXY_WINDOW, options.window ?? PROXY_WINDOW);
    this.share = options.share ?? PROXY_SHARE;
    this.ring = new Array<string | null>(this.window).fill(null);
  }

  /** Records one failure; returns the suspicion the first time it is established, else null. */
  observe(candidate: string | null, nowMs: number): ProxySuspicion | null {
    if (this.found) return null;
    const old = this.ring[this.next] ?? null;
    if (old !== null && this.seen >= this.window) {
      const left = (this.counts.get(old) ?? 1) - 1;
      if (left === 0) this.counts.delete(old);
      else this.counts.set(old, left);
    }
    this.ring[this.next] = candidate;
    this.next = (this.next + 1) % this.window;
    this.seen++;
    if (candidate !== null) this.counts.set(candidate, (this.counts.get(candidate) ?? 0) + 1);
    if (this.seen < this.window) return null;
    // At most `window` distinct candidates: a scan is cheap.
    let top: string | null = null;
    let most = 0;
    for (const [address, count] of this.counts) {
      if (count > most) {
        top = address;
        most = count;
      }
    }
    if (top === null || most < this.share * this.window) return null;
    this.found = { address: top, share: most / this.window, window: this.window, at: nowMs };
    // Nothing more to learn: free the window.
    this.counts.clear();
    return this.found;
  }

  get suspicion(): ProxySuspicion | null {
    return this.found;
  }
}
