/**
 * HAProxy's counters, and the arithmetic of the counter effects. Both the model (system.ts) and the
 * reference proxy apply counter effects through `applyCounterEffect`, so a counter changes only
 * when a machine emits the effect that changes it, exactly as HAProxy's statements do. No counter
 * is ever computed from the machines' states: the invariants compare these counters with an
 * independent count of what is live.
 */
import type { ModelConfig } from './config.ts';
import type { EffectName } from './effects.ts';
import type { ListenerGauges } from './listener.machine.ts';

export interface Counters {
  feconn: number; //       p->feconn: sessions of the frontend, embryonic ones included (scur)
  connMax: number; //      p->fe_counters.conn_max: highest feconn seen (smax)
  cumConn: number; //      p->fe_counters.cum_conn: connections accepted by the frontend (conn_tot)
  cumSess: number; //      p->fe_counters.cum_sess: sessions started by session_complete (frontend stot)
  deniedConn: number; //   p->fe_counters.denied_conn: tcp-request connection rejects (dcon)
  feConnPerSec: number; // p->fe_conn_per_sec over the current second (conn_rate)
  feSessPerSec: number; // p->fe_sess_per_sec over the current second (rate); rate-limit sessions reads it
  nbconn: number; //       l->nbconn: connections of the listener (listener scur)
  lCumConn: number; //     l->counters->cum_conn (listener stot)
  lCumSess: number; //     l->counters->cum_sess
  actconn: number; //      actconn: connections of all non-unlimited listeners (CurrConns)
  jobs: number; //         jobs: everything that keeps the process alive (Jobs)
  totalconn: number; //    totalconn: every accepted connection (CumConns)
  connPerSec: number; //   global.conn_per_sec over the current second; maxconnrate reads it
  sslconns: number; //     sslconns (ssl_sock.c's static in 1.5-dev12, global.sslconns since 2.5): live SSL contexts (CurrSslConns); maxsslconn reads it
  totalsslconns: number; // global.totalsslconns: SSL contexts ever created (CumSslConns; since 1.5-dev22, 71b734c30: 0 in dev12)
}

/**
 * Returns a copy of `c`: the same as `{ ...c }`, several times cheaper (the trace checker copies
 * the model's counters after every counter effect, and every model step copies them once).
 * Counters objects have exactly the fields of the interface (zeroCounters builds them, everything
 * else copies them), and TypeScript refuses this literal if one is missing. Pure.
 */
export function copyCounters(c: Counters): Counters {
  return {
    feconn: c.feconn,
    connMax: c.connMax,
    cumConn: c.cumConn,
    cumSess: c.cumSess,
    deniedConn: c.deniedConn,
    feConnPerSec: c.feConnPerSec,
    feSessPerSec: c.feSessPerSec,
    nbconn: c.nbconn,
    lCumConn: c.lCumConn,
    lCumSess: c.lCumSess,
    actconn: c.actconn,
    jobs: c.jobs,
    totalconn: c.totalconn,
    connPerSec: c.connPerSec,
    sslconns: c.sslconns,
    totalsslconns: c.totalsslconns,
  };
}

/** All counters at zero, as at start-up. */
export function zeroCounters(): Counters {
  return {
    feconn: 0,
    connMax: 0,
    cumConn: 0,
    cumSess: 0,
    deniedConn: 0,
    feConnPerSec: 0,
    feSessPerSec: 0,
    nbconn: 0,
    lCumConn: 0,
    lCumSess: 0,
    actconn: 0,
    jobs: 0,
    totalconn: 0,
    connPerSec: 0,
    sslconns: 0,
    totalsslconns: 0,
  };
}

const COUNTER_NAMES = Object.keys(zeroCounters()) as (keyof Counters)[];

/**
 * Returns every counter of `c`, in the order of the interface, comma-separated: equal for two
 * Counters iff every counter is equal, a counter added later included. Pure.
 */
export function countersKey(c: Counters): string {
  let key = '';
  for (let i = 0; i < COUNTER_NAMES.length; i++)
    key += i === 0 ? `${c[COUNTER_NAMES[i]!]}` : `,${c[COUNTER_NAMES[i]!]}`;
  return key;
}

/**
 * Applies counter effect `name` to `c` in place, as HAProxy's statement for it does.
 * Returns true if `name` is a counter effect, false (and changes nothing) otherwise.
 * actconn and global.conn_per_sec are not touched for an LI_O_UNLIMITED listener; totalsslconns,
 * which 1.5-dev12 does not have yet (1.5-dev22, 71b734c30), only moves in the 2.x profiles.
 */
export function applyCounterEffect(c: Counters, name: EffectName, config: ModelConfig): boolean {
  switch (name) {
    case 'actconnInc':
      if (!config.unlimited) c.actconn++;
      return true;
    case 'actconnDec':
      if (!config.unlimited) c.actconn--;
      return true;
    case 'connPerSecInc':
      if (!config.unlimited) c.connPerSec++;
      return true;
    case 'jobsInc':
      c.jobs++;
      return true;
    case 'jobsDec':
      c.jobs--;
      return true;
    case 'totalconnInc':
      c.totalconn++;
      return true;
    case 'nbconnInc':
      c.nbconn++;
      return true;
    case 'nbconnDec':
      c.nbconn--;
      return true;
    case 'feconnInc':
      c.feconn++;
      return true;
    case 'feconnDec':
      c.feconn--;
      return true;
    case 'connMaxUpdate':
      if (c.feconn > c.connMax) c.connMax = c.feconn;
      return true;
    case 'cumConnInc':
      c.cumConn++;
      c.lCumConn++;
      c.feConnPerSec++;
      return true;
    case 'cumSessInc':
      c.cumSess++;
      c.lCumSess++;
      c.feSessPerSec++;
      return true;
    case 'deniedConnInc':
      c.deniedConn++;
      return true;
    case 'sslconnsInc':
      c.sslconns++;
      if (config.profile !== 'dev12') c.totalsslconns++;
      return true;
    case 'sslconnsDec':
      c.sslconns--;
      return true;
    case 'cumSessDec': // mutants only (machines/mutants.ts): HAProxy never takes a session back
      c.cumSess--;
      c.lCumSess--;
      return true;
    default:
      return false;
  }
}

/**
 * Returns the gauges the listener machine's guards compare, from counters `c`.
 * Pure. A rate with no configured limit has an infinite budget.
 */
export function listenerGauges(c: Counters, config: ModelConfig): ListenerGauges {
  return {
    nbconn: c.nbconn,
    actconn: c.actconn,
    feconn: c.feconn,
    connRateRemain: config.maxconnrate === null ? Infinity : config.maxconnrate - c.connPerSec,
    sessRateRemain: config.rateLimitSessions === null ? Infinity : config.rateLimitSessions - c.feSessPerSec,
  };
}

/**
 * Starts a new rate period (one second elapsed): the per-second counters restart from zero. A
 * simplification of freq_ctr, whose freq_ctr_remain still weighs the last second's count as the
 * current one goes by (docs/porting-notes.md, "Where the machines simplify HAProxy"). This is time,
 * not a lifecycle decision, so no machine emits it.
 */
export function newRatePeriod(c: Counters): void {
  c.connPerSec = 0;
  c.feConnPerSec = 0;
  c.feSessPerSec = 0;
}
