import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BUNDLE_ENTRY, SHIMS } from '../../deploy/docker/build.ts';
import { REPO } from '../helpers/cli.ts';
import { durationMs, healthcheckCommand, isIgnored, parseDockerfile, stagesOf, type Instruction, type Stage } from './dockerfile.ts';

const dockerfile = readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(path.join(REPO, '.dockerignore'), 'utf8');
const instructions = parseDockerfile(dockerfile);
const stages = stagesOf(instructions);
const final = stages.at(-1)!;
const earlier = stages.slice(0, -1);
const where = (i: Instruction) => `Dockerfile:${i.line}: ${i.keyword} ${i.args}`;
const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
/** What `edgeban health` waits for the daemon before giving up (src/cli/health-command.ts). */
const HEALTH_COMMAND_TIMEOUT_MS = 5_000;
const PACKAGE_INSTALL = /\b(?:npm|pnpm|yarn)\s+(?:ci|install|i|add)\b|\bapt(?:-get)?\s+install\b|\bpip3?\s+install\b|\bapk\s+add\b/;

function workdirAt(stage: Stage, instruction: Instruction): string {
  let dir = '/';
  for (const i of stage.instructions) {
    if (i === instruction) break;
    if (i.keyword === 'WORKDIR') dir = path.posix.resolve(dir, i.args);
  }
  return dir;
}

test('Dockerfile: a build stage, then a fresh node 24 Debian slim final stage', () => {
  assert.ok(stages.length >= 2, `multi-stage expected, found ${stages.length} FROM`);
  assert.match(final.image, /^node:24(?:\.\d+){0,2}-(?:bookworm|trixie)-slim(?:@sha256:[0-9a-f]{64})?$/, `final base image ${final.image}`);
  assert.ok(
    !earlier.some((s) => s.name !== null && s.name === final.image),
    'the final stage must start from a base image, not from the build stage (which holds dev dependencies)',
  );
  const builder = earlier.find((s) => all(s, 'RUN').some((r) => /\bnpm run build\b/.test(r.args)));
  assert.ok(builder, 'a stage runs `npm run build`');
  assert.match(builder.image, /^node:24\b/, 'the bundle is built by the Node major it runs on');
  assert.ok(
    all(builder, 'RUN').some((r) => /\bnpm ci\b/.test(r.args) && !/--omit[= ]dev|--production/.test(r.args)),
    'the build stage installs dev dependencies (esbuild) with npm ci',
  );
});

