import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { checkFirewallUrl, loadEnv } from '../../src/config/env.ts';
import { UserFacingError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const base = { OPNSENSE_URL: 'https://192.0.2.1', OPNSENSE_KEY: 'k'.repeat(20), OPNSENSE_SECRET: 's'.repeat(20) };

function rejectsNaming(env: Record<string, string>, variable: string, pattern?: RegExp): void {
  assert.throws(
    () => loadEnv({ env, envFile: '/nonexistent/.env' }),
    (error: unknown) => {
      assert.ok(error instanceof UserFacingError);
      assert.match(error.message, new RegExp(`${variable}:`));
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
}

test('defaults', () => {
  const env = loadEnv({ env: base, envFile: '/nonexistent/.env' });
  assert.equal(env.alias, 'fail2ban_blocklist');
  assert.equal(env.reconcileIntervalMs, 60_000);
  assert.equal(env.killStates, true);
  assert.equal(env.foreignPolicy, 'keep');
  assert.equal(env.apiConcurrency, 16);
  assert.equal(env.firewalls[0]?.tlsInsecure, false, 'TLS verified by default');
  assert.equal(env.configDir, env.dataDir, 'config dir defaults to the data volume, as in the fail2ban images');
});

test('several firewalls (an HA pair) from a comma-separated OPNSENSE_URL', () => {
  const env = loadEnv({ env: { ...base, OPNSENSE_URL: 'https://192.0.2.1, https://192.0.2.2/' }, envFile: '/nonexistent/.env' });
  assert.deepEqual(
    env.firewalls.map((f) => f.url),
    ['https://192.0.2.1', 'https://192.0.2.2'],
  );
});

test('plain http only towards loopback', () => {
  assert.equal(checkFirewallUrl('http://127.0.0.1:8443'), 'http://127.0.0.1:8443');
  assert.equal(checkFirewallUrl('http://[::1]:8443'), 'http://[::1]:8443');
  assert.equal(checkFirewallUrl('http://localhost:1'), 'http://localhost:1');
  rejectsNaming({ ...base, OPNSENSE_URL: 'http://192.0.2.1' }, 'OPNSENSE_URL', /only for loopback/);
  rejectsNaming({ ...base, OPNSENSE_URL: 'https://user:pw@192.0.2.1' }, 'OPNSENSE_URL', /not in the URL/);
  rejectsNaming({ ...base, OPNSENSE_URL: 'ftp://192.0.2.1' }, 'OPNSENSE_URL');
});

test('each bad variable is named', () => {
  rejectsNaming({ ...base, OPNSENSE_ALIAS: 'bad-name' }, 'OPNSENSE_ALIAS', /not a valid OPNsense alias name/);
  rejectsNaming({ ...base, OPNSENSE_ALIAS: 'a'.repeat(32) }, 'OPNSENSE_ALIAS');
  rejectsNaming({ ...base, EDGEBAN_RECONCILE_INTERVAL: '10s' }, 'EDGEBAN_RECONCILE_INTERVAL');
  rejectsNaming({ ...base, EDGEBAN_KILL_STATES: 'maybe' }, 'EDGEBAN_KILL_STATES');
  rejectsNaming({ ...base, EDGEBAN_FOREIGN_ENTRIES: 'steal' }, 'EDGEBAN_FOREIGN_ENTRIES');
  rejectsNaming({ ...base, OPNSENSE_TLS_INSECURE: 'sure' }, 'OPNSENSE_TLS_INSECURE');
  rejectsNaming({ OPNSENSE_URL: 'https://192.0.2.1' }, 'OPNSENSE_KEY');
  assert.throws(
    () => loadEnv({ env: { OPNSENSE_KEY: 'x', OPNSENSE_SECRET: 'y' }, envFile: '/nonexistent/.env', requireFirewall: true }),
    /OPNSENSE_URL: not set/,
  );
  rejectsNaming({ ...base, OPNSENSE_CA_FILE: '/nonexistent/ca.pem' }, 'OPNSENSE_CA_FILE');
});

test('OPNSENSE_URL is optional: jails may name their firewalls (building the targets says when one is missing)', () => {
  const env = loadEnv({ env: { EDGEBAN_DATA_DIR: '/tmp/edgeban-env-test' }, envFile: '/nonexistent/.env' });
  assert.deepEqual(env.firewalls, []);
});

test('secrets from files (Docker secrets), never both ways at once, and never echoed in errors', async (t) => {
  const dir = await tempDir(t);
  const keyFile = path.join(dir, 'key');
  const secretFile = path.join(dir, 'secret');
  await writeFile(keyFile, 'KEYFROMFILE0123\n');
  await writeFile(secretFile, 'SECRETFROMFILE0123\n');
  const env = loadEnv({ env: { OPNSENSE_URL: base.OPNSENSE_URL, OPNSENSE_KEY_FILE: keyFile, OPNSENSE_SECRET_FILE: secretFile }, envFile: '/nonexistent/.env' });
  assert.equal(env.firewalls[0]?.key, 'KEYFROMFILE0123');
  assert.equal(env.firewalls[0]?.secret, 'SECRETFROMFILE0123');
  assert.deepEqual(env.secrets, ['KEYFROMFILE0123', 'SECRETFROMFILE0123']);
  assert.throws(
    () => loadEnv({ env: { ...base, OPNSENSE_SECRET_FILE: secretFile, OPNSENSE_ALIAS: 'bad-' }, envFile: '/nonexistent/.env' }),
    (error: unknown) => {
      assert.match((error as Error).message, /OPNSENSE_SECRET: set both/);
      assert.ok(!(error as Error).message.includes(base.OPNSENSE_SECRET), 'the secret is not echoed');
      return true;
    },
  );
});

test('.env is read, and the real environment wins over it', async (t) => {
  const dir = await tempDir(t);
  const envFile = path.join(dir, '.env');
  await writeFile(envFile, 'OPNSENSE_URL=https://198.51.100.1\nOPNSENSE_KEY=fromfile\nOPNSENSE_SECRET=fromfile\nOPNSENSE_ALIAS=from_file\n');
  const env = loadEnv({ env: { OPNSENSE_ALIAS: 'from_env' }, envFile });
  assert.equal(env.firewalls[0]?.url, 'https://198.51.100.1');
  assert.equal(env.alias, 'from_env');
});

test('ledger store: file by default; redis with a URL, prefix and password (scrubbed from logs)', async (t) => {
  assert.deepEqual(loadEnv({ env: base, envFile: '/nonexistent/.env' }).ledger, { kind: 'file' });
  const redis = loadEnv({
    env: { ...base, EDGEBAN_LEDGER: 'redis', EDGEBAN_REDIS_URL: 'rediss://:s3cr%40t-pass@redis.example.org:6380/2' },
    envFile: '/nonexistent/.env',
  });
  assert.deepEqual(redis.ledger, {
    kind: 'redis',
    url: 'rediss://:s3cr%40t-pass@redis.example.org:6380/2',
    password: null,
    prefix: 'edgeban:',
    leaseTtlMs: 15_000,
  });
  assert.ok(
    redis.secrets.includes('s3cr%40t-pass') && redis.secrets.includes('s3cr@t-pass'),
    'the URL password, as written and decoded, is scrubbed from logs',
  );

  const dir = await tempDir(t);
  const passwordFile = path.join(dir, 'redis-password');
  await writeFile(passwordFile, 'from-a-docker-secret\n');
  const fromFile = loadEnv({
    env: {
      ...base,
      EDGEBAN_LEDGER: 'redis',
      EDGEBAN_REDIS_URL: 'redis://redis:6379',
      EDGEBAN_REDIS_PASSWORD_FILE: passwordFile,
      EDGEBAN_REDIS_PREFIX: 'edgeban:mail:',
    },
    envFile: '/nonexistent/.env',
  });
  assert.deepEqual(fromFile.ledger, {
    kind: 'redis',
    url: 'redis://redis:6379',
    password: 'from-a-docker-secret',
    prefix: 'edgeban:mail:',
    leaseTtlMs: 15_000,
  });
  assert.ok(fromFile.secrets.includes('from-a-docker-secret'));
});

test('ledger store: each bad variable is named, and a URL with a password is never echoed', () => {
  rejectsNaming({ ...base, EDGEBAN_LEDGER: 'postgres' }, 'EDGEBAN_LEDGER', /expected one of file, redis/);
  rejectsNaming({ ...base, EDGEBAN_LEDGER: 'redis' }, 'EDGEBAN_REDIS_URL', /required when EDGEBAN_LEDGER=redis/);
  rejectsNaming({ ...base, EDGEBAN_REDIS_URL: 'redis://redis:6379' }, 'EDGEBAN_REDIS_URL', /EDGEBAN_LEDGER is file/);
  rejectsNaming({ ...base, EDGEBAN_LEDGER: 'redis', EDGEBAN_REDIS_URL: 'http://redis:6379' }, 'EDGEBAN_REDIS_URL', /redis:\/\/ or rediss:\/\//);
  rejectsNaming({ ...base, EDGEBAN_LEDGER: 'redis', EDGEBAN_REDIS_URL: 'redis://redis:6379/db' }, 'EDGEBAN_REDIS_URL', /database number/);
  rejectsNaming({ ...base, EDGEBAN_LEDGER: 'redis', EDGEBAN_REDIS_URL: 'redis://redis:6379', EDGEBAN_REDIS_PREFIX: 'has space' }, 'EDGEBAN_REDIS_PREFIX');
  rejectsNaming(
    { ...base, EDGEBAN_LEDGER: 'redis', EDGEBAN_REDIS_URL: 'redis://:inurl-pass@redis:6379', EDGEBAN_REDIS_PASSWORD: 'also-here' },
    'EDGEBAN_REDIS_PASSWORD',
    /keep one/,
  );
  rejectsNaming(
    { ...base, EDGEBAN_LEDGER: 'redis', EDGEBAN_REDIS_URL: 'redis://redis:6379', EDGEBAN_REDIS_PASSWORD_FILE: '/nonexistent/pw' },
    'EDGEBAN_REDIS_PASSWORD_FILE',
  );
  assert.throws(
    () => loadEnv({ env: { ...base, EDGEBAN_LEDGER: 'redis', EDGEBAN_REDIS_URL: 'redis://:hunter2-secret@redis:6379/bad' }, envFile: '/nonexistent/.env' }),
    (error: unknown) => {
      assert.ok(error instanceof UserFacingError);
      assert.doesNotMatch(error.message, /hunter2-secret/);
      return true;
    },
  );
});
