/**
 * The seam between the reconciler and an enforcement backend (OPNsense alias, MikroTik address
 * list, Cloudflare list, pull feed, in-memory). The reconciler knows only this file; each backend
 * lives in its own folder under src/targets and is chosen by kind from the registry.
 */

/**
 * What the reconciler does about a failed call:
 * - `retry`: transient (network, timeout, 5xx, busy): retried with backoff, target `unreachable`.
 * - `operator`: needs a human (credentials, privilege, missing list, TLS): not retried until the
 *   next full pass, target `degraded`, the message says what to fix and where.
 * - `rejected`: the backend refuses this one entry (invalid for it, list full): the entry is
 *   reported as rejected, the others go on.
 */
export type TargetErrorKind = 'retry' | 'operator' | 'rejected';

export class TargetError extends Error {
  readonly kind: TargetErrorKind;
  /** Backend-specific reason for status and metrics, e.g. `forbidden`, `alias-missing`, `timeout`. */
  readonly reason: string;
  /** The call that failed, without secrets, e.g. `POST /api/firewall/alias_util/add/x`. */
  readonly call: string;
  constructor(kind: TargetErrorKind, reason: string, call: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TargetError';
    this.kind = kind;
    this.reason = reason;
    this.call = call;
  }
}

export interface TargetCapabilities {
  /** Entries carry their own expiry and the backend removes them even if edgeban is gone. */
  nativeExpiry: boolean;
  /** `addMany`/`deleteMany` are implemented and cheaper than single calls. */
  bulk: boolean;
  /** `killConnections` is implemented (OPNsense kill_states). */
  killConnections: boolean;
  /** Entries carry a comment, so ownership is visible on the backend. */
  comments: boolean;
}

/** An entry edgeban wants on the backend. */
export interface DesiredEntry {
  /** Canonical spelling (see `canonical`). */
  address: string;
  /** Epoch ms when the ban ends, null for permanent. Backends with native expiry set it. */
  expiresAt: number | null;
  /** Short text naming jail and expiry, for backends with comments. */
  comment: string;
}

/** An entry found on the backend. */
export interface ListedEntry {
  /** Canonical spelling. */
  address: string;
  /**
   * Whether the backend marks it as edgeban's (a comment tag, a dedicated feed), or null when the
   * backend cannot tell (a plain alias: ownership is then decided from the ledger's records).
   */
  owned: boolean | null;
  /**
   * Native-expiry backends that report it: when the entry itself ends (epoch ms), null when it
   * never does; absent when the backend does not say. A ban that grew beyond it is sent again.
   */
  expiresAt?: number | null;
}

export interface TargetCheckResult {
  /** Problems that stop enforcement, each naming the fix. Empty when usable. */
  errors: string[];
  /** Usable but worth knowing (e.g. a Host-type alias reloads the config on each change). */
  warnings: string[];
  /** Backend facts for status/doctor (alias type, list id, firmware…). */
  facts: Record<string, string>;
}

export interface EdgeTarget {
  /** Registry kind: `opnsense`, `mikrotik`, `cloudflare`, `feed`, `memory`. */
  readonly kind: string;
  /** Human id for logs, status and metrics labels, without secrets, e.g. `https://fw1 fail2ban_blocklist`. */
  readonly id: string;
  readonly capabilities: TargetCapabilities;
  /**
   * The backend's one spelling of an address or CIDR (the ledger's keys are compared in it), or
   * null when this backend cannot hold it (e.g. Cloudflare: an IPv6 prefix finer than /64).
   */
  canonical(address: string): string | null;
  /** Checks that the list exists and the credentials may use it. Throws TargetError when unreachable. */
  check(): Promise<TargetCheckResult>;
  /** Every entry, all pages, in canonical spelling. */
  list(): Promise<ListedEntry[]>;
  add(entry: DesiredEntry): Promise<void>;
  delete(address: string): Promise<void>;
  addMany?(entries: readonly DesiredEntry[]): Promise<void>;
  deleteMany?(addresses: readonly string[]): Promise<void>;
  /** Drops existing connections from a freshly banned address; returns how many were dropped. */
  killConnections?(address: string): Promise<number>;
  /**
   * Why adds the backend accepted are missing from the next list (e.g. pf's table-entries limit),
   * naming the fix; the reconciler puts it in its `degraded` message. Optional.
   */
  explainUnstored?(): Promise<string>;
  close(): Promise<void>;
}

/** A target as status, reconcile and doctor name it: its kind, then its id (once: a Cloudflare id already starts with it). */
export function targetLabel(target: { kind: string; id: string }): string {
  return target.id.startsWith(`${target.kind} `) ? target.id : `${target.kind} ${target.id}`;
}

/** What a target's entries are called in messages: pf tables are OPNsense aliases, the others hold lists. */
export function holdingNoun(kind: string): string {
  return kind === 'opnsense' ? 'alias' : 'list';
}

/** One API call a backend made, for metrics (`edgeban_target_api_requests_total`). */
export interface TargetCallRecord {
  kind: string;
  target: string;
  /** Path template without addresses or secrets, e.g. `alias_util/add`. */
  endpoint: string;
  outcome: 'ok' | TargetErrorKind;
  /** The backend's reason on failure (TargetError.reason: `network`, `auth`…), the metric's outcome label when given. Optional. */
  reason?: string;
  durationMs: number;
}

/** What every backend is built with: no globals, so tests drive time and faults. */
export interface TargetDeps {
  clock: { now(): number };
  logger: import('../logging/logger.ts').Logger;
  /** Told of every API call (metrics). */
  onCall?: (call: TargetCallRecord) => void;
}

/**
 * One backend kind, as the registry (src/targets/registry.ts) lists it: adding a backend is its
 * folder plus one registry line. `O` is the backend's validated options.
 */
export interface TargetKind<O> {
  readonly kind: string;
  /**
   * Validates the parameters of a jail action `kind[key=value, …]` (values are strings) merged over
   * the env defaults; errors name the key.
   */
  parseOptions(params: Readonly<Record<string, string>>): O;
  /** Env variable → parameter name, for the default target of this kind (e.g. MIKROTIK_URL → url). */
  readonly env: Readonly<Record<string, string>>;
  /** Parameter names whose values are secrets (scrubbed from logs, never in ids). */
  readonly secretParams: readonly string[];
  /** Parameters only the environment may give (a jail file writing them is a config error), e.g. a token another part of edgeban reads from the env. */
  readonly envOnlyParams?: readonly string[];
  /** The list these options address (two jails with the same identity share one target), without secrets. */
  identity(options: O): string;
  create(options: O, deps: TargetDeps): EdgeTarget;
}
