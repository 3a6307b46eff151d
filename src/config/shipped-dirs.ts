import path from 'node:path';
import type { ConfigDirs } from './fail2ban/filter-definition.ts';

/**
 * Set by the bundler (deploy/docker/build.ts): the package root relative to the bundle's
 * directory. Absent when running from src/, where this module sits two levels below the root.
 */
declare const __EDGEBAN_ROOT_FROM_BUNDLE__: string | undefined;

const ROOT_FROM_HERE = typeof __EDGEBAN_ROOT_FROM_BUNDLE__ === 'string' ? __EDGEBAN_ROOT_FROM_BUNDLE__ : '../..';

/** The repository (or image) root: shipped filters/ and actions/ live there. */
export const PACKAGE_ROOT = path.resolve(import.meta.dirname, ROOT_FROM_HERE);

/** Shipped filter.d and action.d, overlaid by the user's config dir when one is given. */
export function configDirs(configDir?: string): ConfigDirs {
  return {
    ...(configDir === undefined ? {} : { configDir }),
    shippedFilterDir: path.join(PACKAGE_ROOT, 'filters'),
    shippedActionDir: path.join(PACKAGE_ROOT, 'actions'),
  };
}
