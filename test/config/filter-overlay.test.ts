import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadFilter, type ConfigDirs } from '../../src/config/fail2ban/filter-definition.ts';
import { tempConfig } from './fixtures.ts';

// Shipped filters/ and a user's config dir side by side in one temp dir.
const FILES: Record<string, string> = {
  'shipped/filters/common.conf': '[DEFAULT]\n_prefix = ^\\S+ %(_daemon)s\\[\\d+\\]:\\s\n_daemon = \\S+\n',
  'shipped/filters/mail.conf': [
    '[INCLUDES]',
    'before = common.conf',
    '[Definition]',
    '_daemon = mail',
    'failregex = %(_prefix)sshipped auth failure from <HOST>$',
    '            <extra-<mode>>',
    'extra-normal =',
    'extra-aggressive = %(_prefix)sshipped probe from <HOST>$',
    'mode = normal',
  ].join('\n'),
  'shipped/filters/web.conf': '[Definition]\nfailregex = ^<HOST> shipped web$\n',
  'shipped/filters/web.local': '[Definition]\nignoreregex = ^<HOST> shipped ignore$\n',
  // The user replaces web.conf entirely, and layers a .local over the shipped mail.conf.
  'user/filter.d/web.conf': '[Definition]\nfailregex = ^<HOST> user web$\n',
  'user/filter.d/mail.local': '[Definition]\nfailregex = %(known/failregex)s\n            %(_prefix)suser extra from <HOST>$\n',
  'user/filter.d/mine.conf': '[INCLUDES]\nbefore = common.conf\n[Definition]\n_daemon = mine\nfailregex = %(_prefix)smine from <HOST>$\n',
  'elsewhere/custom.conf': '[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = %(_prefix)scustom <HOST> <mode>\n[Init]\nmode = quiet\n',
  'elsewhere/custom.local': '[Init]\nmode = loud\n',
};

let root = '';
let cleanup = async (): Promise<void> => {};
let dirs: ConfigDirs;
before(async () => {
  ({ dir: root, cleanup } = await tempConfig(FILES));
  dirs = { configDir: path.join(root, 'user'), shippedFilterDir: path.join(root, 'shipped/filters'), shippedActionDir: path.join(root, 'shipped/actions') };
});
after(() => cleanup());

const patterns = (list: { pattern: string }[]): string[] => list.map((r) => r.pattern);

test('shipped filter with a user .local layered on top (known/ refers to the shipped value)', async () => {
  const f = await loadFilter('mail', dirs);
  assert.equal(f.file, path.join(root, 'shipped/filters/mail.conf'));
  assert.deepEqual(patterns(f.failregex), ['^\\S+ mail\\[\\d+\\]:\\sshipped auth failure from <HOST>$', '^\\S+ mail\\[\\d+\\]:\\suser extra from <HOST>$']);
  assert.equal(f.failregex[1]?.source.file, path.join(root, 'user/filter.d/mail.local'));
  assert.equal(f.failregex[1]?.source.line, 3);
  const aggressive = await loadFilter('mail[mode=aggressive]', dirs);
  assert.deepEqual(patterns(aggressive.failregex), [
    '^\\S+ mail\\[\\d+\\]:\\sshipped auth failure from <HOST>$',
    '^\\S+ mail\\[\\d+\\]:\\sshipped probe from <HOST>$',
    '^\\S+ mail\\[\\d+\\]:\\suser extra from <HOST>$',
  ]);
});

test('a user filter.d file of the same name overrides the shipped one; .local files of both layers still apply', async () => {
  const f = await loadFilter('web', dirs);
  assert.equal(f.file, path.join(root, 'user/filter.d/web.conf'));
  assert.deepEqual(patterns(f.failregex), ['^<HOST> user web$']);
  assert.deepEqual(patterns(f.ignoreregex), ['^<HOST> shipped ignore$']);
});

test('a user filter may include a common.conf that only edgeban ships', async () => {
  const f = await loadFilter('mine', dirs);
  assert.deepEqual(patterns(f.failregex), ['^\\S+ mine\\[\\d+\\]:\\smine from <HOST>$']);
});

test('without a config dir only the shipped filters are used', async () => {
  const f = await loadFilter('web', { shippedFilterDir: dirs.shippedFilterDir, shippedActionDir: dirs.shippedActionDir });
  assert.deepEqual(patterns(f.failregex), ['^<HOST> shipped web$']);
  await assert.rejects(loadFilter('mine', { shippedFilterDir: dirs.shippedFilterDir, shippedActionDir: dirs.shippedActionDir }), /filter "mine" not found/);
});

test('a filter file by path: its .local, [Init] defaults, spec options over [Init], includes found in the layers', async () => {
  const file = path.join(root, 'elsewhere/custom.conf');
  assert.deepEqual(patterns((await loadFilter(file, dirs)).failregex), ['^\\S+ \\S+\\[\\d+\\]:\\scustom <HOST> loud']);
  assert.deepEqual(patterns((await loadFilter(`${file}[mode=silent]`, dirs)).failregex), ['^\\S+ \\S+\\[\\d+\\]:\\scustom <HOST> silent']);
});
