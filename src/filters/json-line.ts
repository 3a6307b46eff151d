/**
 * JSON log lines matched by parsed fields (a filter's `jsonline`): the line is parsed as one JSON
 * object and rewritten as the values of the listed fields, in the listed order, one space apart,
 * before the date detector and the regexes see it. Strings are written as JSON strings (quoted,
 * with JSON's escapes), so a quote, a space or a forged `"ClientHost":"…"` inside a value stays
 * inside that value; numbers, booleans and null as JSON writes them; a field that is missing or
 * holds an object or array (without an index) as a bare `-`. Field order, spacing and escaping in
 * the log do not matter, and a line that is not exactly one JSON object yields nothing to match.
 */

/** Whether the line is meant as JSON: its first non-blank character opens an object. */
export function looksLikeJson(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x20 || c === 0x09) continue;
    return c === 0x7b; // '{'
  }
  return false;
}

function lookup(root: unknown, path: readonly string[]): unknown {
  let value: unknown = root;
  for (const key of path) {
    if (Array.isArray(value)) {
      if (!/^\d+$/.test(key)) return undefined;
      value = value[Number(key)];
    } else if (value !== null && typeof value === 'object' && Object.hasOwn(value, key)) {
      value = (value as Record<string, unknown>)[key];
    } else {
      return undefined;
    }
  }
  return value;
}

function written(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || value === null) return JSON.stringify(value);
  return '-';
}

export class JsonLineProjector {
  private readonly paths: ReadonlyArray<readonly string[]>;

  constructor(fields: readonly string[]) {
    this.paths = fields.map((f) => f.split('.'));
  }

  /** The projected line, or null when the line is not exactly one JSON object. */
  project(line: string): string | null {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return null;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
    return this.paths.map((p) => written(lookup(parsed, p))).join(' ');
  }
}
