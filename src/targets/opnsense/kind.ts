import { checkFirewallUrl, isValidAliasName, type EdgebanEnv, type FirewallEndpoint } from '../../config/env.ts';
import type { TargetKind } from '../edge-target.ts';
import { flagParam, intParam, requiredParam, TargetOptionError } from '../target-options.ts';
import { DEFAULT_LIST_PAGE_SIZE, OpnsenseClient, type ApiCallRecord } from './client.ts';
import { OpnsenseTarget, targetErrorKind } from './target.ts';
import { backendId } from '../target-ids.ts';

export interface OpnsenseOptions {
  endpoint: FirewallEndpoint;
  alias: string;
  listPageSize: number;
  /** Keep-alive connections of the client's pool. */
  connections: number;
}

const DEFAULT_ALIAS = 'fail2ban_blocklist';

/** The options of one firewall and alias from the environment's settings (the daemon's HA endpoints). */
export function opnsenseOptions(endpoint: FirewallEndpoint, alias: string, env: Pick<EdgebanEnv, 'listPageSize' | 'apiConcurrency'>): OpnsenseOptions {
  return { endpoint, alias, listPageSize: env.listPageSize, connections: env.apiConcurrency + 4 };
}

/** `192.0.2.1`, `fw.example.org:8443` or a full URL, as the client's base URL. */
export function normalisedFirewall(firewall: string): string | { problem: string } {
  const bracketed = firewall.includes(':') && !firewall.startsWith('[') && (firewall.match(/:/g)?.length ?? 0) > 1 ? `[${firewall}]` : firewall;
  return checkFirewallUrl(/^[a-z][a-z0-9+.-]*:\/\//i.test(firewall) ? firewall : `https://${bracketed}`);
}

/**
 * `opnsense[firewall=…, key=…, secret=…, alias=…, allow_insecure=…]`; the migrated spellings
 * (`osaddress`, `oskey`, …) are renamed to these by src/config/fail2ban/action-mapping.ts first.
 */
export const opnsenseKind: TargetKind<OpnsenseOptions> = {
  kind: 'opnsense',
  env: {
    OPNSENSE_URL: 'firewall',
    OPNSENSE_KEY: 'key',
    OPNSENSE_SECRET: 'secret',
    OPNSENSE_ALIAS: 'alias',
    OPNSENSE_TLS_INSECURE: 'allow_insecure',
    OPNSENSE_TIMEOUT: 'timeout',
    EDGEBAN_LIST_PAGE_SIZE: 'list_page_size',
  },
  secretParams: ['key', 'secret'],
  parseOptions(params) {
    const url = normalisedFirewall(requiredParam(params, 'firewall', 'the firewall address, or OPNSENSE_URL'));
    if (typeof url !== 'string') throw new TargetOptionError('firewall', url.problem);
    const alias = (params.alias ?? '').trim() || DEFAULT_ALIAS;
    if (!isValidAliasName(alias)) {
      throw new TargetOptionError(
        'alias',
        `"${alias.slice(0, 40)}" is not a valid OPNsense alias name (a letter or _ first, then letters, digits or _, at most 31)`,
      );
    }
    const endpoint: FirewallEndpoint = {
      url,
      key: requiredParam(params, 'key', "the firewall's API key, or OPNSENSE_KEY"),
      secret: requiredParam(params, 'secret', "the firewall's API secret, or OPNSENSE_SECRET"),
      ca: null,
      tlsInsecure: flagParam(params, 'allow_insecure', false),
      timeoutMs: intParam(params, 'timeout', 30, 600) * 1000,
    };
    return { endpoint, alias, listPageSize: intParam(params, 'list_page_size', DEFAULT_LIST_PAGE_SIZE, 1_000_000), connections: 20 };
  },
  identity: (options) => backendId(options.endpoint.url, options.alias),
  create(options, deps) {
    const target = { id: backendId(options.endpoint.url, options.alias) };
    const onCall = deps.onCall;
    const client = new OpnsenseClient({
      endpoint: options.endpoint,
      logger: deps.logger,
      connections: options.connections,
      ...(onCall
        ? {
            onCall: (call: ApiCallRecord) =>
              onCall({
                kind: 'opnsense',
                target: target.id,
                endpoint: call.endpoint,
                outcome: call.outcome === 'ok' ? 'ok' : targetErrorKind(call.outcome),
                ...(call.outcome === 'ok' ? {} : { reason: call.outcome }),
                durationMs: call.ms,
              }),
          }
        : {}),
    });
    return new OpnsenseTarget(client, options.alias, { listPageSize: options.listPageSize });
  },
};
