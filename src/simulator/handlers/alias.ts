import { ALIAS_TYPES, aliasNameProblem, contentItemValid, type ConfiguredAlias } from '../alias-config.ts';
import { pageRequest, searchRecords } from '../recordset.ts';
import type { PhpArray, PhpValue } from '../request-params.ts';
import { ok, requireWritable, userException, type ActionContext, type ApiReply, type Endpoint } from '../api-types.ts';

function optionMap(options: Record<string, string>, selected: readonly string[]): Record<string, { value: string; selected: number }> {
  const out: Record<string, { value: string; selected: number }> = {};
  for (const [key, value] of Object.entries(options)) out[key] = { value, selected: selected.includes(key) ? 1 : 0 };
  return out;
}

/** get_item's rendering: option fields as `{key:{value,selected}}`. */
function renderItem(alias: ConfiguredAlias | null): unknown {
  const content: Record<string, { value: string; selected: number }> = {};
  for (const item of alias?.content ?? []) content[item] = { value: item, selected: 1 };
  return {
    alias: {
      enabled: alias === null || alias.enabled ? '1' : '0',
      name: alias?.name ?? '',
      type: optionMap(ALIAS_TYPES, [alias?.type ?? 'host']),
      path_expression: '',
      proto: optionMap({ IPv4: 'IPv4', IPv6: 'IPv6' }, []),
      interface: optionMap({ lan: 'LAN', wan: 'WAN' }, []),
      counters: alias?.counters ? '1' : '0',
      updatefreq: alias?.updatefreq ?? '',
      content,
      // getBase renders TextFields as stored: the URL table's password comes back as written.
      password: alias?.password ?? '',
      username: alias?.username ?? '',
      authtype: optionMap({ Basic: 'Basic', Bearer: 'Bearer', Header: 'Header' }, alias?.authtype ? [alias.authtype] : []),
      expire: '',
      categories: {},
      current_items: '',
      last_updated: '',
      eval_nomatch: '',
      eval_match: '',
      in_block_p: '',
      description: alias?.description ?? '',
    },
  };
}

function getAliasUuid(ctx: ActionContext): ApiReply {
  const alias = ctx.state.aliases.byName(ctx.args[0] ?? '');
  // PHP's empty array: `[]`, not `{}`.
  return ok(alias ? { uuid: alias.uuid } : []);
}

function getItem(ctx: ActionContext): ApiReply {
  const uuid = ctx.args[0];
  if (uuid === undefined) return ok(renderItem(null));
  const alias = ctx.state.aliases.byUuid(uuid);
  return ok(alias ? renderItem(alias) : []);
}

function listValues(value: PhpValue | undefined): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return value === '' ? [] : [value];
  return Object.values(value).filter((v): v is string => typeof v === 'string' && v !== '');
}

function searchItem(ctx: ActionContext): ApiReply {
  // search_item reads $request->get(): the query string counts, POST fields win.
  const params: PhpArray = { ...ctx.query, ...ctx.post };
  const types = listValues(params.type);
  const categories = listValues(params.category);
  const records = ctx.state.aliases
    .all()
    .filter((a) => types.length === 0 || types.includes(a.type))
    .filter(() => categories.length === 0)
    .map((a) => ({
      uuid: a.uuid,
      enabled: a.enabled ? '1' : '0',
      name: a.name,
      // 25.7+: raw value in `type`, label in `%type`; before, the label in `type`.
      ...(ctx.state.features().searchItemRawType ? { type: a.type, '%type': ALIAS_TYPES[a.type] ?? a.type } : { type: ALIAS_TYPES[a.type] ?? a.type }),
      description: a.description,
      content: a.content.join(','),
      categories: '',
      current_items: '',
      last_updated: '',
    }));
  return ok(searchRecords(records, pageRequest(params, -1)));
}

