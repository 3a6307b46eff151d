/** A PHP request value: a string, or an (ordered) array. null stands for a JSON null. */
export type PhpValue = string | null | PhpArray;
export interface PhpArray {
  [key: string]: PhpValue;
}

export type ParsedBody = { kind: 'ok'; params: PhpArray } | { kind: 'invalid-json' };

const JSON_TYPES = new Set(['application/json', 'application/json;charset=utf-8']);

/** JSON values as PHP sees them after json_decode(…, true): scalars become strings when used. */
function fromJson(value: unknown): PhpValue {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? '1' : '';
  if (Array.isArray(value)) {
    const out: PhpArray = {};
    value.forEach((v, i) => {
      out[String(i)] = fromJson(v);
    });
    return out;
  }
  if (typeof value === 'object') {
    const out: PhpArray = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = fromJson(v);
    return out;
  }
  return null;
}

/** Assigns `name` (maybe `a[b][]`) like PHP's form parser, which also turns `.` and ` ` in the base name into `_`. */
function assignPhp(target: PhpArray, rawName: string, value: string): void {
  const open = rawName.indexOf('[');
  const base = (open === -1 ? rawName : rawName.slice(0, open)).replace(/[. ]/g, '_');
  if (base === '') return;
  const keys: string[] = [];
  if (open !== -1) {
    const rest = rawName.slice(open);
    const re = /\[([^\]]*)\]/gy;
    let m: RegExpExecArray | null;
    while ((m = re.exec(rest)) !== null) keys.push(m[1] ?? '');
  }
  if (keys.length === 0) {
    target[base] = value;
    return;
  }
  let node = target;
  let key = base;
  for (const next of keys) {
    let child = node[key];
    if (child === undefined || child === null || typeof child === 'string') {
      child = {};
      node[key] = child;
    }
    node = child;
    key = next === '' ? String(nextIndex(node)) : next;
  }
  node[key] = value;
}

function nextIndex(array: PhpArray): number {
  let max = -1;
  for (const k of Object.keys(array)) if (/^\d+$/.test(k)) max = Math.max(max, Number(k));
  return max + 1;
}

export function parseUrlEncoded(text: string): PhpArray {
  const out: PhpArray = {};
  if (text === '') return out;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeForm(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decodeForm(pair.slice(eq + 1));
    assignPhp(out, name, value);
  }
  return out;
}

function decodeForm(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/** Text fields of a multipart/form-data body (file parts are skipped). */
function parseMultipart(body: Buffer, contentType: string): PhpArray {
  const out: PhpArray = {};
  const match = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) return out;
  const parts = body.toString('latin1').split(`--${boundary}`);
  for (const part of parts.slice(1)) {
    if (part.startsWith('--')) break;
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd === -1) continue;
    const headers = part.slice(0, headerEnd);
    const name = /name="([^"]*)"/i.exec(headers)?.[1];
    if (name === undefined || /filename=/i.test(headers)) continue;
    const value = Buffer.from(part.slice(headerEnd + 4).replace(/\r\n$/, ''), 'latin1').toString('utf8');
    assignPhp(out, name, value);
  }
  return out;
}

/**
 * What PHP ends up with in $_POST (Request::parseJsonBodyData): JSON only for the two exact
 * content types, 400 on an empty JSON body (any method), invalid JSON → empty, form bodies only on POST.
 */
export function parseBody(method: string, contentTypeHeader: string | undefined, body: Buffer): ParsedBody {
  const contentType = (contentTypeHeader ?? '').toLowerCase().replace(/\s/g, '');
  if (JSON_TYPES.has(contentType)) {
    if (body.length === 0) return { kind: 'invalid-json' };
    try {
      const value = fromJson(JSON.parse(body.toString('utf8')));
      return { kind: 'ok', params: value !== null && typeof value === 'object' ? value : {} };
    } catch {
      return { kind: 'ok', params: {} };
    }
  }
  if (method !== 'POST') return { kind: 'ok', params: {} };
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    return { kind: 'ok', params: parseUrlEncoded(body.toString('utf8')) };
  }
  if (contentType.startsWith('multipart/form-data')) {
    return { kind: 'ok', params: parseMultipart(body, contentTypeHeader ?? '') };
  }
  return { kind: 'ok', params: {} };
}

/** Phalcon hasPost: the key is set (a JSON null counts as unset). */
export function has(params: PhpArray, name: string): boolean {
  const v = params[name];
  return v !== undefined && v !== null;
}

/** A parameter as a string, or undefined when absent or an array (callers decide how PHP would fail). */
export function str(params: PhpArray, name: string): string | undefined {
  const v = params[name];
  return typeof v === 'string' ? v : undefined;
}

/** PHP's `(int)` of a request parameter, with a default when absent. */
export function int(params: PhpArray, name: string, fallback: number): number {
  const v = params[name];
  if (typeof v !== 'string') return fallback;
  const m = /^\s*([+-]?\d+)/.exec(v);
  return m ? Number(m[1]) : 0;
}
