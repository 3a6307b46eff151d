import path from 'node:path';
import type { EdgebanEnv } from '../config/env.ts';
import { createEnforcementRoles, type EnforcementRoles } from '../cluster/enforcement-roles.ts';
import { reportTarget, type ReportedTargetStatus } from '../cluster/target-report.ts';
import { ControlServer } from '../control/control-server.ts';
import { createLedgerHandlers, type JailDirectory } from '../control/ledger-handlers.ts';
import { ledgerDir, openLedgerStore } from '../ledger/open-ledger-store.ts';
import { edgebanVersion } from '../cli/version.ts';
import { Ledger } from '../ledger/ledger.ts';
import { JailEngine } from '../jails/jail-engine.ts';
import type { NetworkFacts } from '../jails/network-facts.ts';
import type { Logger } from '../logging/logger.ts';
import type { SecretScrubber } from '../logging/secret-scrubber.ts';
import type { EdgebanMetrics } from '../metrics/edgeban-metrics.ts';
import { MetricsServer } from '../metrics/metrics-server.ts';
import { LedgerFeeds } from '../targets/feed/ledger-feeds.ts';
import { Notifier } from '../notifications/notifier.ts';
import { judgeReadiness, type DaemonPhase, type Readiness } from '../metrics/readiness.ts';
import type { TargetReconciler } from '../targets/target-reconciler.ts';
import type { EdgeTarget, TargetCallRecord } from '../targets/edge-target.ts';
import { backendKey, createTargetReconciler, reconcileTargets, reconcilerKey, targetBackends } from '../targets/enforcement.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { ensureDirectory, moveAside } from '../util/durable-files.ts';
import { errorMessage, UserFacingError } from '../util/errors.ts';
import type { EnforcementTarget } from '../jails/targets.ts';
import { adoptionRefusal } from '../jails/ban-guard.ts';
import { enforcedTargets, whyNotRunning, guardFacts, loadDaemonConfig, requireRunnableJails, settleLedger, type DaemonConfig } from './daemon-config.ts';
import { HeapTrimmer } from './heap-trimmer.ts';
import { JailPipeline } from './jail-pipeline.ts';

export interface DaemonOptions {
  env: EdgebanEnv;
  clock: Clock;
  logger: Logger;
  /** The logger's scrubber: the daemon adds every secret it learns (environment, jail actions, on reload too). */
  scrubber: SecretScrubber;
  resetState?: boolean;
  /** Tests pass facts in; otherwise discovered from this host's interfaces and routes. */
  networkFacts?: NetworkFacts;
  pollIntervalMs?: number;
  /** Reads the environment again (the .env file, *_FILE secrets) on reload; without it, reload keeps `env`. */
  readEnv?: () => EdgebanEnv;
}

type ReloadResult = { ok: boolean; message: string };

const MANUAL_BANTIME_SEC = 86_400;
const SWEEP_INTERVAL_MS = 60_000;

/**
 * `edgeban run`: log sources → filters → jails → ledger → one reconciler per firewall and alias,
 * with the control API beside them. Everything is read and checked before the first network call.
 */
export class Daemon {
  private options: DaemonOptions;
  private config!: DaemonConfig;
  private ledger!: Ledger;
  private engine!: JailEngine;
  private facts!: NetworkFacts;
  private reconcilers: TargetReconciler[] = [];
  private backends: EdgeTarget[] = [];
  private pipelines: JailPipeline[] = [];
  private control: ControlServer | null = null;
  private sweepTimer: TimerHandle | null = null;
  private heapTrimmer: HeapTrimmer | null = null;
  private stopping: Promise<void> | null = null;
  private phase: DaemonPhase = 'starting';
  /** Kept across reloads, so counters never go back. Null when metrics are not served. */
  private metrics: EdgebanMetrics | null = null;
  private metricsServer: MetricsServer | null = null;
  private unsubscribeMetrics: () => void = () => {};
  private feeds: LedgerFeeds | null = null;
  private notifier: Notifier | null = null;
  /** Whether this replica enforces each target and announces bans (leader leases with the Redis ledger). */
  private roles: EnforcementRoles | null = null;
  /** The reload running (or the last one), and the one queued behind it: reloads never overlap. */
  private reloadRunning: Promise<ReloadResult> = Promise.resolve({ ok: true, message: 'no reload yet' });
  private reloadQueued: Promise<ReloadResult> | null = null;

