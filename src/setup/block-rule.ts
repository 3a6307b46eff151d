import type { BlockRuleSpec, RuleFields } from '../targets/opnsense/admin-client.ts';

export type Family = 'inet' | 'inet6';

/** Which address families a rule blocks from the alias on the interface, inbound; none when it does not qualify. */
export function familiesBlocked(rule: RuleFields, alias: string, iface: string): Family[] {
  const qualifies =
    rule.enabled === '1' &&
    (rule.action === 'block' || rule.action === 'reject') &&
    (rule.direction ?? 'in') === 'in' &&
    (rule.interface ?? '').split(',').includes(iface) &&
    (rule.source_net ?? '').split(',').includes(alias) &&
    (rule.source_not ?? '0') === '0' &&
    (rule.destination_net ?? 'any') === 'any' &&
    (rule.destination_not ?? '0') === '0' &&
    ['', 'any'].includes(rule.protocol ?? 'any') &&
    ['', 'any'].includes(rule.source_port ?? '') &&
    ['', 'any'].includes(rule.destination_port ?? '');
  if (!qualifies) return [];
  switch (rule.ipprotocol) {
    case 'inet':
      return ['inet'];
    case 'inet6':
      return ['inet6'];
    case 'inet46':
      return ['inet', 'inet6'];
    default:
      return [];
  }
}

/**
 * The rules still needed so IPv4 and IPv6 from the alias are blocked: one `inet46` rule where the
 * release has it (25.1+), else one per family; only the families no rule covers yet.
 */
export function missingRules(covered: ReadonlySet<Family>, inet46: boolean): Array<BlockRuleSpec['ipprotocol']> {
  const missing = (['inet', 'inet6'] as const).filter((f) => !covered.has(f));
  if (missing.length === 2 && inet46) return ['inet46'];
  return missing;
}

export function blockRule(alias: string, iface: string, ipprotocol: BlockRuleSpec['ipprotocol']): BlockRuleSpec {
  return {
    enabled: '1',
    action: 'block',
    quick: '1',
    interface: iface,
    direction: 'in',
    ipprotocol,
    protocol: 'any',
    source_net: alias,
    source_not: '0',
    destination_net: 'any',
    destination_not: '0',
    log: '1',
    description: `edgeban: block sources in ${alias}`,
  };
}

export function familyLabel(ipprotocol: string): string {
  return ipprotocol === 'inet46' ? 'IPv4+IPv6' : ipprotocol === 'inet6' ? 'IPv6' : 'IPv4';
}

/** "25.1.3_2" → [25, 1]; null when it is not a release number. */
export function releaseSeries(version: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

export function seriesAtLeast(version: string, major: number, minor: number): boolean | null {
  const series = releaseSeries(version);
  if (!series) return null;
  return series[0] > major || (series[0] === major && series[1] >= minor);
}
