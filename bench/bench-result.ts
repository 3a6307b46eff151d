/** One benchmark's output: a table (rows of named figures) and notes on how it was measured. */
export interface BenchResult {
  name: string;
  rows: Array<Record<string, string | number>>;
  notes: string[];
  /** Its headline figures for the summary table at the top of the results. */
  summary?: SummaryRow[];
}

/** One headline figure: edgeban's value next to its peer's, measured in the same run unless said. */
export interface SummaryRow {
  figure: string;
  edgeban: string;
  peer: string;
}

export function markdownTable(rows: ReadonlyArray<Record<string, string | number>>): string {
  if (rows.length === 0) return '(no rows)';
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(columns), line(columns.map(() => '---')), ...rows.map((row) => line(columns.map((c) => String(row[c] ?? ''))))].join('\n');
}

/** 1234567 → "1,234,567" (en-US grouping, whatever the machine's locale). */
export function grouped(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n);
}
