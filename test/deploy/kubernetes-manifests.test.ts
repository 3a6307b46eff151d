import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadDeployFiles, isRecord, knownEnvNames, REPO } from './deploy-files.ts';
import { loadJailLocal } from './jail-check.ts';

/** Security and wiring of the Kubernetes manifests beyond what the schemas can say. */

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}
interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  securityContext?: Record<string, unknown>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface Volume {
  name: string;
  [source: string]: unknown;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: Record<string, unknown>;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  hostPID?: boolean;
}

const files = loadDeployFiles().filter((f) => f.kind === 'kubernetes');
const objects = files.flatMap((f) => f.docs.map((d) => ({ file: f.rel, object: d as K8sObject })));
const podOwners = objects.filter(({ object }) => ['DaemonSet', 'Deployment', 'StatefulSet'].includes(object.kind));
/** The pods running edgeban (the others: the shared-ledger Redis). */
const workloads = podOwners.filter(({ object }) => edgebanContainers(podSpec(object)).length > 0);

function podSpec(workload: K8sObject): PodSpec {
  const spec = (workload.spec as { template: { spec: PodSpec } }).template.spec;
  assert.ok(isRecord(spec));
  return spec;
}

function edgebanContainers(spec: PodSpec): Container[] {
  return spec.containers.filter((c) => c.image.startsWith('ghcr.io/edgeban/edgeban:'));
}

function envOf(container: Container): Map<string, string | undefined> {
  return new Map((container.env ?? []).map((e) => [e.name, e.value]));
}

function volumeFor(spec: PodSpec, mountName: string): Volume {
  const volume = spec.volumes?.find((v) => v.name === mountName);
  assert.ok(volume, `volume ${mountName} is not defined`);
  return volume;
}

function find(kind: string, name: string): K8sObject | undefined {
  return objects.find(({ object }) => object.kind === kind && object.metadata.name === name)?.object;
}

test('there is a DaemonSet and a sidecar Deployment running edgeban', () => {
  const kinds = workloads
    .filter(({ object }) => edgebanContainers(podSpec(object)).length === 1)
    .map(({ object }) => object.kind)
    .sort();
  assert.deepEqual(kinds, ['DaemonSet', 'Deployment']);
});

