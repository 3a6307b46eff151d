import { checkFirewallUrl, isValidAliasName, type EdgebanEnv, type FirewallEndpoint } from '../config/env.ts';
import { ConfigError } from '../config/fail2ban/config-error.ts';
import type { SourceRef } from '../config/fail2ban/filter-definition.ts';
import type { ActionRef, JailDefinition } from '../config/fail2ban/jail-definition.ts';
import { extractOptions, splitWithOptions } from '../config/fail2ban/option-list.ts';

/**
 * Where a jail's bans are enforced. An `opnsense` action without `firewall=` bans in the
 * environment's firewalls (OPNSENSE_URL, every node of an HA pair), in its `alias=` or else
 * OPNSENSE_ALIAS: the ledger target is the alias name, as the enforcement core uses. An action
 * with its own `firewall=` is a separate target `opnsense:<firewall>/<alias>` with its own
 * endpoint and credentials.
 */

export interface JailTarget {
  /** Ledger target name. */
  id: string;
  alias: string;
  /** The action's `firewall=`, or null for the environment's firewalls. */
  firewall: string | null;
  source: SourceRef;
}

/** One ledger target and the firewalls that enforce it; the daemon builds one reconciler per endpoint. */
export interface EnforcementTarget {
  id: string;
  alias: string;
  endpoints: FirewallEndpoint[];
  /** Jails banning into it. */
  jails: string[];
}

interface OpnsenseAction {
  target: JailTarget;
  key: string;
  secret: string;
}

const TARGET_PREFIX = 'opnsense:';

/** The targets of one jail's `opnsense` actions (none for a jail that only notifies). */
export function jailTargets(jail: JailDefinition, env: Pick<EdgebanEnv, 'alias'>): JailTarget[] {
  return opnsenseActions(jail, env).map((a) => a.target);
}

/**
 * Every distinct target of the enabled jails, with its endpoints. Two jails naming the same
 * firewall and alias share a target; they must then agree on the credentials.
 */
export function enforcementTargets(jails: readonly JailDefinition[], env: Pick<EdgebanEnv, 'firewalls' | 'alias'>): EnforcementTarget[] {
  const targets = new Map<string, EnforcementTarget & { credentialsFrom?: SourceRef }>();
  for (const jail of jails) {
    if (!jail.enabled) continue;
    for (const action of opnsenseActions(jail, env)) {
      const { target } = action;
      let entry = targets.get(target.id);
      if (target.firewall === null) {
        if (env.firewalls.length === 0) {
          throw new ConfigError(`jail ${jail.name} bans through the environment's firewall, but OPNSENSE_URL is not set (or give the action firewall=, key= and secret=)`, target.source);
        }
        if (!entry) {
          entry = { id: target.id, alias: target.alias, endpoints: [...env.firewalls], jails: [] };
          targets.set(target.id, entry);
        }
      } else {
        const endpoint = ownEndpoint(jail, action, env);
        if (!entry) {
          entry = { id: target.id, alias: target.alias, endpoints: [endpoint], jails: [], credentialsFrom: target.source };
          targets.set(target.id, entry);
        } else {
          const known = entry.endpoints[0];
          if (known && (known.key !== endpoint.key || known.secret !== endpoint.secret)) {
            const other = entry.credentialsFrom;
            throw new ConfigError(
              `jail ${jail.name} gives firewall ${target.firewall} other credentials than ${other ? `${other.file}:${other.line}` : 'another jail'}; one firewall and alias take one key and secret`,
              { file: target.source.file, line: target.source.line, key: 'key' },
            );
          }
        }
      }
      if (!entry.jails.includes(jail.name)) entry.jails.push(jail.name);
    }
  }
  return [...targets.values()].map(({ id, alias, endpoints, jails: names }) => ({ id, alias, endpoints, jails: names }));
}

