/**
 * Gathers items submitted while a batch is in flight into the next batch: a burst of single bans
 * becomes one Cloudflare bulk operation instead of a queue of them (one may be pending per
 * account, each takes seconds). Each submit resolves when every batch holding its items is done,
 * and rejects with the error of a batch that failed.
 */
export class Coalescer<T> {
  private readonly buffer: Array<{ item: T; resolve: () => void; reject: (error: unknown) => void }> = [];
  private running = false;
  private readonly batchSize: number;
  private readonly send: (batch: T[]) => Promise<void>;

  constructor(batchSize: number, send: (batch: T[]) => Promise<void>) {
    this.batchSize = batchSize;
    this.send = send;
  }

  submit(items: readonly T[]): Promise<void> {
    const done = items.map((item) => new Promise<void>((resolve, reject) => this.buffer.push({ item, resolve, reject })));
    void this.drain();
    return Promise.all(done).then(() => undefined);
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.buffer.length > 0) {
        const batch = this.buffer.splice(0, this.batchSize);
        try {
          await this.send(batch.map((entry) => entry.item));
          for (const entry of batch) entry.resolve();
        } catch (error) {
          for (const entry of batch) entry.reject(error);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
