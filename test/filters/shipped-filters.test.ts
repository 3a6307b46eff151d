// Every shipped filter against its sample log: expected host, time and user per line, in every
// mode, and no log-injection line ever yields the injected address.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { iso, logLines, runFilter, SAMPLE_NOW, SAMPLES } from './helpers.ts';

const expectationSchema = z.object({
  host: z.string().nullable(),
  time: z.string().nullable().optional(),
  user: z.string().optional(),
  /** Host per mode where it differs from `host`. */
  modes: z.record(z.string(), z.string().nullable()).optional(),
  note: z.string().optional(),
});
type Expectation = z.infer<typeof expectationSchema>;

/** The address every injection line tries to plant. */
const INJECTED = '192.0.2.9';

const FILTERS: Record<string, string[]> = {
  postfix: ['normal', 'more', 'auth', 'extra', 'rbl', 'errors', 'ddos', 'aggressive'],
  dovecot: ['normal', 'aggressive'],
  traefik: ['normal', 'auth'],
  nginx: ['normal', 'auth', 'access', 'limit-req', 'botsearch', 'bad-request', 'forbidden', 'aggressive'],
  caddy: ['normal', 'auth'],
  'nginx-json': ['normal', 'auth'],
  apache: ['normal', 'auth', 'access', 'noscript', 'botsearch', 'badbots', 'overflows', 'nohome', 'modsecurity', 'shellshock', 'aggressive'],
};

function expectations(name: string): Expectation[] {
  return logLines(path.join(SAMPLES, `${name}.expected.jsonl`)).map((line) => expectationSchema.parse(JSON.parse(line)));
}

for (const [name, modes] of Object.entries(FILTERS)) {
  describe(`shipped filter ${name}`, () => {
    const lines = logLines(path.join(SAMPLES, `${name}.log`));
    const expected = expectations(name);

    it('has one expectation per sample line', () => {
      assert.equal(expected.length, lines.length);
    });

    for (const mode of modes) {
      it(`mode=${mode}: host, time and user per line`, async () => {
        const results = await runFilter(mode === 'normal' ? name : `${name}[mode=${mode}]`, lines, SAMPLE_NOW);
        for (const [i, want] of expected.entries()) {
          const got = results[i];
          assert.ok(got, `line ${i + 1}`);
          const host = want.modes && mode in want.modes ? want.modes[mode] : want.host;
          const where = `${name}[mode=${mode}] line ${i + 1} (${want.note ?? ''})`;
          assert.equal(got.host, host ?? null, `${where}: host`);
          assert.equal(got.match, host !== null, `${where}: match`);
          if (want.time !== undefined) assert.equal(iso(got.time), want.time, `${where}: time`);
          if (want.user !== undefined && got.match) assert.equal(got.tags.user, want.user, `${where}: user`);
        }
      });

      it(`mode=${mode}: never yields the injected address`, async () => {
        const results = await runFilter(`${name}[mode=${mode}]`, lines, SAMPLE_NOW);
        for (const r of results) assert.notEqual(r.host, INJECTED);
      });
    }
  });
}
