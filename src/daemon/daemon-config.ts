import { existsSync } from 'node:fs';
import type { EdgebanEnv } from '../config/env.ts';
import { loadJailFilter, loadJails, type JailDefinition } from '../config/fail2ban/jail-definition.ts';
import { configDirs } from '../config/shipped-dirs.ts';
import { compileFilter, type CompiledFilter } from '../filters/compile.ts';
import { jailSettings, type JailSettings } from '../jails/settings.ts';
import { gatherNetworkFacts, type NetworkFacts } from '../jails/network-facts.ts';
import { planTargets, renamedTarget, targetsInUse, type EnforcementTarget } from '../jails/targets.ts';
import { endRefusedBans, type JailDirectory } from '../control/ledger-handlers.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import type { Clock } from '../util/clock.ts';
import type { UnsupportedAction } from '../config/fail2ban/jail-definition.ts';
import { SECRET_PARAMS } from '../config/fail2ban/action-definition.ts';
import { notifyPlan, type ChannelConfig, type NotifyPlan } from '../notifications/channel-config.ts';

export interface JailPlan {
  definition: JailDefinition;
  settings: JailSettings;
  filter: CompiledFilter;
  /** Where this jail's bans and unbans are announced (objects shared with DaemonConfig.notify.channels). */
  channels: ChannelConfig[];
}

export interface DaemonConfig {
  jails: JailPlan[];
  /** The targets the jails ban into (see targetsInUse for the manual one). */
  targets: EnforcementTarget[];
  /** OPNSENSE_ALIAS on the environment's firewalls, where a ban without a jail goes; null without OPNSENSE_URL. */
  manualTarget: EnforcementTarget | null;
  unsupported: UnsupportedAction[];
  /** Notification channels, deduplicated across jails (one object, so one rate limit, per channel). */
  notify: NotifyPlan;
  /** Secret values written in the jails' actions (API keys and secrets, tokens), for the logger's scrub list. */
  secrets: string[];
}

/**
 * Reads and checks everything the daemon will run — jails, their filters compiled, targets —
 * before anything touches the network: a mistake is a ConfigError naming file, line and key.
 */
export async function loadDaemonConfig(env: EdgebanEnv): Promise<DaemonConfig> {
  const dirs = configDirs(existsSync(env.configDir) ? env.configDir : undefined);
  const loaded = await loadJails(dirs);
  const runnable = loaded.jails.filter((d) => d.enabled && d.supported);
  const notify = notifyPlan(runnable);
  const channelsById = new Map(notify.channels.map((c) => [c.id, c]));
  const jails: JailPlan[] = [];
  for (const definition of runnable) {
    const filter = compileFilter(await loadJailFilter(definition, dirs));
    const channels = (notify.jailChannels[definition.name] ?? []).map((id) => channelsById.get(id)).filter((c) => c !== undefined);
    jails.push({ definition, settings: jailSettings(definition, env), filter, channels });
  }
  const { targets, manual } = planTargets(jails.map((j) => j.definition), env);
  return { jails, targets, manualTarget: manual, unsupported: loaded.unsupported, notify, secrets: actionSecrets(runnable.map((j) => j.actions).flat()) };
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
  ledger: Ledger, config: Pick<DaemonConfig, 'targets' | 'manualTarget'>, env: Pick<EdgebanEnv, 'firewalls'>, clock: Clock, logger: Logger,
): Promise<number> {
  const ids = new Set(everyTarget(config).map((t) => t.id));
  let moved = 0;
  for (const from of ledger.targets()) {
    const to = renamedTarget(from, env);
    if (to === null || !ids.has(to)) continue;
    const now = clock.now();
    const claims = ledger.activeClaims(from);
    if (claims.length === 0) continue;
    await ledger.banMany(claims.map((c) => ({ target: to, address: c.address, jail: c.jail, origin: c.origin, durationMs: c.expiresAt === null ? null : Math.max(1, c.expiresAt - now) })));
    for (const c of claims) await ledger.unban({ address: c.address, target: from, jail: c.jail });
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
  ledger: Ledger, config: Pick<DaemonConfig, 'targets' | 'manualTarget'>, jails: JailDirectory, env: Pick<EdgebanEnv, 'firewalls'>, clock: Clock, logger: Logger,
): Promise<void> {
  await moveRenamedTargets(ledger, config, env, clock, logger);
  await endRefusedBans(ledger, jails, logger);
}

/** A configuration's jails as a manual ban sees them, for the CLI while the daemon is stopped. */
export function configJails(config: Pick<DaemonConfig, 'jails' | 'manualTarget'>, facts: NetworkFacts): JailDirectory {
  return {
    jail: (name) => config.jails.find((j) => j.definition.name === name)?.settings ?? null,
    manualTarget: () => config.manualTarget?.id ?? null,
    facts: () => facts,
  };
}

function everyTarget(config: Pick<DaemonConfig, 'targets' | 'manualTarget'>): EnforcementTarget[] {
  return [...config.targets, ...(config.manualTarget ? [config.manualTarget] : [])];
}

/** What the ban guard protects, discovered the same way for the daemon and the offline CLI: this host, its gateways, every firewall bans may go to. */
export async function guardFacts(config: Pick<DaemonConfig, 'targets' | 'manualTarget'>, env: Pick<EdgebanEnv, 'procNet'>, logger: Logger): Promise<NetworkFacts> {
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
