/**
 * What went wrong talking to OPNsense, classified by what the caller should do about it.
 * Messages never carry credentials: they are built from the path and the reply only.
 */
export type ApiErrorKind =
  | 'auth' // 401: bad key or secret
  | 'forbidden' // 403: the key lacks a privilege
  | 'read-only' // the user holds "Deny config write"
  | 'alias-missing' // the alias is not configured on this firewall
  | 'rejected' // the firewall refused the input (not_an_address, failed)
  | 'not-found' // 404: endpoint unknown (OPNsense too old, or a wrong URL path)
  | 'tls' // certificate not trusted, expired or for another name
  | 'server' // 5xx, a body that is not the JSON expected
  | 'too-large' // a reply past the size cap (a proxy or firewall answering far more than asked)
  | 'throttled' // 408 / 429
  | 'network' // refused, reset, DNS
  | 'timeout'; // no answer in time

const RETRYABLE: ReadonlySet<ApiErrorKind> = new Set(['server', 'throttled', 'network', 'timeout']);

/** Kinds that no retry can fix: the operator has to act (status shows them as degraded). */
const NEEDS_OPERATOR: ReadonlySet<ApiErrorKind> = new Set(['auth', 'forbidden', 'read-only', 'alias-missing', 'not-found', 'tls', 'too-large']);

export class OpnsenseApiError extends Error {
  readonly kind: ApiErrorKind;
  readonly httpStatus: number | null;
  /** Method and path of the call, e.g. `POST /api/firewall/alias_util/add/blocklist`. */
  readonly call: string;

  constructor(kind: ApiErrorKind, call: string, detail: string, httpStatus: number | null = null) {
    super(`${call}: ${detail}`);
    this.name = 'OpnsenseApiError';
    this.kind = kind;
    this.call = call;
    this.httpStatus = httpStatus;
  }

  get retryable(): boolean {
    return isRetryableKind(this.kind);
  }

  get needsOperator(): boolean {
    return NEEDS_OPERATOR.has(this.kind);
  }
}

export function isRetryableKind(kind: ApiErrorKind): boolean {
  return RETRYABLE.has(kind);
}
