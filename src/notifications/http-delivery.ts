import pRetry from 'p-retry';
import type { Dispatcher } from 'undici';
import { request } from '../net/undici.ts';
import type { Clock } from '../util/clock.ts';

/** One HTTP POST a channel wants made. */
export interface HttpPost {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface DeliveryPolicy {
  /** Further attempts after the first. */
  retries: number;
  /** Backoff before the first retry; doubles each time, with jitter, up to maxDelayMs. */
  minDelayMs: number;
  maxDelayMs: number;
  /** A server's Retry-After is honoured up to this long. */
  maxRetryAfterMs: number;
  /** Per attempt. */
  timeoutMs: number;
}

export const DEFAULT_DELIVERY_POLICY: DeliveryPolicy = { retries: 5, minDelayMs: 1_000, maxDelayMs: 60_000, maxRetryAfterMs: 10 * 60_000, timeoutMs: 15_000 };

/** A failed attempt, described without the URL's path, headers or token. */
export class DeliveryError extends Error {
  readonly retryable: boolean;
  readonly status: number | null;
  readonly retryAfterMs: number | null;

  constructor(message: string, options: { retryable: boolean; status?: number | null; retryAfterMs?: number | null }) {
    super(message);
    this.name = 'DeliveryError';
    this.retryable = options.retryable;
    this.status = options.status ?? null;
    this.retryAfterMs = options.retryAfterMs ?? null;
  }
}

export interface DeliverOptions {
  dispatcher: Dispatcher;
  clock: Clock;
  policy: DeliveryPolicy;
  /** Aborts the attempt in flight and any wait (the notifier stopping). */
  signal: AbortSignal;
  random?: () => number;
  /** Told before each wait, for logs and stats. */
  onRetry?: (error: DeliveryError, delayMs: number, attempt: number) => void;
}

/**
 * POSTs with retries: network errors, timeouts, 5xx, 408 and 429 are retried with exponential
 * backoff and jitter (or the server's Retry-After); any other 4xx is final (retrying a bad request
 * or a refused token only repeats the refusal). p-retry counts attempts and decides; the waits go
 * through the injected clock (p-retry's own delay is 0), so tests drive them with a ManualClock.
 */
export async function deliver(post: HttpPost, options: DeliverOptions): Promise<{ attempts: number }> {
  const { policy, clock, signal } = options;
  const random = options.random ?? Math.random;
  let attempts = 0;
  await pRetry(
    async () => {
      attempts++;
      await postOnce(post, options.dispatcher, policy.timeoutMs, signal, clock);
    },
    {
      retries: policy.retries,
      minTimeout: 0,
      factor: 1,
      randomize: false,
      shouldRetry: async ({ error, attemptNumber }) => {
        if (!(error instanceof DeliveryError) || !error.retryable || signal.aborted) return false;
        const backoff = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** (attemptNumber - 1)) * (0.5 + random() / 2);
        const delay = Math.round(error.retryAfterMs === null ? backoff : Math.min(Math.max(error.retryAfterMs, policy.minDelayMs), policy.maxRetryAfterMs));
        options.onRetry?.(error, delay, attemptNumber);
        await sleepUnlessAborted(clock, delay, signal);
        return !signal.aborted;
      },
    },
  );
  return { attempts };
}

async function postOnce(post: HttpPost, dispatcher: Dispatcher, timeoutMs: number, signal: AbortSignal, clock: Clock): Promise<void> {
  if (signal.aborted) throw new DeliveryError('stopped', { retryable: false });
  let statusCode: number;
  let headers: Record<string, string | string[] | undefined>;
  let excerpt = '';
  try {
    const response = await request(post.url, {
      method: 'POST',
      headers: post.headers,
      body: post.body,
      dispatcher,
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
    statusCode = response.statusCode;
    headers = response.headers;
    if (statusCode >= 200 && statusCode < 300) {
      await response.body.dump();
      return;
    }
    excerpt = await readExcerpt(response.body);
  } catch (error) {
    if (signal.aborted) throw new DeliveryError('stopped', { retryable: false });
    throw new DeliveryError(transportProblem(error, timeoutMs), { retryable: true });
  }
  const retryable = statusCode >= 500 || statusCode === 408 || statusCode === 429;
  const retryAfterMs = parseRetryAfter(headers['retry-after'], clock.now());
  throw new DeliveryError(`HTTP ${statusCode}${excerpt ? ` (${excerpt})` : ''}`, { retryable, status: statusCode, retryAfterMs });
}

/** The start of an error reply, for the log; never more than 2 KiB read whatever the server sends. */
async function readExcerpt(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= 2048) break;
  }
  if (size >= 2048) body.destroy();
  return Buffer.concat(chunks).toString('utf8').slice(0, 200).replace(/\s+/g, ' ').trim();
}

function transportProblem(error: unknown, timeoutMs: number): string {
  const err = error as { name?: string; code?: string; cause?: { code?: string } };
  if (err.name === 'TimeoutError' || err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT') return `no answer within ${timeoutMs} ms`;
  // Codes only: an error message may quote the URL, whose path can be a webhook's secret.
  return `network error ${err.code ?? err.cause?.code ?? err.name ?? 'unknown'}`;
}

/** Retry-After: delay-seconds or an HTTP date (RFC 9110 §10.2.3); null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function sleepUnlessAborted(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      timer.cancel();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimer(ms, done);
    signal.addEventListener('abort', done, { once: true });
  });
}
