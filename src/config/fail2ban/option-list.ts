/**
 * fail2ban's `name[opt=val, opt2="v, w"][opt3='x']` syntax (helpers.py extractOptions and
 * splitWithOptions), ported regex for regex so that what fail2ban accepts, edgeban accepts.
 * Error messages name options, never their values: values may be API keys.
 */

const OPTION_RE = /^([^[]+)(?:\[(.*)\])?\s*$/s;
const OPTION_EXTRACT_RE = /\s*([\w\-_.]+)=(?:"([^"]*)"|'([^']*)'|([^,\]]*))(?:,|\]\s*\[|$|(?<wrngA>.+))|,?\s*$|(?<wrngB>.+)/gs;
const OPTION_SPLIT_RE = /(?:[^[\s]+(?:\s*\[\s*(?:[\w\-_.]+=(?:"[^"]*"|'[^']*'|[^,\]]*)\s*(?:,|\]\s*\[)?\s*)*\])?\s*|\S+)(?=\n\s*|\s+|$)/gs;

export interface ExtractedOptions {
  name: string;
  options: Record<string, string>;
}

export class OptionSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptionSyntaxError';
  }
}

export function extractOptions(spec: string): ExtractedOptions {
  const match = OPTION_RE.exec(spec);
  if (!match) {
    const name = spec.split('[')[0]?.trim() ?? '';
    throw new OptionSyntaxError(
      spec.includes('[') && !/\]\s*$/.test(spec)
        ? `option list of "${name}" is not closed: "${name}[" without a matching "]"`
        : `malformed "${name}[…]": expected name[option=value, …]`,
    );
  }
  const name = (match[1] ?? '').trim();
  const options: Record<string, string> = {};
  const list = match[2];
  if (list) {
    let lastOption = '';
    for (const m of list.matchAll(OPTION_EXTRACT_RE)) {
      if (m.groups?.wrngA !== undefined) {
        throw new OptionSyntaxError(
          `"${name}[…]": unexpected text after option "${m[1] ?? ''}" (a missing "]", or a value with commas or brackets that needs quotes)`,
        );
      }
      if (m.groups?.wrngB !== undefined) {
        throw new OptionSyntaxError(
          `"${name}[…]": expected option=value${lastOption === '' ? '' : ` after option "${lastOption}"`} (quote values that hold commas or brackets)`,
        );
      }
      const option = m[1];
      if (!option) continue;
      options[option.trim()] = (m[2] ?? m[3] ?? m[4] ?? '').trim();
      lastOption = option.trim();
    }
  }
  return { name, options };
}

export interface SplitItem {
  text: string;
  /** Offset of the item in the input, for locating it in a multi-line value. */
  index: number;
}

/** Splits a multi-entry value (`action = a[...]\n b[...]`) into entries, keeping `[...]` whole. */
export function splitWithOptions(value: string): SplitItem[] {
  return [...value.matchAll(OPTION_SPLIT_RE)].map((m) => ({ text: m[0], index: m.index }));
}
