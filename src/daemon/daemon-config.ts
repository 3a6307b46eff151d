import { existsSync } from 'node:fs';
import type { EdgebanEnv } from '../config/env.ts';
import { loadJailFilter, loadJails, type JailDefinition, type JailNote } from '../config/fail2ban/jail-definition.ts';
import { ConfigError } from '../config/fail2ban/config-error.ts';
import { FilterNotFoundError } from '../config/fail2ban/filter-definition.ts';
import { BUILTIN_JAIL_CONF_PATH } from '../config/fail2ban/builtin-jail-conf.ts';
import { configDirs } from '../config/shipped-dirs.ts';
import { compileFilter, type CompiledFilter } from '../filters/compile.ts';
import { jailSettings, type JailSettings } from '../jails/settings.ts';
import { gatherNetworkFacts, type NetworkFacts } from '../jails/network-facts.ts';
import { GENERIC_TARGET_KINDS } from '../targets/registry.ts';
import { planTargets, renamedTarget, targetsInUse, type EnforcementTarget } from '../jails/targets.ts';
import { endRefusedBans, type JailDirectory } from '../control/ledger-handlers.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import type { Clock } from '../util/clock.ts';
import type { UnsupportedAction } from '../config/fail2ban/jail-definition.ts';
import { SECRET_PARAMS } from '../config/fail2ban/action-definition.ts';
import { notifyPlan, type ChannelConfig, type NotifyPlan } from '../notifications/channel-config.ts';
import { UserFacingError } from '../util/errors.ts';

export interface JailPlan {
  definition: JailDefinition;
  settings: JailSettings;
  filter: CompiledFilter;
  /** Where this jail's bans and unbans are announced (objects shared with DaemonConfig.notify.channels). */
  channels: ChannelConfig[];
  /** The filter's failregex is empty: the jail takes manual bans (`ban --jail`) and reads no log. */
  manualOnly: boolean;
}

/** Every enabled jail, running or not, and what edgeban does differently from fail2ban for it. */
export interface JailReport {
  jail: string;
  running: boolean;
  /** Why an enabled jail does not run, with the fix. */
  reason: string | null;
  manualOnly: boolean;
  notes: JailNote[];
}

export interface DaemonConfig {
  jails: JailPlan[];
  /** The targets the jails ban into (see targetsInUse for the manual one). */
  targets: EnforcementTarget[];
  /** OPNSENSE_ALIAS on the environment's firewalls, where a ban without a jail goes; null without OPNSENSE_URL. */
  manualTarget: EnforcementTarget | null;
  unsupported: UnsupportedAction[];
  /** Every enabled jail: running, or why not. */
  report: JailReport[];
  /** Info lines: user action files run as native actions (their shell commands are not). */
  mapped: string[];
  /** Warnings not tied to one jail (unknown [DEFAULT] keys). */
  warnings: JailNote[];
  /** Notification channels, deduplicated across jails (one object, so one rate limit, per channel). */
  notify: NotifyPlan;
  /** Secret values written in the jails' actions (API keys and secrets, tokens), for the logger's scrub list. */
  secrets: string[];
}

// Filters fail2ban ships that edgeban does not, and what to do instead.
const FILTER_ADVICE: Record<string, string> = {
  recidive: "recidive reads fail2ban's own log, which edgeban does not write: remove the jail and set bantime.increment = true to ban repeat offenders longer",
  'postfix-sasl': "use filter = postfix[mode=auth] (edgeban's postfix filter covers SASL failures)",
  sshd: "edgeban ships no sshd filter: copy your filter.d/sshd.conf into the config dir's filter.d/",
};

/**
 * Reads and checks everything the daemon will run — jails, their filters compiled, targets —
 * before anything touches the network: a mistake is a ConfigError naming file, line and key.
 * An enabled jail whose filter edgeban does not have is reported (not running, with the fix).
 */