  private constructor(options: DaemonOptions) {
    this.options = options;
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const daemon = new Daemon(options);
    try {
      await daemon.boot();
    } catch (error) {
      // A listener that failed (port taken, another edgeban on the socket) must not leave the others open.
      await daemon.notifier?.stop();
      await daemon.metricsServer?.stop();
      await daemon.control?.stop();
      await daemon.roles?.close();
      await daemon.ledger?.close();
      throw error;
    }
    return daemon;
  }

  private async boot(): Promise<void> {
    const { env, logger } = this.options;
    let { clock } = this.options;
    this.learnSecrets(env.secrets);
    this.config = await loadDaemonConfig(env);
    this.learnSecrets(this.config.secrets);
    reportConfig(this.config, logger);
    await ensureDirectory(env.dataDir, 'the data dir');
    if (this.options.resetState && env.ledger.kind === 'redis') {
      // The shared ledger belongs to every replica; one replica's restart must not wipe it.
      throw new UserFacingError('--reset-state applies to the file ledger only; with EDGEBAN_LEDGER=redis end bans with `edgeban unban --all` instead');
    }
    if (this.options.resetState) {
      const aside = await moveAside(ledgerDir(env), clock.now());
      if (aside) logger.warn({ movedTo: aside }, '--reset-state: the previous ledger was moved aside; starting empty');
      // Counts below maxretry start empty too; log offsets stay, so old lines are not read again.
      const failuresAside = await moveAside(path.join(env.dataDir, 'failures'), clock.now());
      if (failuresAside) logger.warn({ movedTo: failuresAside }, '--reset-state: the failure journals were moved aside');
    }
    // After the flag checks, before the ledger (Redis is a network call) and any firewall.
    requireRunnableJails(this.config, env);
    this.roles = await createEnforcementRoles(env.ledger, clock, logger);
    // In a cluster every replica dates bans by Redis's clock: from here on everything reads it.
    clock = this.roles.clock;
    this.options = { ...this.options, clock };
    const store = await openLedgerStore(env, logger, { spool: true });
    this.ledger = await Ledger.open({ store, clock, logger });
    this.facts = this.options.networkFacts ?? (await guardFacts(this.config, env, logger));
    this.engine = new JailEngine({
      jails: this.config.jails.map((j) => j.settings),
      facts: this.facts,
      history: this.ledger,
      ban: (request) => this.ledger.ban(request),
      clock,
      random: Math.random,
      logger,
      ...(this.roles.sharedFailures ? { shared: this.roles.sharedFailures } : {}),
    });
    await settleLedger(this.ledger, this.config, this.jailDirectory(), env, clock, logger);
    // Before the reconcilers: their clients report every API call to it.
    if (env.metricsListen) this.metrics = await this.createMetrics();
    this.buildReconcilers();
    // Before the first passes and pipelines, so the first bans and an early outage are announced.
    this.notifier = Notifier.start({
      plan: this.config.notify,
      ledger: this.ledger,
      clock,
      logger,
      env,
      targets: () => this.targetStatuses(),
      sources: () => this.pipelines.map((p) => p.stats()),
      scrubber: this.options.scrubber,
      announces: () => this.roles?.announces() ?? true,
    });
    // Served before the first passes, so /readyz tells "not enforced yet" from "enforcing".
    await this.startMetricsServer();
    this.control = await ControlServer.start({
      handlers: createLedgerHandlers({
        ledger: this.ledger,
        targets: () => this.targetStatuses(),
        manualBantimeSec: MANUAL_BANTIME_SEC,
        jails: this.jailDirectory(),
        reconcile: (command) => reconcileTargets(this.reconcilers, { dryRun: command.dryRun, running: true, clock }),
        clock: () => this.roles?.clockStatus() ?? null,
      }),
      logger,
      socketPath: env.controlSocket,
      ...(env.controlListen && env.controlToken ? { tcp: { ...env.controlListen, token: env.controlToken } } : {}),
    });
    // The first passes restore whatever an OPNsense reboot or our downtime left out; they run in the background.
    for (const reconciler of this.reconcilers) this.roles.enforce(reconciler);
    await this.startPipelines();
    this.scheduleSweep();
    // Reconcilers, pipelines and the ledger all exist from here: observers of the running daemon hook in at this point.
    this.phase = 'running';
    this.enforceNewTargets(); // a manual ban made during start-up
    this.heapTrimmer = HeapTrimmer.start({ clock, logger });
    logger.info(
      {
        jails: this.config.jails.map((j) => j.definition.name),
        targets: this.reconcilers.map((r) => r.status().id),
        metrics: this.metricsServer?.url() ?? null,
      },
      'edgeban running',
    );
  }

