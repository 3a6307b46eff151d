import { existsSync } from 'node:fs';
import type { EdgebanEnv } from '../config/env.ts';
import { loadJailFilter, loadJails, type JailDefinition } from '../config/fail2ban/jail-definition.ts';
import { configDirs } from '../config/shipped-dirs.ts';
import { compileFilter, type CompiledFilter } from '../filters/compile.ts';
import { jailSettings, type JailSettings } from '../jails/settings.ts';
import { enforcementTargets, type EnforcementTarget } from '../jails/targets.ts';
import type { UnsupportedAction } from '../config/fail2ban/jail-definition.ts';

export interface JailPlan {
  definition: JailDefinition;
  settings: JailSettings;
  filter: CompiledFilter;
}

export interface DaemonConfig {
  jails: JailPlan[];
  targets: EnforcementTarget[];
  unsupported: UnsupportedAction[];
}

/**
 * Reads and checks everything the daemon will run — jails, their filters compiled, targets —
 * before anything touches the network: a mistake is a ConfigError naming file, line and key.
 */
export async function loadDaemonConfig(env: EdgebanEnv): Promise<DaemonConfig> {
  const dirs = configDirs(existsSync(env.configDir) ? env.configDir : undefined);
  const loaded = await loadJails(dirs);
  const jails: JailPlan[] = [];
  for (const definition of loaded.jails) {
    if (!definition.enabled || !definition.supported) continue;
    const filter = compileFilter(await loadJailFilter(definition, dirs));
    jails.push({ definition, settings: jailSettings(definition, env), filter });
  }
  const targets = enforcementTargets(jails.map((j) => j.definition), env);
  // Manual bans go to the environment's alias even when no jail names it.
  if (env.firewalls.length > 0 && !targets.some((t) => t.id === env.alias)) {
    targets.push({ id: env.alias, alias: env.alias, endpoints: env.firewalls, jails: [] });
  }
  return { jails, targets, unsupported: loaded.unsupported };
}
