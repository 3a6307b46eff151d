import type { IncomingMessage } from 'node:http';

export class BodyTooLargeError extends Error {}

/** Reads a request body completely, refusing more than `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BodyTooLargeError(`request body over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Timers the simulator can cancel all at once on stop(), so nothing keeps the process alive. */
export class TimerSet {
  private readonly handles = new Set<ReturnType<typeof setTimeout>>();

  sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const handle = setTimeout(() => {
        this.handles.delete(handle);
        resolve();
      }, ms);
      this.handles.add(handle);
    });
  }

  after(ms: number, fn: () => void): void {
    const handle = setTimeout(() => {
      this.handles.delete(handle);
      fn();
    }, ms);
    this.handles.add(handle);
  }

  /** Pending sleeps never resolve after this; their callers are abandoned with their sockets. */
  cancelAll(): void {
    for (const handle of this.handles) clearTimeout(handle);
    this.handles.clear();
  }
}

export function isLoopbackHost(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1';
}
