import { has, str } from '../request-params.ts';
import { pageBounds, pageRequest } from '../recordset.ts';
import { contentItemValid } from '../alias-config.ts';
import { entryContains } from '../pf-table-store.ts';
import { isValidAddress } from '../../net/address.ts';
import type { ListSpelling } from '../faults.ts';
import { ok, requireWritable, unexpectedError, type ActionContext, type ApiReply, type Endpoint } from '../api-types.ts';

/** The `address` field as preg_match would get it: an array there is a PHP TypeError → 500. */
function addressParam(ctx: ActionContext): string {
  const value = ctx.post.address;
  if (typeof value !== 'string') throw unexpectedError('address is not a string');
  return value;
}

/** strpos($address, ':') ? 128 : 32: position 0 (`::1`) counts as false, so `::1` gets /32. */
function phpMaskSuffix(address: string): string {
  return address.indexOf(':') > 0 ? '128' : '32';
}

function aliases(ctx: ActionContext): ApiReply {
  // natcasesort of `pfctl -sT`: internal tables are listed too.
  const names = ctx.state.pf.names().sort((a, b) => a.localeCompare(b, 'en', { numeric: true, sensitivity: 'base' }));
  return ok(names);
}

function list(ctx: ActionContext): ApiReply {
  const name = ctx.args[0] ?? '';
  const request = pageRequest(ctx.post, 9999);
  const table = ctx.state.pf.get(name);
  if (!table) return ok({ total: 0, rowCount: 0, current: request.current, rows: [] });
  // The ordered views are cached by the table; only a search has to scan.
  let source: readonly string[];
  if (request.sort?.field === 'ip') source = table.inLexicalOrder();
  else source = table.inPfOrder();
  const descending = request.sort?.field === 'ip' && request.sort.descending;
  let matches: readonly string[] = source;
  if (request.tokens.length > 0) {
    matches = source.filter((ip) => request.tokens.every((t) => ip.includes(t)));
  }
  const total = matches.length;
  const faults = ctx.state.faults();
  if (faults.listPageCap > 0 && (request.rowCount === -1 || request.rowCount > faults.listPageCap)) request.rowCount = faults.listPageCap;
  if (faults.listIgnoresPage) request.current = 1;
  const [start, end] = pageBounds(total, request);
  const rows: { ip: string }[] = [];
  for (let i = start; i < end; i++) {
    const ip = descending ? matches[total - 1 - i] : matches[i];
    if (ip !== undefined) rows.push({ ip: respell(ip, faults.listSpelling) });
  }
  return ok({ total, rowCount: rows.length, current: request.current, rows });
}

/** A row as other software than pfctl might print it (the `listSpelling` fault). */
function respell(ip: string, spelling: ListSpelling): string {
  if (spelling === 'upper-case') return ip.toUpperCase();
  if (spelling === 'host-prefix' && !ip.includes('/')) return `${ip}/${ip.includes(':') ? 128 : 32}`;
  return ip;
}

async function add(ctx: ActionContext): Promise<ApiReply> {
  const aliasName = ctx.args[0] ?? '';
  if (!ctx.isPost || !has(ctx.post, 'address')) return ok({ status: 'failed' });
  return ctx.state.withConfigLock(() => {
    requireWritable(ctx);
    let address = addressParam(ctx);
    // Case-sensitive: uppercase hex is not an address; the empty string and `cafe` pass.
    if (/[^0-9a-f:./_]/.test(address)) return ok({ status: 'not_an_address' });
    const alias = ctx.state.aliases.byName(aliasName);
    if (alias && (alias.type === 'host' || alias.type === 'network')) {
      if (alias.type === 'network' && !address.includes('/')) address += `/${phpMaskSuffix(address)}`;
      const items = alias.content.length > 0 ? alias.content : [''];
      // `!array_search(...)`: a match at index 0 is falsy, so the first entry gets duplicated.
      const index = items.indexOf(address);
      if (index <= 0) {
        const isAlias = (n: string) => ctx.state.aliases.byName(n) !== undefined;
        if (address !== '' && !contentItemValid(alias.type, address, isAlias)) {
          throw unexpectedError(`validation failed for ${alias.type} content ${address}`);
        }
        if (address !== '') alias.content.push(address);
        ctx.state.aliases.save();
      }
    }
    if (!alias) return ok({ status: 'failed', status_msg: `nonexistent alias ${aliasName}` });
    // pfctl's outcome (parse error, ENOMEM, duplicate) is discarded.
    if (!ctx.state.faults().discardAdds) ctx.state.pf.add(aliasName, address);
    return ok({ status: 'done' });
  });
}

async function del(ctx: ActionContext): Promise<ApiReply> {
  const aliasName = ctx.args[0] ?? '';
  if (!ctx.isPost || !has(ctx.post, 'address')) return ok({ status: 'failed' });
  return ctx.state.withConfigLock(() => {
    requireWritable(ctx);
    const address = addressParam(ctx);
    const alias = ctx.state.aliases.byName(aliasName);
    if (alias && (alias.type === 'host' || alias.type === 'network')) {
      const masked = address.includes('/') ? address : `${address}/${phpMaskSuffix(address)}`;
      let found = false;
      for (const item of [masked, address]) {
        const index = alias.content.indexOf(item);
        if (index !== -1) {
          alias.content.splice(index, 1);
          found = true;
        }
      }
      if (found) ctx.state.aliases.save();
    }
    // delete_table.py: only a `-T show` line equal to the input is deleted.
    ctx.state.pf.deleteExact(aliasName, address);
    return ok({ status: 'done' });
  });
}

async function flush(ctx: ActionContext): Promise<ApiReply> {
  const aliasName = ctx.args[0] ?? '';
  if (!ctx.isPost) return ok({ status: 'failed' });
  return ctx.state.withConfigLock(() => {
    requireWritable(ctx);
    ctx.state.pf.flush(aliasName);
    return ok({ status: 'done' });
  });
}

function findReferences(ctx: ActionContext): ApiReply {
  if (!ctx.isPost || !has(ctx.post, 'ip')) return ok({ status: 'IP parameter not specified!' });
  const ip = str(ctx.post, 'ip');
  if (ip === undefined) return ok({ status: 'Not an IP address!' });
  if (ip.includes('/') || !isValidAddress(ip)) return ok({ status: 'Invalid IP specified!' });
  const matches: string[] = [];
  for (const name of ctx.state.pf.names()) {
    const table = ctx.state.pf.get(name);
    if (table?.inPfOrder().some((entry) => entryContains(entry, ip))) matches.push(name);
  }
  return ok({ status: 'ok', matches });
}

export const aliasUtilEndpoints: Record<string, Endpoint> = {
  aliases: { requiredArgs: 0, handler: aliases },
  list: { requiredArgs: 1, handler: list },
  add: { requiredArgs: 1, handler: add },
  delete: { requiredArgs: 1, handler: del },
  flush: { requiredArgs: 1, handler: flush },
  findreferences: { requiredArgs: 0, handler: findReferences },
};
