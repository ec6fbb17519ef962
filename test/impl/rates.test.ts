import { describe, expect, it } from 'vitest';
import { zeroCounters } from '../../machines/counters.ts';
import { nextEventDelay, RatePeriods } from '../../impl/rates.ts';

describe('nextEventDelay', () => {
  it('allows the next event at once while the count is below the limit, in both profiles', () => {
    expect(nextEventDelay('dev12', 2, 1, 0, 0)).toBe(0);
    expect(nextEventDelay('2.6', 2, 1, 0, 0)).toBe(0);
  });

  it('waits 999 ms divided by the events of the last second under dev12 (src/freq_ctr.c at v1.5-dev12)', () => {
    expect(nextEventDelay('dev12', 1, 1, 0, 0)).toBe(999);
    expect(nextEventDelay('dev12', 2, 2, 0, 300)).toBe(499);
    expect(nextEventDelay('dev12', 10, 10, 0, 900)).toBe(99);
  });

  it("weighs the previous period's count by what is left of the current one under dev12", () => {
    // 2 events last period, none yet, 100 ms into this one: 2 × 0.9 = 1.8, rounded down to 1.
    expect(nextEventDelay('dev12', 1, 0, 2, 100)).toBe(999);
    // 600 ms in: 2 × 0.4 = 0.8, rounded down to 0: below the limit.
    expect(nextEventDelay('dev12', 1, 0, 2, 600)).toBe(0);
  });

  it("waits 1 ms at the limit exactly under 2.x, so that the frontend's task polls until the period ends", () => {
    expect(nextEventDelay('2.6', 1, 1, 0, 0)).toBe(1);
    expect(nextEventDelay('2.6', 1, 1, 0, 999)).toBe(1);
    expect(nextEventDelay('2.9', 10, 10, 0, 500)).toBe(1);
  });

  it('spreads the excess over the limit under 2.x, the previous period counted for what is left of it', () => {
    // total = 4 × 500 + 3 × 1000 = 5000 event·ms; limit 2 → (5000 − 2000) / 2 = 1500 ms.
    expect(nextEventDelay('2.6', 2, 3, 4, 500)).toBe(1500);
    // One event last period, none now, 1 ms in: total 999 < 1000: at once.
    expect(nextEventDelay('2.6', 1, 0, 1, 1)).toBe(0);
    // total = 4 × 1000 = 4000; limit 3 → 1000 / 3 = 333.3, rounded down.
    expect(nextEventDelay('2.6', 3, 4, 0, 0)).toBe(333);
  });
});

describe('RatePeriods', () => {
  it('runs a period every second from the start under dev12, idle or not', () => {
    const r = new RatePeriods('dev12', 5000);
    expect(r.due()).toBe(6000);
    expect(r.counted(5100)).toBe(false);
    expect(r.rotate(zeroCounters())).toBe(true);
    expect(r.due()).toBe(7000);
    expect(r.elapsed(6250)).toBe(250);
  });

  it('begins a period with the first count under 2.x and keeps the grid while counts keep coming', () => {
    const r = new RatePeriods('2.6', 0);
    expect(r.due()).toBeNull();
    expect(r.counted(1234)).toBe(true);
    expect(r.counted(1300)).toBe(false);
    expect(r.due()).toBe(2234);
    const c = { ...zeroCounters(), feSessPerSec: 1, connPerSec: 2 };
    expect(r.rotate(c)).toBe(true);
    expect(r.prev).toEqual({ connPerSec: 2, feSessPerSec: 1 });
    expect(r.due()).toBe(3234);
  });

  it.each(['2.6', '2.9'] as const)(
    'stops after an idle period under %s, forgetting the previous counts, and anchors again on the next count',
    (profile) => {
      const r = new RatePeriods(profile, 0);
      r.counted(100);
      r.rotate({ ...zeroCounters(), feSessPerSec: 1 });
      expect(r.rotate(zeroCounters())).toBe(false);
      expect(r.prev).toEqual({ connPerSec: 0, feSessPerSec: 0 });
      expect(r.due()).toBeNull();
      expect(r.counted(5555)).toBe(true);
      expect(r.due()).toBe(6555);
    },
  );
});
