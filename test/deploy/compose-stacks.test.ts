import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadDeployFiles, isRecord, knownEnvNames, REPO } from './deploy-files.ts';
import { loadJailLocal } from './jail-check.ts';
import { parseDuration } from '../../src/config/fail2ban/duration.ts';

/** Security and wiring of the Compose stacks beyond what the schema can say. */

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}
type Service = Record<string, unknown>;

const stacks = loadDeployFiles().filter((f) => f.kind === 'compose' && /compose\.ya?ml$/.test(f.abs));

function services(doc: unknown): Record<string, Service> {
  assert.ok(isRecord(doc) && isRecord(doc.services));
  return doc.services as Record<string, Service>;
}

/** Short syntax SOURCE:TARGET[:MODE] and the long syntax, normalized (trailing slashes dropped). */
function mounts(service: Service): Mount[] {
  const strip = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') : p);
  return ((service.volumes as unknown[] | undefined) ?? []).map((entry) => {
    if (typeof entry === 'string') {
      const [source = '', target = '', mode = ''] = entry.split(':');
      return { source: strip(source), target: strip(target), readOnly: mode.split(',').includes('ro') };
    }
    assert.ok(isRecord(entry));
    return { source: strip(String(entry.source ?? '')), target: strip(String(entry.target)), readOnly: entry.read_only === true };
  });
}

function env(service: Service): Record<string, string> {
  const raw = service.environment;
  if (Array.isArray(raw)) return Object.fromEntries(raw.map((line: string) => [line.split('=')[0], line.slice(line.indexOf('=') + 1)]));
  return isRecord(raw) ? Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, String(v)])) : {};
}

function labels(service: Service): Map<string, string> {
  const raw = service.labels;
  const pairs: Array<[string, string]> = Array.isArray(raw)
    ? raw.map((l: string) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])
    : Object.entries(isRecord(raw) ? raw : {}).map(([k, v]) => [k, String(v)]);
  return new Map(pairs);
}

/** The edgeban services of a stack by name: one, or two replicas on the shared ledger (cluster). */
function edgebanServices(doc: unknown): Array<[string, Service]> {
  const found = Object.entries(services(doc)).filter(([, s]) => String(s.image).startsWith('ghcr.io/edgeban/edgeban:'));
  assert.ok(found.length > 0, 'an edgeban service in every stack');
  return found;
}

function edgebanService(doc: unknown): Service {
  const found = edgebanServices(doc);
  assert.equal(found.length, 1, 'one edgeban service in this stack');
  return found[0]![1];
}

test('the Compose stacks are the mail, the web and the cluster stack', () => {
  assert.deepEqual(
    stacks.map((s) => s.rel).sort(),
    ['cluster', 'mail', 'web'].map((name) => path.join(`deploy/compose/${name}/compose.yaml`)),
  );
});

