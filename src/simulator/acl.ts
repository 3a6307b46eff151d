/** URL patterns per privilege id (M/Core/ACL/ACL.xml, M/Firewall/ACL/ACL.xml), API parts only. */
export const PRIVILEGE_PATTERNS: Record<string, readonly string[]> = {
  'page-diagnostics-tables': ['api/firewall/alias_util/*'],
  'page-firewall-alias-edit': ['api/firewall/alias/*'],
  'page-firewall-aliases': ['api/firewall/alias/search*', 'api/firewall/alias/list*', 'api/firewall/alias/get*', 'api/firewall/alias/export'],
  'page-diagnostics-showstates': [
    'api/diagnostics/firewall/query_states*',
    'api/diagnostics/firewall/del_state*',
    'api/diagnostics/firewall/kill_states*',
    'api/diagnostics/firewall/flush_sources*',
    'api/diagnostics/firewall/flush_states*',
  ],
  'page-filter-api': ['api/firewall/filter/*'],
  // "System: Firmware" (M/Core/ACL/ACL.xml); setup-opnsense reads the version through it.
  'page-system-firmware-manualupdate': ['api/core/firmware/*'],
  'page-all': ['*'],
};

export const KNOWN_PRIVILEGES: readonly string[] = Object.keys(PRIVILEGE_PATTERNS);

/** What the edgeban daemon needs: alias_util, alias lookups, kill_states. */
export const LEAST_PRIVILEGES: string[] = ['page-diagnostics-tables', 'page-firewall-aliases', 'page-diagnostics-showstates'];

const compiled = new Map<string, RegExp>();

function patternRegex(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    const body = pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    re = new RegExp(`^/${body}$`);
    compiled.set(pattern, re);
  }
  return re;
}

/**
 * ACL::urlMatch: anchored against the raw request URI including the query string, `*` is a
 * wildcard, a trailing `/*` also matches the bare path, and the comparison is case-sensitive
 * (so camelCase URLs that route fine are still forbidden).
 */
export function urlMatches(requestUri: string, pattern: string): boolean {
  if (patternRegex(pattern).test(requestUri)) return true;
  return pattern.endsWith('/*') && patternRegex(pattern.slice(0, -2)).test(requestUri);
}

export function isAllowed(requestUri: string, privileges: readonly string[]): boolean {
  for (const privilege of privileges) {
    for (const pattern of PRIVILEGE_PATTERNS[privilege] ?? []) {
      if (urlMatches(requestUri, pattern)) return true;
    }
  }
  return false;
}