  /** /readyz: see judgeReadiness for what "ready" means. */
  readiness(): Readiness {
    return judgeReadiness(this.phase, this.targetStatuses());
  }

  /** The targets as reported: `ledger-unreachable` while the shared ledger's Redis does not answer. */
  private targetStatuses(): ReportedTargetStatus[] {
    const unreachable = this.ledger.unreachable();
    const now = this.options.clock.now();
    return this.reconcilers.map((r) => reportTarget(r.status(), unreachable, now));
  }

  /** Stops reading and persists offsets and ledger. Never unbans or flushes: bans stay enforced while edgeban is down. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.phase = 'stopping';
      this.sweepTimer?.cancel();
      this.heapTrimmer?.stop();
      await this.notifier?.stop();
      // A reload in progress finishes first (it checks `stopping` and starts nothing new).
      await this.reloadRunning;
      await Promise.all(this.pipelines.map((p) => p.stop()));
      await this.control?.stop();
      await Promise.all(this.reconcilers.map((r) => r.stop()));
      await this.roles?.close();
      await Promise.all(this.backends.map((b) => b.close()));
      await this.metricsServer?.stop();
      this.unsubscribeMetrics();
      this.feeds?.close();
      await this.ledger.close();
    })();
    return this.stopping;
  }

  /**
   * Re-reads the environment (.env file, secret files) and the configuration; on an error the
   * running ones stay. Counters and bans are kept.
   * One reload at a time (two at once each started their own pipelines: two followers per log,
   * every failure counted twice): a reload asked for while one runs runs once after it, however
   * many were asked for meanwhile, and answers all of them.
   */
  reload(): Promise<ReloadResult> {
    if (this.reloadQueued) return this.reloadQueued;
    const queued = this.reloadRunning.then(() => {
      this.reloadQueued = null;
      return this.reloadNow();
    });
    this.reloadQueued = queued;
    this.reloadRunning = queued;
    return queued;
  }

  private async reloadNow(): Promise<ReloadResult> {
    const { logger } = this.options;
    if (this.stopping) return { ok: false, message: 'stopping; not reloaded' };
    try {
      return await this.applyReload();
    } catch (error) {
      // Never a rejection: SIGHUP's handler has no one to hand it to.
      logger.error({ err: errorMessage(error) }, 'reload failed part way; see the errors above');
      return { ok: false, message: `reload failed: ${errorMessage(error)}` };
    }
  }

