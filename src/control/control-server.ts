import { timingSafeEqual } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
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
  /** Connections open at once, per listener (default 64); more are closed as they arrive. */
  maxConnections?: number;
  /** A connection with no request in progress and no traffic for this long is closed (default 10 s). */
  idleTimeoutMs?: number;
}

const MAX_BODY_BYTES = 64 * 1024;
const MAX_CONNECTIONS = 64;
const IDLE_TIMEOUT_MS = 10_000;
/** Refused connections are logged at most this often. */
const DROP_LOG_INTERVAL_MS = 60_000;

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
    await Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
    await rm(this.options.socketPath, { force: true });
  }

  private async listenUnix(): Promise<void> {
    const { socketPath } = this.options;
    if (await isSocketAlive(socketPath)) throw new Error(`another edgeban is already listening on ${socketPath}`);
    await rm(socketPath, { force: true }); // a stale socket from a crash
    const server = this.createServer(null, socketPath);
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
    const server = this.createServer(tcp.token, `${tcp.host}:${tcp.port}`);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tcp.port, tcp.host, () => resolve());
    });
    this.servers.push(server);
  }

  /**
   * Bounded: idle connections (1,100 of them once used up the process's descriptors: offsets could
   * not be saved, logs not opened) are closed after idleTimeoutMs, and connections beyond
   * maxConnections are closed as they arrive. Each listener has its own limit, so a flood on the
   * TCP listener leaves the unix socket usable.
   */
  private createServer(token: string | null, where: string): Server {
    const idleMs = this.options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    const busy = new WeakSet<Socket>();
    const server = createServer((req, res) => {
      // A slow handler (a reload, a ban waiting for the ledger) is not idleness.
      busy.add(req.socket);
      res.once('close', () => busy.delete(req.socket));
      void this.handle(req, res, token);
    });
    server.maxConnections = this.options.maxConnections ?? MAX_CONNECTIONS;
    server.on('connection', (socket: Socket) => {
      socket.setTimeout(idleMs, () => {
        if (!busy.has(socket)) socket.destroy();
      });
    });
    let lastDropLog = 0;
    server.on('drop', () => {
      const now = Date.now();
      if (now - lastDropLog < DROP_LOG_INTERVAL_MS) return;
      lastDropLog = now;
      this.options.logger.warn(
        { listener: where, maxConnections: server.maxConnections },
        `control API on ${where}: too many connections open at once; closing new ones (idle ones close after ${idleMs / 1000} s)`,
      );
    });
    return server;
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
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