/** The URL-table fields of an add_item/set_item body (absent ones: undefined, so set_item keeps them). */
function urlFields(field: (name: string) => string | undefined): Pick<ConfiguredAlias, 'updatefreq' | 'authtype' | 'username' | 'password'> {
  const out: Pick<ConfiguredAlias, 'updatefreq' | 'authtype' | 'username' | 'password'> = {};
  for (const name of ['updatefreq', 'authtype', 'username', 'password'] as const) {
    const value = field(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** The model's validation of the fields add_item and set_item share; the messages are OPNsense's. */
function validate(
  type: string,
  content: string[],
  fields: Pick<ConfiguredAlias, 'updatefreq' | 'authtype'>,
  isAlias: (n: string) => boolean,
): Record<string, string> {
  const validations: Record<string, string> = {};
  if (!(type in ALIAS_TYPES) || type === 'internal') validations['alias.type'] = 'Option not in list.';
  if (type === 'host' || type === 'network') {
    const bad = content.find((item) => !contentItemValid(type, item, isAlias));
    if (bad !== undefined) validations['alias.content'] = `Entry "${bad}" is not a valid hostname, IP address or range.`;
  }
  if (fields.updatefreq !== undefined && fields.updatefreq !== '' && !/^\d+(\.\d+)?$/.test(fields.updatefreq)) {
    validations['alias.updatefreq'] = 'Days and hours should be numeric values or left empty.';
  }
  if (fields.authtype !== undefined && fields.authtype !== '' && !['Basic', 'Bearer', 'Header'].includes(fields.authtype)) {
    validations['alias.authtype'] = 'Option not in list.';
  }
  return validations;
}

function splitContent(type: string, text: string): string[] {
  return type === 'external' ? [] : text.split(/[\n,]/).filter((i) => i !== '');
}

function addItem(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ result: 'failed' });
  const spec = ctx.post.alias;
  if (spec === undefined || spec === null || typeof spec !== 'object') return ok({ result: 'failed' });
  requireWritable(ctx);
  const field = (name: string): string | undefined => {
    const v = spec[name];
    return typeof v === 'string' ? v : undefined;
  };
  const name = field('name') ?? '';
  const type = field('type') ?? 'host';
  const content = splitContent(type, field('content') ?? '');
  const isAlias = (n: string) => ctx.state.aliases.byName(n) !== undefined;
  const url = urlFields(field);
  const validations = validate(type, content, url, isAlias);
  const nameProblem = aliasNameProblem(name, isAlias);
  if (nameProblem) validations['alias.name'] = nameProblem;
  if (Object.keys(validations).length > 0) return ok({ result: 'failed', validations });
  const alias = ctx.state.aliases.create({
    name,
    type,
    content,
    enabled: (field('enabled') ?? '1') !== '0',
    description: field('description') ?? '',
    counters: (field('counters') ?? '0') === '1',
    ...url,
  });
  ctx.state.aliases.save();
  return ok({ result: 'saved', uuid: alias.uuid });
}

/** setBase: the posted fields change, the others stay; a rename is not modelled. */
function setItem(ctx: ActionContext): ApiReply {
  const alias = ctx.state.aliases.byUuid(ctx.args[0] ?? '');
  const spec = ctx.post.alias;
  if (!ctx.isPost || alias === undefined || alias.builtin || spec === undefined || spec === null || typeof spec !== 'object') return ok({ result: 'failed' });
  requireWritable(ctx);
  const field = (name: string): string | undefined => {
    const v = spec[name];
    return typeof v === 'string' ? v : undefined;
  };
  const type = field('type') ?? alias.type;
  const contentText = field('content');
  const content = contentText === undefined ? (type === 'external' ? [] : alias.content) : splitContent(type, contentText);
  const url = urlFields(field);
  const isAlias = (n: string) => n !== alias.name && ctx.state.aliases.byName(n) !== undefined;
  const validations = validate(type, content, url, isAlias);
  if (Object.keys(validations).length > 0) return ok({ result: 'failed', validations });
  Object.assign(alias, { type, content, ...url });
  const enabled = field('enabled');
  if (enabled !== undefined) alias.enabled = enabled !== '0';
  const description = field('description');
  if (description !== undefined) alias.description = description;
  ctx.state.aliases.save();
  return ok({ result: 'saved' });
}

async function reconfigure(ctx: ActionContext): Promise<ApiReply> {
  if (!ctx.isPost) return ok({ status: 'failed' });
  // filter reload skip_alias declares `table <x> persist` (contents kept); refresh_aliases reloads host/network.
  for (const name of ctx.state.declaredAliasNames()) ctx.state.pf.declare(name);
  for (const alias of ctx.state.aliases.all()) {
    if (!alias.enabled || (alias.type !== 'host' && alias.type !== 'network')) continue;
    const result = ctx.state.pf.replace(alias.name, alias.content);
    if (!result.ok) {
      throw userException(
        `Error loading alias [${alias.name}]: Cannot allocate memory. {current_size: ${result.currentSize}, new_size: ${result.newSize}}`,
        'Alias',
      );
    }
  }
  // refresh_aliases runs update_tables.py synchronously: URL tables are fetched (or loaded from their cache) before the reply.
  await ctx.state.refreshAliases();
  return ok({ status: 'ok' });
}

function getTableSize(ctx: ActionContext): ApiReply {
  const details: Record<string, { count: number; updated: string }> = {};
  for (const name of ctx.state.pf.names()) {
    const table = ctx.state.pf.get(name);
    if (table) details[name] = { count: table.size, updated: new Date(table.updatedAt).toISOString() };
  }
  return ok({ status: 'ok', size: ctx.state.pf.limit, used: ctx.state.pf.usedEntries(), details });
}

export const aliasEndpoints: Record<string, Endpoint> = {
  getaliasuuid: { requiredArgs: 1, handler: getAliasUuid },
  getitem: { requiredArgs: 0, handler: getItem },
  searchitem: { requiredArgs: 0, handler: searchItem },
  additem: { requiredArgs: 0, handler: addItem },
  setitem: { requiredArgs: 1, handler: setItem },
  reconfigure: { requiredArgs: 0, handler: reconfigure },
  gettablesize: { requiredArgs: 0, handler: getTableSize },
};