  private async applyReload(): Promise<ReloadResult> {
    const { logger } = this.options;
    const previousEnv = this.options.env;
    let env = previousEnv;
    let next: DaemonConfig;
    let facts: NetworkFacts;
    try {
      if (this.options.readEnv) env = this.options.readEnv();
      this.learnSecrets(env.secrets);
      next = await loadDaemonConfig(env);
      requireRunnableJails(next, env);
      // A firewall named for the first time, or a gateway that changed, is protected from the first ban after the reload.
      facts = this.options.networkFacts ?? (await guardFacts(next, env, logger));
    } catch (error) {
      logger.error({ err: errorMessage(error) }, 'reload failed; the running configuration stays');
      return { ok: false, message: `reload failed, configuration unchanged: ${errorMessage(error)}` };
    }
    await Promise.all(this.pipelines.map((p) => p.stop()));
    this.pipelines = [];
    if (this.stopping) return { ok: false, message: 'stopping; not reloaded' };
    const before = reconcilerSettings(enforcedTargets(this.config, this.ledger.targets()), previousEnv);
    let reconcilersStopped = false;
    try {
      this.options = { ...this.options, env };
      this.config = next;
      this.facts = facts;
      this.learnSecrets(next.secrets);
      reportConfig(next, logger);
      await this.notifier?.reconfigure(next.notify);
      this.engine.reload(
        next.jails.map((j) => j.settings),
        this.facts,
      );
      // New targets, firewalls, aliases, credentials or reconcile settings: new reconcilers (the ledger keeps every ban).
      // A reconciler is its ledger target on one firewall's alias: a jail now naming OPNSENSE_URL's firewall changes the target.
      if (reconcilerSettings(enforcedTargets(next, this.ledger.targets()), env) !== before) {
        reconcilersStopped = true;
        await Promise.all(this.reconcilers.map((r) => r.stop()));
        await this.roles?.release();
        await Promise.all(this.backends.map((b) => b.close()));
      }
      // Once no reconciler serves an old target name: its claims end without their entries being deleted.
      // Then, as at start, bans the new guard refuses (a firewall's own address, a jail's narrowed limits) end before any pass sends them.
      await settleLedger(this.ledger, next, this.jailDirectory(), env, this.options.clock, logger);
    } finally {
      // Whatever failed above (a ledger write, a notifier), the daemon never stays without reconcilers or log readers.
      if (reconcilersStopped) {
        this.buildReconcilers();
        for (const reconciler of this.reconcilers) this.roles?.enforce(reconciler);
      }
      if (!this.stopping) await this.startPipelines();
    }
    const restartOnly = RESTART_ONLY.filter((key) => JSON.stringify(env[key]) !== JSON.stringify(previousEnv[key]));
    if (restartOnly.length > 0) logger.warn({ settings: restartOnly }, 'these settings changed; they take effect when edgeban restarts');
    const message = `reloaded: ${next.jails.length} jails, ${this.reconcilers.length} targets${restartOnly.length > 0 ? `; restart edgeban to apply ${restartOnly.join(', ')}` : ''}`;
    logger.info({ jails: next.jails.map((j) => j.definition.name), targets: this.reconcilers.map((r) => r.status().id) }, 'configuration reloaded');
    return { ok: true, message };
  }

  status(jail: string | null): unknown {
    const pipelines = this.pipelines.filter((p) => jail === null || p.jail === jail).map((p) => p.stats());
    const engine = this.engine.stats(jail ?? undefined);
    // The pipeline's `matches` and `old` (filter matches, catch-up lines dropped) differ from the engine's: keep both.
    const running = pipelines.map(({ matches: filterMatches, old: oldCatchUp, ...p }) => ({
      ...p,
      filterMatches,
      oldCatchUp,
      ...engine.find((e) => e.jail === p.jail),
      ...this.reportOf(p.jail),
    }));
    // Every enabled jail is listed: manual-ban jails (no log) and those not running, with the reason.
    const others = this.config.report
      .filter((r) => (jail === null || r.jail === jail) && !running.some((p) => p.jail === r.jail))
      .map((r) => ({ jail: r.jail, ...engine.find((e) => e.jail === r.jail), ...this.reportOf(r.jail) }));
    return [...running, ...others];
  }

