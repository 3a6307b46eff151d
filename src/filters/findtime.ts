/**
 * The time a failure counts at, as fail2ban's daemon decides it (filter.py processLine and
 * processLineAndAdd with checkFindTime): test-filter reports raw line times like fail2ban-regex,
 * the daemon passes each match through this.
 */

export interface FailureTimeOptions {
  /** Epoch seconds now. */
  now: number;
  /** The jail's findtime, seconds. */
  findtime: number;
  /**
   * True while following new lines of a log; false while reading what was written before edgeban
   * started (fail2ban's restore phase).
   */
  inOperation: boolean;
}

/**
 * The failure time to record for a match whose line time is `lineTime` (null: the line had no
 * usable stamp), or null when fail2ban would drop the match as too old.
 */
export function failureTime(lineTime: number | null, options: FailureTimeOptions): number | null {
  const { now, findtime, inOperation } = options;
  let time = lineTime;
  if (inOperation) {
    // New lines happen now: no stamp, or one off by more than a minute (a zone or clock problem),
    // counts as now rather than outside or far ahead of the window.
    if (time === null || Math.abs(Math.trunc(time - now)) > 60) time = now;
  } else {
    if (time === null) return null;
    // Catching up on old lines: whatever is older than findtime no longer matters.
    if (time < now - findtime) return null;
  }
  // Never in the future.
  return Math.min(time, now);
}
