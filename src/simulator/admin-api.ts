import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { describeZodError, faultsSchema, type SimulatorFaults } from './faults.ts';
import { readBody } from './http-util.ts';
import type { SimulatorCall } from './call-log.ts';

/** What the admin interface needs from the simulator. */
export interface AdminTarget {
  setFaults(faults: Partial<SimulatorFaults>): void;
  faults(): SimulatorFaults;
  reboot(): void;
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
}

const adminFaultsSchema = faultsSchema.extend({
  /** Only here: a CLI simulator cannot be told to stop refusing once it refuses. */
  refuseForMs: z.number().int().min(1).max(3_600_000).optional(),
});
const seedSchema = z.strictObject({ table: z.string().min(1).max(64), entries: z.array(z.string().max(200)).max(2_000_000) });
const statesSchema = z.strictObject({ address: z.string().min(1).max(100), count: z.number().int().min(0).max(1_000_000) });

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
      tables: target.tableSnapshot(), configRevisions: target.configRevisions(),
      maxInFlight: target.maxInFlight(), calls: target.calls().length, faults: target.faults(),
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
