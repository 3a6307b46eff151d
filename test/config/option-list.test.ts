import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration } from '../../src/config/fail2ban/duration.ts';
import { extractOptions, OptionSyntaxError, splitWithOptions } from '../../src/config/fail2ban/option-list.ts';
import { runFail2banPython } from './fixtures.ts';

test('name[opt=val, …] with fail2ban quoting: "…" and \'…\' may hold commas and brackets', () => {
  assert.deepEqual(extractOptions('dovecot'), { name: 'dovecot', options: {} });
  assert.deepEqual(extractOptions('dovecot[mode=aggressive]'), { name: 'dovecot', options: { mode: 'aggressive' } });
  assert.deepEqual(extractOptions(`opnsense[firewall="192.0.2.1", key="a,b]c", secret='x"y', alias=fail2ban_blocklist]`), {
    name: 'opnsense',
    options: { firewall: '192.0.2.1', key: 'a,b]c', secret: 'x"y', alias: 'fail2ban_blocklist' },
  });
  assert.deepEqual(extractOptions('opnsense[alias=a][port="ssh", protocol="tcp"]'), {
    name: 'opnsense',
    options: { alias: 'a', port: 'ssh', protocol: 'tcp' },
  });
});

test('an unterminated option list is an error that does not echo values', () => {
  assert.throws(
    () => extractOptions('opnsense[firewall="192.0.2.1", secret="hunter2"'),
    (e: Error) => e instanceof OptionSyntaxError && e.message.includes('not closed') && !e.message.includes('hunter2'),
  );
  assert.throws(
    () => extractOptions('x[key="s3cret" b=2]'),
    (e: Error) => e instanceof OptionSyntaxError && !e.message.includes('s3cret'),
  );
});

test('multi-line action values split into entries, option lists kept whole', () => {
  const value =
    'opnsense[firewall="192.0.2.1", key="k"][port="ssh", protocol="tcp", chain="<known/chain>"]\n ntfy[ntfyurl=https://ntfy.example.org, ntfytopic=t, ntfypriority=max]\nwebhook';
  assert.deepEqual(
    splitWithOptions(value).map((i) => i.text.trim()),
    [
      'opnsense[firewall="192.0.2.1", key="k"][port="ssh", protocol="tcp", chain="<known/chain>"]',
      'ntfy[ntfyurl=https://ntfy.example.org, ntfytopic=t, ntfypriority=max]',
      'webhook',
    ],
  );
});

const OPTION_CASES = [
  'dovecot',
  'dovecot[mode=aggressive]',
  `a[x="1, 2", y='[z]', w=plain value ]`,
  'a[x=1][y=2]',
  'a[ x = 1 ,y=2,]',
  'a[x=1',
  'a[x=1 y=2]',
  'a[=1]',
  'x[key="s3cret" b=2]',
];

test('extractOptions agrees with fail2ban (helpers.extractOptions)', () => {
  const script = `
import json, sys
from fail2ban.helpers import extractOptions
out = []
for s in sys.argv[1:]:
    try:
        n, o = extractOptions(s); out.append([n.strip(), o])
    except ValueError:
        out.append(None)
print(json.dumps(out))
`;
  const expected = runFail2banPython(script, OPTION_CASES) as unknown[];
  OPTION_CASES.forEach((spec, i) => {
    let mine: unknown;
    try {
      const r = extractOptions(spec);
      mine = [r.name, r.options];
    } catch {
      mine = null;
    }
    assert.deepEqual(mine, expected[i], spec);
  });
});

const DURATIONS = [
  '600',
  '10m',
  '1h',
  '1d',
  '1w',
  '1h30m',
  '-1',
  '1d 12h',
  '1year-6mo',
  '6 months',
  '0d 1h 30m',
  '1hour+30min',
  '5 m',
  '3600s',
  '1mo',
  '2*(3m)',
  '1.5h',
];

test('durations as MyTime.str2seconds reads them', () => {
  assert.equal(parseDuration('600'), 600);
  assert.equal(parseDuration('10m'), 600);
  assert.equal(parseDuration('1h30m'), 5400);
  assert.equal(parseDuration('1w'), 604800);
  assert.equal(parseDuration('-1'), -1);
  for (const bad of ['', '1x', 'ten minutes', '10m)', 'import os']) assert.equal(parseDuration(bad), null, bad);
});

test('durations agree with fail2ban (MyTime.str2seconds)', () => {
  const script = `
import json, sys
from fail2ban.server.mytime import MyTime
print(json.dumps([MyTime.str2seconds(s) for s in sys.argv[1:]]))
`;
  assert.deepEqual(DURATIONS.map(parseDuration), runFail2banPython(script, DURATIONS));
});