function ownEndpoint(jail: JailDefinition, action: OpnsenseAction, env: Pick<EdgebanEnv, 'firewalls'>): FirewallEndpoint {
  const { target } = action;
  const firewall = target.firewall ?? '';
  const where = (key: string) => ({ file: target.source.file, line: target.source.line, key });
  for (const key of ['key', 'secret'] as const) {
    if (action[key] === '') throw new ConfigError(`jail ${jail.name}: opnsense[firewall=…] needs ${key}= too (the firewall's API ${key})`, where(key));
  }
  const candidate = /^[a-z][a-z0-9+.-]*:\/\//i.test(firewall) ? firewall : `https://${bracketed(firewall)}`;
  const checked = checkFirewallUrl(candidate);
  if (typeof checked !== 'string') throw new ConfigError(`jail ${jail.name}: ${checked.problem}`, where('firewall'));
  // TLS trust as for the environment's firewalls: one CA and one policy for the whole install.
  const model = env.firewalls[0];
  return {
    url: checked,
    key: action.key,
    secret: action.secret,
    ca: model?.ca ?? null,
    tlsInsecure: model?.tlsInsecure ?? false,
    timeoutMs: model?.timeoutMs ?? 30_000,
  };
}

/** A bare IPv6 literal needs brackets in a URL. */
function bracketed(host: string): string {
  return host.includes(':') && !host.startsWith('[') && (host.match(/:/g)?.length ?? 0) > 1 ? `[${host}]` : host;
}

function opnsenseActions(jail: JailDefinition, env: Pick<EdgebanEnv, 'alias'>): OpnsenseAction[] {
  const written = writtenParams(jail);
  const seen = new Map<string, number>();
  const out: OpnsenseAction[] = [];
  for (const action of jail.actions) {
    const nth = seen.get(action.name) ?? 0;
    seen.set(action.name, nth + 1);
    if (action.native !== 'opnsense') continue;
    const explicit = written.get(action.name)?.[nth] ?? null;
    out.push(opnsenseAction(jail, action, explicit, env));
  }
  return out;
}

function opnsenseAction(jail: JailDefinition, action: ActionRef, explicit: Record<string, string> | null, env: Pick<EdgebanEnv, 'alias'>): OpnsenseAction {
  const firewall = (action.params['firewall'] ?? '').trim();
  // The action file's [Init] alias default is always in params; only an alias the jail wrote
  // overrides OPNSENSE_ALIAS (if the entry cannot be re-read, a non-default alias counts as written).
  const aliasParam = (action.params['alias'] ?? '').trim();
  const aliasWritten = explicit === null ? aliasParam !== '' && aliasParam !== 'fail2ban_blocklist' : (explicit['alias'] ?? '').trim() !== '';
  const alias = aliasWritten ? aliasParam : env.alias;
  if (!isValidAliasName(alias)) {
    throw new ConfigError(`jail ${jail.name}: "${alias.slice(0, 40)}" is not a valid OPNsense alias name (a letter or _ first, then letters, digits or _, at most 31)`, { ...action.source, key: 'alias' });
  }
  const id = firewall === '' ? alias : `${TARGET_PREFIX}${firewall.toLowerCase()}/${alias}`;
  return {
    target: { id, alias, firewall: firewall === '' ? null : firewall, source: action.source },
    key: (action.params['key'] ?? '').trim(),
    secret: (action.params['secret'] ?? '').trim(),
  };
}

/** The params each action entry was written with, by action name in order of appearance. */
function writtenParams(jail: JailDefinition): Map<string, Record<string, string>[]> {
  const written = new Map<string, Record<string, string>[]>();
  for (const item of splitWithOptions(jail.options['action'] ?? '')) {
    const text = item.text.trim();
    if (text === '') continue;
    try {
      const { name, options } = extractOptions(text);
      const list = written.get(name) ?? [];
      list.push(options);
      written.set(name, list);
    } catch {
      // loadJails already rejected malformed entries; nothing to learn from one here.
    }
  }
  return written;
}
