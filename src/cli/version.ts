import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../config/shipped-dirs.ts';

/** Set by the bundler (deploy/docker/build.ts) from package.json: the image carries no package.json. */
declare const __EDGEBAN_VERSION__: string | undefined;

/** package.json's version: baked into the bundle, read from the checkout when running from src/. */
export function edgebanVersion(): string {
  if (typeof __EDGEBAN_VERSION__ === 'string') return __EDGEBAN_VERSION__;
  const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}
