import { ConfigError } from './config-error.ts';
import type { Piece, SourcedText } from './sourced-text.ts';

/**
 * One file of fail2ban's INI dialect, parsed exactly as Python's ConfigParser does it with
 * fail2ban's settings (configparserinc.py): `=` or `:` delimiters, keys lower-cased, `#`/`;` full-line
 * comments (also when indented), only ` ;` as inline comment (a `#` inside a value is data: regexes
 * use it), continuation lines are those indented deeper than the key line, blank lines inside a
 * value are kept, duplicate sections/keys within one file are errors (strict mode).
 */

export interface RawValue {
  /** The value as ConfigParser stores it, one piece per physical line. */
  text: SourcedText;
  file: string;
  /** Line of the `key = …` line. */
  line: number;
}

export type RawSection = Map<string, RawValue>;

export interface ParsedIni {
  file: string;
  defaults: RawSection;
  /** In file order; `DEFAULT` is not in here. */
  sections: Map<string, RawSection>;
  /** Line of each section's header, for errors about a key that is missing. */
  sectionLines: Map<string, number>;
}

const SECTION_RE = /^\[(.+)\]/;
const OPTION_RE = /^(.*?)\s*(=|:)\s*(.*)$/;
export const DEFAULT_SECTION = 'DEFAULT';

interface Pending {
  lines: { text: string; line: number }[];
  keyLine: number;
}

/** Python's str.isspace for the one character before an inline `;`. */
function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && /\s/.test(ch);
}

function commentStart(line: string): number | null {
  if (line.trim().startsWith('#') || line.trim().startsWith(';')) return 0;
  for (let at = line.indexOf(';'); at >= 0; at = line.indexOf(';', at + 1)) {
    if (at === 0 || isSpace(line[at - 1])) return at;
  }
  return null;
}

function finish(file: string, key: string, pending: Pending): RawValue {
  // ConfigParser joins with '\n' and rstrips: trailing blank lines and spaces go.
  const joined = pending.lines.map((l) => l.text).join('\n');
  let remaining = joined.replace(/\s+$/, '').length;
  const pieces: Piece[] = [];
  pending.lines.forEach((l, index) => {
    const text = (index === 0 ? '' : '\n') + l.text;
    const kept = text.slice(0, Math.max(0, remaining));
    remaining -= text.length;
    if (kept !== '') pieces.push({ text: kept, origin: { file, line: l.line, key } });
  });
  return { text: pieces, file, line: pending.keyLine };
}

export function parseIni(content: string, file: string): ParsedIni {
  const defaults: RawSection = new Map();
  const sections = new Map<string, RawSection>();
  const pendingBySection = new Map<RawSection, Map<string, Pending>>();
  const seenSections = new Set<string>();
  const sectionLines = new Map<string, number>();
  let current: RawSection | null = null;
  let currentName: string | null = null;
  let option: string | null = null;
  let indentLevel = 0;

  const lines = content.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  lines.forEach((line, index) => {
    const lineNo = index + 1;
    const cut = commentStart(line);
    const value = (cut === null ? line : line.slice(0, cut)).trim();
    const pendingHere = current === null ? undefined : pendingBySection.get(current);
    if (value === '') {
      // A blank line inside a value is part of it; a comment-only line is not.
      if (cut === null && option !== null && pendingHere) pendingHere.get(option)?.lines.push({ text: '', line: lineNo });
      return;
    }
    const indent = line.search(/\S/);
    if (current !== null && option !== null && indent > indentLevel) {
      pendingHere?.get(option)?.lines.push({ text: value, line: lineNo });
      return;
    }
    indentLevel = indent;
    const header = SECTION_RE.exec(value);
    if (header) {
      const name = header[1] ?? '';
      option = null;
      if (name === DEFAULT_SECTION) {
        current = defaults;
      } else {
        if (seenSections.has(name)) {
          throw new ConfigError(`section [${name}] appears twice in this file`, { file, line: lineNo, section: name });
        }
        seenSections.add(name);
        sectionLines.set(name, lineNo);
        current = new Map();
        sections.set(name, current);
      }
      currentName = name;
      if (!pendingBySection.has(current)) pendingBySection.set(current, new Map());
      return;
    }
    if (current === null || currentName === null) {
      throw new ConfigError('a key outside any [section] (the file must start with a section header)', { file, line: lineNo });
    }
    const match = OPTION_RE.exec(value);
    const name = match?.[1]?.trimEnd().toLowerCase() ?? '';
    if (!match || name === '') {
      throw new ConfigError('malformed line: expected "key = value", a [section] header, or an indented continuation', {
        file,
        line: lineNo,
        section: currentName,
      });
    }
    const pending = pendingBySection.get(current);
    if (!pending) throw new Error('unreachable: section without pending map');
    if (pending.has(name)) {
      throw new ConfigError('key appears twice in this section of this file', { file, line: lineNo, section: currentName, key: name });
    }
    pending.set(name, { lines: [{ text: (match[3] ?? '').trim(), line: lineNo }], keyLine: lineNo });
    option = name;
  });

  for (const [section, pending] of pendingBySection) {
    for (const [key, value] of pending) section.set(key, finish(file, key, value));
  }
  return { file, defaults, sections, sectionLines };
}
