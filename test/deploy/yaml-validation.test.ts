import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFile, mkdir } from 'node:fs/promises';
import { tempDir } from '../helpers/temp-dir.ts';
import { DEPLOY_DIR, findYamlFiles, loadDeployFiles, parseYamlFile } from './deploy-files.ts';
import { composeValidator, describeErrors } from './compose-schema.ts';
import { validateManifest } from './kubernetes-models.ts';

const files = loadDeployFiles();
const validateCompose = composeValidator();

test('the walk finds every YAML file below deploy/, each parses, each is a Compose file or a Kubernetes manifest', () => {
  const rels = files.map((f) => path.relative(DEPLOY_DIR, f.abs));
  for (const expected of [
    'compose/mail/compose.yaml',
    'compose/web/compose.yaml',
    'kubernetes/daemonset/daemonset.yaml',
    'kubernetes/sidecar/deployment.yaml',
    'kubernetes/secret.yaml',
  ]) {
    assert.ok(rels.includes(expected), `${expected} not found by the walk (found: ${rels.join(', ')})`);
  }
  for (const file of files) {
    assert.notEqual(
      file.kind,
      'other',
      `${file.rel}: YAML outside deploy/compose and deploy/kubernetes is not validated by any schema; put it under one of them or add its validator`,
    );
    assert.ok(file.docs.length > 0, `${file.rel}: no YAML document`);
  }
});

test('the walk descends into new folders and picks up .yml as well as .yaml', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'a/b'), { recursive: true });
  await writeFile(path.join(dir, 'a/b/new.yml'), 'x: 1\n');
  await writeFile(path.join(dir, 'a/top.yaml'), 'y: 2\n');
  await writeFile(path.join(dir, 'a/notes.md'), '# no\n');
  assert.deepEqual(
    findYamlFiles(dir).map((f) => path.relative(dir, f)),
    ['a/b/new.yml', 'a/top.yaml'],
  );
});

test('a YAML syntax error or a duplicate key fails with the file name', async (t) => {
  const dir = await tempDir(t);
  const bad = path.join(dir, 'dup.yaml');
  await writeFile(bad, 'services:\n  a:\n    image: x\n  a:\n    image: y\n');
  assert.throws(() => parseYamlFile(bad), /dup\.yaml/);
  await writeFile(bad, 'services: [\n');
  assert.throws(() => parseYamlFile(bad), /dup\.yaml/);
});

for (const file of files.filter((f) => f.kind === 'compose')) {
  test(`${file.rel} validates against the Compose Specification schema`, () => {
    assert.equal(file.docs.length, 1, 'a Compose file holds one document');
    const valid = validateCompose(file.docs[0]);
    assert.ok(valid, `${file.rel}:\n${describeErrors(validateCompose.errors)}`);
  });
}

for (const file of files.filter((f) => f.kind === 'kubernetes')) {
  test(`${file.rel} validates against the Kubernetes schemas (kubernetes-models)`, () => {
    file.docs.forEach((doc, index) => {
      assert.doesNotThrow(
        () => validateManifest(doc),
        (error: unknown) => {
          throw new Error(`${file.rel} document ${index + 1}: ${(error as Error).message}`);
        },
      );
    });
  });
}

test('the validators reject broken files (so a pass means something)', () => {
  const compose = files.find((f) => f.rel.endsWith(path.join('web', 'compose.yaml')));
  assert.ok(compose);
  const service = (overrides: Record<string, unknown>) => ({ services: { edgeban: { image: 'ghcr.io/edgeban/edgeban:latest', ...overrides } } });
  assert.equal(validateCompose(service({})), true);
  assert.equal(validateCompose(service({ cap_drop: 'ALL' })), false, 'cap_drop must be a list');
  assert.equal(validateCompose(service({ readonly: true })), false, 'a misspelled key (readonly) is rejected');
  assert.equal(validateCompose(service({ volumes: [{ type: 'bind', source: '.', target: '/x', read_only: true, mode: 'ro' }] })), false);
  assert.equal(validateCompose({ servics: {} }), false, 'unknown top-level key');

  const daemonSet = files.flatMap((f) => f.docs).find((d) => (d as { kind?: string }).kind === 'DaemonSet');
  assert.ok(daemonSet);
  const broken = structuredClone(daemonSet) as { spec: { template: { spec: { containers: Array<{ securityContext: Record<string, unknown> }> } } } };
  const container = broken.spec.template.spec.containers[0];
  assert.ok(container);
  container.securityContext.runAsUser = 'nobody';
  assert.throws(() => validateManifest(broken), /runAsUser/);
  assert.throws(() => validateManifest({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } }), /no validator/);
  assert.throws(() => validateManifest({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'x' }, spec: { template: {} } }), /selector/);
});
