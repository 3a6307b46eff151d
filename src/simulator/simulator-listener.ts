import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';

export interface SimulatorListenerOptions {
  /** Names the simulator in warnings: `OPNsense simulator`. */
  name: string;
  host: string;
  /** Serve HTTPS with this certificate; plain HTTP when absent. */
  tls?: { cert: string; key: string } | undefined;
  handler: http.RequestListener;
  /** Settings a simulator adds to each server it makes (timeouts, socket options). */
  tune?: (server: http.Server) => void;
}

/**
 * A simulator's HTTP(S) listener: start on a port (0 picks one), refuse (stop listening and cut every
 * open connection, so clients see ECONNREFUSED), listen again on the same port, and stop for good.
 */
export class SimulatorListener {
  private readonly options: SimulatorListenerOptions;
  private readonly sockets = new Set<Socket>();
  private server: http.Server | null = null;
  private boundPort = 0;
  private stopped = false;

  constructor(options: SimulatorListenerOptions) {
    this.options = options;
  }

  /** Rejects with the listen error (EADDRINUSE, …). */
  async start(port: number): Promise<void> {
    const server = this.createServer();
    server.listen({ port, host: this.options.host });
    await once(server, 'listening');
    const address = server.address();
    this.boundPort = typeof address === 'object' && address !== null ? address.port : 0;
    this.server = server;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${this.boundPort}`;
  }

  /** Stop accepting (ECONNREFUSED) and cut every open connection. */
  refuse(): void {
    const server = this.server;
    this.server = null;
    server?.close();
    for (const socket of this.sockets) socket.destroy();
  }

  /** Back from refusing: listen again on the same port (the bind is synchronous for an IP host). */
  reopen(): void {
    if (this.server || this.stopped) return;
    const server = this.createServer();
    server.listen({ port: this.boundPort, host: this.options.host });
    this.server = server;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private createServer(): http.Server {
    const { tls, handler } = this.options;
    const server: http.Server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, handler) : http.createServer(handler);
    // Long enough that clients' keep-alive pools (undici: 4 s) drop idle sockets before we do.
    server.keepAliveTimeout = 30_000;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    server.on('clientError', (_error: Error, socket: Socket) => socket.destroy());
    // After start-up (where start() reports it), a listener error must not crash the host process.
    server.on('error', (error: Error) => {
      if (this.boundPort !== 0) process.emitWarning(`${this.options.name} on port ${this.boundPort}: ${error.message}`);
    });
    this.options.tune?.(server);
    return server;
  }
}
