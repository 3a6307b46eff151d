import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DropReason, PipelineCounters } from '../jails/pipeline-stats.ts';
import { claimEnd, type BanClaim } from '../ledger/ban-claim.ts';
import type { LedgerChange } from '../ledger/ledger.ts';
import { eventsOfChange, type LedgerView } from '../notifications/ledger-events.ts';
import type { ReportedTargetState, ReportedTargetStatus } from '../cluster/target-report.ts';
import type { PassResult } from '../targets/target-reconciler.ts';
import type { TargetCallRecord } from '../targets/edge-target.ts';
import { targetLabels, type TargetLabels } from './target-labels.ts';

/** What the collectors read at scrape time: nothing is booked per ban. */
export interface MetricsSources {
  /** Claims active now (Ledger.activeClaims()). */
  activeClaims(): readonly Pick<BanClaim, 'target' | 'jail' | 'address'>[];
  /** Every reconciler's status now. */
  targets(): readonly ReportedTargetStatus[];
  /** Every enabled jail and whether it runs (edgeban_jail_running). */
  jails?(): readonly { jail: string; running: boolean }[];
}

export interface MetricsOptions {
  processMetrics?: boolean;
  /** edgeban's version, for edgeban_build_info. */
  version?: string;
}

type TargetLabel = keyof TargetLabels;

const TARGET_LABELS: TargetLabel[] = ['kind', 'target', 'firewall', 'alias'];
const TARGET_STATES: readonly ReportedTargetState[] = ['starting', 'syncing', 'in-sync', 'unreachable', 'degraded', 'stopped', 'standby', 'ledger-unreachable'];
const DROP_REASONS: readonly DropReason[] = ['unusable', 'old'];
/** Backend calls take milliseconds on a LAN and up to the 30 s timeout when the backend struggles. */
const API_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface PassRecord {
  /** Successful passes of this reconciler already counted as drift. */
  counted: number;
}

/**
 * Every edgeban series in a Registry of its own (never prom-client's global one). Counters that
 * must survive a reload (lines, matches, API calls, drift totals) are incremented as things
 * happen; states (bans, queue depth, target state, last pass) are read from the sources at
 * scrape time, each gauge by its own collect().
 */
export class EdgebanMetrics {
  readonly registry = new Registry();
  private readonly sources: MetricsSources;
  private readonly passes = new Map<string, PassRecord>();
  private readonly linesRead: Counter<'jail' | 'path'>;
  private readonly matches: Counter<'jail'>;
  private readonly dropped: Counter<'jail' | 'reason'>;
  private readonly apiCalls: Counter<TargetLabel | 'endpoint' | 'outcome'>;
  private readonly apiSeconds: Histogram<TargetLabel | 'endpoint'>;
  private readonly driftAdded: Counter<TargetLabel>;
  private readonly driftRemoved: Counter<TargetLabel>;
  private readonly bans: Counter<'jail' | 'family'>;
  private readonly unbans: Counter<'jail' | 'reason'>;

