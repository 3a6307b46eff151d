import path from 'node:path';
import type { ConfigDirs } from './fail2ban/filter-definition.ts';

/** The repository (or image) root: shipped filters/ and actions/ live there. */
export const PACKAGE_ROOT = path.resolve(import.meta.dirname, '../..');

/** Shipped filter.d and action.d, overlaid by the user's config dir when one is given. */
export function configDirs(configDir?: string): ConfigDirs {
  return {
    ...(configDir === undefined ? {} : { configDir }),
    shippedFilterDir: path.join(PACKAGE_ROOT, 'filters'),
    shippedActionDir: path.join(PACKAGE_ROOT, 'actions'),
  };
}
