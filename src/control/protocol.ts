import { z } from 'zod';
import type { ReconcileReport } from '../targets/enforcement.ts';

// Requests to the local control API, validated at the socket like any other boundary.

const JAIL_NAME = z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'a jail name: letters, digits, _ . @ - (at most 64)');

export const BanCommandSchema = z
  .object({
    address: z.string().min(1).max(100),
    jail: JAIL_NAME.optional(),
    /** Seconds; -1 = permanent; omitted = the jail's bantime (or one day for a manual ban without a jail). */
    bantimeSec: z
      .number()
      .int()
      .min(-1)
      .max(100 * 365 * 86_400)
      .optional(),
  })
  .strict();
export type BanCommand = z.infer<typeof BanCommandSchema>;

export const UnbanCommandSchema = z.union([
  z
    .object({
      address: z.string().min(1).max(100),
      jail: JAIL_NAME.optional(),
      /** Also delete the address where it is an alias entry edgeban never banned. */
      foreign: z.boolean().optional(),
    })
    .strict(),
  z.object({ all: z.literal(true) }).strict(),
]);
export type UnbanCommand = z.infer<typeof UnbanCommandSchema>;

export const ReconcileCommandSchema = z
  .object({
    /** Only list and compare; change nothing. */
    dryRun: z.boolean().default(false),
  })
  .strict();
export type ReconcileCommand = z.infer<typeof ReconcileCommandSchema>;

export interface BannedEntry {
  target: string;
  address: string;
  jail: string;
  origin: string;
  bannedAt: string;
  expiresAt: string | null;
  banCount: number;
}

/**
 * Bans ended; when none did, the targets whose alias holds the address as an entry edgeban never
 * banned (`foreign`), or, with `foreign: true` in the command, the targets it was deleted from.
 */
export interface UnbanOutcome {
  ended: number;
  foreign?: string[];
  foreignRemoved?: string[];
}

export type BanOutcome = { banned: true; entry: BannedEntry } | { banned: false; reason: string };

/** What the running daemon answers to; the control server is only transport and validation. */
export interface ControlHandlers {
  status(jail: string | null): Promise<unknown>;
  ban(command: BanCommand): Promise<BanOutcome>;
  unban(command: UnbanCommand): Promise<UnbanOutcome>;
  banned(): Promise<BannedEntry[]>;
  reload(): Promise<{ ok: boolean; message: string }>;
  /** One full pass of every target now (or, dry, what it would do). */
  reconcile(command: ReconcileCommand): Promise<ReconcileReport>;
}

/** A control request that is well-formed but cannot be done (unknown jail, invalid address). */
export class ControlRequestError extends Error {
  readonly status: number;
  readonly field: string | null;
  constructor(message: string, field: string | null = null, status = 400) {
    super(message);
    this.name = 'ControlRequestError';
    this.field = field;
    this.status = status;
  }
}