  constructor(sources: MetricsSources, options: MetricsOptions = {}) {
    this.sources = sources;
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.linesRead = new Counter({
      name: 'edgeban_log_lines_read_total',
      help: 'Log lines read, per jail and log file (a globbed logpath has one series per file it matched).',
      labelNames: ['jail', 'path'],
      registers,
    });
    this.matches = new Counter({ name: 'edgeban_filter_matches_total', help: "Lines a jail's filter matched as failures.", labelNames: ['jail'], registers });
    this.dropped = new Counter({
      name: 'edgeban_failures_dropped_total',
      help: 'Matched failures not counted: unusable (no address, e.g. a host name, never resolved) or old (catch-up lines older than findtime).',
      labelNames: ['jail', 'reason'],
      registers,
    });

    new Gauge({
      name: 'edgeban_build_info',
      help: 'Always 1; the labels say which edgeban and Node.js run.',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: options.version ?? 'unknown', node: process.versions.node }, 1);
    this.bans = new Counter({
      name: 'edgeban_bans_total',
      help: "Bans that started, per jail (manual, adopted or the jail's name) and address family (ipv4, ipv6).",
      labelNames: ['jail', 'family'],
      registers,
    });
    this.unbans = new Counter({
      name: 'edgeban_unbans_total',
      help: 'Bans that ended, per jail and reason: expired (bantime over) or unbanned (ended early by an operator or a reload).',
      labelNames: ['jail', 'reason'],
      registers,
    });
    const jails = () => this.sources.jails?.() ?? [];
    new Gauge({
      name: 'edgeban_jail_running',
      help: 'Each enabled jail: 1 when it runs, 0 when it does not (edgeban status names the reason).',
      labelNames: ['jail'],
      registers,
      collect() {
        this.reset();
        for (const { jail, running } of jails()) this.set({ jail }, running ? 1 : 0);
      },
    });

    const activeClaims = () => this.sources.activeClaims();
    new Gauge({
      name: 'edgeban_active_bans',
      help: 'Active ban claims per ledger target and jail (an address banned by two jails counts in both).',
      labelNames: ['target', 'jail'],
      registers,
      collect() {
        const counts = new Map<string, { target: string; jail: string; count: number }>();
        for (const claim of activeClaims()) {
          const key = `${claim.target}\0${claim.jail}`;
          const entry = counts.get(key) ?? { target: claim.target, jail: claim.jail, count: 0 };
          entry.count++;
          counts.set(key, entry);
        }
        // Reset first: a jail whose bans all ended must vanish, not keep its last value.
        this.reset();
        for (const { target, jail, count } of counts.values()) this.set({ target, jail }, count);
      },
    });
    const targets = () => this.sources.targets();
    new Gauge({
      name: 'edgeban_banned_addresses',
      help: "Distinct addresses each ledger target's alias must hold now.",
      labelNames: ['target'],
      registers,
      collect() {
        const perTarget = new Map<string, Set<string>>();
        for (const status of targets()) perTarget.set(status.ledgerTarget, new Set());
        for (const claim of activeClaims()) {
          const addresses = perTarget.get(claim.target) ?? new Set<string>();
          addresses.add(claim.address);
          perTarget.set(claim.target, addresses);
        }
        this.reset();
        for (const [target, addresses] of perTarget) this.set({ target }, addresses.size);
      },
    });

    this.apiCalls = new Counter({
      name: 'edgeban_target_api_requests_total',
      help: "API calls to each backend (kind: opnsense, memory, …) by route and outcome (ok, or the backend's error reason: network, timeout, server, auth, forbidden, …).",
      labelNames: [...TARGET_LABELS, 'endpoint', 'outcome'],
      registers,
    });
    this.apiSeconds = new Histogram({
      name: 'edgeban_target_api_request_duration_seconds',
      help: 'Backend API call duration, whatever the outcome.',
      labelNames: [...TARGET_LABELS, 'endpoint'],
      buckets: API_SECONDS_BUCKETS,
      registers,
    });

    this.targetGauge(
      'edgeban_target_state',
      'State of each firewall alias target: 1 for the state it is in, 0 for the others.',
      ['state'],
      (gauge, status, labels) => {
        const states = TARGET_STATES.includes(status.state) ? TARGET_STATES : [...TARGET_STATES, status.state];
        for (const state of states) gauge.set({ ...labels, state }, state === status.state ? 1 : 0);
      },
    );
    this.targetGauge(
      'edgeban_target_leader',
      'Whether this replica enforces the target (1), or stands by while another replica holds its leader lease (0); always 1 with the file ledger.',
      [],
      (gauge, status, labels) => {
        gauge.set(labels, status.state === 'standby' ? 0 : 1);
      },
    );
    this.targetGauge(
      'edgeban_target_pending_entries',
      'Alias changes queued or in flight (the retry queue), waiting for the firewall.',
      [],
      (gauge, status, labels) => {
        gauge.set(labels, status.pending);
      },
    );
    this.targetGauge('edgeban_target_alias_entries', 'Entries in the alias as last listed or changed by edgeban.', [], (gauge, status, labels) => {
      if (status.inAlias !== null) gauge.set(labels, status.inAlias);
    });
    const fromLastSuccess = (name: string, help: string, value: (pass: PassResult) => number) =>
      this.targetGauge(name, help, [], (gauge, status, labels) => {
        this.observePass(status);
        if (status.lastSuccess) gauge.set(labels, value(status.lastSuccess));
      });
    fromLastSuccess(
      'edgeban_reconcile_last_pass_added_entries',
      'Drift repaired by the last successful full pass: entries it added (missing from the alias).',
      (p) => p.add.length,
    );
    fromLastSuccess(
      'edgeban_reconcile_last_pass_removed_entries',
      'Drift repaired by the last successful full pass: ended bans it removed.',
      (p) => p.remove.length,
    );
    fromLastSuccess(
      'edgeban_reconcile_last_pass_foreign_entries',
      'Alias entries edgeban never banned, seen by the last successful full pass.',
      (p) => p.foreign.length,
    );
    fromLastSuccess('edgeban_reconcile_last_success_timestamp_seconds', 'Start time (unix seconds) of the last successful full pass.', (p) =>
      Math.floor(p.at / 1000),
    );

    this.driftAdded = new Counter({
      name: 'edgeban_reconcile_added_entries_total',
      help: 'Entries added by successful full passes (drift: bans missing from the alias).',
      labelNames: TARGET_LABELS,
      registers,
    });
    this.driftRemoved = new Counter({
      name: 'edgeban_reconcile_removed_entries_total',
      help: 'Entries removed by successful full passes (ended bans left in the alias).',
      labelNames: TARGET_LABELS,
      registers,
    });
  }