export async function loadDaemonConfig(env: EdgebanEnv): Promise<DaemonConfig> {
  const dirs = configDirs(existsSync(env.configDir) ? env.configDir : undefined);
  const loaded = await loadJails(dirs, { localActions: env.localActions, targetKinds: GENERIC_TARGET_KINDS });
  const report: JailReport[] = [];
  const plans: Array<{ definition: JailDefinition; filter: CompiledFilter; manualOnly: boolean }> = [];
  for (const definition of loaded.jails.filter((d) => d.enabled)) {
    const entry: JailReport = { jail: definition.name, running: false, reason: definition.skipReason, manualOnly: false, notes: definition.notes };
    report.push(entry);
    if (!definition.supported) continue;
    const filterName = /^[^[]*/.exec(definition.filter)?.[0]?.trim() ?? '';
    if (filterName === 'recidive') {
      // Even with Debian's recidive.conf mounted: it matches fail2ban's own log, which edgeban never writes.
      entry.reason = atEnabled(definition, 'filter', FILTER_ADVICE.recidive ?? '');
      continue;
    }
    try {
      const filter = compileFilter(await loadJailFilter(definition, dirs, { allowEmptyFailregex: true }));
      entry.manualOnly = filter.failregex.length === 0;
      entry.running = true;
      plans.push({ definition, filter, manualOnly: entry.manualOnly });
    } catch (error) {
      if (!(error instanceof FilterNotFoundError)) throw error;
      const advice =
        FILTER_ADVICE[error.filter] ??
        `put ${error.filter}.conf into the config dir's filter.d/ (an empty failregex makes a manual-ban jail), or set enabled = false`;
      // The filter line is often edgeban's built-in `filter = %(__name__)s`: then name where the user enabled the jail.
      entry.reason = `${error.file === BUILTIN_JAIL_CONF_PATH ? atEnabled(definition, 'filter', error.what) : error.message}: ${advice}`;
    }
  }
  const runnable = plans.map((p) => p.definition);
  const notify = notifyPlan(runnable);
  const channelsById = new Map(notify.channels.map((c) => [c.id, c]));
  const jails: JailPlan[] = plans.map(({ definition, filter, manualOnly }) => {
    const channels = (notify.jailChannels[definition.name] ?? []).map((id) => channelsById.get(id)).filter((c) => c !== undefined);
    return { definition, settings: jailSettings(definition, env), filter, channels, manualOnly };
  });
  const { targets, manual } = planTargets(
    jails.map((j) => j.definition),
    env,
  );
  return {
    jails,
    targets,
    manualTarget: manual,
    unsupported: loaded.unsupported,
    report,
    mapped: loaded.mapped,
    notify,
    // A disabled jail's unknown key may be why it is disabled (`enabeld = true`).
    warnings: [...loaded.warnings, ...loaded.jails.filter((j) => !j.enabled).flatMap((j) => j.notes.filter((n) => n.kind === 'unknown-key'))],
    secrets: [...actionSecrets(runnable.flatMap((j) => j.actions)), ...targets.flatMap((t) => t.spec?.secrets ?? [])],
  };
}

/** `FILE:LINE: [jail] key: what`, at the line that enabled the jail (the user's, unlike edgeban's built-in defaults). */
function atEnabled(definition: JailDefinition, key: string, what: string): string {
  const at = definition.sources.enabled ?? { file: '<unknown>', line: 0 };
  return new ConfigError(what, { file: at.file, line: at.line, section: definition.name, key }).message;
}

/**
 * A daemon that runs no jail protects nobody: refuse to start (exit 2) and say, per enabled jail,
 * why it does not run — unless EDGEBAN_ALLOW_NO_JAILS=1 asks for a ban-only setup.
 */
export function requireRunnableJails(config: DaemonConfig, env: Pick<EdgebanEnv, 'allowNoJails'>): void {
  if (config.jails.length > 0 || env.allowNoJails) return;
  const lines = config.report.map((r) => `  [${r.jail}] not running: ${r.reason ?? 'unknown reason'}`);
  const head =
    config.report.length === 0
      ? 'no jail is enabled, so nothing would be banned: set enabled = true in the jails you want (jail.local or jail.d/*.local)'
      : 'no enabled jail can run, so nothing would be banned:';
  throw new UserFacingError([head, ...lines, '(EDGEBAN_ALLOW_NO_JAILS=1 starts anyway, for bans made with `edgeban ban` only)'].join('\n'), 2);
}

/** The targets to enforce now: the jails', and the manual one once a jail or a ledger claim uses it. */
export function enforcedTargets(config: Pick<DaemonConfig, 'targets' | 'manualTarget'>, ledgerTargets: Iterable<string>): EnforcementTarget[] {
  return targetsInUse({ targets: config.targets, manual: config.manualTarget }, ledgerTargets);
}

/**
 * Moves the active bans of ledger targets an older edgeban named differently (see renamedTarget)
 * into the target enforcing them now, so they stay in the alias and still end on time. Returns
 * how many moved. The old claims end without a reconciler to act on them.
 */
export async function moveRenamedTargets(
  ledger: Ledger,
  config: Pick<DaemonConfig, 'targets' | 'manualTarget'>,
  env: Pick<EdgebanEnv, 'firewalls'>,
  clock: Clock,
  logger: Logger,
): Promise<number> {
  const ids = new Set(everyTarget(config).map((t) => t.id));
  let moved = 0;
  for (const from of ledger.targets()) {
    const to = renamedTarget(from, env);
    if (to === null || !ids.has(to)) continue;
    const now = clock.now();
    const claims = ledger.activeClaims(from);
    if (claims.length === 0) continue;
    await ledger.banMany(
      claims.map((c) => ({
        target: to,
        address: c.address,
        jail: c.jail,
        origin: c.origin,
        durationMs: c.expiresAt === null ? null : Math.max(1, c.expiresAt - now),
      })),
    );
    await ledger.unbanAll(from);
    moved += claims.length;
    logger.warn({ from, to, bans: claims.length }, 'bans recorded under an older name of this firewall and alias now belong to its one target');
  }
  return moved;
}

/**
 * Before any reconciler acts on the ledger (the daemon's start, `reconcile` with the daemon
 * stopped): bans under an older target name move to their one target, and recorded bans the
 * guard refuses end, so none reaches a firewall.
 */
export async function settleLedger(
  ledger: Ledger,
  config: Pick<DaemonConfig, 'targets' | 'manualTarget'>,
  jails: JailDirectory,
  env: Pick<EdgebanEnv, 'firewalls'>,
  clock: Clock,
  logger: Logger,
): Promise<void> {
  await moveRenamedTargets(ledger, config, env, clock, logger);
  await endRefusedBans(ledger, jails, logger);
}

/** Why an enabled jail of this configuration does not run (with the fix), or null. */
export function whyNotRunning(config: Pick<DaemonConfig, 'report'>, jail: string): string | null {
  const report = config.report.find((r) => r.jail === jail);
  return report && !report.running ? (report.reason ?? 'not running') : null;
}

/** A configuration's jails as a manual ban sees them, for the CLI while the daemon is stopped. */
export function configJails(config: Pick<DaemonConfig, 'jails' | 'manualTarget' | 'report'>, facts: NetworkFacts): JailDirectory {
  return {
    jail: (name) => config.jails.find((j) => j.definition.name === name)?.settings ?? null,
    whyNotRunning: (name) => whyNotRunning(config, name),
    manualTarget: () => config.manualTarget?.id ?? null,
    facts: () => facts,
  };
}

function everyTarget(config: Pick<DaemonConfig, 'targets' | 'manualTarget'>): EnforcementTarget[] {
  return [...config.targets, ...(config.manualTarget ? [config.manualTarget] : [])];
}

/** What the ban guard protects, discovered the same way for the daemon and the offline CLI: this host, its gateways, every firewall bans may go to. */
export async function guardFacts(
  config: Pick<DaemonConfig, 'targets' | 'manualTarget'>,
  env: Pick<EdgebanEnv, 'procNet'>,
  logger: Logger,
): Promise<NetworkFacts> {
  const urls = everyTarget(config).flatMap((t) => t.endpoints.map((e) => e.url));
  const { facts, unresolved } = await gatherNetworkFacts([...new Set(urls)], env.procNet);
  if (unresolved.length > 0) logger.warn({ unresolved }, 'cannot resolve these firewall names; their addresses are not protected from bans');
  return facts;
}

function actionSecrets(actions: ReadonlyArray<{ params: Record<string, string> }>): string[] {
  const secrets = new Set<string>();
  for (const action of actions) {
    for (const [key, value] of Object.entries(action.params)) if (SECRET_PARAMS.has(key) && value.trim() !== '') secrets.add(value.trim());
  }
  return [...secrets];
}
