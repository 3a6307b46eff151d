import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { describeZodError, faultsSchema, type SimulatorFaults } from './faults.ts';
import { readBody } from './http-util.ts';
import type { SimulatorCall } from './call-log.ts';
import type { SimulatorKey } from './auth.ts';
import { KNOWN_PRIVILEGES } from './acl.ts';
import { isFirmwareVersionText } from './firmware.ts';

/** What the admin interface needs from the simulator. */
export interface AdminTarget {
  setFaults(faults: Partial<SimulatorFaults>): void;
  faults(): SimulatorFaults;
  reboot(): void;
  /** `filter refresh_aliases`; `expireAll`: every URL table counts as past its refresh time. */
  refreshAliases(options: { expireAll: boolean }): Promise<void>;
  tableSnapshot(): Record<string, string[]>;
  seedTableEntries(table: string, entries: string[]): void;
  seedStates(address: string, count: number): void;
  calls(): readonly SimulatorCall[];
  clearCalls(): void;
  configRevisions(): number;
  maxInFlight(): number;
  resetMaxInFlight(): void;
  /** Refuse connections for a while, then listen again (the admin interface itself goes away meanwhile). */
  refuseFor(ms: number): void;
  createAlias(alias: { name: string; type: 'external' | 'host' | 'network' }): void;
  deleteAlias(name: string): boolean;
  aliases(): Array<{ name: string; type: string; uuid: string; enabled: boolean }>;
  setKey(key: SimulatorKey): void;
  setFirmwareVersion(version: string): void;
  firmwareVersion(): string;
  setTableEntriesLimit(limit: number): void;
  tableEntriesLimit(): number;
  filterRules(): { rules: Array<Record<string, string>>; applied: boolean; rollbacks: number; rollbackPending: boolean };
}

const adminFaultsSchema = faultsSchema.extend({
  /** Only here: a CLI simulator cannot be told to stop refusing once it refuses. */
  refuseForMs: z.number().int().min(1).max(3_600_000).optional(),
});
const seedSchema = z.strictObject({ table: z.string().min(1).max(64), entries: z.array(z.string().max(200)).max(2_000_000) });
const statesSchema = z.strictObject({ address: z.string().min(1).max(100), count: z.number().int().min(0).max(1_000_000) });
const aliasesSchema = z.strictObject({
  create: z
    .array(z.strictObject({ name: z.string().min(1).max(64), type: z.enum(['external', 'host', 'network']) }))
    .max(100)
    .default([]),
  delete: z.array(z.string().min(1).max(64)).max(100).default([]),
});
const keySchema = z.strictObject({
  key: z.string().min(1).max(200),
  secret: z.string().min(1).max(200),
  privileges: z.array(z.string().refine((p) => KNOWN_PRIVILEGES.includes(p), { message: `unknown privilege (known: ${KNOWN_PRIVILEGES.join(', ')})` })).max(20),
  readOnly: z.boolean().default(false),
  user: z.string().min(1).max(64).default('apiuser'),
});
const firmwareSchema = z.strictObject({
  version: z.string().refine(isFirmwareVersionText, 'an OPNsense version such as 24.7, 25.1.3 or 26.7.2'),
});
const refreshSchema = z.strictObject({ expire: z.boolean().default(false) });
const tableEntriesSchema = z.strictObject({ limit: z.number().int().min(1).max(100_000_000) });

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}

function parseJson(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: body.length === 0 ? {} : JSON.parse(body.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

/**
 * Unauthenticated control interface under /__simulator/ (outside /api/, so no clash), for tests
 * that run `edgeban simulate` as a process. Not subject to faults, not in the call log.
 */
export async function handleAdmin(target: AdminTarget, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  const method = req.method ?? 'GET';
  let body: Buffer;
  try {
    body = await readBody(req, 64 * 1024 * 1024);
  } catch {
    send(res, 413, { error: 'body too large' });
    return;
  }
  const route = `${method} ${path}`;
  if (route === 'GET /__simulator/state') {
    send(res, 200, {
      tables: target.tableSnapshot(),
      configRevisions: target.configRevisions(),
      maxInFlight: target.maxInFlight(),
      calls: target.calls().length,
      faults: target.faults(),
      aliases: target.aliases(),
      filter: target.filterRules(),
      firmwareVersion: target.firmwareVersion(),
      tableEntriesLimit: target.tableEntriesLimit(),
    });
    return;
  }
  if (route === 'GET /__simulator/calls') {
    send(res, 200, target.calls());
    return;
  }
  if (method !== 'POST') {
    send(res, 404, { error: `no admin route ${route}` });
    return;
  }
  const json = parseJson(body);
  if (!json.ok) {
    send(res, 400, { error: 'body is not valid JSON' });
    return;
  }
  switch (path) {
    case '/__simulator/faults': {
      const parsed = adminFaultsSchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      const { refuseForMs, ...faults } = parsed.data;
      target.setFaults(faults);
      send(res, 200, target.faults());
      // Answer first: refusing destroys every open socket, this one included.
      if (refuseForMs !== undefined) res.once('finish', () => target.refuseFor(refuseForMs));
      return;
    }
    case '/__simulator/reboot':
      target.reboot();
      send(res, 200, { status: 'ok' });
      return;
    case '/__simulator/refresh-aliases': {
      const parsed = refreshSchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      await target.refreshAliases({ expireAll: parsed.data.expire });
      send(res, 200, { tables: target.tableSnapshot() });
      return;
    }
    case '/__simulator/seed': {
      const parsed = seedSchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      try {
        target.seedTableEntries(parsed.data.table, parsed.data.entries);
      } catch (error) {
        send(res, 400, { error: `entries: ${(error as Error).message}` });
        return;
      }
      send(res, 200, { status: 'ok' });
      return;
    }
    case '/__simulator/states': {
      const parsed = statesSchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      try {
        target.seedStates(parsed.data.address, parsed.data.count);
      } catch {
        send(res, 400, { error: 'address: not an IP address' });
        return;
      }
      send(res, 200, { status: 'ok' });
      return;
    }
    case '/__simulator/aliases': {
      const parsed = aliasesSchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      const missing = parsed.data.delete.filter((name) => !target.deleteAlias(name));
      try {
        for (const alias of parsed.data.create) target.createAlias(alias);
      } catch (error) {
        send(res, 400, { error: `create: ${(error as Error).message}` });
        return;
      }
      if (missing.length > 0) {
        send(res, 404, { error: `delete: no alias ${missing.join(', ')}` });
        return;
      }
      send(res, 200, { aliases: target.aliases() });
      return;
    }
    case '/__simulator/keys': {
      const parsed = keySchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      target.setKey(parsed.data);
      send(res, 200, { status: 'ok' });
      return;
    }
    case '/__simulator/firmware': {
      const parsed = firmwareSchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      target.setFirmwareVersion(parsed.data.version);
      send(res, 200, { version: target.firmwareVersion() });
      return;
    }
    case '/__simulator/table-entries': {
      const parsed = tableEntriesSchema.safeParse(json.value);
      if (!parsed.success) {
        send(res, 400, { error: describeZodError(parsed.error) });
        return;
      }
      target.setTableEntriesLimit(parsed.data.limit);
      send(res, 200, { limit: target.tableEntriesLimit() });
      return;
    }
    case '/__simulator/clear-calls':
      target.clearCalls();
      send(res, 200, { status: 'ok' });
      return;
    case '/__simulator/reset-max-in-flight':
      target.resetMaxInFlight();
      send(res, 200, { status: 'ok' });
      return;
    default:
      send(res, 404, { error: `no admin route ${route}` });
  }
}
