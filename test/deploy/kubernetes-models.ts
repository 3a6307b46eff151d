import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { isRecord } from './deploy-files.ts';

/** The kubernetes-models class of each kind the manifests use; an unlisted kind fails the test. */
const MODELS: Record<string, { apiVersion: string; create: (data: unknown) => { validate(): void } }> = {
  DaemonSet: { apiVersion: 'apps/v1', create: (d) => new DaemonSet(d as never) },
  Deployment: { apiVersion: 'apps/v1', create: (d) => new Deployment(d as never) },
  StatefulSet: { apiVersion: 'apps/v1', create: (d) => new StatefulSet(d as never) },
  ConfigMap: { apiVersion: 'v1', create: (d) => new ConfigMap(d as never) },
  Namespace: { apiVersion: 'v1', create: (d) => new Namespace(d as never) },
  PersistentVolumeClaim: { apiVersion: 'v1', create: (d) => new PersistentVolumeClaim(d as never) },
  Secret: { apiVersion: 'v1', create: (d) => new Secret(d as never) },
  Service: { apiVersion: 'v1', create: (d) => new Service(d as never) },
};

/** Validates one manifest against the Kubernetes OpenAPI schema of its kind; throws naming the problem. */
export function validateManifest(doc: unknown): void {
  if (!isRecord(doc) || typeof doc.kind !== 'string' || typeof doc.apiVersion !== 'string') {
    throw new Error('not a Kubernetes object (apiVersion and kind required)');
  }
  const model = MODELS[doc.kind];
  if (!model) throw new Error(`kind ${doc.kind} has no validator here; add its kubernetes-models class to MODELS`);
  if (doc.apiVersion !== model.apiVersion) throw new Error(`${doc.kind}: apiVersion ${doc.apiVersion}, expected ${model.apiVersion}`);
  model.create(doc).validate();
}
