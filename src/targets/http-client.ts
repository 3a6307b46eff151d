import type { Dispatcher } from 'undici';
import { Agent } from '../net/undici.ts';

/** Node and undici codes of a certificate the client refused (or a TLS handshake with a plain-HTTP port). */
const TLS_ERROR_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

export interface TlsAgentOptions {
  /** Keep-alive connections the pool may open. */
  connections: number;
  /** PEM of the device's CA, trusted besides the system's. */
  ca: string | null;
  /** Accept any certificate. */
  tlsInsecure: boolean;
}

/** The keep-alive connection pool of a device's HTTPS API, verifying its certificate unless told not to. */
export function tlsAgent(options: TlsAgentOptions): Agent {
  return new Agent({
    connections: options.connections,
    keepAliveTimeout: 30_000,
    connect: { rejectUnauthorized: !options.tlsInsecure, ...(options.ca ? { ca: options.ca } : {}) },
  });
}

/** Why an undici request threw before any reply: each client words the advice for its own device. */
export interface TransportFailure {
  kind: 'timeout' | 'tls' | 'other';
  /** The error's code or its cause's (`ECONNREFUSED`, `CERT_HAS_EXPIRED`), '' when none. */
  code: string;
  name: string | undefined;
  message: string | undefined;
}

export function transportFailure(error: unknown): TransportFailure {
  const err = error as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err.code ?? err.cause?.code ?? '';
  const failure = { code, name: err.name, message: err.message };
  if (err.name === 'TimeoutError' || err.name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return { kind: 'timeout', ...failure };
  }
  if (TLS_ERROR_CODES.has(code) || /certificate|self[- ]signed|SSL/i.test(err.message ?? '')) return { kind: 'tls', ...failure };
  return { kind: 'other', ...failure };
}

/**
 * The body as text, read chunk by chunk and abandoned (the connection destroyed) past `maxBytes`,
 * so an oversized reply costs at most the cap in memory; `tooLarge` is the error then thrown.
 */
export async function readCapped(body: Dispatcher.ResponseData['body'], maxBytes: number, tooLarge: () => Error): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxBytes) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length).toString('utf8');
}

/**
 * A signal that aborts (as AbortSignal.timeout does: a TimeoutError) once `ms` have passed, and
 * `done` to release it when the call is over. AbortSignal.timeout keeps its timer and signal for
 * the whole timeout even when the call took a millisecond: 100,000 adds within a 30 s timeout held
 * 100,000 of them at once, tens of MiB the heap kept after they were freed.
 */
export function callDeadline(ms: number): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms);
  // As AbortSignal.timeout's: the call's own socket keeps the process alive, not its deadline.
  timer.unref();
  return { signal: controller.signal, done: () => clearTimeout(timer) };
}
