/**
 * A FIFO mutex. OPNsense serializes alias_util add/delete/flush on an exclusive config.xml
 * lock; queueing in arrival order is what makes throughput collapse under concurrency.
 */
export class FifoLock {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /** Runs `fn` once every earlier holder has released the lock. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.waiting++;
    try {
      await previous;
      return await fn();
    } finally {
      this.waiting--;
      release();
    }
  }

  /** Holders plus waiters. */
  queued(): number {
    return this.waiting;
  }
}
