import { sanitizeQuery, stateRecordText } from '../pf-states.ts';
import { pageRequest, searchRecords } from '../recordset.ts';
import { str } from '../request-params.ts';
import { ok, type ActionContext, type ApiReply, type Endpoint } from '../api-types.ts';

function killStates(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ result: 'failed' });
  // `:` and `/` do not survive the sanitizer, so IPv6 and CIDR filters are mangled.
  const filter = sanitizeQuery(str(ctx.post, 'filter') ?? '');
  const ruleId = (str(ctx.post, 'ruleid') ?? '').replace(/[^0-9a-fA-F]/g, '');
  if (filter === '' && ruleId === '') return ok({ result: 'failed' });
  // No read-only check here, not even on HEAD.
  // With a real edge, its conntrack flows of that address go too.
  const dropped = ctx.state.states.kill(filter, ruleId) + (ruleId === '' ? (ctx.state.edge?.killStates(filter) ?? 0) : 0);
  return ok({ result: 'ok', dropped_states: dropped });
}

function queryStates(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ rows: [], rowCount: 0, total: 0, current: 0 });
  const records = ctx.state.states.all().map((s) => ({
    id: `${s.id}/${s.creator}`,
    iface: 'vtnet1',
    interface: 'wan',
    proto: s.proto,
    direction: 'in',
    src_addr: s.src,
    src_port: String(s.srcPort),
    dst_addr: s.dst,
    dst_port: String(s.dstPort),
    nat_addr: '',
    gateway: '',
    state: 'ESTABLISHED:ESTABLISHED',
    age: '00:00:10',
    expires: '23:59:50',
    pkts: 10,
    bytes: 1000,
    label: s.label,
    descr: '',
    _line: stateRecordText(s),
  }));
  const result = searchRecords(records, pageRequest(ctx.post, 9999));
  return ok({ rows: result.rows.map(({ _line, ...row }) => row), rowCount: result.rowCount, total: result.total, current: result.current });
}

function delState(ctx: ActionContext): ApiReply {
  if (!ctx.isPost) return ok({ result: 'failed' });
  const removed = ctx.state.states.deleteById(ctx.args[0] ?? '', ctx.args[1] ?? '');
  return ok({ result: removed ? 'ok' : 'failed' });
}

export const diagnosticsFirewallEndpoints: Record<string, Endpoint> = {
  killstates: { requiredArgs: 0, handler: killStates },
  querystates: { requiredArgs: 0, handler: queryStates },
  delstate: { requiredArgs: 2, handler: delState },
};