  /** The counters one jail's pipeline increments; its series exist (at 0) from the start. */
  forJail(jail: string): PipelineCounters {
    this.matches.inc({ jail }, 0);
    for (const reason of DROP_REASONS) this.dropped.inc({ jail, reason }, 0);
    return {
      lines: (path, count) => this.linesRead.inc({ jail, path }, count),
      matches: (count) => this.matches.inc({ jail }, count),
      dropped: (reason, count) => this.dropped.inc({ jail, reason }, count),
    };
  }

  /**
   * One API call of a reconciler's backend. It also looks at the reconciler's last pass:
   * every pass makes at least one call (it lists the alias) before it replaces the previous
   * pass's result, so no successful pass goes unseen, however rarely Prometheus scrapes.
   */
  apiCall(status: ReportedTargetStatus, call: TargetCallRecord): void {
    const labels = targetLabels(status);
    this.apiCalls.inc({ ...labels, endpoint: call.endpoint, outcome: call.outcome === 'ok' ? 'ok' : (call.reason ?? call.outcome) });
    this.apiSeconds.observe({ ...labels, endpoint: call.endpoint }, call.durationMs / 1000);
    this.observePass(status);
  }

  /**
   * Counts the bans and unbans a batch of ledger changes made (as the notifier reads them: one ban
   * into two targets, or an address leaving while another jail still bans it, counts as it should).
   */
  ledgerChanged(ledger: LedgerView, changes: readonly LedgerChange[], now: number): void {
    const seen = new Set<string>();
    for (const change of changes) {
      for (const event of eventsOfChange(ledger, change, now)) {
        // One ban recorded in several targets (an HA pair, two lists) is one ban.
        const key = `${event.kind}\0${event.jail}\0${event.address}\0${event.at}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (event.kind === 'ban') {
          this.bans.inc({ jail: event.jail, family: event.address.includes(':') ? 'ipv6' : 'ipv4' });
          continue;
        }
        const claim = ledger.claimsOf(change.target, change.address).find((c) => c.jail === event.jail && claimEnd(c) === event.at);
        const early = claim !== undefined && claim.endedAt !== null && (claim.expiresAt === null || claim.endedAt < claim.expiresAt);
        this.unbans.inc({ jail: event.jail, reason: early ? 'unbanned' : 'expired' });
      }
    }
  }

  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private observePass(status: ReportedTargetStatus): void {
    let record = this.passes.get(status.id);
    if (!record) {
      record = { counted: 0 };
      this.passes.set(status.id, record);
    }
    // A reload rebuilt the reconciler under the same id: its count starts again.
    if (status.successfulPasses < record.counted) record.counted = 0;
    const pass = status.lastSuccess;
    // A pass that failed part-way repaired an unknown part of its plan: only successful ones count as drift.
    if (pass === null || status.successfulPasses === record.counted) return;
    record.counted = status.successfulPasses;
    const labels = targetLabels(status);
    this.driftAdded.inc(labels, pass.add.length);
    this.driftRemoved.inc(labels, pass.remove.length);
  }

  /** A gauge with one series per reconciler (plus `extra` labels), rebuilt at every scrape. */
  private targetGauge(
    name: string,
    help: string,
    extra: string[],
    fill: (gauge: Gauge<string>, status: ReportedTargetStatus, labels: TargetLabels) => void,
  ): void {
    const targets = () => this.sources.targets();
    new Gauge({
      name,
      help,
      labelNames: [...TARGET_LABELS, ...extra],
      registers: [this.registry],
      collect() {
        // Reset first: a target removed by a reload must vanish.
        this.reset();
        for (const status of targets()) fill(this, status, targetLabels(status));
      },
    });
  }
}
