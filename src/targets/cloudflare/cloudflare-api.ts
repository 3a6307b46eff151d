import { z } from 'zod';
import { TargetError, type TargetCallRecord } from '../edge-target.ts';
import { callDeadline } from '../http-client.ts';

/*
 * Cloudflare API v4 as edgeban uses it (verified 2026-12-07 against developers.cloudflare.com):
 * - Auth: `Authorization: Bearer <API token>` (api/…/bulk_operations/methods/get, "Security").
 * - Envelope: `{ success, errors: [{ code, message }], messages, result, result_info }`.
 * - Lists and items need the token permission "Account Filter Lists Edit" (reads: "… Read")
 *   (api/resources/rules/subresources/lists/subresources/items/methods/delete, "Accepted Permissions").
 * - 429: rate limited (code 971, "Please wait and consider throttling your request speed", seen in
 *   cloudflare/terraform-provider-cloudflare#5494), and also the answer to a list write while
 *   another is still being processed (waf/tools/lists/lists-api/, "Rate limiting for Lists API
 *   requests"). Retry-After is honoured when sent.
 */

export const CLOUDFLARE_API_URL = 'https://api.cloudflare.com/client/v4';
export const LISTS_PERMISSION = 'Account Filter Lists Edit';

const EnvelopeSchema = z
  .object({
    success: z.boolean(),
    errors: z.array(z.object({ code: z.number().optional(), message: z.string() }).loose()).default([]),
    result: z.unknown().optional(),
    result_info: z
      .object({ cursors: z.object({ after: z.string().optional() }).loose().optional() })
      .loose()
      .optional(),
  })
  .loose();

export interface CloudflareReply<T> {
  result: T;
  /** `result_info.cursors.after`: the next page's cursor, absent on the last page. */
  after: string | null;
}

export interface CloudflareApiOptions {
  baseUrl: string;
  token: string;
  timeoutMs: number;
  /** Kind and target id, for call records. */
  kind: string;
  target: string;
  onCall?: ((call: TargetCallRecord) => void) | undefined;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** 429 answers waited out (Retry-After, capped) before giving up with a `retry` error. */
  rateLimitRetries: number;
  /** The longest single Retry-After wait. */
  maxRetryAfterMs: number;
  /** What a 401/403 asks the operator for, e.g. "the permission Account Filter Lists Edit on account X". */
  permissionHint: string;
}

/** One Cloudflare API call path as metrics and messages name it: no addresses, no token. */
export interface CallName {
  /** `POST /accounts/{account}/rules/lists/{list}/items`: with the real ids (they are no secrets). */
  call: string;
  /** Path template for metrics, e.g. `rules/lists/items`. */
  endpoint: string;
}

/** A minimal Cloudflare API v4 client: JSON envelope, errors classified as TargetError. */
export class CloudflareApi {
  private readonly options: CloudflareApiOptions;

  constructor(options: CloudflareApiOptions) {
    this.options = options;
  }

  async request<T>(method: string, path: string, endpoint: string, schema: z.ZodType<T>, body?: unknown): Promise<CloudflareReply<T>> {
    const name: CallName = { call: `${method} ${path.split('?')[0]}`, endpoint };
    for (let attempt = 0; ; attempt++) {
      const started = this.options.now();
      try {
        const reply = await this.once(method, path, name, schema, body);
        this.record(name, 'ok', started);
        return reply;
      } catch (error) {
        const classified =
          error instanceof TargetError ? error : new TargetError('retry', 'network', name.call, `Cloudflare API unreachable: ${(error as Error).message}`);
        this.record(name, classified.kind, started);
        const wait = classified instanceof RateLimited ? classified.retryAfterMs : null;
        if (wait === null || attempt >= this.options.rateLimitRetries) throw classified;
        await this.options.sleep(Math.min(wait, this.options.maxRetryAfterMs));
      }
    }
  }

