/** One API call as the simulator saw it. Never holds the Authorization header or a secret. */
export interface SimulatorCall {
  seq: number;
  at: number;
  method: string;
  path: string;
  status: number;
  key: string | null;
  requestBody: string;
  replyBody: string;
}

/** Bodies longer than this are cut: 200k entries of list replies must not hold hundreds of MB. */
export const CALL_BODY_LIMIT = 512;

export function truncateBody(body: string): string {
  if (body.length <= CALL_BODY_LIMIT) return body;
  // A V8 slice can keep the whole parent string alive; copying through a Buffer detaches it.
  const head = Buffer.from(body.slice(0, CALL_BODY_LIMIT), 'utf8').toString('utf8');
  return `${head}…[${body.length - CALL_BODY_LIMIT} more chars]`;
}

/** Ring buffer of calls: benchmarks make 100k+ calls, so the oldest are dropped past `limit`. */
export class CallLog {
  private readonly limit: number;
  private entries: SimulatorCall[] = [];
  private head = 0; // index of the oldest entry once the buffer is full
  private seq = 0;

  constructor(limit: number) {
    this.limit = Math.max(1, Math.floor(limit));
  }

  record(call: Omit<SimulatorCall, 'seq'>): SimulatorCall {
    const entry: SimulatorCall = {
      seq: ++this.seq,
      at: call.at,
      method: call.method,
      path: truncateBody(call.path),
      status: call.status,
      key: call.key,
      requestBody: truncateBody(call.requestBody),
      replyBody: truncateBody(call.replyBody),
    };
    if (this.entries.length < this.limit) {
      this.entries.push(entry);
    } else {
      this.entries[this.head] = entry;
      this.head = (this.head + 1) % this.limit;
    }
    return entry;
  }

  /** Oldest first. */
  list(): SimulatorCall[] {
    if (this.head === 0) return this.entries.slice();
    return [...this.entries.slice(this.head), ...this.entries.slice(0, this.head)];
  }

  size(): number {
    return this.entries.length;
  }

  clear(): void {
    this.entries = [];
    this.head = 0;
  }
}
