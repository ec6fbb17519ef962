/**
 * The proxy's one-second rate periods, and how long a limited listener waits for a rate to allow
 * the next event: HAProxy's freq_ctr, as far as the machines' RATE_PERIOD and the queue tasks'
 * expiries depend on it.
 *
 * The counts themselves (connPerSec, feConnPerSec, feSessPerSec) are machine counters
 * (machines/counters.ts): they change only through the machines' effects, and RATE_PERIOD
 * (newRatePeriod) starts them again. What this module keeps is the rest of a freq_ctr: the previous
 * period's counts and where the current period began, which the machines do not read.
 *
 * Where a period begins differs between the profiles, as HAProxy's freq_ctr did:
 *   dev12  periods follow one another every second from the frontend's start (1.5-dev's freq_ctr
 *          rotates on the wall clock's seconds, `now.tv_sec`; the grid here starts with the
 *          frontend instead, which a test of the model aligns on).
 *   2.x    a period begins with the first event after an idle period (update_freq_ctr_period: when
 *          two periods or more went by, curr_tick = now) and the next one follows it a second later
 *          while events keep coming; after a second with no event none is running.
 * One grid serves the three counts, as the machines' RATE_PERIOD starts them all again, where
 * HAProxy keeps one curr_tick per counter. Under 2.x a period begins with the first accept after
 * an idle one, where HAProxy begins the session rate's own period with the first session: behind a
 * handshake (accept-proxy, TLS), the session rate's period ends here earlier than in HAProxy by the
 * time that first handshake took. The timers are armed for each period's own end (rotate, due),
 * so that a late timer does not drift the grid.
 */
import type { Profile } from '../machines/config.ts';
import type { Counters } from '../machines/counters.ts';

/** The previous period's counts of a rate (freq_ctr's prev_ctr). */
export interface PrevRates {
  connPerSec: number;
  feSessPerSec: number;
}

/**
 * Returns in how many ms a rate at limit <freq> per second allows its next event, as the profile's
 * HAProxy computes it (next_event_delay with no pending event), given <curr> events in the current
 * period, <prev> in the previous one and <elapsedMs> since the current period began (0…1000). 0
 * means at once. Requires freq > 0. Pure.
 *
 *   dev12  curr + prev × (1 − elapsed/1000) events in the last second (mul32hi of the ms scaled to
 *          2^32); at or above freq: 999 / that, at least 1 (src/freq_ctr.c at v1.5-dev12).
 *   2.x    total = prev × (1000 − elapsed) + curr × 1000, in event·ms; at or above freq × 1000:
 *          (total − freq × 1000) / freq, at least 1 (next_event_delay_period). At the limit exactly,
 *          that is 1 ms: 2.x's frontend task runs again a millisecond later, every millisecond,
 *          until the period ends.
 */
export function nextEventDelay(
  profile: Profile,
  freq: number,
  curr: number,
  prev: number,
  elapsedMs: number,
): number {
  const elapsed = Math.min(Math.max(Math.floor(elapsedMs), 0), 1000);
  if (profile === 'dev12') {
    const scaled = Math.min(elapsed, 999) * 4294971; // curr_sec_ms_scaled: the ms of the second × 2^32 / 1000
    const events = curr + Math.floor((prev * (2 ** 32 - 1 - scaled)) / 2 ** 32);
    if (events < freq) return 0;
    return Math.max(Math.floor(999 / events), 1);
  }
  const total = prev * (1000 - elapsed) + curr * 1000;
  const limit = freq * 1000;
  if (total < limit) return 0;
  return Math.max(Math.floor((total - limit) / freq), 1);
}

/**
 * The frontend's rate periods under <profile>: when the current one began, the previous period's
 * counts, and when the next RATE_PERIOD is due. The owner (the frontend, impl/driver.ts) calls
 * counted() after each rate count effect and rotate() when the timer it armed for due() fires.
 */
export class RatePeriods {
  /** Where the current period began on the owner's clock; null while none runs (2.x, idle). */
  start: number | null;
  readonly prev: PrevRates = { connPerSec: 0, feSessPerSec: 0 };

  constructor(
    readonly profile: Profile,
    now: number,
  ) {
    this.start = profile === 'dev12' ? now : null;
  }

  /**
   * Tells of a rate count taken at <now>. Returns true iff it began a period (2.x after an idle
   * period), which the owner must then arm a timer for, due at due(); false otherwise.
   */
  counted(now: number): boolean {
    if (this.start !== null) return false;
    this.start = now;
    return true;
  }

  /** When the current period ends (the next RATE_PERIOD), or null if none runs. */
  due(): number | null {
    return this.start === null ? null : this.start + 1000;
  }

  /**
   * The current period ended, with counts <c> (before newRatePeriod clears them): they become the
   * previous period's, and the next period begins where this one ended, except under 2.x after a
   * period with no event (none runs until the next event). Returns true iff a period runs on.
   */
  rotate(c: Counters): boolean {
    const idle = c.connPerSec === 0 && c.feConnPerSec === 0 && c.feSessPerSec === 0;
    this.prev.connPerSec = c.connPerSec;
    this.prev.feSessPerSec = c.feSessPerSec;
    if (this.start === null) return false;
    if (this.profile !== 'dev12' && idle) {
      this.start = null;
      return false;
    }
    this.start += 1000;
    return true;
  }

  /** Milliseconds since the current period began at <now> (0 if none runs). */
  elapsed(now: number): number {
    return this.start === null ? 0 : now - this.start;
  }
}
