import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConfigFiles } from '../../src/config/fail2ban/config-files.ts';
import type { ConfigStore } from '../../src/config/fail2ban/config-store.ts';
import { textOf } from '../../src/config/fail2ban/sourced-text.ts';
import { runFail2banPython, tempConfig } from './fixtures.ts';

// A small tree using every interpolation feature, read by edgeban and by fail2ban's own reader.
const FILES: Record<string, string> = {
  'paths.conf': '[DEFAULT]\nlogdir = /var/log\nmaillog = %(logdir)s/mail.log\n',
  'paths.local': '[DEFAULT]\nlogdir = /srv/log\n',
  'main.conf': [
    '[INCLUDES]',
    'before = paths.conf',
    'after = extra.conf',
    '       missing-optional.local',
    '',
    '[DEFAULT]',
    'greeting = hello %(__name__)s',
    'percent = 100%%',
    '',
    '[alpha]',
    'port = ssh',
    'failregex = ^one$',
    '            ^two %(port)s$',
    'log = %(maillog)s',
    'mode = normal',
    'filter = %(__name__)s[mode=%(mode)s]',
    '',
    '[beta]',
    'port = %(alpha/log)s,imap',
    'shared = %(default/greeting)s!',
  ].join('\n'),
  'extra.conf': '[alpha]\nextra = yes\n',
  'main.local': [
    '[alpha]',
    'failregex = %(known/failregex)s',
    '            ^three$',
    'port = %(known/port)s,2222',
    'mode = aggressive',
    '',
    '[beta]',
    'fallback = %(known/greeting)s',
  ].join('\n'),
  'main.d/10-more.conf': '[gamma]\nx = %(percent)s\n',
};

let dir = '';
let cleanup = async (): Promise<void> => {};
before(async () => ({ dir, cleanup } = await tempConfig(FILES)));
after(() => cleanup());

function dump(store: ConfigStore): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const section of store.sectionNames().filter((s) => s !== 'INCLUDES')) {
    out[section] = Object.fromEntries(
      store
        .allOptions(section)
        .sort()
        .map((key) => [key, textOf(store.get(section, key))]),
    );
  }
  return out;
}

async function loadMain(): Promise<ConfigStore> {
  const files = new ConfigFiles([dir]);
  return (await files.load(await files.standardFiles('main'))).store;
}

test('interpolation: DEFAULT, section, %(known/…)s, %(section/key)s, %(default/key)s, %(__name__)s, %%', async () => {
  const v = dump(await loadMain());
  assert.equal(v.alpha?.failregex, '^one$\n^two ssh,2222$\n^three$');
  assert.equal(v.alpha?.port, 'ssh,2222');
  assert.equal(v.alpha?.log, '/srv/log/mail.log', 'paths.local overrides paths.conf, DEFAULT refs resolved late');
  assert.equal(v.alpha?.filter, 'alpha[mode=aggressive]');
  assert.equal(v.alpha?.extra, 'yes', 'after = include');
  assert.equal(v.beta?.port, '/srv/log/mail.log,imap', '%(section/key)s');
  assert.equal(v.beta?.shared, 'hello beta!');
  assert.equal(v.beta?.fallback, 'hello beta', 'known/ falls back to DEFAULT');
  assert.equal(v.gamma?.x, '100%', 'main.d/*.conf are read');
});

test("the result equals what fail2ban's ConfigReader makes of the same files", async () => {
  const script = `
import json, sys, logging
logging.disable(logging.CRITICAL)
from fail2ban.client.configreader import ConfigReaderUnshared
r = ConfigReaderUnshared(basedir=sys.argv[1])
r.read('main')
out = {}
for s in r.sections():
    if s.startswith('KNOWN/') or s == 'INCLUDES': continue
    out[s] = {k: r.get(s, k) for k in sorted(r.options(s))}
print(json.dumps(out))
`;
  assert.deepEqual(dump(await loadMain()), runFail2banPython(script, [dir]));
});

test('values remember the file and line of each piece after interpolation', async () => {
  const store = await loadMain();
  const lines = textOf(store.get('alpha', 'failregex')).split('\n');
  assert.equal(lines.length, 3);
  const pieces = store.get('alpha', 'failregex');
  const originOf = (needle: string): string => {
    const piece = pieces.find((p) => p.text.includes(needle));
    return piece ? `${piece.origin.file.slice(dir.length + 1)}:${piece.origin.line}` : '?';
  };
  assert.equal(originOf('^one$'), 'main.conf:12');
  assert.equal(originOf('^two'), 'main.conf:13');
  assert.equal(originOf('^three$'), 'main.local:3');
  assert.equal(originOf('2222'), 'main.local:4');
});

test('a raw value of another section is interpolated in the referring section (as fail2ban does)', async () => {
  const { dir: d, cleanup: c } = await tempConfig({
    'main.conf': '[alpha]\nport = ssh\n[beta]\nport = %(alpha/port)s,imap\n',
    'main.local': '[alpha]\nport = %(known/port)s,2222\n',
  });
  try {
    const files = new ConfigFiles([d]);
    const { store } = await files.load(await files.standardFiles('main'));
    assert.equal(textOf(store.get('alpha', 'port')), 'ssh,2222');
    // fail2ban: "option 'port' in section 'beta' contains an interpolation key 'known/port' …"
    assert.throws(
      () => store.get('beta', 'port'),
      (e: Error) => e.message.startsWith(`${d}/main.local:2: [alpha] port: unknown reference %(known/port)s`) && e.message.includes('(resolving [beta] port)'),
    );
  } finally {
    await c();
  }
});
