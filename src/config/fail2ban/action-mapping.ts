import { ConfigError, quotable } from './config-error.ts';
import type { SourceRef } from './filter-definition.ts';

/**
 * What edgeban does with an action it does not implement under that name: OPNsense and ntfy
 * actions users wrote for fail2ban (curl scripts, fail2ban PR #2761 `opnsense-alias`,
 * linuxserver's `opnsense`, PR #4099's `ntfy`) run as the native action with their parameters
 * renamed; local firewall actions (iptables, nftables, …) become edge bans; known notification
 * and reporting actions are reported as not run.
 */

export type NativeTarget = 'opnsense' | 'ntfy';

/** Parameter spellings seen in users' action files, by native parameter (first match wins). */
const PARAM_SPELLINGS: Record<NativeTarget, Record<string, readonly string[]>> = {
  opnsense: {
    firewall: ['firewall', 'osaddress', 'opnsense', 'opnsense_host', 'opnsense_url', 'host'],
    key: ['key', 'oskey', 'apikey', 'api_key'],
    secret: ['secret', 'ossecret', 'apisecret', 'api_secret'],
    alias: ['alias', 'osalias', 'aliasname', 'alias_name'],
    allow_insecure: ['allow_insecure', 'osinsecure', 'insecure', 'tls_insecure'],
  },
  ntfy: {
    ntfyurl: ['ntfyurl', 'ntfy_url', 'ntfy_server', 'ntfyserver', 'url', 'server'],
    ntfytopic: ['ntfytopic', 'ntfy_topic', 'topic'],
    ntfytoken: ['ntfytoken', 'ntfy_token', 'token', 'access_token'],
    ntfypriority: ['ntfypriority', 'ntfy_priority', 'priority'],
  },
};

/** The native action a user's action of this name stands for, or null. */
export function mappableNative(name: string): NativeTarget | null {
  if (/^opnsense(?:[-_].*)?$/i.test(name)) return 'opnsense';
  if (/^ntfy(?:[-_].*)?$/i.test(name)) return 'ntfy';
  return null;
}

// fail2ban's local firewall actions (action.d of fail2ban 1.x and common third-party ones).
const LOCAL_FIREWALL =
  /^(?:iptables|ip6tables|nftables|nft|firewallcmd|firewalld|shorewall|ufw|route|hostsdeny|pf|ipfw|bsd-ipfw|npf|apf|ipset|csf|symbiosis-blacklist|osx-afctl|osx-ipfw|iptables-ipset)(?:[-_.].*)?$/i;

export function isLocalFirewallAction(name: string): boolean {
  return LOCAL_FIREWALL.test(name);
}

// fail2ban's notification and reporting actions: not run when their file is absent either.
const KNOWN_NOTIFY =
  /^(?:sendmail|mail|smtp|abuseipdb|blocklist_de|cloudflare|xarf|badips|dshield|mynetwatchman|complain|apprise|pushover|gotify|telegram|discord|slack|matrix|dummy|helpers-common|nginx-block-map|haproxy|netscaler|mikrotik|ipthreat)(?:[-_.].*)?$/i;

export function isKnownNotRunAction(name: string): boolean {
  return KNOWN_NOTIFY.test(name) || name.endsWith('.py');
}

export interface MappedParams {
  params: Record<string, string>;
  /** `oskey → key`, … for the info line (names only, never values). */
  renamed: string[];
}

const BOOL_TRUE = /^(?:1|true|yes|on)$/i;
const BOOL_FALSE = /^(?:0|false|no|off|)$/i;

/** Renames a user action's resolved parameters to the native action's. */
export function mapParams(native: NativeTarget, resolved: Readonly<Record<string, string>>, source: SourceRef): MappedParams {
  const params: Record<string, string> = {};
  const renamed: string[] = [];
  for (const [target, spellings] of Object.entries(PARAM_SPELLINGS[native])) {
    // The file declares the parameter (maybe empty in [Init], given by the jail): a rename either way.
    const declared = spellings.find((s) => resolved[s] !== undefined);
    if (declared !== undefined && declared !== target) renamed.push(`${declared} → ${target}`);
    const found = spellings.find((s) => resolved[s] !== undefined && resolved[s].trim() !== '');
    if (found !== undefined) params[target] = resolved[found]!.trim();
  }
  if (native === 'opnsense') {
    const insecure = params.allow_insecure ?? '';
    // The value is a flag, never a secret: safe to show.
    if (!BOOL_TRUE.test(insecure) && !BOOL_FALSE.test(insecure)) {
      throw new ConfigError(`allow_insecure: expected true or false${quotable(insecure) === null ? '' : `, not "${quotable(insecure)}"`}`, {
        file: source.file,
        line: source.line,
        key: 'allow_insecure',
      });
    }
    params.allow_insecure = BOOL_TRUE.test(insecure) ? 'true' : 'false';
  }
  return { params, renamed };
}

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/**
 * The candidate closest to `word` (ties: the first), or null when none is close enough to be a
 * typo of it (a few edits, or one name inside the other, as `bantime_note` and `bantime`): a
 * suggestion of an unrelated name misleads more than none.
 */
export function closest(word: string, candidates: Iterable<string>): string | null {
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const [a, b] = [word.toLowerCase(), candidate.toLowerCase()];
    const d = editDistance(a, b);
    if (d < bestDistance && (d <= limit || (Math.min(a.length, b.length) >= 4 && (a.includes(b) || b.includes(a))))) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}
