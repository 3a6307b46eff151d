import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { test } from 'node:test';
import { LEAST_PRIVILEGES, OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { OpnsenseApiError } from '../../src/targets/opnsense/api-error.ts';
import { DEFAULT_MAX_REPLY_BYTES, OpnsenseClient } from '../../src/targets/opnsense/client.ts';
import { toPfSpelling } from '../../src/net/address.ts';
import { ALIAS, CapturedLog, KEY, SECRET, endpointFor, startSimulator } from '../helpers/enforcement-harness.ts';
import { FlushingOpnsenseClient } from '../helpers/flushing-opnsense-client.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { selfSignedCertificate } from '../helpers/self-signed-certificate.ts';

function clientFor(sim: { url: string }, log = new CapturedLog(), overrides = {}) {
  return new OpnsenseClient({ endpoint: endpointFor(sim as never, overrides), logger: log.logger });
}

function isApiError(kind: string) {
  return (error: unknown) => {
    assert.ok(error instanceof OpnsenseApiError, `expected OpnsenseApiError, got ${String(error)}`);
    assert.equal(error.kind, kind, error.message);
    return true;
  };
}

test('trap 1 and 5: addresses go out in pf spelling, so uppercase IPv6 and /32 spellings add and delete for real', async (t) => {
  const sim = await startSimulator(t);
  const client = clientFor(sim);
  t.after(() => client.close());
  await client.addToAlias(ALIAS, '2001:DB8:0:0:0:0:0:1');
  await client.addToAlias(ALIAS, '192.0.2.7/32');
  await client.addToAlias(ALIAS, '198.51.100.77/24');
  assert.deepEqual(sim.tableEntries(ALIAS), ['192.0.2.7', '198.51.100.0/24', '2001:db8::1']);
  const sent = sim
    .calls()
    .filter((c) => c.path.includes('/add/'))
    .map((c) => JSON.parse(c.requestBody).address);
  assert.deepEqual(sent, ['2001:db8::1', '192.0.2.7', '198.51.100.0/24']);
  await client.deleteFromAlias(ALIAS, '2001:0DB8::0001');
  await client.deleteFromAlias(ALIAS, '192.0.2.7/32');
  await client.deleteFromAlias(ALIAS, '198.51.100.200/24');
  assert.deepEqual(sim.tableEntries(ALIAS), []);
});

test('trap 2: HTTP 200 with a failure status is an error (nonexistent alias)', async (t) => {
  const sim = await startSimulator(t, { aliases: [{ name: 'other_alias', type: 'external' }] });
  const client = clientFor(sim);
  t.after(() => client.close());
  await assert.rejects(client.addToAlias(ALIAS, '192.0.2.1'), isApiError('alias-missing'));
  const call = sim.calls().at(-1)!;
  assert.equal(call.status, 200, 'the simulator answered 200, as OPNsense does');
  assert.match(call.replyBody, /nonexistent alias/);
});

test('an invalid address or alias name never reaches the API', async (t) => {
  const sim = await startSimulator(t);
  const client = clientFor(sim);
  t.after(() => client.close());
  for (const bad of ['cafe', '', '192.0.2.1 192.0.2.2', '1.2.3.4/33', 'mail.example.org', '192.0.2.256']) {
    await assert.rejects(client.addToAlias(ALIAS, bad), isApiError('rejected'));
  }
  await assert.rejects(client.addToAlias('bad-alias', '192.0.2.1'), isApiError('rejected'));
  await assert.rejects(client.addToAlias('../../core/firmware/update', '192.0.2.1'), isApiError('rejected'));
  assert.equal(sim.calls().length, 0);
});

test('trap 4: list pages through 25,000 entries with paging fields in the POST body', async (t) => {
  const sim = await startSimulator(t);
  const entries: string[] = [];
  for (let i = 0; i < 25_000; i++) entries.push(toPfSpelling(`2001:db8:${(i >> 8).toString(16)}:${(i & 0xff).toString(16)}::1`));
  sim.seedTableEntries(ALIAS, entries);
  const client = clientFor(sim);
  t.after(() => client.close());
  const listed = await client.listAlias(ALIAS);
  assert.equal(listed.length, 25_000);
  assert.deepEqual(new Set(listed), new Set(entries));
  const lists = sim.calls().filter((c) => c.path.includes('/list/'));
  assert.equal(lists.length, 3, '9999 + 9999 + 5002');
  assert.deepEqual(
    lists.map((c) => JSON.parse(c.requestBody)),
    [1, 2, 3].map((current) => ({ current, rowCount: 9999 })),
  );
});

test('short pages: a firewall or proxy answering fewer rows than asked is paged at its size until total', async (t) => {
  const sim = await startSimulator(t);
  const entries = Array.from({ length: 2_500 }, (_, i) => toPfSpelling(`2001:db8:1:${i.toString(16)}::1`));
  sim.seedTableEntries(ALIAS, entries);
  sim.setFaults({ listPageCap: 1_000 });
  const client = clientFor(sim);
  t.after(() => client.close());
  const listed = await client.listAlias(ALIAS);
  assert.equal(listed.length, 2_500);
  assert.deepEqual(new Set(listed), new Set(entries));
  const asked = sim
    .calls()
    .filter((c) => c.path.includes('/list/'))
    .map((c) => JSON.parse(c.requestBody));
  assert.deepEqual(asked, [
    { current: 1, rowCount: 9999 },
    { current: 2, rowCount: 1000 },
    { current: 3, rowCount: 1000 },
  ]);
});

test('a list that cannot reach total (every page the same) fails with a clear error instead of stopping short', async (t) => {
  const sim = await startSimulator(t);
  sim.seedTableEntries(
    ALIAS,
    Array.from({ length: 300 }, (_, i) => `2001:db8:2:${i.toString(16)}::1`),
  );
  sim.setFaults({ listPageCap: 100, listIgnoresPage: true });
  const client = clientFor(sim);
  t.after(() => client.close());
  await assert.rejects(client.listAlias(ALIAS), (error: unknown) => {
    assert.ok(isApiError('server')(error));
    assert.match((error as Error).message, /page 2 .*no new entry.*total says 300/);
    return true;
  });
  assert.equal(sim.calls().filter((c) => c.path.includes('/list/')).length, 2, 'bounded: stops at the first page that adds nothing');
});

test('list rows come back in one canonical spelling (/32, /128, upper case), ::ffff: entries stay IPv6 and are deleted as themselves', async (t) => {
  const sim = await startSimulator(t);
  const client = clientFor(sim);
  t.after(() => client.close());
  sim.seedTableEntries(ALIAS, ['192.0.2.9', '2001:db8::9', '::ffff:192.0.2.9']);
  sim.setFaults({ listSpelling: 'host-prefix' });
  assert.deepEqual(await client.listAlias(ALIAS), ['192.0.2.9', '::ffff:192.0.2.9', '2001:db8::9']);
  sim.setFaults({ listSpelling: 'upper-case' });
  assert.deepEqual(await client.listAlias(ALIAS), ['192.0.2.9', '::ffff:192.0.2.9', '2001:db8::9']);
  await client.deleteFromAlias(ALIAS, '::FFFF:C000:209');
  assert.deepEqual(sim.tableEntries(ALIAS), ['192.0.2.9', '2001:db8::9']);
});

test('replies are read up to a size cap: an endless reply is abandoned with a clear error', async (t) => {
  let sent = 0;
  let closed = false;
  const chunk = Buffer.from('{"ip":"192.0.2.1","in_block_p":"1","in_block_b":"60"},'.repeat(1000));
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"total":1,"rowCount":1,"current":1,"rows":[');
    res.on('close', () => {
      closed = true;
    });
    const pump = (): void => {
      while (!closed && sent < 1024 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const { port } = server.address() as { port: number };
  const client = clientFor({ url: `http://127.0.0.1:${port}` });
  t.after(() => client.close());
  await assert.rejects(client.listAlias(ALIAS), (error: unknown) => {
    assert.ok(isApiError('too-large')(error));
    assert.match((error as Error).message, /larger than 32 MiB/);
    assert.equal((error as OpnsenseApiError).retryable, false);
    assert.equal((error as OpnsenseApiError).needsOperator, true);
    return true;
  });
  for (let i = 0; i < 200 && !closed; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(closed, 'the connection was dropped');
  assert.ok(sent < DEFAULT_MAX_REPLY_BYTES + 16 * 1024 * 1024, `stopped reading near the cap (${sent} bytes sent)`);
});

test('trap 8: snake_case paths pass the ACL of a least-privilege key', async (t) => {
  const sim = await startSimulator(t);
  const client = clientFor(sim);
  t.after(() => client.close());
  sim.seedStates('192.0.2.40', 3);
  await client.addToAlias(ALIAS, '192.0.2.40');
  await client.listAlias(ALIAS);
  assert.equal((await client.getAlias(ALIAS))?.type, 'external');
  assert.ok((await client.getTableSize()).size > 0);
  assert.equal(await client.killStates('192.0.2.40'), 3);
  assert.ok((await client.listTables()).includes(ALIAS));
  for (const call of sim.calls()) {
    assert.equal(call.status, 200, `${call.method} ${call.path}`);
    assert.doesNotMatch(call.path.split('/').slice(0, 5).join('/'), /[A-Z]/, `camelCase path ${call.path}`);
  }
});

test('trap 9: a JSON content type always comes with a body, also for parameterless writes', async (t) => {
  // Its own simulator: the shared one fails any test that flushes, and flushing is the point here.
  const sim = await OpnsenseSimulator.start({ keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES }], authFailDelayMs: 0 });
  const client = new FlushingOpnsenseClient({ endpoint: endpointFor(sim as never), logger: new CapturedLog().logger });
  t.after(async () => {
    await client.close();
    await sim.stop();
  });
  sim.seedTableEntries('scratch_table', ['192.0.2.1']);
  await client.flushAlias('scratch_table');
  await client.getTableSize();
  assert.deepEqual(sim.tableEntries('scratch_table'), []);
  for (const call of sim.calls()) {
    if (call.method === 'POST') assert.doesNotThrow(() => JSON.parse(call.requestBody), `${call.path} sent ${JSON.stringify(call.requestBody)}`);
    else assert.equal(call.requestBody, '', `${call.path} sent a body on GET`);
    assert.equal(call.status, 200);
  }
});

test('trap 10: a missing alias is [] from get_alias_u_u_i_d, and getAlias says null', async (t) => {
  const sim = await startSimulator(t, { aliases: [{ name: 'blocklist_host', type: 'host' }] });
  const client = clientFor(sim);
  t.after(() => client.close());
  assert.equal(await client.getAlias(ALIAS), null);
  assert.equal((await client.getAlias('blocklist_host'))?.type, 'host');
});

test('trap 11: kill_states is only sent for a single IPv4 address', async (t) => {
  const sim = await startSimulator(t);
  const client = clientFor(sim);
  t.after(() => client.close());
  await assert.rejects(client.killStates('2001:db8::5'), isApiError('rejected'));
  await assert.rejects(client.killStates('192.0.2.0/24'), isApiError('rejected'));
  assert.equal(sim.calls().length, 0);
});

test('401, 403 and read-only keys give errors that say what to fix, and are not retryable', async (t) => {
  const sim = await startSimulator(t, {
    keys: [
      { key: KEY, secret: SECRET, privileges: ['page-firewall-aliases'], user: 'noTables' },
      { key: 'readonlyKey0123456789', secret: 'readonlySecret0123456789', privileges: LEAST_PRIVILEGES, readOnly: true, user: 'ro' },
    ],
  });
  const wrong = clientFor(sim, new CapturedLog(), { secret: 'not-the-secret' });
  const unprivileged = clientFor(sim);
  const readOnly = clientFor(sim, new CapturedLog(), { key: 'readonlyKey0123456789', secret: 'readonlySecret0123456789' });
  t.after(async () => {
    await wrong.close();
    await unprivileged.close();
    await readOnly.close();
  });
  await assert.rejects(wrong.addToAlias(ALIAS, '192.0.2.1'), (error: unknown) => {
    assert.ok(isApiError('auth')(error));
    assert.match((error as Error).message, /OPNSENSE_KEY and OPNSENSE_SECRET/);
    assert.equal((error as OpnsenseApiError).retryable, false);
    return true;
  });
  await assert.rejects(unprivileged.addToAlias(ALIAS, '192.0.2.1'), isApiError('forbidden'));
  await assert.rejects(readOnly.addToAlias(ALIAS, '192.0.2.1'), isApiError('read-only'));
});

test('a 5xx is retryable, a refused connection is a network error, a hang times out', async (t) => {
  const sim = await startSimulator(t);
  const client = clientFor(sim);
  // Only the hang needs a short timeout; healthy calls get the default, so a loaded machine cannot fail them.
  const impatient = clientFor(sim, new CapturedLog(), { timeoutMs: 300 });
  t.after(async () => {
    await client.close();
    await impatient.close();
  });
  sim.setFaults({ errorRate: 1 });
  await assert.rejects(client.addToAlias(ALIAS, '192.0.2.1'), (error: unknown) => isApiError('server')(error) && (error as OpnsenseApiError).retryable);
  sim.setFaults({ errorRate: 0, hangRate: 1 });
  await assert.rejects(impatient.addToAlias(ALIAS, '192.0.2.1'), isApiError('timeout'));
  sim.setFaults({ hangRate: 0, refuse: true });
  await assert.rejects(client.addToAlias(ALIAS, '192.0.2.1'), isApiError('network'));
  sim.setFaults({ refuse: false });
  await client.addToAlias(ALIAS, '192.0.2.1');
  assert.deepEqual(sim.tableEntries(ALIAS), ['192.0.2.1']);
});

test('TLS is verified by default: a self-signed firewall is refused unless its CA is given', async (t) => {
  const { cert: certFile, key: keyFile } = selfSignedCertificate(await tempDir(t));
  const cert = await readFile(certFile, 'utf8');
  const sim = await startSimulator(t, { tls: { cert, key: await readFile(keyFile, 'utf8') } });
  assert.match(sim.url, /^https:/);
  const strict = clientFor(sim);
  const withCa = clientFor(sim, new CapturedLog(), { ca: cert });
  const insecure = clientFor(sim, new CapturedLog(), { tlsInsecure: true });
  t.after(async () => {
    await strict.close();
    await withCa.close();
    await insecure.close();
  });
  await assert.rejects(strict.listAlias(ALIAS), (error: unknown) => isApiError('tls')(error) && /OPNSENSE_CA_FILE/.test((error as Error).message));
  assert.deepEqual(await withCa.listAlias(ALIAS), []);
  assert.deepEqual(await insecure.listAlias(ALIAS), []);
});

test('the secret never appears in logs or error messages, whatever fails', async (t) => {
  const sim = await startSimulator(t);
  const log = new CapturedLog('trace');
  const client = clientFor(sim, log, { timeoutMs: 200 });
  const wrongSecret = clientFor(sim, log, { secret: `${SECRET}x` });
  t.after(async () => {
    await client.close();
    await wrongSecret.close();
  });
  const messages: string[] = [];
  const attempt = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (error) {
      messages.push(String((error as Error).message));
      log.logger.error({ err: error, endpoint: endpointFor(sim) }, 'call failed');
    }
  };
  await attempt(() => client.addToAlias(ALIAS, '192.0.2.1'));
  await attempt(() => wrongSecret.addToAlias(ALIAS, '192.0.2.1'));
  sim.setFaults({ errorRate: 1 });
  await attempt(() => client.listAlias(ALIAS));
  sim.setFaults({ errorRate: 0, hangRate: 1 });
  await attempt(() => client.listAlias(ALIAS));
  const everything = [...log.lines, ...messages].join('\n');
  const basic = Buffer.from(`${KEY}:${SECRET}`).toString('base64');
  assert.ok(log.lines.length >= 4, 'the logger did write');
  assert.ok(!everything.includes(SECRET), 'secret in logs');
  assert.ok(!everything.includes(basic), 'Authorization header in logs');
  assert.ok(sim.calls().every((c) => !JSON.stringify(c).includes(SECRET)));
});
