import { int, str, type PhpArray } from './request-params.ts';

export interface PageRequest {
  rowCount: number;
  current: number;
  tokens: string[];
  sort: { field: string; descending: boolean } | null;
}

/** searchRecordsetBase parameters: rowCount (-1 = all), current, searchPhrase tokens, sort[field]. */
export function pageRequest(params: PhpArray, defaultRowCount: number): PageRequest {
  const rowCount = int(params, 'rowCount', defaultRowCount);
  const current = Math.max(1, int(params, 'current', 1));
  const tokens = (str(params, 'searchPhrase') ?? '')
    .toLowerCase()
    .split(/\s+/)
    .filter((t) => t !== '');
  let sort: PageRequest['sort'] = null;
  const sortParam = params.sort;
  if (sortParam && typeof sortParam === 'object') {
    const first = Object.entries(sortParam)[0];
    if (first) sort = { field: first[0], descending: first[1] === 'desc' };
  }
  return { rowCount, current, tokens, sort };
}

/** [start, end) of page `current` in a result of `total` rows. */
export function pageBounds(total: number, request: PageRequest): [number, number] {
  if (request.rowCount === -1) return [0, total];
  if (request.rowCount <= 0) return [0, 0];
  const start = Math.min(total, (request.current - 1) * request.rowCount);
  return [start, Math.min(total, start + request.rowCount)];
}

function rowMatches(row: Record<string, unknown>, tokens: readonly string[]): boolean {
  const values = Object.values(row).map((v) => String(v ?? '').toLowerCase());
  return tokens.every((t) => values.some((v) => v.includes(t)));
}

/** Generic grid search for small record sets (aliases, rules, states). */
export function searchRecords<T extends Record<string, unknown>>(
  records: readonly T[],
  request: PageRequest,
): { total: number; rowCount: number; current: number; rows: T[] } {
  let rows = request.tokens.length === 0 ? [...records] : records.filter((r) => rowMatches(r, request.tokens));
  const sort = request.sort;
  if (sort) {
    rows = rows.sort((a, b) => {
      const x = String(a[sort.field] ?? ''),
        y = String(b[sort.field] ?? '');
      return x < y ? -1 : x > y ? 1 : 0;
    });
    if (sort.descending) rows.reverse();
  }
  const [start, end] = pageBounds(rows.length, request);
  const page = rows.slice(start, end);
  return { total: rows.length, rowCount: page.length, current: request.current, rows: page };
}