for (const { file, object } of podOwners) {
  const label = `${file} ${object.kind}/${object.metadata.name}`;
  const spec = podSpec(object);

  test(`${label}: every container is non-root (numeric uid), read-only root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp`, () => {
    assert.notEqual(spec.hostNetwork, true);
    assert.notEqual(spec.hostPID, true);
    assert.equal(spec.automountServiceAccountToken, false, 'no Kubernetes API token in the pod');
    assert.deepEqual(spec.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
    for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
      const sc = container.securityContext ?? {};
      assert.equal(sc.runAsNonRoot, true, `${container.name}: runAsNonRoot`);
      assert.ok(
        Number.isInteger(sc.runAsUser) && (sc.runAsUser as number) > 0,
        `${container.name}: numeric non-zero runAsUser (runAsNonRoot cannot check a user name)`,
      );
      assert.equal(sc.readOnlyRootFilesystem, true, `${container.name}: readOnlyRootFilesystem`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${container.name}: allowPrivilegeEscalation`);
      assert.notEqual(sc.privileged, true, `${container.name}: privileged`);
      assert.deepEqual(sc.capabilities, { drop: ['ALL'] }, `${container.name}: drop ALL, add nothing`);
      assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' }, `${container.name}: seccomp`);
    }
    for (const edgeban of edgebanContainers(spec)) assert.equal(edgeban.securityContext?.runAsUser, 65534, 'edgeban runs as the image user');
  });
}

for (const { file, object } of workloads) {
  const label = `${file} ${object.kind}/${object.metadata.name}`;
  const spec = podSpec(object);

  test(`${label}: the API key and secret come from a Secret as files, and foreign alias entries are kept`, () => {
    const [edgeban] = edgebanContainers(spec);
    assert.ok(edgeban);
    const env = envOf(edgeban);
    const known = knownEnvNames();
    for (const name of env.keys()) assert.ok(known.has(name), `${name} is not read by edgeban (src/config/env.ts)`);
    assert.ok(!env.has('OPNSENSE_KEY') && !env.has('OPNSENSE_SECRET'), 'no key or secret in the environment');
    // Several nodes or replicas share one alias, each with its own ledger: only `keep` is safe.
    assert.equal(env.get('EDGEBAN_FOREIGN_ENTRIES') ?? 'keep', 'keep');
    for (const variable of ['OPNSENSE_KEY_FILE', 'OPNSENSE_SECRET_FILE']) {
      const file = env.get(variable) ?? '';
      const mount: { name: string; mountPath: string; readOnly?: boolean } | undefined = edgeban.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `${variable}=${file} is not inside a mounted volume`);
      assert.equal(mount.readOnly, true);
      const secret = volumeFor(spec, mount.name).secret as { secretName: string; defaultMode?: number } | undefined;
      assert.ok(secret, `${variable}: mounted from a Secret`);
      const manifest = find('Secret', secret.secretName);
      assert.ok(manifest, `Secret ${secret.secretName} is shipped (secret.yaml)`);
      const key = file.slice(mount.mountPath.length + 1);
      assert.ok(key in ((manifest.stringData ?? manifest.data) as object), `Secret ${secret.secretName} has key ${key}`);
      assert.equal((secret.defaultMode ?? 0o644) & 0o007, 0, 'Secret files are not world-readable');
    }
  });

  test(`${label}: logs are folders mounted read-only under /remotelogs/<app>; /data is writable; jail.local comes from a ConfigMap`, async () => {
    const [edgeban] = edgebanContainers(spec);
    assert.ok(edgeban);
    const mountsOf = edgeban.volumeMounts ?? [];
    const logMounts = mountsOf.filter((m) => m.mountPath.startsWith('/remotelogs/'));
    assert.ok(logMounts.length > 0);
    for (const m of logMounts) {
      assert.match(m.mountPath, /^\/remotelogs\/[\w-]+$/);
      assert.equal(m.readOnly, true, `${m.mountPath} read-only`);
      const volume = volumeFor(spec, m.name);
      const hostPath = volume.hostPath as { path: string } | undefined;
      assert.ok(hostPath || volume.emptyDir, `${m.mountPath}: a node folder (hostPath) or a folder shared in the pod (emptyDir)`);
      if (volume.emptyDir) {
        const writer = spec.containers.find((c) => c !== edgeban && c.volumeMounts?.some((w) => w.name === m.name && w.readOnly !== true));
        assert.ok(writer, `${m.mountPath}: the app container writes into the shared folder`);
      }
    }
    const data = mountsOf.find((m) => m.mountPath === '/data');
    assert.ok(data && data.readOnly !== true, '/data is writable');
    const dataVolume = volumeFor(spec, data.name);
    assert.ok(dataVolume.hostPath || dataVolume.persistentVolumeClaim, '/data survives pod restarts (the ledger)');

    const configDir = envOf(edgeban).get('EDGEBAN_CONFIG_DIR');
    const configMount = mountsOf.find((m) => m.mountPath === configDir);
    assert.ok(configMount?.readOnly, 'the config dir is mounted read-only');
    const configMapName = (volumeFor(spec, configMount.name).configMap as { name: string }).name;
    const configMap = find('ConfigMap', configMapName);
    assert.ok(configMap, `ConfigMap ${configMapName} is shipped`);
    const jailLocal = (configMap.data as Record<string, string>)['jail.local'];
    assert.ok(jailLocal);
    const loaded = await loadJailLocal(jailLocal);
    const enabled = loaded.jails.filter((j) => j.enabled);
    assert.deepEqual(
      enabled.map((j) => j.name),
      [object.kind === 'DaemonSet' ? 'traefik' : 'nginx'],
    );
    assert.deepEqual(loaded.unsupported, []);
    for (const jail of enabled) {
      assert.ok(jail.supported);
      for (const logpath of jail.logpath) {
        const mount = logMounts.find((m) => logpath.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${jail.name}: ${logpath} is not in a mounted log folder`);
        // Container runtime logs are CRI-wrapped: a jail reading them must unwrap them.
        const hostPath = volumeFor(spec, mount.name).hostPath as { path: string } | undefined;
        if (hostPath && /^\/var\/log\/(containers|pods)\b/.test(hostPath.path))
          assert.match(jail.options.logformat ?? 'plain', /^(cri|auto)$/, `${jail.name}: logformat = cri for ${hostPath.path}`);
      }
    }
  });
}

test('the DaemonSet and the sidecar say why EDGEBAN_FOREIGN_ENTRIES must stay keep', () => {
  for (const { file } of workloads) {
    assert.match(readFileSync(path.join(REPO, file), 'utf8'), /EDGEBAN_FOREIGN_ENTRIES must stay\s+(?:#\s*)?`keep`/, file);
  }
});

test('every object lives in one namespace that enforces the restricted Pod Security Standard', () => {
  const namespace = find('Namespace', 'edgeban');
  assert.ok(namespace, 'a Namespace edgeban');
  assert.equal((namespace.metadata as { labels?: Record<string, string> }).labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  for (const { file, object } of objects)
    if (object.kind !== 'Namespace') assert.equal(object.metadata.namespace, 'edgeban', `${file} ${object.kind}/${object.metadata.name}`);
});
