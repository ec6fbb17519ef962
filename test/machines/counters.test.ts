/**
 * The arithmetic of the counter effects, as haproxy-history.md §3 states each statement:
 * listener_accept step 5 (conn_per_sec and actconn skipped for LI_O_UNLIMITED), session_accept's
 * feconn++ and conn_max, proxy_inc_fe_conn_ctr / proxy_inc_fe_sess_ctr, the release block.
 */
import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../machines/config.ts';
import {
  applyCounterEffect,
  copyCounters,
  countersKey,
  listenerGauges,
  newRatePeriod,
  zeroCounters,
  type Counters,
} from '../../machines/counters.ts';
import { EFFECTS, type EffectName } from '../../machines/effects.ts';

/** Every counter at 5, so that increments and decrements both show and conn_max equals feconn. */
function fives(): Counters {
  const c = zeroCounters();
  for (const k of Object.keys(c) as (keyof Counters)[]) c[k] = 5;
  return c;
}

/** Each counter effect, what it does in words, and the counters it moves, by how much. */
const ARITHMETIC: [EffectName, string, Partial<Counters>][] = [
  ['actconnInc', 'actconn +1', { actconn: +1 }],
  ['actconnDec', 'actconn -1', { actconn: -1 }],
  ['connPerSecInc', 'conn_per_sec +1', { connPerSec: +1 }],
  ['jobsInc', 'jobs +1', { jobs: +1 }],
  ['jobsDec', 'jobs -1', { jobs: -1 }],
  ['totalconnInc', 'totalconn +1', { totalconn: +1 }],
  ['nbconnInc', 'l->nbconn +1', { nbconn: +1 }],
  ['nbconnDec', 'l->nbconn -1', { nbconn: -1 }],
  ['feconnInc', 'feconn +1', { feconn: +1 }],
  ['feconnDec', 'feconn -1', { feconn: -1 }],
  ['connMaxUpdate', 'nothing while conn_max already equals feconn', {}],
  [
    'cumConnInc',
    'cum_conn +1 on the frontend and the listener, fe_conn_per_sec +1',
    { cumConn: 1, lCumConn: 1, feConnPerSec: 1 },
  ],
  [
    'cumSessInc',
    'cum_sess +1 on the frontend and the listener, fe_sess_per_sec +1',
    { cumSess: 1, lCumSess: 1, feSessPerSec: 1 },
  ],
  ['deniedConnInc', 'denied_conn +1', { deniedConn: +1 }],
  ['sslconnsInc', 'sslconns +1 (1.5-dev has no totalsslconns)', { sslconns: +1 }],
  ['sslconnsDec', 'sslconns -1', { sslconns: -1 }],
  // A mutant's effect (machines/mutants.ts): HAProxy never takes a session back.
  ['cumSessDec', 'cum_sess -1 on the frontend and the listener', { cumSess: -1, lCumSess: -1 }],
];

/** Returns fives() moved by `delta`. */
function moved(delta: Partial<Counters>): Counters {
  const c = fives();
  for (const [k, d] of Object.entries(delta) as [keyof Counters, number][]) c[k] += d;
  return c;
}
const COUNTER_EFFECTS = new Set(ARITHMETIC.map(([name]) => name));