for (const stack of stacks) {
  const doc = stack.docs[0];
  const stackDir = path.dirname(stack.abs);
  for (const [name, edgeban] of edgebanServices(doc)) {
    const label = `${stack.rel} ${name}`;

    test(`${label}: edgeban runs with no capability, a read-only root, no-new-privileges, nothing privileged`, () => {
      assert.deepEqual(edgeban.cap_drop, ['ALL']);
      assert.equal(edgeban.cap_add, undefined);
      assert.equal(edgeban.read_only, true);
      assert.ok((edgeban.security_opt as string[]).includes('no-new-privileges:true'));
      assert.notEqual(edgeban.privileged, true);
      assert.equal(edgeban.network_mode, undefined, 'no host network');
      assert.equal(edgeban.user ?? '65534', '65534', 'runs as the image user 65534, not root');
      // Only edgeban is held to the full set: docker-mailserver needs root and Postfix's setgid postdrop.
      for (const [name, s] of Object.entries(services(doc))) assert.notEqual(s.privileged, true, `${name} is privileged`);
    });

    test(`${label}: edgeban's image can be built from this checkout (build: beside image:)`, () => {
      const build = edgeban.build as { context: string; dockerfile?: string } | undefined;
      assert.ok(isRecord(build), 'build: with a context');
      const context = path.resolve(stackDir, build.context);
      assert.equal(context, REPO, 'the build context is the repository root');
      assert.ok(existsSync(path.join(context, build.dockerfile ?? 'Dockerfile')), 'the Dockerfile is there');
    });

    test(`${label}: the OPNsense key and secret are Docker secrets read through *_FILE, never inline`, () => {
      const vars = env(edgeban);
      const known = knownEnvNames();
      for (const name of Object.keys(vars)) assert.ok(known.has(name), `${name} is not read by edgeban (src/config/env.ts)`);
      assert.equal(vars.OPNSENSE_KEY, undefined);
      assert.equal(vars.OPNSENSE_SECRET, undefined);
      assert.match(vars.OPNSENSE_URL ?? '', /^\$\{OPNSENSE_URL/, 'the firewall URL comes from .env');
      assert.equal(vars.EDGEBAN_FOREIGN_ENTRIES ?? 'keep', 'keep');
      const granted = new Set((edgeban.secrets as string[]).map(String));
      const declared = (doc as { secrets: Record<string, { file?: string }> }).secrets;
      for (const variable of ['OPNSENSE_KEY_FILE', 'OPNSENSE_SECRET_FILE']) {
        const match = /^\/run\/secrets\/([\w.-]+)$/.exec(vars[variable] ?? '');
        assert.ok(match?.[1], `${variable} must point into /run/secrets`);
        assert.ok(granted.has(match[1]), `${variable}: secret ${match[1]} is not granted to edgeban`);
        assert.match(declared[match[1]]?.file ?? '', /^\.\/secrets\//, `${match[1]} comes from a file, not from the compose file or the environment`);
      }
      assert.doesNotMatch(readFileSync(stack.abs, 'utf8'), /OPNSENSE_(KEY|SECRET)\s*[:=]/);
    });

    test(`${label}: logs are folders mounted read-only under /remotelogs/<app>, written by the app into the same host folder; /data is a volume`, () => {
      const edgebanMounts = mounts(edgeban);
      const logMounts = edgebanMounts.filter((m) => m.target.startsWith('/remotelogs'));
      assert.ok(logMounts.length > 0);
      for (const m of logMounts) {
        assert.match(m.target, /^\/remotelogs\/[\w-]+$/, `${m.target}: one folder per app`);
        assert.ok(m.readOnly, `${m.target} must be read-only`);
        assert.doesNotMatch(m.source, /\.log$/, `${m.source}: mount the folder, not the file (rotation)`);
        const writers = Object.entries(services(doc)).filter(([, s]) => s !== edgeban && mounts(s).some((w) => w.source === m.source && !w.readOnly));
        assert.equal(writers.length, 1, `${m.source}: exactly one service writes the folder edgeban reads`);
      }
      const data = edgebanMounts.find((m) => m.target === '/data');
      assert.ok(data && !data.readOnly, '/data is writable');
      assert.ok(Object.keys((doc as { volumes: object }).volumes).includes(data.source), "/data is a named volume (starts with the image's 65534-owned /data)");
      for (const m of edgebanMounts)
        if (m.target !== '/data' && !m.target.startsWith('/data/')) assert.ok(m.readOnly || m.target === '/data', `${m.target} should be read-only`);
    });

    test(`${label}: jail.local loads with edgeban's reader and its enabled jails read the mounted logs`, async () => {
      const jailMount = mounts(edgeban).find((m) => m.target === '/data/jail.local');
      assert.ok(jailMount?.readOnly, 'jail.local mounted read-only at /data/jail.local');
      const loaded = await loadJailLocal(readFileSync(path.join(stackDir, jailMount.source), 'utf8'));
      const enabled = loaded.jails.filter((j) => j.enabled);
      const expected = stack.rel.includes(`${path.sep}mail${path.sep}`) ? ['dovecot', 'postfix'] : ['traefik'];
      assert.deepEqual(enabled.map((j) => j.name).sort(), expected);
      assert.deepEqual(loaded.unsupported, []);
      const logFolders = mounts(edgeban)
        .filter((m) => m.target.startsWith('/remotelogs/'))
        .map((m) => m.target);
      for (const jail of enabled) {
        assert.ok(jail.supported, `${jail.name}: every action runs in edgeban`);
        assert.deepEqual(
          jail.actions.map((a) => a.name),
          ['opnsense'],
          `${jail.name}: bans go to the OPNsense alias`,
        );
        for (const logpath of jail.logpath) {
          assert.ok(logFolders.includes(path.posix.dirname(logpath)), `${jail.name}: ${logpath} is not inside a mounted log folder (${logFolders.join(', ')})`);
        }
        assert.notEqual(parseDuration(jail.options['bantime.maxtime'] ?? ''), null);
      }
    });
  }
}

const mail = stacks.find((s) => s.rel.includes(`${path.sep}mail${path.sep}`));
const web = stacks.find((s) => s.rel.includes(`${path.sep}web${path.sep}`));

test('mail stack: every Traefik TCP route has a defined entrypoint and sends PROXY protocol v2 to a port Postfix or Dovecot expects it on', () => {
  assert.ok(mail);
  const doc = mail.docs[0];
  const all = services(doc);
  const traefik = all.traefik;
  const mailserver = all.mailserver;
  assert.ok(traefik && mailserver);
  assert.match(String(traefik.image), /^traefik:v3/);
  const entrypoints = new Map(
    (traefik.command as string[]).flatMap((c) => {
      const m = /^--entrypoints\.([\w-]+)\.address=:(\d+)$/.exec(c);
      return m ? [[m[1] as string, Number(m[2])]] : [];
    }),
  );
  assert.deepEqual(
    [...entrypoints.values()].sort((a, b) => a - b),
    [25, 465, 587, 993],
  );

  const l = labels(mailserver);
  const routers = [...l.keys()].flatMap((k) => /^traefik\.tcp\.routers\.([\w-]+)\.rule$/.exec(k)?.[1] ?? []);
  assert.equal(routers.length, 4);
  const backendPorts = new Map<number, number>();
  for (const router of routers) {
    const entrypoint = l.get(`traefik.tcp.routers.${router}.entrypoints`) ?? '';
    const publicPort = entrypoints.get(entrypoint);
    assert.ok(publicPort, `router ${router}: entrypoint ${entrypoint} is not defined in Traefik's command`);
    assert.equal(l.get(`traefik.tcp.routers.${router}.rule`), 'HostSNI(`*`)');
    const service = l.get(`traefik.tcp.routers.${router}.service`) ?? '';
    assert.equal(l.get(`traefik.tcp.services.${service}.loadbalancer.proxyProtocol.version`), '2', `service ${service}: PROXY protocol v2`);
    const port = Number(l.get(`traefik.tcp.services.${service}.loadbalancer.server.port`));
    assert.ok((mailserver.expose as string[]).includes(String(port)), `port ${port} exposed by the mail server`);
    backendPorts.set(publicPort, port);
  }

  const configDir = path.join(path.dirname(mail.abs), 'docker-mailserver');
  const master = readFileSync(path.join(configDir, 'postfix-master.cf'), 'utf8');
  // Port 25 is postscreen, 587 and 465 are smtpd (names from docker-mailserver's master.cf).
  assert.equal(backendPorts.get(25), 25);
  assert.match(master, /^smtp\/inet\/postscreen_upstream_proxy_protocol=haproxy$/m);
  assert.equal(backendPorts.get(587), 587);
  assert.match(master, /^submission\/inet\/smtpd_upstream_proxy_protocol=haproxy$/m);
  assert.equal(backendPorts.get(465), 465);
  assert.match(master, /^submissions\/inet\/smtpd_upstream_proxy_protocol=haproxy$/m);

  const dovecot = readFileSync(path.join(configDir, 'dovecot.cf'), 'utf8');
  const listener = /inet_listener\s+[\w-]+\s*\{([^}]*)\}/.exec(dovecot)?.[1] ?? '';
  assert.match(listener, new RegExp(`port\\s*=\\s*${backendPorts.get(993)}\\b`), 'Dovecot listens with PROXY protocol where Traefik sends imaps');
  assert.match(listener, /haproxy\s*=\s*yes/);
  const traefikAddress = (traefik.networks as Record<string, { ipv4_address: string }>).mail?.ipv4_address;
  assert.ok(traefikAddress);
  assert.match(
    dovecot,
    new RegExp(`^haproxy_trusted_networks\\s*=\\s*${traefikAddress.replaceAll('.', '\\.')}/32\\s*$`, 'm'),
    'Dovecot trusts PROXY headers from Traefik only',
  );
  assert.equal(env(mailserver).ENABLE_FAIL2BAN, '0', 'the in-container fail2ban is off: edgeban does the job');
  assert.equal(mailserver.ports, undefined, 'the mail server publishes nothing: clients come through Traefik');
  assert.ok(
    mounts(mailserver).some((m) => m.source === './docker-mailserver' && m.target === '/tmp/docker-mailserver'),
    'the PROXY snippets reach docker-mailserver',
  );
});

test("mail stack: edgeban reads mail.log's zone-less stamps in the mail server's time zone (one TZ for both)", () => {
  const doc = stacks.find((s) => s.rel.includes('mail'))!.docs[0];
  const edgeban = edgebanService(doc);
  const mailserver = services(doc).mailserver!;
  const tzOf = (service: Service) => (service.environment as Record<string, string>).TZ;
  assert.match(tzOf(mailserver) ?? '', /^\$\{TZ[:?}]/, "the mail server's TZ comes from .env");
  assert.equal(tzOf(edgeban), tzOf(mailserver), 'edgeban gets the same TZ');
  assert.match(readFileSync(path.join(REPO, 'deploy/compose/mail/.env.example'), 'utf8'), /^TZ=\S+$/m);
});

test('web stack: Traefik writes its access log as JSON into the folder edgeban reads', () => {
  assert.ok(web);
  const doc = web.docs[0];
  const traefik = services(doc).traefik;
  assert.ok(traefik);
  const command = traefik.command as string[];
  assert.ok(command.includes('--accesslog=true'));
  assert.ok(command.includes('--accesslog.format=json'), 'the traefik filter reads JSON (ClientHost, DownstreamStatus, StartUTC)');
  const filepath = command.find((c) => c.startsWith('--accesslog.filepath='))?.split('=')[1] ?? '';
  const logDir = mounts(traefik).find((m) => m.target === path.posix.dirname(filepath));
  assert.ok(logDir && !logDir.readOnly, `Traefik writes ${filepath} into a mounted folder`);
  const edgebanLogs = mounts(edgebanService(doc)).find((m) => m.target === '/remotelogs/traefik');
  assert.equal(edgebanLogs?.source, logDir.source);
  assert.ok(command.includes('--accesslog.fields.headers.defaultmode=drop'), 'no Authorization or cookies in the log');
});

test('the PROXY protocol snippets exist as files next to the mail stack', () => {
  for (const name of ['postfix-master.cf', 'dovecot.cf']) {
    assert.ok(readFileSync(path.join(REPO, 'deploy/compose/mail/docker-mailserver', name), 'utf8').length > 0);
  }
});

test('cluster stack: two edgeban replicas on one Redis ledger (appendonly, appendfsync always), each with its own data volume and its own log folder', () => {
  const cluster = stacks.find((s) => s.rel.includes(`${path.sep}cluster${path.sep}`));
  assert.ok(cluster);
  const doc = cluster.docs[0];
  const replicas = edgebanServices(doc).map(([, s]) => s);
  assert.equal(replicas.length, 2);
  for (const replica of replicas) {
    const vars = env(replica);
    assert.equal(vars.EDGEBAN_LEDGER, 'redis');
    assert.equal(vars.EDGEBAN_REDIS_URL, 'redis://redis:6379');
    assert.equal(vars.EDGEBAN_REDIS_PASSWORD_FILE, '/run/secrets/redis_password');
    assert.ok((replica.secrets as string[]).includes('redis_password'));
  }
  const [a, b] = replicas.map((r) => mounts(r));
  for (const target of ['/data', '/remotelogs/traefik']) {
    assert.notEqual(a!.find((m) => m.target === target)?.source, b!.find((m) => m.target === target)?.source, `${target} differs between the replicas`);
  }
  const redis = services(doc).redis;
  assert.ok(redis);
  const conf = mounts(redis).find((m) => m.target === '/usr/local/etc/redis/redis.conf');
  assert.ok(conf?.readOnly);
  const text = readFileSync(path.join(path.dirname(cluster.abs), conf.source), 'utf8');
  assert.match(text, /^appendonly yes$/m);
  assert.match(text, /^appendfsync always$/m);
  assert.doesNotMatch(readFileSync(cluster.abs, 'utf8'), /requirepass [^%]/, 'no password in the compose file');
});