test('Dockerfile: the final stage carries the bundle, filters and actions only, and installs nothing', () => {
  const copies = all(final, 'COPY');
  const fromStages = copies.filter((c) => c.flags.from !== undefined);
  assert.ok(fromStages.length > 0, 'the bundle is copied from the build stage');
  for (const copy of copies) {
    assert.ok(!/node_modules/.test(copy.args), `${where(copy)}: no node_modules in the final image (the bundle holds the production dependencies)`);
    const sources = copy.args.split(/\s+/).slice(0, -1);
    assert.ok(!sources.some((s) => s === '.' || s === './'), `${where(copy)}: the whole context must not be copied`);
    if (copy.flags.from !== undefined) {
      assert.ok(
        earlier.some((s) => s.name === copy.flags.from),
        `${where(copy)}: --from names an earlier stage`,
      );
      assert.ok(
        sources.every((s) => /\/dist\/?$/.test(s)),
        `${where(copy)}: only the bundle (dist/) comes from the build stage`,
      );
    } else {
      assert.ok(
        sources.every((s) => /^(?:\.\/)?(?:filters|actions)\/?$/.test(s)),
        `${where(copy)}: from the context only filters/ and actions/`,
      );
    }
  }
  for (const run of all(final, 'RUN')) assert.doesNotMatch(run.args, PACKAGE_INSTALL, `${where(run)}: no package installs in the final stage`);
  assert.equal(instructions.filter((i) => i.keyword === 'ADD').length, 0, 'COPY only: ADD fetches URLs and unpacks archives implicitly');
  assert.ok(!instructions.some((i) => /\b(?:https?|git|ftp):\/\//.test(i.args) && ['ADD', 'COPY'].includes(i.keyword)), 'nothing fetched from a URL');
});

test('Dockerfile: the entrypoint runs the bundle the build produces, with node as PID 1; filters/ and actions/ sit where the bundle looks for them', () => {
  const entrypoints = all(final, 'ENTRYPOINT');
  assert.equal(entrypoints.length, 1, 'one ENTRYPOINT');
  const entrypoint = entrypoints[0]!;
  assert.ok(entrypoint.exec, `${where(entrypoint)}: exec form (JSON array): a shell as PID 1 would not pass SIGTERM on`);
  const [node, ...nodeArgs] = entrypoint.exec;
  assert.match(node!, /^\/usr\/local\/bin\/node$/, 'node itself is PID 1');
  const bundle = nodeArgs.find((a) => !a.startsWith('-'));
  // biome-ignore lint/complexity/useOptionalChain: the && narrows bundle to a string for the lines below
  assert.ok(bundle && bundle.endsWith(`/${BUNDLE_ENTRY}`), `the entrypoint runs ${BUNDLE_ENTRY}, the build's output`);
  const cmd = all(final, 'CMD').at(-1);
  assert.deepEqual(cmd?.exec, ['run'], 'CMD ["run"]: the daemon by default');

  // The bundle's directory must be where the final stage copies dist/, and filters/ and actions/
  // must be in its parent: deploy/docker/build.ts defines the package root as the bundle's "..".
  const distCopy = all(final, 'COPY').find((c) => c.flags.from !== undefined)!;
  const distDir = path.posix.resolve(workdirAt(final, distCopy), distCopy.args.split(/\s+/).at(-1)!);
  assert.equal(path.posix.dirname(bundle), distDir, 'the entrypoint runs the copied dist/');
  const builtIn = earlier.find((s) => s.name === distCopy.flags.from)!;
  const buildRun = all(builtIn, 'RUN').find((r) => /\bnpm run build\b/.test(r.args))!;
  assert.equal(
    path.posix.resolve(workdirAt(builtIn, buildRun), 'dist'),
    distCopy.args.split(/\s+/)[0]!.replace(/\/$/, ''),
    'dist/ is copied from where npm run build writes it',
  );
  const packageRoot = path.posix.dirname(distDir);
  for (const dir of ['filters', 'actions']) {
    const copy = all(final, 'COPY').find((c) => c.args.split(/\s+/)[0]!.replace(/^\.\/|\/$/g, '') === dir);
    assert.ok(copy, `${dir}/ copied into the image`);
    assert.equal(path.posix.resolve(workdirAt(final, copy), copy.args.split(/\s+/).at(-1)!), `${packageRoot}/${dir}`, `${dir}/ next to dist/`);
  }
  assert.ok(!all(final, 'STOPSIGNAL').some((s) => s.args !== 'SIGTERM'), 'the daemon stops cleanly on SIGTERM');
});

test('Dockerfile: runs as a numeric non-root user, state and socket under the /data volume', () => {
  const user = all(final, 'USER').at(-1);
  assert.ok(user, 'a USER in the final stage (the base image runs as root)');
  const match = /^(\d+)(?::(\d+))?$/.exec(user.args);
  assert.ok(match, `${where(user)}: numeric uid[:gid], so runAsNonRoot can verify it without /etc/passwd`);
  assert.notEqual(Number(match[1]), 0, 'uid is not root');
  if (match[2] !== undefined) assert.notEqual(Number(match[2]), 0, 'gid is not root');
  const lastUser = final.instructions.lastIndexOf(user);
  assert.ok(!final.instructions.slice(lastUser).some((i) => i.keyword === 'USER' && i !== user), 'no later USER');

  const volumes = all(final, 'VOLUME').flatMap((v) => v.exec ?? v.args.split(/\s+/));
  assert.ok(volumes.includes('/data'), 'VOLUME /data');
  const env = Object.fromEntries(
    all(final, 'ENV').flatMap((e) => [...e.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')])),
  );
  assert.equal(env.EDGEBAN_DATA_DIR, '/data', 'ENV EDGEBAN_DATA_DIR=/data');
  if (env.EDGEBAN_CONTROL_SOCKET !== undefined) assert.match(env.EDGEBAN_CONTROL_SOCKET, /^\/data\//, 'the control socket lives in /data');
  if (env.EDGEBAN_CONFIG_DIR !== undefined) assert.match(env.EDGEBAN_CONFIG_DIR, /^\/data\b/, 'config in /data, as in the fail2ban images');
  // The anonymous volume is initialized from the image: /data must belong to the runtime user.
  const uid = match[1]!;
  assert.ok(
    all(final, 'RUN').some((r) => new RegExp(`\\bchown\\s+(?:-R\\s+)?${uid}(?::\\d+)?\\s+/data\\b`).test(r.args)),
    `/data owned by uid ${uid} in the image`,
  );
});

test('Dockerfile: HEALTHCHECK asks the daemon with `edgeban health`, and gives it longer than its own timeout', () => {
  const checks = all(final, 'HEALTHCHECK');
  assert.equal(checks.length, 1, 'one HEALTHCHECK');
  const check = checks[0]!;
  const { exec } = healthcheckCommand(check);
  assert.ok(exec, `${where(check)}: CMD in exec form`);
  const entrypoint = all(final, 'ENTRYPOINT')[0]!.exec!;
  const bundle = entrypoint.find((a, i) => i > 0 && !a.startsWith('-'));
  assert.equal(exec[0], entrypoint[0], 'the same node');
  assert.equal(
    exec.find((a, i) => i > 0 && !a.startsWith('-')),
    bundle,
    'the same bundle',
  );
  assert.equal(exec.at(-1), 'health', 'the health command');
  const timeoutMs = durationMs(check.flags.timeout ?? '30s');
  assert.ok(
    timeoutMs > HEALTH_COMMAND_TIMEOUT_MS,
    `--timeout ${check.flags.timeout} must exceed edgeban health's own ${HEALTH_COMMAND_TIMEOUT_MS / 1000} s, so its one line is what Docker records`,
  );
  assert.ok(durationMs(check.flags.interval ?? '30s') >= timeoutMs, 'interval not shorter than the timeout');
});

test('Dockerfile: everything copied from the context exists and is not excluded by .dockerignore', () => {
  for (const stage of stages) {
    for (const copy of all(stage, 'COPY').filter((c) => c.flags.from === undefined)) {
      for (const source of copy.args.split(/\s+/).slice(0, -1)) {
        const rel = source.replace(/^\.\//, '').replace(/\/$/, '');
        assert.ok(existsSync(path.join(REPO, rel)), `${where(copy)}: ${rel} is not in the repository`);
        assert.ok(!isIgnored(dockerignore, rel), `${where(copy)}: ${rel} is excluded by .dockerignore, the build would fail`);
      }
    }
  }
});

test('.dockerignore keeps dependencies, history, tests, state and secrets out of the build context', () => {
  const mustExclude = [
    'node_modules/pino/package.json',
    'deploy/docker/node_modules/x',
    '.git/HEAD',
    'test/container/dockerfile.test.ts',
    'data/ledger.journal',
    '.data/ledger.journal',
    '.env',
    'dist/edgeban.mjs',
    'bench/results/results.json',
  ];
  for (const rel of mustExclude) assert.ok(isIgnored(dockerignore, rel), `.dockerignore lets ${rel} into the build context`);
  // The matcher itself: a file the build needs must stay in, or the checks above prove nothing.
  for (const rel of ['src/cli/main.ts', 'filters/dovecot.conf', 'deploy/docker/build.ts', 'package-lock.json']) {
    assert.ok(!isIgnored(dockerignore, rel), `.dockerignore drops ${rel}, which the build needs`);
  }
});

test('Dockerfile: edgeban and the fail2ban-client shim are on the PATH, linked to the launchers the build writes', () => {
  const distCopy = all(final, 'COPY').find((c) => c.flags.from !== undefined)!;
  const distDir = path.posix.resolve(workdirAt(final, distCopy), distCopy.args.split(/\s+/).at(-1)!);
  const runs = all(final, 'RUN')
    .map((r) => r.args)
    .join('\n');
  for (const name of Object.keys(SHIMS)) {
    assert.match(runs, new RegExp(`\\bln -s ${distDir}/bin/${name} /usr/local/bin/${name}\\b`), `${name} linked into /usr/local/bin (on node's image PATH)`);
  }
});