describe('the counter effects', () => {
  it.each(ARITHMETIC)('applies %s as %s and changes no other counter', (name, _words, delta) => {
    const c = fives();
    expect(applyCounterEffect(c, name, makeConfig())).toBe(true);
    expect(c).toEqual(moved(delta));
  });

  it('leaves actconn and conn_per_sec alone on an unlimited listener, and counts everything else', () => {
    const config = makeConfig({ unlimited: true });
    for (const [name, , delta] of ARITHMETIC) {
      const c = fives();
      expect(applyCounterEffect(c, name, config)).toBe(true);
      const expected = moved(delta);
      if (name === 'actconnInc' || name === 'actconnDec') expected.actconn = 5;
      if (name === 'connPerSecInc') expected.connPerSec = 5;
      expect(c, name).toEqual(expected);
    }
  });

  it('counts totalsslconns (CumSslConns) beside sslconns in the 2.x profiles only', () => {
    for (const profile of ['2.6', '2.9'] as const) {
      const c = fives();
      expect(applyCounterEffect(c, 'sslconnsInc', makeConfig({ profile, ssl: true }))).toBe(true);
      expect(c, profile).toEqual(moved({ sslconns: 1, totalsslconns: 1 }));
      expect(applyCounterEffect(c, 'sslconnsDec', makeConfig({ profile, ssl: true }))).toBe(true);
      expect(c, profile).toEqual(moved({ totalsslconns: 1 }));
    }
  });

  it('refuses every other effect and changes nothing for it', () => {
    const others = (Object.keys(EFFECTS) as EffectName[]).filter((n) => !COUNTER_EFFECTS.has(n));
    expect(others.length).toBeGreaterThan(20);
    for (const name of others) {
      const c = fives();
      expect(applyCounterEffect(c, name, makeConfig()), name).toBe(false);
      expect(c).toEqual(fives());
    }
  });

  it.each([
    ['raises conn_max to feconn when feconn is higher', 3, 2, 3],
    ['keeps conn_max when feconn is lower', 1, 2, 2],
    ['keeps conn_max when feconn equals it', 2, 2, 2],
  ])('%s on connMaxUpdate', (_name, feconn, connMax, expected) => {
    const c = { ...zeroCounters(), feconn, connMax };
    applyCounterEffect(c, 'connMaxUpdate', makeConfig());
    expect(c.connMax).toBe(expected);
    expect(c.feconn).toBe(feconn);
  });
});

describe('newRatePeriod', () => {
  it('restarts the per-second counters from zero and keeps every other counter', () => {
    const c = fives();
    newRatePeriod(c);
    expect(c).toEqual({ ...fives(), connPerSec: 0, feConnPerSec: 0, feSessPerSec: 0 });
  });
});

describe('listenerGauges', () => {
  it('gives an infinite budget to a rate with no configured limit', () => {
    const g = listenerGauges({ ...fives(), connPerSec: 1000, feSessPerSec: 1000 }, makeConfig());
    expect(g.connRateRemain).toBe(Infinity);
    expect(g.sessRateRemain).toBe(Infinity);
  });

  it('gives the remaining budget of each configured rate, and the live gauges', () => {
    const c = { ...zeroCounters(), nbconn: 2, actconn: 3, feconn: 1, connPerSec: 3, feSessPerSec: 4 };
    expect(listenerGauges(c, makeConfig({ maxconnrate: 10, rateLimitSessions: 4 }))).toEqual({
      nbconn: 2,
      actconn: 3,
      feconn: 1,
      connRateRemain: 7,
      sessRateRemain: 0,
    });
  });

  it('reads the session rate from completed sessions (fe_sess_per_sec), not from accepted connections', () => {
    const c = { ...zeroCounters(), feConnPerSec: 9, feSessPerSec: 1 };
    expect(listenerGauges(c, makeConfig({ rateLimitSessions: 2 })).sessRateRemain).toBe(1);
  });
});

describe('copyCounters', () => {
  it('copies every counter, each with its own value, into an object that shares nothing with the original', () => {
    const c = zeroCounters();
    (Object.keys(c) as (keyof typeof c)[]).forEach((k, i) => (c[k] = i + 1));
    const copy = copyCounters(c);
    expect(copy).toEqual(c);
    expect(Object.keys(copy).sort()).toEqual(Object.keys(c).sort());
    copy.feconn += 100;
    expect(c.feconn).not.toBe(copy.feconn);
  });

  it('keys counters by every field: two that differ in any one counter get different keys', () => {
    const base = zeroCounters();
    expect(countersKey(base)).toBe(countersKey(zeroCounters()));
    for (const k of Object.keys(base) as (keyof typeof base)[]) {
      const other = copyCounters(base);
      other[k] = 1;
      expect(countersKey(other), k).not.toBe(countersKey(base));
    }
  });
});
