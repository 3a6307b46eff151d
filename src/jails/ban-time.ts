/**
 * bantime.increment as fail2ban computes it (Jail.setBanTimeExtra builds the formula,
 * ObserverThread.incrBanTime applies it): only a repeat offender (a previous ban count > 0) of
 * a jail with a positive bantime gets the formula; maxtime caps it and rndtime adds a random
 * part, both inside the formula, so a first ban is always exactly `bantime`.
 */

export type BanTimeFormula = 'default' | 'exponential';

export interface BanTimeIncrement {
  enabled: boolean;
  /** bantime.factor (banFactor). */
  factor: number;
  /** bantime.formula: fail2ban's default, or the exponential one its jail.conf documents. */
  formula: BanTimeFormula;
  /** bantime.multipliers; when non-empty they replace the formula. */
  multipliers: readonly number[];
  maxtimeSec: number | null;
  rndtimeSec: number | null;
  /** Count previous bans of the address by every jail, not only this one. */
  overalljails: boolean;
}

export interface BanTimeSettings {
  /** Seconds; -1 = permanent. */
  bantimeSec: number;
  increment: BanTimeIncrement;
}

export const DEFAULT_INCREMENT: BanTimeIncrement = {
  enabled: false,
  factor: 1,
  formula: 'default',
  multipliers: [],
  maxtimeSec: null,
  rndtimeSec: null,
  overalljails: false,
};

/** Ban length in seconds for an address banned `previousBans` times before (fail2ban's ban.Count); -1 = permanent. */
export function banTimeSec(settings: BanTimeSettings, previousBans: number, random: () => number): number {
  const { bantimeSec: time, increment } = settings;
  if (time < 0) return -1;
  if (!increment.enabled || time <= 0 || previousBans <= 0) return time;
  const count = previousBans;
  const factor = increment.factor;
  let seconds: number;
  if (increment.multipliers.length > 0) {
    const multipliers = increment.multipliers;
    // multipliers[ban.Count if ban.Count < len(multipliers) else -1]; no max() with ban.Time here.
    seconds = time * factor * (multipliers[Math.min(count, multipliers.length - 1)] ?? 1);
  } else if (increment.formula === 'exponential') {
    seconds = Math.max(time, (time * Math.exp((count + 1) * factor)) / Math.exp(1 * factor));
  } else {
    seconds = Math.max(time, time * 2 ** Math.min(count, 20) * factor);
  }
  if (increment.maxtimeSec !== null) seconds = Math.min(seconds, increment.maxtimeSec);
  if (increment.rndtimeSec !== null) seconds += random() * increment.rndtimeSec;
  return seconds;
}

/** The same in milliseconds for the ledger; null = permanent. */
export function banDurationMs(settings: BanTimeSettings, previousBans: number, random: () => number): number | null {
  const seconds = banTimeSec(settings, previousBans, random);
  return seconds < 0 ? null : Math.round(seconds * 1000);
}
