import { existsSync } from 'node:fs';
import type { EdgebanEnv } from '../config/env.ts';
import { loadJailFilter, loadJails, type JailDefinition, type JailNote } from '../config/fail2ban/jail-definition.ts';
import { ConfigError } from '../config/fail2ban/config-error.ts';
import { FilterNotFoundError } from '../config/fail2ban/filter-definition.ts';
import { BUILTIN_JAIL_CONF_PATH } from '../config/fail2ban/builtin-jail-conf.ts';
import { configDirs } from '../config/shipped-dirs.ts';
import { compileFilter, type CompiledFilter } from '../filters/compile.ts';
import { jailSettings, type JailSettings } from '../jails/settings.ts';
import { enforcementTargets, type EnforcementTarget } from '../jails/targets.ts';
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
  targets: EnforcementTarget[];
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
  recidive: 'recidive reads fail2ban\'s own log, which edgeban does not write: remove the jail and set bantime.increment = true to ban repeat offenders longer',
  'postfix-sasl': 'use filter = postfix[mode=auth] (edgeban\'s postfix filter covers SASL failures)',
  sshd: 'edgeban ships no sshd filter: copy your filter.d/sshd.conf into the config dir\'s filter.d/',
};

/**
 * Reads and checks everything the daemon will run — jails, their filters compiled, targets —
 * before anything touches the network: a mistake is a ConfigError naming file, line and key.
 * An enabled jail whose filter edgeban does not have is reported (not running, with the fix).
 */
export async function loadDaemonConfig(env: EdgebanEnv): Promise<DaemonConfig> {
  const dirs = configDirs(existsSync(env.configDir) ? env.configDir : undefined);
  const loaded = await loadJails(dirs, { localActions: env.localActions });
  const report: JailReport[] = [];
  const plans: Array<{ definition: JailDefinition; filter: CompiledFilter; manualOnly: boolean }> = [];
  for (const definition of loaded.jails.filter((d) => d.enabled)) {
    const entry: JailReport = { jail: definition.name, running: false, reason: definition.skipReason, manualOnly: false, notes: definition.notes };
    report.push(entry);
    if (!definition.supported) continue;
    const filterName = /^[^[]*/.exec(definition.filter)?.[0]?.trim() ?? '';
    if (filterName === 'recidive') {
      // Even with Debian's recidive.conf mounted: it matches fail2ban's own log, which edgeban never writes.
      entry.reason = atEnabled(definition, 'filter', FILTER_ADVICE['recidive'] ?? '');
      continue;
    }
    try {
      const filter = compileFilter(await loadJailFilter(definition, dirs, { allowEmptyFailregex: true }));
      entry.manualOnly = filter.failregex.length === 0;
      entry.running = true;
      plans.push({ definition, filter, manualOnly: entry.manualOnly });
    } catch (error) {
      if (!(error instanceof FilterNotFoundError)) throw error;
      const advice = FILTER_ADVICE[error.filter] ?? `put ${error.filter}.conf into the config dir's filter.d/ (an empty failregex makes a manual-ban jail), or set enabled = false`;
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
  const targets = enforcementTargets(runnable, env);
  // Manual bans go to the environment's alias even when no jail names it.
  if (env.firewalls.length > 0 && !targets.some((t) => t.id === env.alias)) {
    targets.push({ id: env.alias, alias: env.alias, endpoints: env.firewalls, jails: [] });
  }
  return {
    jails, targets, unsupported: loaded.unsupported, report, mapped: loaded.mapped, notify,
    // A disabled jail's unknown key may be why it is disabled (`enabeld = true`).
    warnings: [...loaded.warnings, ...loaded.jails.filter((j) => !j.enabled).flatMap((j) => j.notes.filter((n) => n.kind === 'unknown-key'))],
    secrets: actionSecrets(runnable.map((j) => j.actions).flat()),
  };
}

/** `FILE:LINE: [jail] key: what`, at the line that enabled the jail (the user's, unlike edgeban's built-in defaults). */
function atEnabled(definition: JailDefinition, key: string, what: string): string {
  const at = definition.sources['enabled'] ?? { file: '<unknown>', line: 0 };
  return new ConfigError(what, { file: at.file, line: at.line, section: definition.name, key }).message;
}

/**
 * A daemon that runs no jail protects nobody: refuse to start (exit 2) and say, per enabled jail,
 * why it does not run — unless EDGEBAN_ALLOW_NO_JAILS=1 asks for a ban-only setup.
 */
export function requireRunnableJails(config: DaemonConfig, env: Pick<EdgebanEnv, 'allowNoJails'>): void {
  if (config.jails.length > 0 || env.allowNoJails) return;
  const lines = config.report.map((r) => `  [${r.jail}] not running: ${r.reason ?? 'unknown reason'}`);
  const head = config.report.length === 0
    ? 'no jail is enabled, so nothing would be banned: set enabled = true in the jails you want (jail.local or jail.d/*.local)'
    : 'no enabled jail can run, so nothing would be banned:';
  throw new UserFacingError([head, ...lines, '(EDGEBAN_ALLOW_NO_JAILS=1 starts anyway, for bans made with `edgeban ban` only)'].join('\n'), 2);
}

function actionSecrets(actions: ReadonlyArray<{ params: Record<string, string> }>): string[] {
  const secrets = new Set<string>();
  for (const action of actions) {
    for (const [key, value] of Object.entries(action.params)) if (SECRET_PARAMS.has(key) && value.trim() !== '') secrets.add(value.trim());
  }
  return [...secrets];
}
