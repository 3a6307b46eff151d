// Shared helpers for the filter tests: load a filter the way test-filter does and run a log through it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadFilter, type ConfigDirs } from '../../src/config/fail2ban/filter-definition.ts';
import { compileFilter } from '../../src/filters/compile.ts';
import { FilterMatcher, type LineResult } from '../../src/filters/matcher.ts';

// Zone-less stamps are local time, as in fail2ban: pin the zone so expectations hold anywhere.
process.env.TZ = 'UTC';

export const REPO = path.resolve(import.meta.dirname, '..', '..');
export const SAMPLES = path.join(import.meta.dirname, 'samples');
export const NODE = path.join(REPO, 'node_modules', '.bin', 'node');
export const EDGEBAN = path.join(REPO, 'bin', 'edgeban.js');
/** 2026-11-21T12:00:00Z: the reference time of the sample logs. */
export const SAMPLE_NOW = Date.UTC(2026, 10, 21, 12, 0, 0) / 1000;

export function shippedDirs(configDir?: string): ConfigDirs {
  return {
    ...(configDir === undefined ? {} : { configDir }),
    shippedFilterDir: path.join(REPO, 'filters'),
    shippedActionDir: path.join(REPO, 'actions'),
  };
}

export function logLines(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export async function runFilter(spec: string, lines: readonly string[], now: number, configDir?: string): Promise<LineResult[]> {
  const filter = compileFilter(await loadFilter(spec, shippedDirs(configDir)));
  const matcher = new FilterMatcher(filter, { now });
  return lines.map((line) => matcher.processLine(line));
}

export function iso(time: number | null): string | null {
  return time === null ? null : new Date(time * 1000).toISOString().replace(/\.000Z$/, 'Z');
}
