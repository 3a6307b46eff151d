import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * Whether this process runs in a container, from what the runtimes leave behind: Docker's
 * /.dockerenv, Podman's /run/.containerenv, Kubernetes' service variables, the `container`
 * variable systemd-nspawn and Podman set, or being PID 1 (an image's entrypoint). Used only to
 * pick a default (the /data volume); anything that matters is set explicitly.
 */
export function runsInContainer(probe: { root?: string; pid?: number; env?: NodeJS.ProcessEnv } = {}): boolean {
  const root = probe.root ?? '/';
  const env = probe.env ?? process.env;
  if ((probe.pid ?? process.pid) === 1) return true;
  if (env.KUBERNETES_SERVICE_HOST || env.container) return true;
  return existsSync(path.join(root, '.dockerenv')) || existsSync(path.join(root, 'run/.containerenv'));
}
