import { Client } from '../net/undici.ts';
import { UserFacingError } from '../util/errors.ts';

export type ControlEndpoint = { socketPath: string } | { url: string; token: string };

export class DaemonNotRunningError extends UserFacingError {
  constructor(where: string) {
    super(`edgeban is not running (nothing answers on ${where})`, 1);
    this.name = 'DaemonNotRunningError';
  }
}

/** Talks to a running daemon's control API. */
export class ControlClient {
  private readonly client: Client;
  private readonly endpoint: ControlEndpoint;

  constructor(endpoint: ControlEndpoint) {
    this.endpoint = endpoint;
    this.client = 'socketPath' in endpoint ? new Client('http://edgeban', { socketPath: endpoint.socketPath }) : new Client(endpoint.url);
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** `timeoutMs`: how long the daemon may take to answer (a full reconcile pass of a big alias takes a while). */
  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const headers: Record<string, string> = {};
    if ('token' in this.endpoint) headers.authorization = `Bearer ${this.endpoint.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await this.client.request({
        method,
        path,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED')
        throw new DaemonNotRunningError('socketPath' in this.endpoint ? this.endpoint.socketPath : this.endpoint.url);
      throw error;
    }
    const text = await response.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new UserFacingError(`the control API answered HTTP ${response.statusCode} without JSON`, 1);
    }
    if (response.statusCode !== 200) {
      const message = (json as { error?: string }).error ?? `HTTP ${response.statusCode}`;
      throw new UserFacingError(message, response.statusCode === 400 ? 2 : 1);
    }
    return json as T;
  }
}
