import { nested, replaceAllText, textOf, type SourcedText } from './sourced-text.ts';

/**
 * fail2ban's substituteRecursiveTags (helpers.py): replaces `<tag>` by the value of option `tag`,
 * repeatedly, so `<mdre-<mode>>` resolves inside out. Tags with no definition (`<HOST>`, `<F-USER>`,
 * `<SKIPLINES>` …) stay as they are, for the regex engine.
 */

const TAG_RE = /<([^ <>]+)>/g;
// fail2ban's MAX_TAG_REPLACE_COUNT.
const MAX_REPLACE = 25;

export class TagRecursionError extends Error {
  readonly tag: string;
  constructor(tag: string, found: string) {
    super(`<${found}> refers back to itself (directly or through other tags) while resolving ${tag}`);
    this.name = 'TagRecursionError';
    this.tag = tag;
  }
}

function searchTag(value: string, from: number): RegExpExecArray | null {
  TAG_RE.lastIndex = from;
  return TAG_RE.exec(value);
}

export function substituteRecursiveTags(
  input: ReadonlyMap<string, SourcedText>,
  ignore: ReadonlySet<string>,
  extra: (tag: string) => SourcedText | null,
): Map<string, SourcedText> {
  const tags = new Map(input);
  const done = new Set<string>();
  const counts = new Map<string, Map<string, number>>();
  for (let round = 0; round < 10_000; round++) {
    let repeat = false;
    for (const tag of tags.keys()) {
      if (ignore.has(tag) || done.has(tag)) continue;
      const original = tags.get(tag) ?? [];
      let value: SourcedText = original;
      let text = textOf(value);
      const replaced = counts.get(tag) ?? new Map<string, number>();
      let m = searchTag(text, 0);
      while (m) {
        const found = m[1] ?? '';
        if (ignore.has(found)) {
          m = searchTag(text, m.index + m[0].length);
          continue;
        }
        if (found === tag || (replaced.get(found) ?? 1) > MAX_REPLACE) throw new TagRecursionError(tag, found);
        const replacement = tags.get(found) ?? extra(found);
        if (replacement === null) {
          m = searchTag(text, m.index + m[0].length);
          continue;
        }
        value = replaceAllText(value, `<${found}>`, nested(replacement));
        text = textOf(value);
        replaced.set(found, (replaced.get(found) ?? 0) + 1);
        m = searchTag(text, m.index);
      }
      if (text !== textOf(original)) {
        if (searchTag(text, 0)) {
          counts.set(tag, replaced);
          repeat = true;
        }
        tags.set(tag, value);
      }
      if (!text.includes('<')) done.add(tag);
    }
    if (!repeat) break;
  }
  return tags;
}
