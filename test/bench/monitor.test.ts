/**
 * Row 4's note on the live monitor's lag (bench/monitor.ts, lagNote): what a reader of the table
 * learns about how far behind the checker was at the end of each monitored run, and whether it
 * caught up before the next run of the pair.
 */
import { describe, expect, it } from 'vitest';
import { CATCH_UP_MS, lagNote } from '../../bench/monitor.ts';

describe('the note on the monitor lag of row 4', () => {
  it('gives the largest and the median lag, and the longest catch-up, when every run caught up', () => {
    expect(
      lagNote([
        { behindMs: 12.4, caughtUpMs: 30 },
        { behindMs: 40, caughtUpMs: 75.6 },
        { behindMs: 20, caughtUpMs: 0 },
      ]),
    ).toBe(
      'at the end of each monitored run the checker was at most 40 ms of trace behind (median 20 ms); it caught up within 76 ms, before the next run began',
    );
  });

  it('says how many runs did not catch up before the next one', () => {
    expect(
      lagNote([
        { behindMs: 900, caughtUpMs: null },
        { behindMs: 10, caughtUpMs: 5 },
      ]),
    ).toBe(
      `at the end of each monitored run the checker was at most 900 ms of trace behind (median 10 ms); 1 of 2 runs did not catch up within ${CATCH_UP_MS} ms before the next run`,
    );
  });

  it('says so when the monitor was never asked', () => {
    expect(lagNote([])).toMatch(/was not asked how far behind/);
  });
});
