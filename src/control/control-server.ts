import { timingSafeEqual } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { z } from 'zod';
import type { Logger } from '../logging/logger.ts';
import { BanCommandSchema, ControlRequestError, ReconcileCommandSchema, UnbanCommandSchema, type ControlHandlers } from './protocol.ts';

export interface ControlServerOptions {
  handlers: ControlHandlers;
  logger: Logger;
  /** Unix socket path (created with mode 0600). */
  socketPath: string;
  /** Optional loopback TCP listener, which then requires `token` as a bearer token. */
  tcp?: { host: string; port: number; token: string };
}

const MAX_BODY_BYTES = 64 * 1024;

/**
 * The daemon's local API: JSON over HTTP on a unix socket only its user can open (mode 0600),
 * optionally on loopback TCP with a bearer token (for a sidecar or a health probe).
 */
export class ControlServer {
  private readonly servers: Server[] = [];
  private readonly options: ControlServerOptions;

  private constructor(options: ControlServerOptions) {
    this.options = options;
  }

  static async start(options: ControlServerOptions): Promise<ControlServer> {
    const control = new ControlServer(options);
    await control.listenUnix();
    if (options.tcp) await control.listenTcp(options.tcp);
    return control;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    })));
    await rm(this.options.socketPath, { force: true });
  }

  private async listenUnix(): Promise<void> {
    const { socketPath } = this.options;
    if (await isSocketAlive(socketPath)) throw new Error(`another edgeban is already listening on ${socketPath}`);
    await rm(socketPath, { force: true }); // a stale socket from a crash
    const server = createServer((req, res) => void this.handle(req, res, null));
    // The socket is created with the umask in force: make it 0600 from the first instant, not after a chmod.
    const previous = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => resolve());
      });
    } finally {
      process.umask(previous);
    }
    await chmod(socketPath, 0o600);
    this.servers.push(server);
  }

  private async listenTcp(tcp: { host: string; port: number; token: string }): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res, tcp.token));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tcp.port, tcp.host, () => resolve());
    });
    this.servers.push(server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse, token: string | null): Promise<void> {
    try {
      if (token !== null && !bearerMatches(req.headers.authorization, token)) {
        return reply(res, 401, { error: 'missing or wrong bearer token' });
      }
      const url = new URL(req.url ?? '/', 'http://edgeban');
      const route = `${req.method} ${url.pathname}`;
      const { handlers } = this.options;
      switch (route) {
        case 'GET /health':
          return reply(res, 200, { ok: true });
        case 'GET /status':
          return reply(res, 200, await handlers.status(url.searchParams.get('jail')));
        case 'GET /banned':
          return reply(res, 200, { banned: await handlers.banned() });
        case 'POST /ban':
          return reply(res, 200, await handlers.ban(parse(BanCommandSchema, await readJson(req))));
        case 'POST /unban':
          return reply(res, 200, await handlers.unban(parse(UnbanCommandSchema, await readJson(req))));
        case 'POST /reload':
          return reply(res, 200, await handlers.reload());
        case 'POST /reconcile':
          return reply(res, 200, await handlers.reconcile(parse(ReconcileCommandSchema, await readJson(req))));
        default:
          return reply(res, 404, { error: `no such control endpoint: ${route}` });
      }
    } catch (error) {
      if (error instanceof ControlRequestError) return reply(res, error.status, { error: error.message, field: error.field });
      this.options.logger.error({ err: error }, 'control request failed');
      return reply(res, 500, { error: (error as Error).message });
    }
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || null;
  throw new ControlRequestError(`${field ?? 'request'}: ${issue?.message ?? 'invalid'}`, field);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ControlRequestError('request body too large', null, 413);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new ControlRequestError('request body is not JSON');
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  const expected = Buffer.from(token);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

function isSocketAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
