import { loadEnv, type EdgebanEnv, type FirewallEndpoint } from '../config/env.ts';
import { loadDaemonConfig, type DaemonConfig } from '../daemon/daemon-config.ts';
import { cidrList } from '../jails/cidr.ts';
import { discoverNetworkFacts } from '../jails/network-facts.ts';
import type { Logger } from '../logging/logger.ts';
import { OpnsenseAdminClient } from '../targets/opnsense/admin-client.ts';
import type { Clock } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import { fail, pass, type CheckResult } from './check-result.ts';
import { checkFirewall } from './firewall-checks.ts';
import { checkJailLogs } from './log-checks.ts';

export interface DoctorOptions {
  /** The process environment (and .env) to read, as `edgeban run` would. */
  env: NodeJS.ProcessEnv;
  clock: Clock;
  logger: (env: EdgebanEnv) => Logger;
  staleAfterSec: number;
  tailLines: number;
  /** Told of each result as it is found, so a slow firewall does not hold back the rest of the report. */
  onResult?: (result: CheckResult, secrets: readonly string[]) => void;
}

export interface DoctorReport {
  results: CheckResult[];
  /** Secrets to scrub from anything printed. */
  secrets: string[];
}

/** Every check, in the order a user fixes things: environment, configuration, firewalls, logs. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const results: CheckResult[] = [];
  let secrets: readonly string[] = [];
  const add = (result: CheckResult) => {
    results.push(result);
    options.onResult?.(result, secrets);
  };
  let env: EdgebanEnv;
  try {
    env = loadEnv({ env: options.env });
    add(pass('config.environment', 'environment', `${env.firewalls.length} firewall(s), alias ${env.alias}`));
  } catch (error) {
    add(fail('config.environment', 'environment', errorMessage(error), 'fix the variables named (see .env.example)'));
    try {
      // The jails can still be checked without a firewall.
      env = loadEnv({ env: options.env, requireFirewall: false });
      secrets = env.secrets;
    } catch {
      return { results, secrets: [] };
    }
  }
  secrets = env.secrets;
  let config: DaemonConfig | null = null;
  try {
    config = await loadDaemonConfig(env);
    const unsupported = config.unsupported.length > 0 ? `; ${config.unsupported.length} action(s) edgeban cannot run are skipped` : '';
    add(pass('config.jails', env.configDir, `${config.jails.length} enabled jail(s)${unsupported}`));
  } catch (error) {
    add(fail('config.jails', env.configDir, errorMessage(error), 'fix the file and line named; `edgeban run` would refuse to start'));
  }
  if (config !== null && config.jails.length === 0) {
    add(fail('config.jails', env.configDir, 'no enabled jail: nothing will be banned', 'set `enabled = true` in the jails you want (jail.local or jail.d/*.local)'));
  }
  for (const { endpoint, alias } of firewallsToCheck(env, config)) {
    const client = new OpnsenseAdminClient({ endpoint, logger: options.logger(env), connections: 2 });
    try {
      for (const result of await checkFirewall(client, { endpoint, alias, killStates: env.killStates })) add(result);
    } catch (error) {
      add(fail('opnsense.reachable', endpoint.url, `unexpected: ${errorMessage(error)}`, 'run again with EDGEBAN_LOG_LEVEL=debug and report it'));
    } finally {
      await client.close();
    }
  }
  if (config !== null) {
    const facts = await discoverNetworkFacts({ procNet: env.procNet }).catch(() => null);
    const proxyCandidates = facts === null ? [] : cidrList([...facts.gateways, ...facts.selfAddresses]);
    for (const jail of config.jails) {
      const input = { name: jail.definition.name, logpath: jail.definition.logpath, filter: jail.filter, findtimeSec: jail.settings.findtimeSec, logformat: jail.settings.logformat ?? 'plain' };
      const found = await checkJailLogs(input, {
        nowMs: options.clock.now(), staleAfterSec: options.staleAfterSec, tailLines: options.tailLines, proxyCandidates,
      });
      for (const result of found) add(result);
    }
  }
  return { results, secrets: env.secrets };
}

/**
 * Each (firewall, alias) pair bans go to, as the daemon builds them: the jails' targets, and
 * OPNSENSE_ALIAS on the environment's firewalls when no jail names a firewall (a ban-only setup)
 * or the jails could not be read.
 */
function firewallsToCheck(env: EdgebanEnv, config: DaemonConfig | null): Array<{ endpoint: FirewallEndpoint; alias: string }> {
  const manual = config === null
    ? (env.firewalls.length > 0 ? { alias: env.alias, endpoints: env.firewalls } : null)
    : (config.targets.length === 0 ? config.manualTarget : null);
  return [...(config?.targets ?? []), ...(manual ? [manual] : [])].flatMap((t) => t.endpoints.map((endpoint) => ({ endpoint, alias: t.alias })));
}
