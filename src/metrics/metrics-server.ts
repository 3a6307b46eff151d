import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logging/logger.ts';
import { FEED_CHALLENGE, feedAuthorized } from '../targets/feed/feed-auth.ts';
import { etagMatches, parseFeedRequest, type FeedDocument, type FeedFamily } from '../targets/feed/feed-document.ts';
import { errorMessage, UserFacingError } from '../util/errors.ts';
import type { Readiness } from './readiness.ts';

export interface MetricsServerOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Prometheus text exposition. */
  scrape(): Promise<{ contentType: string; body: string }>;
  readiness(): Readiness;
  /** The pull feed `/blocklist/{target}.txt`; absent or without a token: off (404). */
  feed?: FeedRoute;
}

export interface FeedRoute {
  /** Read on each request (a reload may change it); null: the feed is off, never open. */
  token(): string | null;
  isTarget(id: string): boolean;
  /** null: no such target. */
  document(target: string, family: FeedFamily): FeedDocument | null;
}

/**
 * GET /metrics, /healthz and /readyz over plain HTTP, and the token-protected pull feed
 * /blocklist/{target}.txt. /healthz answers once the event loop has taken a turn: a blocked loop
 * shows as a probe timeout.
 */
export class MetricsServer {
  private readonly server: Server;
  private readonly options: MetricsServerOptions;
  private readonly startedAt = Date.now();

  private constructor(options: MetricsServerOptions) {
    this.options = options;
    this.server = createServer((req, res) => void this.handle(req, res));
    // Prometheus keeps its connection; idle ones are dropped on our side well before a scrape timeout.
    this.server.keepAliveTimeout = 65_000;
    this.server.requestTimeout = 30_000;
  }

  static async start(options: MetricsServerOptions): Promise<MetricsServer> {
    const metrics = new MetricsServer(options);
    await new Promise<void>((resolve, reject) => {
      metrics.server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new UserFacingError(`EDGEBAN_METRICS_LISTEN: cannot listen on ${options.host}:${options.port} (${error.code ?? error.message})`)),
      );
      metrics.server.listen(options.port, options.host, () => resolve());
    });
    options.logger.info({ url: metrics.url() }, 'metrics served');
    return metrics;
  }

  url(): string {
    const address = this.server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  stop(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private serveFeed(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const reply = feedReply(this.options.feed, req, url, this.options.logger);
    // HEAD gets the headers only (node drops the body).
    res.writeHead(reply.status, reply.status === 304 ? reply.headers : { ...reply.headers, 'content-length': String(Buffer.byteLength(reply.body)) });
    res.end(reply.status === 304 ? undefined : reply.body);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://edgeban');
      if (url.pathname.startsWith('/blocklist/')) return this.serveFeed(req, res, url);
      if (req.method !== 'GET') {
        res.setHeader('allow', 'GET');
        return json(res, 405, { error: 'only GET' });
      }
      const path = url.pathname;
      if (path === '/metrics') {
        const { contentType, body } = await this.options.scrape();
        res.writeHead(200, { 'content-type': contentType });
        res.end(body);
        return;
      }
      if (path === '/healthz') {
        await new Promise((resolve) => setImmediate(resolve));
        return json(res, 200, { status: 'ok', uptimeSec: Math.round((Date.now() - this.startedAt) / 1000) });
      }
      if (path === '/readyz') {
        const readiness = this.options.readiness();
        return json(res, readiness.ready ? 200 : 503, readiness);
      }
      return json(res, 404, { error: 'not found: /metrics, /healthz, /readyz, /blocklist/TARGET.txt' });
    } catch (error) {
      this.options.logger.error({ err: errorMessage(error), url: req.url }, 'metrics request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.destroy();
    }
  }
}

interface FeedReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function jsonReply(status: number, body: unknown, headers: Record<string, string> = {}): FeedReply {
  return { status, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/**
 * Off (404) unless a token is configured; the token is checked before anything else is looked
 * at, so an unauthenticated client learns no target names. The body is the ledger's active bans.
 */
function feedReply(route: FeedRoute | undefined, req: IncomingMessage, url: URL, logger: Logger): FeedReply {
  const token = route?.token() ?? null;
  if (route === undefined || token === null) return jsonReply(404, { error: 'the feed is off: set EDGEBAN_FEED_TOKEN or EDGEBAN_FEED_TOKEN_FILE' });
  if (req.method !== 'GET' && req.method !== 'HEAD') return jsonReply(405, { error: 'only GET and HEAD' }, { allow: 'GET, HEAD' });
  if (!feedAuthorized(req.headers.authorization, token)) {
    return jsonReply(401, { error: 'a bearer token, or basic auth with the token as password' }, { 'www-authenticate': FEED_CHALLENGE });
  }
  const request = parseFeedRequest(url, (id) => route.isTarget(id));
  if (request === null) return jsonReply(404, { error: 'not found: /blocklist/TARGET.txt, /blocklist/TARGET-v4.txt, /blocklist/TARGET-v6.txt' });
  if (typeof request === 'string') return jsonReply(400, { error: request });
  const document = route.document(request.target, request.family);
  if (document === null) return jsonReply(404, { error: `no target ${JSON.stringify(request.target)}` });
  const headers = { etag: document.etag, 'cache-control': 'no-cache', 'x-edgeban-entries': String(document.entries) };
  const notModified = etagMatches(req.headers['if-none-match'], document.etag);
  logger.debug({ target: request.target, family: request.family, entries: document.entries, notModified }, 'feed served');
  if (notModified) return { status: 304, headers, body: '' };
  return { status: 200, headers: { ...headers, 'content-type': 'text/plain; charset=utf-8' }, body: document.body };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
