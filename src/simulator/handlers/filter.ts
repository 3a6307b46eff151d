import { isValidAddress } from '../../net/address.ts';
import { RULE_DEFAULTS, RULE_OPTIONS, type FilterRule } from '../filter-rules.ts';
import type { FirmwareFeatures } from '../firmware.ts';
import { pageRequest, searchRecords } from '../recordset.ts';
import { ok, requireWritable, type ActionContext, type ApiReply, type Endpoint } from '../api-types.ts';

const RULE_FIELDS = Object.keys(RULE_DEFAULTS) as (keyof typeof RULE_DEFAULTS)[];

/** The model's option list for a field in this release: `inet46` exists from 25.1. */
function optionsOf(ctx: ActionContext, field: string): Record<string, string> | undefined {
  const options = RULE_OPTIONS[field];
  if (field !== 'ipprotocol' || options === undefined || ctx.state.features().inet46) return options;
  const { inet46: _dropped, ...older } = options;
  return older;
}

function validateRule(ctx: ActionContext, rule: Omit<FilterRule, 'uuid'>): Record<string, string> {
  const problems: Record<string, string> = {};
  for (const field of ['action', 'direction', 'ipprotocol', 'protocol'] as const) {
    const options = optionsOf(ctx, field) ?? {};
    if (!(rule[field] in options)) problems[`rule.${field}`] = 'Option not in list.';
  }
  const interfaces = rule.interface.split(',').filter((i) => i !== '');
  if (interfaces.some((i) => !(i in (RULE_OPTIONS.interface ?? {})))) problems['rule.interface'] = 'Option not in list.';
  for (const field of ['source_net', 'destination_net'] as const) {
    const value = rule[field];
    const alias = ctx.state.aliases.byName(value);
    const fine =
      value === 'any' ||
      value === '(self)' ||
      isValidAddress(value) ||
      (alias !== undefined && alias.type !== 'port') ||
      value in (RULE_OPTIONS.interface ?? {});
    if (!fine) problems[`rule.${field}`] = `${value} is not a valid source IP address or alias.`;
  }
  for (const field of ['enabled', 'quick', 'log', 'source_not', 'destination_not'] as const) {
    if (rule[field] !== '0' && rule[field] !== '1') problems[`rule.${field}`] = 'Value should be a boolean (0,1).';
  }
  return problems;
}

function addRule(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ result: 'failed' });
  const spec = ctx.post.rule;
  if (spec === undefined || spec === null || typeof spec !== 'object') return ok({ result: 'failed' });
  requireWritable(ctx);
  const rule = { ...RULE_DEFAULTS };
  for (const field of RULE_FIELDS) {
    const v = spec[field];
    if (typeof v === 'string') rule[field] = v;
  }
  const validations = validateRule(ctx, rule);
  if (Object.keys(validations).length > 0) return ok({ result: 'failed', validations });
  const created = ctx.state.rules.add(rule);
  ctx.state.aliases.save();
  return ok({ result: 'saved', uuid: created.uuid });
}

function searchRule(ctx: ActionContext): ApiReply {
  const params = { ...ctx.query, ...ctx.post };
  const rows = ctx.state.rules.all().map((r) => ({ ...r }));
  return ok(searchRecords(rows, pageRequest(params, -1)));
}

function getRule(ctx: ActionContext): ApiReply {
  const uuid = ctx.args[0];
  const rule = uuid === undefined ? { ...RULE_DEFAULTS, uuid: '' } : ctx.state.rules.get(uuid);
  if (!rule) return ok([]);
  const rendered: Record<string, unknown> = {};
  for (const field of RULE_FIELDS) {
    const options = optionsOf(ctx, field);
    if (options) {
      const selected = rule[field].split(',');
      const map: Record<string, { value: string; selected: number }> = {};
      for (const [key, value] of Object.entries(options)) map[key] = { value, selected: selected.includes(key) ? 1 : 0 };
      rendered[field] = map;
    } else {
      rendered[field] = rule[field];
    }
  }
  return ok({ rule: rendered });
}

function delRule(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ result: 'failed' });
  requireWritable(ctx);
  const removed = ctx.state.rules.delete(ctx.args[0] ?? '');
  if (removed) ctx.state.aliases.save();
  return ok({ result: removed ? 'deleted' : 'not found' });
}

/**
 * 26.7+: no arguments, `filter reload skip_alias`. 24.1–26.1: `apply/<revision>` also arms the
 * 60 s rollback to that savepoint. Either way table contents survive (tables are `persist`).
 */
function apply(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ status: 'error' });
  const revision = ctx.args[0];
  if (revision !== undefined && revision !== '' && ctx.state.features().savepoint) {
    ctx.state.rules.armRollback(revision, ctx.state.now());
  }
  for (const name of ctx.state.declaredAliasNames()) ctx.state.pf.declare(name);
  ctx.state.rules.apply();
  return ok({ status: 'OK\n\n' });
}

/** savepoint: a config backup of the Filter section, named by a time stamp revision. */
function savepoint(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ status: 'failed' });
  const revision = (ctx.state.now() / 1000).toFixed(4);
  ctx.state.rules.savepoint(revision);
  return ok({ status: 'ok', retention: '60', revision });
}

function cancelRollback(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ status: 'failed' });
  ctx.state.rules.cancelRollback(ctx.args[0] ?? '');
  return ok({ status: 'ok' });
}

function revert(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ status: 'failed' });
  const reverted = ctx.state.rules.revert(ctx.args[0] ?? '');
  return ok({ status: reverted ? 'ok' : 'unknown (or removed) savepoint' });
}

const filterApi = (f: FirmwareFeatures): boolean => f.filterApi;
const withSavepoints = (f: FirmwareFeatures): boolean => f.savepoint;

export const filterEndpoints: Record<string, Endpoint> = {
  addrule: { requiredArgs: 0, handler: addRule, availableIn: filterApi },
  searchrule: { requiredArgs: 0, handler: searchRule, availableIn: filterApi },
  getrule: { requiredArgs: 0, handler: getRule, availableIn: filterApi },
  delrule: { requiredArgs: 1, handler: delRule, availableIn: filterApi },
  apply: { requiredArgs: 0, handler: apply, availableIn: filterApi },
  savepoint: { requiredArgs: 0, handler: savepoint, availableIn: withSavepoints },
  cancelrollback: { requiredArgs: 1, handler: cancelRollback, availableIn: withSavepoints },
  revert: { requiredArgs: 1, handler: revert, availableIn: withSavepoints },
};
