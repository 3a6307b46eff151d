import type { MikrotikClient } from '../targets/mikrotik/client.ts';

/*
 * What setup-mikrotik makes: in `/ip/firewall/raw` and `/ipv6/firewall/raw`, one rule
 * `chain=prerouting src-address-list=<list> action=drop comment="edgeban bans"` (REST: PUT on the
 * menu adds a row, as `/ip/firewall/raw/add` does; it goes last in the chain). raw/prerouting drops
 * before connection tracking, so a banned address's packets never reach a service or a NAT rule.
 * It makes no users or groups: the admin user stays the operator's (the README prints the commands).
 */

export const RULE_COMMENT = 'edgeban bans';
export const RAW_MENUS = ['ip/firewall/raw', 'ipv6/firewall/raw'] as const;

export interface MenuPlan {
  menu: (typeof RAW_MENUS)[number];
  /** An enabled prerouting rule that already drops the list, kept. */
  existingRule: string | null;
  /** Matching rules that are disabled: they block nothing, so they do not count. */
  disabledRules: string[];
  addRule: boolean;
}

export interface MikrotikSetupPlan {
  list: string;
  menus: MenuPlan[];
}

/** The rule setup adds, as REST properties. */
export function dropRule(list: string): Record<string, string> {
  return { chain: 'prerouting', 'src-address-list': list, action: 'drop', comment: RULE_COMMENT };
}

const isTrue = (flag: string | undefined): boolean => flag === 'true' || flag === 'yes';

/** Reads both raw menus and decides what to add; changes nothing (that is --dry-run). */
export async function planMikrotikSetup(client: MikrotikClient, list: string): Promise<MikrotikSetupPlan> {
  const menus: MenuPlan[] = [];
  for (const menu of RAW_MENUS) {
    const rules = (await client.rules(menu, { chain: 'prerouting', 'src-address-list': list })).filter((rule) => rule.action === 'drop');
    const enabled = rules.find((rule) => !isTrue(rule.disabled));
    menus.push({
      menu,
      existingRule: enabled?.['.id'] ?? null,
      disabledRules: rules.filter((rule) => isTrue(rule.disabled)).map((rule) => rule['.id'] ?? '?'),
      addRule: enabled === undefined,
    });
  }
  return { list, menus };
}

export function setupChanges(plan: MikrotikSetupPlan): number {
  return plan.menus.filter((menu) => menu.addRule).length;
}

/** Adds the missing rules; answers menu → the new rule's id. */
export async function applyMikrotikSetup(client: MikrotikClient, plan: MikrotikSetupPlan): Promise<Partial<Record<MenuPlan['menu'], string>>> {
  const added: Partial<Record<MenuPlan['menu'], string>> = {};
  for (const menu of plan.menus.filter((m) => m.addRule)) added[menu.menu] = await client.addRule(menu.menu, dropRule(plan.list));
  return added;
}