  private async once<T>(method: string, path: string, name: CallName, schema: z.ZodType<T>, body: unknown): Promise<CloudflareReply<T>> {
    let response: Response;
    const deadline = callDeadline(this.options.timeoutMs);
    try {
      response = await fetch(`${this.options.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.options.token}`, 'content-type': 'application/json', accept: 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: deadline.signal,
        redirect: 'error',
      });
    } catch (error) {
      deadline.done();
      const timeout = (error as Error).name === 'TimeoutError';
      throw new TargetError(
        'retry',
        timeout ? 'timeout' : 'network',
        name.call,
        timeout ? `Cloudflare API did not answer within ${this.options.timeoutMs} ms` : `Cloudflare API unreachable: ${causeText(error)}`,
        { cause: error },
      );
    }
    const text = await response.text().finally(deadline.done);
    let envelope: z.infer<typeof EnvelopeSchema> | null = null;
    try {
      const parsed = EnvelopeSchema.safeParse(JSON.parse(text));
      if (parsed.success) envelope = parsed.data;
    } catch {
      // Not JSON (a proxy's error page): classified by status below.
    }
    const errors = envelope?.errors.map((e) => `${e.message}${e.code === undefined ? '' : ` (code ${e.code})`}`).join('; ') ?? '';
    const said = errors === '' ? '' : `: ${errors}`;
    const status = response.status;
    if (status === 401) {
      throw new TargetError(
        'operator',
        'unauthorized',
        name.call,
        `Cloudflare rejected the API token (401${said}): check CLOUDFLARE_API_TOKEN / token= (an API token, not the Global API Key); it needs ${this.options.permissionHint}`,
      );
    }
    if (status === 403) {
      throw new TargetError(
        'operator',
        'forbidden',
        name.call,
        `the Cloudflare API token may not do ${name.call} (403${said}): give it ${this.options.permissionHint}`,
      );
    }
    if (status === 429) {
      const retryAfterMs = retryAfter(response.headers.get('retry-after'));
      throw new RateLimited(
        name.call,
        `Cloudflare is busy with this account (429${said}): a list write is still being processed or the rate limit is reached; retried after ${Math.round(retryAfterMs / 1000)} s`,
        retryAfterMs,
      );
    }
    if (status >= 500) throw new TargetError('retry', 'server', name.call, `Cloudflare API error ${status}${said}`);
    if (status === 404)
      throw new TargetError(
        'operator',
        'not-found',
        name.call,
        `Cloudflare answered 404 to ${name.call}${said}: the account, list or zone id is wrong, or the token cannot see it`,
      );
    if (envelope === null) throw new TargetError('retry', 'bad-reply', name.call, `Cloudflare answered ${status} with no API envelope (a proxy in between?)`);
    if (status >= 400 || !envelope.success) throw new TargetError('rejected', 'invalid', name.call, `Cloudflare refused ${name.call} (${status}${said})`);
    const result = schema.safeParse(envelope.result);
    if (!result.success)
      throw new TargetError(
        'retry',
        'bad-reply',
        name.call,
        `Cloudflare's reply to ${name.call} is not as documented: ${result.error.issues[0]?.message ?? 'invalid'}`,
      );
    return { result: result.data, after: envelope.result_info?.cursors?.after ?? null };
  }

  private record(name: CallName, outcome: TargetCallRecord['outcome'], started: number): void {
    this.options.onCall?.({ kind: this.options.kind, target: this.options.target, endpoint: name.endpoint, outcome, durationMs: this.options.now() - started });
  }
}

/** A 429: a `retry` TargetError that knows how long Cloudflare asked to wait. */
export class RateLimited extends TargetError {
  readonly retryAfterMs: number;
  constructor(call: string, message: string, retryAfterMs: number) {
    super('retry', 'rate-limited', call, message);
    this.retryAfterMs = retryAfterMs;
  }
}

/** Retry-After in ms: delta-seconds or an HTTP date; 1 s when absent or unreadable. */
function retryAfter(header: string | null): number {
  if (header === null) return 1000;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? 1000 : Math.max(0, at - Date.now());
}

function causeText(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