  /** What status shows of a jail beside its counters: running or why not, and what runs differently from fail2ban. */
  private reportOf(jail: string): Record<string, unknown> {
    const report = this.config.report.find((r) => r.jail === jail);
    if (!report) return {};
    return {
      running: report.running,
      ...(report.reason === null ? {} : { reason: report.reason }),
      ...(report.manualOnly ? { manualOnly: true } : {}),
      notes: report.notes.map((n) => ({ kind: n.kind, subject: n.subject, file: n.file, line: n.line, message: n.message, fix: n.fix })),
    };
  }

  /** Whether an enabled jail by this name exists, running or not (status JAIL answers for it). */
  isEnabledJail(jail: string): boolean {
    return this.config.report.some((r) => r.jail === jail);
  }

  private buildReconcilers(): void {
    this.backends = [];
    this.reconcilers = [];
    this.addReconcilers();
  }

  /** A reconciler for each endpoint of each enforced target that has none yet; returns the new ones. */
  private addReconcilers(): TargetReconciler[] {
    const { env, clock, logger } = this.options;
    const metrics = this.metrics;
    const onCall = metrics ? { onCall: (call: TargetCallRecord, reconciler: TargetReconciler) => metrics.apiCall(reconciler.status(), call) } : {};
    const running = new Set(this.reconcilers.map((r) => reconcilerKey(r.status())));
    const added: TargetReconciler[] = [];
    for (const target of enforcedTargets(this.config, this.ledger.targets())) {
      for (const where of targetBackends(target)) {
        if (running.has(backendKey(where, target))) continue;
        const { backend, reconciler } = createTargetReconciler(env, where, target, this.ledger, clock, logger, {
          ...onCall,
          adoptionRefusal: adoptionRefusal(this.facts),
        });
        this.backends.push(backend);
        this.reconcilers.push(reconciler);
        added.push(reconciler);
      }
    }
    return added;
  }

  /** After a manual ban into OPNSENSE_ALIAS when no jail uses it: its reconcilers start now. */
  private enforceNewTargets(): void {
    if (this.phase !== 'running') return;
    for (const reconciler of this.addReconcilers()) {
      this.options.logger.info({ target: reconciler.status().id }, 'enforcing the target a manual ban uses');
      this.roles?.enforce(reconciler);
    }
  }

  private async startPipelines(): Promise<void> {
    const { env, clock, logger } = this.options;
    // A manual-ban jail (empty failregex) reads no log.
    this.pipelines = this.config.jails.filter((plan) => !plan.manualOnly).map((plan) => new JailPipeline(plan, clock));
    for (const pipeline of this.pipelines) {
      await pipeline.start({
        engine: this.engine,
        dataDir: env.dataDir,
        logger,
        clock,
        ...(this.options.pollIntervalMs ? { pollIntervalMs: this.options.pollIntervalMs } : {}),
        ...(this.metrics ? { counters: this.metrics.forJail(pipeline.jail) } : {}),
      });
    }
  }

  private async startMetricsServer(): Promise<void> {
    const { env, logger } = this.options;
    const metrics = this.metrics;
    if (!metrics || !env.metricsListen) return;
    // The pull feed: each target's active bans, for firewalls that fetch a URL table (off without a token).
    const feeds = new LedgerFeeds(this.ledger, () => enforcedTargets(this.config, this.ledger.targets()).map((t) => t.id));
    this.feeds = feeds;
    this.metricsServer = await MetricsServer.start({
      ...env.metricsListen,
      logger,
      scrape: () => metrics.scrape(),
      readiness: () => this.readiness(),
      feed: { token: () => this.options.env.feedToken, isTarget: (id) => feeds.isTarget(id), document: (id, family) => feeds.document(id, family) },
    });
  }

