import { glob, stat } from 'node:fs/promises';
import path from 'node:path';

const GLOB_CHARS = /[*?[]/;

export function isGlob(pattern: string): boolean {
  return GLOB_CHARS.test(pattern);
}

/** The deepest directory of a glob without wildcards: watched so new matches are seen at once. */
export function globRoot(pattern: string): string {
  const parts = pattern.split(path.sep);
  const fixed: string[] = [];
  for (const part of parts.slice(0, -1)) {
    if (isGlob(part)) break;
    fixed.push(part);
  }
  return fixed.join(path.sep) || path.sep;
}

/**
 * The files the patterns name now: a plain path always (followed even while it does not exist,
 * so it is picked up when it appears), a glob's matches when they are regular files.
 */
export async function expandPatterns(patterns: readonly string[]): Promise<string[]> {
  const out = new Set<string>();
  for (const pattern of patterns) {
    if (!isGlob(pattern)) {
      out.add(pattern);
      continue;
    }
    try {
      for await (const match of glob(pattern)) {
        try {
          if ((await stat(match)).isFile()) out.add(match);
        } catch {
          // Gone between listing and stat: the next scan decides.
        }
      }
    } catch {
      // An unreadable directory on the way: nothing matches there for now.
    }
  }
  return [...out].sort();
}

export function matchesAnyPattern(file: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (isGlob(p) ? path.matchesGlob(file, p) : p === file));
}
