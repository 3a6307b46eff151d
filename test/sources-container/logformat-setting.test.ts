// The jail option logformat: default plain, the four values (any case), a bad value is a
// ConfigError naming file, line and key.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { ConfigError } from '../../src/config/fail2ban/config-error.ts';
import { loadJails, type JailDefinition } from '../../src/config/fail2ban/jail-definition.ts';
import { jailSettings } from '../../src/jails/settings.ts';
import { REPO, SHIPPED_ACTIONS, tempConfig } from '../config/fixtures.ts';

const ENV = { alias: 'fail2ban_blocklist', firewalls: [] };

async function load(t: TestContext, jailLocal: string): Promise<{ dir: string; jails: JailDefinition[] }> {
  const { dir, cleanup } = await tempConfig({ 'jail.local': jailLocal });
  t.after(cleanup);
  const loaded = await loadJails({ configDir: dir, shippedFilterDir: path.join(REPO, 'filters'), shippedActionDir: SHIPPED_ACTIONS });
  return { dir, jails: loaded.jails.filter((j) => j.enabled) };
}

function settingsOf(jails: JailDefinition[], name: string): ReturnType<typeof jailSettings> {
  const jail = jails.find((j) => j.name === name);
  assert.ok(jail, name);
  return jailSettings(jail, ENV);
}

test('logformat: plain by default; docker, cri, auto (any case) from the jail or [DEFAULT]', async (t) => {
  const { jails } = await load(
    t,
    [
      '[DEFAULT]',
      'logformat = CRI',
      '',
      '[dovecot]',
      'enabled = true',
      'logformat = plain',
      '',
      '[postfix]',
      'enabled = true',
      'logformat = Docker ',
      '',
      '[traefik]',
      'enabled = true',
      '',
      '[nginx]',
      'enabled = true',
      'logformat = auto',
      '',
    ].join('\n'),
  );
  assert.deepEqual(
    ['dovecot', 'postfix', 'traefik', 'nginx'].map((name) => settingsOf(jails, name).logformat),
    ['plain', 'docker', 'cri', 'auto'],
  );
  const { jails: bare } = await load(t, '[dovecot]\nenabled = true\n');
  assert.equal(settingsOf(bare, 'dovecot').logformat, 'plain');
});

test('logformat: a bad value is a ConfigError at file:line:key listing the values', async (t) => {
  const { dir, jails } = await load(t, '[dovecot]\nenabled = true\nlogformat = journald\n');
  assert.throws(
    () => settingsOf(jails, 'dovecot'),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(`${error.file}:${error.line}:${error.key}`, `${path.join(dir, 'jail.local')}:3:logformat`);
      assert.match(error.message, /one of plain, docker, cri, auto .*not "journald" \(jail dovecot\)/);
      return true;
    },
  );
});
