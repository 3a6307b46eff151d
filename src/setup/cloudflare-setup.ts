import { z } from 'zod';
import { TargetError } from '../targets/edge-target.ts';
import type { CloudflareApi } from '../targets/cloudflare/cloudflare-api.ts';

/*
 * What setup-cloudflare makes (verified 2026-12-07 on developers.cloudflare.com):
 * - the list: POST /accounts/{account}/rules/lists `{ name, kind: "ip", description }`
 *   (waf/tools/lists/lists-api/endpoints/); names ^[a-z0-9_]+$, at most 50 characters;
 * - a WAF custom rule in each zone: custom rules live in the zone's entry point ruleset of the
 *   http_request_firewall_custom phase (waf/custom-rules/create-api/). GET
 *   /zones/{zone}/rulesets/phases/http_request_firewall_custom/entrypoint finds it; when it exists
 *   one rule is appended with POST /zones/{zone}/rulesets/{ruleset}/rules (the other rules stay
 *   untouched); when it does not, PUT on the entrypoint creates it with the one rule.
 * - the rule: expression `(ip.src in $<list>)`, action block. ip.src is the visitor's address as
 *   Cloudflare's edge sees it, so this blocks the attacker before any request reaches the origin.
 */

export const PHASE = 'http_request_firewall_custom';
export const ZONE_WAF_PERMISSION = 'Zone WAF Edit';

export interface CloudflareSetupOptions {
  account: string;
  /** A list name (created when missing) or an existing list's id. */
  list: string;
  zones: string[];
}

export interface ZonePlan {
  zone: string;
  /** The entry point ruleset's id, or null when the zone has none yet. */
  rulesetId: string | null;
  /** An enabled rule that already blocks `ip.src in $list`. */
  existingRule: string | null;
  addRule: boolean;
}

export interface CloudflareSetupPlan {
  list: { id: string; name: string; kind: string; items: number | null } | null;
  createList: boolean;
  /** The list's name as rules reference it. */
  listName: string;
  zones: ZonePlan[];
  warnings: string[];
}

const ListSchema = z.object({ id: z.string(), name: z.string(), kind: z.string(), num_items: z.number().optional() }).loose();
const RuleSchema = z.object({ id: z.string(), expression: z.string().optional(), action: z.string().optional(), enabled: z.boolean().optional() }).loose();
const RulesetSchema = z.object({ id: z.string(), rules: z.array(RuleSchema).default([]) }).loose();

const LIST_ID = /^[0-9a-f]{32}$/;

/** The rule expression setup writes and recognizes. */
export function blockExpression(listName: string): string {
  return `(ip.src in $${listName})`;
}

/** Whether an expression is exactly "ip.src in $list" (parentheses and spacing aside). */
function isBlockExpression(expression: string, listName: string): boolean {
  return expression.replace(/[()]/g, ' ').replace(/\s+/g, ' ').trim() === `ip.src in $${listName}`;
}

/** Reads the account and zones and decides what to change; changes nothing (that is --dry-run). */
export async function planCloudflareSetup(api: CloudflareApi, options: CloudflareSetupOptions): Promise<CloudflareSetupPlan> {
  const warnings: string[] = [];
  let list: CloudflareSetupPlan['list'] = null;
  if (LIST_ID.test(options.list)) {
    const { result } = await api.request('GET', `/accounts/${options.account}/rules/lists/${options.list}`, 'rules/lists/get', ListSchema);
    list = { id: result.id, name: result.name, kind: result.kind, items: result.num_items ?? null };
  } else {
    const { result } = await api.request('GET', `/accounts/${options.account}/rules/lists`, 'rules/lists/list', z.array(ListSchema));
    const found = result.find((candidate) => candidate.name === options.list);
    if (found !== undefined) list = { id: found.id, name: found.name, kind: found.kind, items: found.num_items ?? null };
  }
  if (list !== null && list.kind !== 'ip') {
    throw new TargetError(
      'operator',
      'wrong-list-kind',
      `GET /accounts/${options.account}/rules/lists`,
      `Cloudflare list ${list.name} is of kind ${list.kind}, not ip: choose another name (CLOUDFLARE_LIST) for edgeban's IP list`,
    );
  }
  const listName = list?.name ?? options.list;
  const zones: ZonePlan[] = [];
  for (const zone of options.zones) {
    let ruleset: z.infer<typeof RulesetSchema> | null = null;
    try {
      ruleset = (await api.request('GET', `/zones/${zone}/rulesets/phases/${PHASE}/entrypoint`, 'rulesets/entrypoint/get', RulesetSchema)).result;
    } catch (error) {
      // 404: the zone has no custom rules yet (its entry point ruleset is created with the first).
      if (!(error instanceof TargetError && error.reason === 'not-found')) throw error;
    }
    const rules = ruleset?.rules ?? [];
    const blocking = rules.find((rule) => rule.enabled !== false && rule.action === 'block' && isBlockExpression(rule.expression ?? '', listName));
    for (const rule of rules) {
      if (rule !== blocking && (rule.expression ?? '').includes(`$${listName}`) && blocking === undefined) {
        warnings.push(
          `zone ${zone}: rule ${rule.id} uses $${listName} (${rule.enabled === false ? 'disabled' : `action ${rule.action ?? '?'}`}) but does not block it; left as it is, a block rule is added`,
        );
      }
    }
    zones.push({ zone, rulesetId: ruleset?.id ?? null, existingRule: blocking?.id ?? null, addRule: blocking === undefined });
  }
  if (options.zones.length === 0) warnings.push('no --zone given: no WAF rule is made, and a list no rule uses blocks nothing');
  return { list, createList: list === null, listName, zones, warnings };
}

export function setupChanges(plan: CloudflareSetupPlan): number {
  return (plan.createList ? 1 : 0) + plan.zones.filter((zone) => zone.addRule).length;
}

export interface CloudflareSetupResult {
  createdList: string | null;
  /** Zone → rule id added. */
  addedRules: Record<string, string>;
}

/** Carries the plan out: the list first (a rule may only name an existing list), then each zone's rule. */
export async function applyCloudflareSetup(api: CloudflareApi, plan: CloudflareSetupPlan, options: CloudflareSetupOptions): Promise<CloudflareSetupResult> {
  const result: CloudflareSetupResult = { createdList: null, addedRules: {} };
  if (plan.createList) {
    const { result: list } = await api.request('POST', `/accounts/${options.account}/rules/lists`, 'rules/lists/create', ListSchema, {
      name: plan.listName,
      kind: 'ip',
      description: 'edgeban blocklist: addresses banned by edgeban (managed by edgeban; items tagged "edgeban")',
    });
    result.createdList = list.id;
  }
  const rule = { description: `edgeban: block addresses in $${plan.listName}`, expression: blockExpression(plan.listName), action: 'block', enabled: true };
  for (const zone of plan.zones.filter((z) => z.addRule)) {
    const reply =
      zone.rulesetId === null
        ? await api.request('PUT', `/zones/${zone.zone}/rulesets/phases/${PHASE}/entrypoint`, 'rulesets/entrypoint/update', RulesetSchema, { rules: [rule] })
        : await api.request('POST', `/zones/${zone.zone}/rulesets/${zone.rulesetId}/rules`, 'rulesets/rules/create', RulesetSchema, rule);
    const added = reply.result.rules.find((r) => r.action === 'block' && isBlockExpression(r.expression ?? '', plan.listName));
    result.addedRules[zone.zone] = added?.id ?? '?';
  }
  return result;
}
