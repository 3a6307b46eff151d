import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, Socket, type Server } from 'node:net';
import type { TestContext } from 'node:test';
import { tempDir } from '../helpers/temp-dir.ts';

const START_TIMEOUT_MS = 15_000;

/** A real redis-server on 127.0.0.1 with a free port, an AOF in a temp dir, stopped when the test ends. */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  private child: ChildProcess | null = null;

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  static async start(t: TestContext): Promise<RedisServer> {
    const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
    if (found.error || found.status !== 0) {
      throw new Error('redis-server is not installed: the shared-ledger tests need a real Redis (apt-get install redis-server; CI installs it)');
    }
    const server = new RedisServer(await freePort(), await tempDir(t, 'edgeban-redis-'));
    await server.startProcess();
    t.after(() => server.stop());
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts again after `stop` (same port and data dir). */
  async start(): Promise<void> {
    if (!this.child) await this.startProcess();
  }

  /** Stops (SIGTERM: Redis finishes its AOF) and starts again on the same port and data dir. */
  async restart(): Promise<void> {
    await this.stop();
    await this.startProcess();
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  private async startProcess(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        this.dir,
        '--protected-mode',
        'yes',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server did not start within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) done();
      };
      const onExit = (code: number | null) => fail(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
      };
      function done() {
        cleanup();
        resolve();
      }
      function fail(error: Error) {
        cleanup();
        reject(error);
      }
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.once('exit', onExit);
    });
    // Keep draining so a full pipe never blocks Redis.
    child.stdout?.resume();
  }
}

/** A TCP relay to Redis that a test can cut (every connection dropped, new ones refused) and restore. */
export class CuttableProxy {
  readonly port: number;
  private readonly targetPort: number;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  private constructor(port: number, targetPort: number) {
    this.port = port;
    this.targetPort = targetPort;
  }

  static async start(t: TestContext, targetPort: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(await freePort(), targetPort);
    await proxy.restore();
    t.after(() => proxy.cut());
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  async restore(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(this.targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
        socket.on('close', () => {
          this.sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
