import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

/** One request as the receiver saw it. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the receiver answered. */
  status: number;
}

export interface ReceiverOptions {
  /** When set, requests without `Authorization: Bearer <token>` are refused with 403, as ntfy does for a protected topic. */
  token?: string;
}

export interface Receiver {
  url: string;
  requests: Received[];
  /** Publishes accepted (2xx) to a topic path. */
  published(topic?: string): Received[];
  /** The next `count` requests are answered with `status` (and the headers, e.g. Retry-After). */
  failNext(count: number, status: number, headers?: Record<string, string>): void;
  /** Waits (real time, bounded) until `predicate` holds on the requests. */
  until(what: string, predicate: (requests: Received[]) => boolean, limitMs?: number): Promise<void>;
}

const TOPIC_PATH = /^\/([-_A-Za-z0-9]{1,64})$/;

/**
 * A local HTTP server on 127.0.0.1 speaking ntfy's publish API (docs.ntfy.sh/publish): POST or PUT
 * /<topic> with the message as the body and Title/Priority/Tags headers (X- forms too); replies with
 * the message as JSON like ntfy, its error JSON for bad requests. Any other path is accepted as a
 * webhook (JSON body recorded). Every request is recorded; failures can be scripted.
 */
export async function startReceiver(t: TestContext, options: ReceiverOptions = {}): Promise<Receiver> {
  const requests: Received[] = [];
  const script: Array<{ status: number; headers: Record<string, string> }> = [];
  let nextId = 1;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = req.url ?? '/';
      const record: Received = { method: req.method ?? '', path, headers: req.headers, body, status: 200 };
      requests.push(record);
      const reply = (status: number, json: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(`${JSON.stringify(json)}\n`);
      };
      const scripted = script.shift();
      if (scripted) {
        reply(scripted.status, { code: scripted.status * 100 + 1, http: scripted.status, error: 'scripted failure' }, scripted.headers);
        return;
      }
      if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
        reply(403, { code: 40301, http: 403, error: 'forbidden' });
        return;
      }
      const topic = TOPIC_PATH.exec(path)?.[1];
      if (!topic) {
        reply(200, { ok: true });
        return;
      }
      if (req.method !== 'POST' && req.method !== 'PUT') {
        reply(405, { code: 40501, http: 405, error: 'method not allowed' });
        return;
      }
      const header = (name: string) => {
        const value = req.headers[name] ?? req.headers[`x-${name}`];
        return Array.isArray(value) ? value[0] : value;
      };
      const priorityText = header('priority') ?? '3';
      const priority = { min: 1, low: 2, default: 3, high: 4, max: 5, urgent: 5 }[priorityText] ?? Number(priorityText);
      if (!(priority >= 1 && priority <= 5)) {
        reply(400, { code: 40007, http: 400, error: 'invalid priority' });
        return;
      }
      reply(200, {
        id: `m${nextId++}`,
        time: Math.floor(Date.now() / 1000),
        event: 'message',
        topic,
        message: body,
        title: header('title'),
        priority,
        tags: header('tags')
          ?.split(',')
          .filter((s) => s !== ''),
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    published: (topic) => requests.filter((r) => r.status >= 200 && r.status < 300 && (topic === undefined ? TOPIC_PATH.test(r.path) : r.path === `/${topic}`)),
    failNext(count, status, headers = {}) {
      for (let i = 0; i < count; i++) script.push({ status, headers });
    },
    async until(what, predicate, limitMs = 20_000) {
      const deadline = Date.now() + limitMs;
      for (let i = 0; i < 100_000; i++) {
        if (predicate(requests)) return;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received ${requests.length} requests`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
  };
}
