import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

/** Finds and parses the deployment files; every test in test/deploy works from these. */

export const REPO = path.resolve(import.meta.dirname, '../..');
export const DEPLOY_DIR = path.join(REPO, 'deploy');

export type DeployKind = 'compose' | 'kubernetes' | 'other';

export interface YamlFile {
  /** Relative to the repository root, for messages. */
  rel: string;
  abs: string;
  kind: DeployKind;
  docs: unknown[];
}

/** Every *.yaml / *.yml below deploy/, found by walking, so a new file cannot escape validation. */
export function findYamlFiles(dir: string = DEPLOY_DIR): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findYamlFiles(full));
    else if (entry.isFile() && /\.ya?ml$/i.test(entry.name)) found.push(full);
  }
  return found.sort();
}

/** Compose files live under deploy/compose, Kubernetes manifests under deploy/kubernetes. */
export function kindOf(abs: string): DeployKind {
  const rel = path.relative(DEPLOY_DIR, abs).split(path.sep);
  if (rel[0] === 'compose') return 'compose';
  if (rel[0] === 'kubernetes') return 'kubernetes';
  return 'other';
}

/** Parses every document of a YAML file; a syntax error or warning throws, naming the file and line. */
export function parseYamlFile(abs: string): YamlFile {
  const rel = path.relative(REPO, abs);
  const text = readFileSync(abs, 'utf8');
  const documents = parseAllDocuments(text, { prettyErrors: true, strict: true, uniqueKeys: true });
  if (!Array.isArray(documents)) throw new Error(`${rel}: not a YAML stream`);
  const docs: unknown[] = [];
  for (const doc of documents) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${rel}: ${problems.map((p) => p.message).join('; ')}`);
    const value: unknown = doc.toJS({ maxAliasCount: 0 });
    if (value !== null && value !== undefined) docs.push(value);
  }
  return { rel, abs, kind: kindOf(abs), docs };
}

export function loadDeployFiles(): YamlFile[] {
  return findYamlFiles().map(parseYamlFile);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Environment variable names the daemon reads: every OPNSENSE_* / EDGEBAN_* named in env.ts. */
export function knownEnvNames(): Set<string> {
  const source = readFileSync(path.join(REPO, 'src/config/env.ts'), 'utf8');
  // TZ is read by Node itself: the zone of log stamps written without one.
  return new Set([...(source.match(/\b(?:OPNSENSE|EDGEBAN)_[A-Z0-9_]+\b/g) ?? []), 'TZ']);
}