  /** Collectors read the daemon's current ledger and reconcilers at scrape time (reloads replace the reconcilers). */
  private async createMetrics(): Promise<EdgebanMetrics> {
    // Loaded only when metrics are served: prom-client and its dependencies cost idle memory.
    const { EdgebanMetrics } = await import('../metrics/edgeban-metrics.ts');
    const metrics = new EdgebanMetrics(
      {
        activeClaims: () => this.ledger.activeClaims(),
        targets: () => this.targetStatuses(),
        jails: () => this.config.report.map((r) => ({ jail: r.jail, running: r.running })),
      },
      { version: edgebanVersion() },
    );
    this.unsubscribeMetrics = this.ledger.onChange((changes) => metrics.ledgerChanged(this.ledger, changes, this.options.clock.now()));
    return metrics;
  }

  /** The environment's secrets (a reload's new tokens too) and the keys written in jail actions: hidden from logs and alerts. */
  private learnSecrets(secrets: readonly string[]): void {
    for (const secret of secrets) this.options.scrubber.add(secret);
  }

  private scheduleSweep(): void {
    this.sweepTimer = this.options.clock.setTimer(SWEEP_INTERVAL_MS, () => {
      this.engine.sweep();
      this.scheduleSweep();
    });
  }

  private jailDirectory(): JailDirectory {
    return {
      jail: (name) => this.config.jails.find((j) => j.definition.name === name)?.settings ?? null,
      manualTarget: () => this.config.manualTarget?.id ?? null,
      facts: () => this.facts,
      forget: (address, jail) => this.engine.forget(address, jail),
      foreignIn: (address) => this.reconcilers.filter((r) => r.holdsForeign(address)).map((r) => r.status().id),
      removeForeign: async (address) => {
        const holding = this.reconcilers.filter((r) => r.holdsForeign(address));
        await Promise.all(holding.map((r) => r.removeForeign(address)));
        return holding.map((r) => r.status().id);
      },
      status: (jail) => this.status(jail),
      isJail: (jail) => this.isEnabledJail(jail),
      whyNotRunning: (jail) => whyNotRunning(this.config, jail),
      reload: () => this.reload(),
      banned: () => this.enforceNewTargets(),
    };
  }
}

/** One log line per thing a migrating user must know: mapped action files, substituted or skipped actions, jails not running, unknown keys. */
function reportConfig(config: DaemonConfig, logger: Logger): void {
  for (const line of config.mapped) logger.info(line);
  for (const note of config.warnings) logger.warn({ file: note.file, line: note.line, fix: note.fix }, note.message);
  for (const report of config.report) {
    for (const note of report.notes) logger.warn({ jail: report.jail, kind: note.kind, fix: note.fix }, note.message);
    if (!report.running) logger.warn({ jail: report.jail }, `[${report.jail}] not running: ${report.reason ?? 'unknown reason'}`);
  }
}

/** Environment settings a reload cannot apply: listeners, state, the manual-ban alias and notification timing. */
const RESTART_ONLY = [
  'alias',
  'dataDir',
  'controlSocket',
  'controlListen',
  'controlToken',
  'metricsListen',
  'ledger',
  'watchdogSilenceSec',
  'enforcementAlertAfterSec',
  'notifyIntervalSec',
  'logLevel',
  'logFormat',
] as const satisfies ReadonlyArray<keyof EdgebanEnv>;

/** Everything the reconcilers are built from, to tell whether a reload must rebuild them. */
function reconcilerSettings(targets: readonly EnforcementTarget[], env: EdgebanEnv): string {
  return JSON.stringify([
    targets.map((t) => [t.id, t.alias, t.endpoints.map((e) => [e.url, e.key, e.secret, e.ca, e.tlsInsecure, e.timeoutMs]), t.spec?.options ?? null]),
    [env.reconcileIntervalMs, env.apiConcurrency, env.foreignPolicy, env.adoptBantimeSec, env.killStates, env.listPageSize],
  ]);
}
