/**
 * `npm run build`: bundles the CLI into dist/ for the container image, so the final image carries
 * no node_modules. Usage: node deploy/docker/build.ts [--outdir DIR]
 *
 * - ESM with code splitting: the CLI's lazy `import('./x.ts')` of each command stays lazy (a
 *   chunk per command group), so `edgeban health` does not parse the simulator or the filters.
 * - A `require` for the bundled CommonJS dependencies (pino, prom-client): esbuild's ESM output
 *   cannot call Node's require by itself ("Dynamic require of 'os' is not supported").
 * - `__EDGEBAN_ROOT_FROM_BUNDLE__` tells src/config/shipped-dirs.ts where the package root
 *   (with filters/ and actions/) is from the bundle's directory: its parent.
 * - `__EDGEBAN_VERSION__` is package.json's version (`edgeban version`): the image has no package.json.
 * - dist/bin/edgeban and dist/bin/fail2ban-client: the commands the Dockerfile links into PATH.
 */
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

const REPO = path.resolve(import.meta.dirname, '../..');
/** The entry file name the Dockerfile, the tests and the HEALTHCHECK refer to. */
export const BUNDLE_ENTRY = 'edgeban.mjs';

export interface BuildResult {
  outdir: string;
  entry: string;
  files: string[];
}

export async function buildBundle(outdir: string): Promise<BuildResult> {
  await rm(outdir, { recursive: true, force: true });
  const { version } = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  const result = await esbuild.build({
    absWorkingDir: REPO,
    entryPoints: { edgeban: 'src/cli/main.ts' },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    outExtension: { '.js': '.mjs' },
    chunkNames: '[name]-[hash]',
    sourcemap: 'linked',
    legalComments: 'linked',
    metafile: true,
    logLevel: 'warning',
    banner: { js: "import { createRequire as __edgebanCreateRequire } from 'node:module'; const require = __edgebanCreateRequire(import.meta.url);" },
    define: { __EDGEBAN_ROOT_FROM_BUNDLE__: JSON.stringify('..'), __EDGEBAN_VERSION__: JSON.stringify(version) },
  });
  if (result.errors.length > 0) throw new Error(`esbuild failed with ${result.errors.length} errors`);
  await writeShims(outdir);
  const files = Object.keys(result.metafile.outputs)
    .map((file) => path.relative(outdir, path.resolve(REPO, file)))
    .sort();
  return { outdir, entry: path.join(outdir, BUNDLE_ENTRY), files };
}

/**
 * `edgeban` and the `fail2ban-client` shim, run by node from PATH (#!/usr/bin/env node). CommonJS
 * text without an extension; Node resolves a symlinked main script to its real path, so the
 * relative import finds the bundle from a link in /usr/local/bin.
 */
export const SHIMS: Record<string, string[]> = { edgeban: [], 'fail2ban-client': ['fail2ban-client'] };

async function writeShims(outdir: string): Promise<void> {
  await mkdir(path.join(outdir, 'bin'));
  for (const [name, prefix] of Object.entries(SHIMS)) {
    const file = path.join(outdir, 'bin', name);
    const splice = prefix.length === 0 ? '' : `process.argv.splice(2, 0, ${prefix.map((p) => JSON.stringify(p)).join(', ')});\n`;
    await writeFile(file, `#!/usr/bin/env node\n${splice}import('../${BUNDLE_ENTRY}');\n`);
    await chmod(file, 0o755);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { outdir: { type: 'string' } }, strict: true });
  const outdir = path.resolve(values.outdir ?? path.join(REPO, 'dist'));
  const built = await buildBundle(outdir);
  const scripts = built.files.filter((f) => f.endsWith('.mjs'));
  process.stdout.write(`built ${built.entry} (${scripts.length} files: ${scripts.join(', ')})\n`);
}
