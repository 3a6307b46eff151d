import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logging/logger.ts';
import { UserFacingError } from '../util/errors.ts';
import type { Readiness } from './readiness.ts';

export interface MetricsServerOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Prometheus text exposition. */
  scrape(): Promise<{ contentType: string; body: string }>;
  readiness(): Readiness;
}

/**
 * GET /metrics, /healthz and /readyz over plain HTTP, nothing else. /healthz answers once the
 * event loop has taken a turn: a blocked loop shows as a probe timeout.
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
      metrics.server.once('error', (error: NodeJS.ErrnoException) => reject(new UserFacingError(
        `EDGEBAN_METRICS_LISTEN: cannot listen on ${options.host}:${options.port} (${error.code ?? error.message})`)));
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

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method !== 'GET') {
        res.setHeader('allow', 'GET');
        return json(res, 405, { error: 'only GET' });
      }
      const path = new URL(req.url ?? '/', 'http://edgeban').pathname;
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
      return json(res, 404, { error: 'not found: /metrics, /healthz, /readyz' });
    } catch (error) {
      this.options.logger.error({ err: error instanceof Error ? error.message : String(error), url: req.url }, 'metrics request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.destroy();
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
