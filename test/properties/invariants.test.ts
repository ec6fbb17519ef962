/**
 * The invariants as predicates: each holds on the states the model really reaches, and each fails
 * on a state (or step) that breaks what it states, built by replaying real events and then
 * changing one fact of the state after the last one. The mutants (test/machines/mutants.test.ts)
 * show the same from the other side: a defective model is caught.
 */
import { describe, expect, it } from 'vitest';
import type { TransitionRecord } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { EFFECTS } from '../../machines/effects.ts';
import { listTransitions } from '../../machines/introspect.ts';
import { sessionMachine } from '../../machines/session.machine.ts';
import { SystemModel, type SystemEvent, type SystemState } from '../../machines/system.ts';
import { CONFIG_SPACE } from '../../properties/bounds.ts';
import { checkTrace, explore } from '../../properties/explore.ts';
import { HISTORY_PATHS } from '../../properties/historyPaths.ts';
import {
  checkInvariants,
  invariantByName,
  INVARIANTS,
  viewOf,
  type InvariantContext,
} from '../../properties/invariants.ts';

/**
 * Replays `events` on a model of `n` connections under `partial`, then returns the context of the
 * last step; when `broken`, with `tamper` applied to a copy of the state after it and `records` to
 * its machine steps.
 */
function lastStep(
  broken: boolean,
  partial: Partial<ModelConfig>,
  events: SystemEvent[],
  n = 1,
  tamper: (next: SystemState, prev: SystemState, model: SystemModel) => void = () => {},
  records: (r: TransitionRecord[]) => TransitionRecord[] = (r) => r,
): InvariantContext {
  const model = new SystemModel(makeConfig(partial), n);
  let state = model.initial();
  let prev = state;
  let last: TransitionRecord[] = [];
  for (const e of events) {
    const r = model.step(state, e);
    if (!r) throw new Error(`${JSON.stringify(e)} cannot happen here`);
    prev = state;
    state = r.state;
    last = r.records;
  }
  const next = model.clone(state);
  if (broken) tamper(next, prev, model);
  return {
    model,
    config: model.config,
    next: viewOf(model, next),
    prev: events.length > 0 ? viewOf(model, prev) : null,
    event: events.at(-1) ?? null,
    records: broken ? records(last) : last,
  };
}

/** The snapshot id of `machine` in state `value`, among those the model has already interned. */
function snapshotId(model: SystemModel, machine: 'connection' | 'listener', value: string): number {
  const id = model.composition.runners[machine].values.indexOf(value);
  if (id < 0) throw new Error(`no ${machine} snapshot ${value} interned yet`);
  return id;
}

const ACCEPT: SystemEvent = { type: 'ACCEPT' };
const PROXY_OK: SystemEvent = { type: 'PROXY_HEADER_OK', conn: 0 };
const TIMER: SystemEvent = { type: 'TIMER_EXPIRE', conn: 0 };
const BAD_HEADER: SystemEvent = { type: 'PROXY_HEADER_ERROR', conn: 0, code: 'PRX_BAD_HDR' };
const HTTP_RAW: Partial<ModelConfig> = { mode: 'http', acceptProxy: false };
const LIMITS: Partial<ModelConfig> = { feMaxconn: 1, bindMaxconn: 2, globalMaxconn: 2 };
const TLS: Partial<ModelConfig> = { acceptProxy: false, ssl: true };

/** `records` with the kill line of the session's steps marked as the deadline's (`byDeadline`) or not. */
function markKill(records: TransitionRecord[], byDeadline: boolean): TransitionRecord[] {
  return records.map((r) => ({
    ...r,
    effects: r.effects.map((e) => (e.type === 'logEmbryonicKill' ? { ...e, params: { byDeadline } } : e)),
  }));
}

/**
 * One broken fact, and the invariant that must notice it: `ctx(true)` is the step with the fact
 * broken, `ctx(false)` the same step as the model really takes it.
 */
interface Broken {
  invariant: string;
  says: string;
  ctx: (broken: boolean) => InvariantContext;
  message: RegExp;
}

const BROKEN: Broken[] = [
  {
    invariant: 'errorKillsInSameStep',
    says: 'a failed connection whose session is still live',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, BAD_HEADER, { type: 'ACCEPT' }], 2, (s, _p, model) => {
        s.world.conns.get(1)!.connection = snapshotId(model, 'connection', 'error');
      }),
    message: /connection 1: its handshake failed \(PRX_BAD_HDR\) but its session is still embryonic/,
  },
  {
    invariant: 'embryonicEndsOnce',
    says: 'an embryonic session whose connection is ready',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, PROXY_OK, ACCEPT], 2, (s, _p, model) => {
        s.world.conns.get(1)!.connection = snapshotId(model, 'connection', 'ready');
      }),
    message: /still embryonic but the connection is ready/,
  },
  {
    invariant: 'embryonicEndsOnce',
    says: 'an embryonic session that ended twice',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, PROXY_OK], 1, (s) => void (s.memory[0]!.embryonicEnds = 2)),
    message: /ended 2 times/,
  },
  {
    invariant: 'noBufferBeforeHandshake',
    says: 'a buffer held by an embryonic session',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.memory[0]!.bufs.req = 'live')),
    message: /embryonic but req was allocated/,
  },
  {
    invariant: 'noBufferBeforeHandshake',
    says: 'a buffer once allocated by a session killed by a handshake error',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, BAD_HEADER], 1, (s) => void (s.memory[0]!.bufs.rep = 'freed')),
    message: /died embryonic \(PRX_BAD_HDR\) but rep was allocated/,
  },
  {
    invariant: 'sessionsListExact',
    says: 'an embryonic session in the sessions list',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.memory[0]!.inList = true)),
    message: /embryonic .* still linked/,
  },
  {
    invariant: 'sessionsListExact',
    says: 'an initialized session missing from the sessions list',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, PROXY_OK], 1, (s) => void (s.memory[0]!.inList = false)),
    message: /initialized but not linked/,
  },
  {
    invariant: 'fdClosedOnce',
    says: 'an fd left open after its session is freed',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.memory[0]!.fd = 'open')),
    message: /freed but its fd is still open/,
  },
  {
    invariant: 'fdClosedOnce',
    says: 'an fd closed twice',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.memory[0]!.fdCloses = 2)),
    message: /closed 2 times/,
  },
  {
    invariant: 'fdClosedOnce',
    says: 'an fd written after its close',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void s.memory[0]!.faults.push('write on a closed fd')),
    message: /write on a closed fd/,
  },
  {
    invariant: 'fdClosedOnce',
    says: 'an fd closed under a live session',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.memory[0]!.fd = 'closed')),
    message: /live but its fd is closed/,
  },
  {
    invariant: 'fdtabExact',
    says: 'an fd left in fdtab after its close',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.memory[0]!.inFdtab = true)),
    message: /its fd is closed but still registered in fdtab/,
  },
  {
    invariant: 'fdtabExact',
    says: 'an open fd left in fdtab after its session is freed',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => {
        s.memory[0]!.fd = 'open';
        s.memory[0]!.inFdtab = true;
      }),
    message: /its session is freed but its fd is still registered in fdtab/,
  },
  {
    invariant: 'fdtabExact',
    says: 'an fd in fdtab before accept() created it',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 2, (s) => void (s.memory[1]!.inFdtab = true)),
    message: /connection 1: its fd is registered in fdtab before accept\(\) created it/,
  },
  {
    invariant: 'fdtabExact',
    says: 'an embryonic session whose fd is not in fdtab',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.memory[0]!.inFdtab = false)),
    message: /its session is embryonic but its fd is not registered in fdtab/,
  },
  {
    invariant: 'fdtabExact',
    says: 'an initialized session whose fd is not in fdtab',
    ctx: (broken) => lastStep(broken, HTTP_RAW, [ACCEPT], 1, (s) => void (s.memory[0]!.inFdtab = false)),
    message: /its session is initialized but its fd is not registered in fdtab/,
  },
  {
    invariant: 'taskFreedOnce',
    says: 'a task left live after a kill',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.memory[0]!.task = 'live')),
    message: /freed but its task is still live/,
  },
  {
    invariant: 'taskFreedOnce',
    says: 'a task freed under a live session',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.memory[0]!.task = 'freed')),
    message: /its session is live but its task is freed/,
  },
  {
    invariant: 'http500Only',
    says: 'a 500 in tcp mode',
    ctx: (broken) =>
      lastStep(
        broken,
        { mode: 'tcp' },
        [{ type: 'ACCEPT', fail: 'session' }],
        1,
        (s) => void s.memory[0]!.sent.push('500'),
      ),
    message: /a 500 was written in tcp mode/,
  },
  {
    invariant: 'http500Only',
    says: 'a 500 to a connection that session_accept kept',
    ctx: (broken) => lastStep(broken, HTTP_RAW, [ACCEPT], 1, (s) => void s.memory[0]!.sent.push('500')),
    message: /session_accept returned 1/,
  },
  {
    invariant: 'http500Only',
    says: 'two 500s',
    ctx: (broken) =>
      lastStep(
        broken,
        HTTP_RAW,
        [{ type: 'ACCEPT', fail: 'session' }],
        1,
        (s) => void s.memory[0]!.sent.push('500'),
      ),
    message: /2 responses 500/,
  },
  {
    invariant: 'deadlineBounded',
    says: 'an embryonic session without its deadline while timeout client is set',
    ctx: (broken) =>
      lastStep(broken, { timeoutClient: 300 }, [ACCEPT], 1, (s) => void (s.memory[0]!.deadline = null)),
    message: /not armed, not the configured 300 ms/,
  },
  {
    invariant: 'deadlineBounded',
    says: 'an embryonic session with a deadline while no timeout is set',
    ctx: (broken) =>
      lastStep(broken, { timeoutClient: null }, [ACCEPT], 1, (s) => void (s.memory[0]!.deadline = 300)),
    message: /300 ms is armed though no timeout is configured/,
  },
  {
    invariant: 'deadlineBounded',
    says: 'a 2.9 embryonic session armed with timeout client rather than client-hs',
    ctx: (broken) =>
      lastStep(broken, { profile: '2.9', timeoutClient: 300, timeoutClientHs: 100 }, [ACCEPT], 1, (s) => {
        s.memory[0]!.deadline = 300;
      }),
    message: /not the configured 100 ms/,
  },
  {
    invariant: 'deadlineBounded',
    says: "an embryonic session whose task runs the listener's handler instead of expire_mini_session",
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.memory[0]!.taskProcess = 'handler')),
    message: /task is live running handler, not expire_mini_session/,
  },
  {
    invariant: 'deadlineBounded',
    says: 'a 2.9 embryonic session armed with a client-hs of 0, which is unset',
    ctx: (broken) =>
      lastStep(broken, { profile: '2.9', timeoutClient: 300, timeoutClientHs: 0 }, [ACCEPT], 1, (s) => {
        s.memory[0]!.deadline = 0;
      }),
    message: /not the configured 300 ms/,
  },
  ...(['feconn', 'nbconn', 'actconn', 'jobs'] as const).map((k): Broken => ({
    invariant: `${k}Balance`,
    says: `${k} above the live sessions`,
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.counters[k] = 2)),
    message: new RegExp(`${k} is 2 but 1 connections hold a live session`),
  })),
  {
    invariant: 'actconnBalance',
    says: 'actconn counted on an unlimited listener',
    ctx: (broken) => lastStep(broken, { unlimited: true }, [ACCEPT], 1, (s) => void (s.counters.actconn = 1)),
    message: /actconn is 1 but 0/,
  },
  {
    invariant: 'sslconnsBalance',
    says: 'an SSL context freed while sslconns still counts it',
    ctx: (broken) =>
      lastStep(broken, TLS, [ACCEPT], 1, (s) => {
        s.memory[0]!.sslCtx = 'freed';
      }),
    message: /sslconns is 1 but 0 connections hold a live SSL context/,
  },
  {
    invariant: 'sslconnsWithinLimit',
    says: 'a second SSL context under maxsslconn 1',
    ctx: (broken) =>
      lastStep(broken, { ...TLS, maxsslconn: 1 }, [ACCEPT], 1, (s) => void (s.counters.sslconns = 2)),
    message: /sslconns is 2, above maxsslconn 1/,
  },
  {
    invariant: 'sslContextFreedAtClose',
    says: 'an SSL context left live by a kill',
    ctx: (broken) => lastStep(broken, TLS, [ACCEPT, TIMER], 1, (s) => void (s.memory[0]!.sslCtx = 'live')),
    message: /its fd is closed but its SSL context is still live/,
  },
  {
    invariant: 'sslContextWithSession',
    says: 'an embryonic TLS connection without its SSL context',
    ctx: (broken) => lastStep(broken, TLS, [ACCEPT], 1, (s) => void (s.memory[0]!.sslCtx = 'none')),
    message: /its session is live \(embryonic\) on a TLS bind but it holds no SSL context/,
  },
  {
    invariant: 'gaugesZeroWhenIdle',
    says: 'jobs left at 1 when nothing is live',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.counters.jobs = 1)),
    message: /no session is live but jobs = 1/,
  },
  {
    invariant: 'maxconnCountsEmbryonic',
    says: 'two live sessions for a frontend maxconn of 1',
    ctx: (broken) => lastStep(broken, LIMITS, [ACCEPT], 2, (s) => void (s.memory[1]!.session = 'live')),
    message: /2 sessions are live, above the frontend maxconn 1/,
  },
  {
    invariant: 'listenerResumed',
    says: 'a full listener after a slot was freed',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, ACCEPT], 2, (s) => void (s.memory[0]!.session = 'freed')),
    message: /full with 1 live session\(s\) for a maxconn of 2/,
  },
  {
    invariant: 'frontendQueueDequeued',
    says: 'a release that leaves the listener on the frontend queue',
    ctx: (broken) =>
      lastStep(broken, LIMITS, [ACCEPT, ACCEPT, TIMER], 2, (s, prev) => {
        s.world.listener = prev.world.listener;
      }),
    message: /still on the frontend queue/,
  },
  {
    invariant: 'globalQueueDequeued',
    says: 'a release that leaves the listener on the global queue',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, { type: 'ACCEPT', acceptError: true }, TIMER], 2, (s, prev) => {
        s.world.listener = prev.world.listener;
      }),
    message: /still on the global queue/,
  },
  {
    invariant: 'connMaxBounds',
    says: 'conn_max below feconn',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.counters.connMax = 0)),
    message: /conn_max 0 is below feconn 1/,
  },
  {
    invariant: 'connMaxBounds',
    says: 'conn_max going down',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.counters.connMax = 0)),
    message: /went down from 1 to 0/,
  },
  {
    invariant: 'cumulativeMonotonic',
    says: 'totalconn going down',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.counters.totalconn = 0)),
    message: /totalconn went down from 1 to 0/,
  },
  {
    invariant: 'cumulativeMonotonic',
    says: 'the total of SSL contexts going down',
    ctx: (broken) =>
      lastStep(
        broken,
        { ...TLS, profile: '2.6' },
        [ACCEPT, TIMER],
        1,
        (s) => void (s.counters.totalsslconns = 0),
      ),
    message: /totalsslconns went down from 1 to 0/,
  },
  {
    invariant: 'rateLimitCountsCompletedOnly',
    says: 'an embryonic accept that consumes the session rate',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT], 1, (s) => void (s.counters.feSessPerSec = 1)),
    message: /feSessPerSec rose by 1 while 0 sessions entered session_complete/,
  },
  {
    invariant: 'rateLimitCountsCompletedOnly',
    says: 'a completion counted twice in cum_sess',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, PROXY_OK], 1, (s) => void (s.counters.cumSess = 2)),
    message: /cumSess rose by 2 while 1 sessions/,
  },
  {
    invariant: 'cumSessLeCumConn',
    says: 'more sessions than connections',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, PROXY_OK], 1, (s) => void (s.counters.cumSess = 2)),
    message: /cum_sess 2 exceeds cum_conn 1/,
  },
  {
    invariant: 'cumSessLeCumConn',
    says: 'more sessions than connections on the listener',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, PROXY_OK], 1, (s) => void (s.counters.lCumSess = 2)),
    message: /the listener's cum_sess 2 exceeds its cum_conn 1/,
  },
  {
    invariant: 'poolBalancedWhenIdle',
    says: 'a buffer still allocated when nothing is live',
    ctx: (broken) =>
      lastStep(
        broken,
        {},
        [ACCEPT, PROXY_OK, { type: 'SESSION_END', conn: 0 }],
        1,
        (s) => void (s.memory[0]!.bufs.rep = 'live'),
      ),
    message: /rep is still allocated/,
  },
  {
    invariant: 'errCodeFirstWins',
    says: 'an err_code that is not the code of the failure that set it',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, BAD_HEADER], 1, undefined, (records) =>
        records.map((r) =>
          r.machine === 'connection' ? { ...r, event: { ...r.event, code: 'PRX_TRUNCATED' } } : r,
        ),
      ),
    message: /err_code is PRX_BAD_HDR, but its first failure in the step gives PRX_TRUNCATED/,
  },
  {
    invariant: 'errCodeFirstWins',
    says: 'an err_code set without a failure',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, BAD_HEADER], 1, undefined, () => []),
    message: /gives null/,
  },
  {
    invariant: 'killLoggedOnce',
    says: 'a handshake error killed on a logging frontend without a kill line',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, BAD_HEADER], 1, (s) => void (s.memory[0]!.logged = 0)),
    message: /killed \(err_code PRX_BAD_HDR\) on a frontend that logs, and 0 kill lines were logged, not 1/,
  },
  {
    invariant: 'killLoggedOnce',
    says: 'a failed session_complete killed on a logging frontend without a kill line',
    ctx: (broken) =>
      lastStep(
        broken,
        {},
        [ACCEPT, { type: 'PROXY_HEADER_OK', conn: 0, fail: 'rep' }],
        1,
        (s) => void (s.memory[0]!.logged = 0),
      ),
    message: /killed \(err_code NONE\) on a frontend that logs, and 0 kill lines/,
  },
  {
    invariant: 'killLoggedOnce',
    says: 'a kill logged twice',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, TIMER], 1, (s) => void (s.memory[0]!.logged = 2)),
    message: /killed \(err_code PRX_TIMEOUT\) on a frontend that logs, and 2 kill lines were logged, not 1/,
  },
  {
    invariant: 'killLoggedOnce',
    says: 'a kill line on a frontend that does not log',
    ctx: (broken) =>
      lastStep(broken, { logging: false }, [ACCEPT, BAD_HEADER], 1, (s) => void (s.memory[0]!.logged = 1)),
    message: /killed and 1 kill line\(s\) logged, but the frontend does not log/,
  },
  {
    invariant: 'killLoggedOnce',
    says: 'a kill line for a session that completes',
    ctx: (broken) => lastStep(broken, {}, [ACCEPT, PROXY_OK], 1, (s) => void (s.memory[0]!.logged = 1)),
    message:
      /1 kill line\(s\) logged in a step that killed no embryonic session \(its session went from embryonic to initialized\)/,
  },
  {
    invariant: 'killLoggedOnce',
    says: 'a kill line for a session that session_accept ends',
    ctx: (broken) =>
      lastStep(broken, HTTP_RAW, [{ type: 'ACCEPT', fail: 'txn' }], 1, (s) => void (s.memory[0]!.logged = 1)),
    message: /killed no embryonic session \(its session went from absent to freed\)/,
  },
  {
    invariant: 'killLoggedOnce',
    says: "a deadline kill whose line is not marked as the deadline's",
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, TIMER], 1, undefined, (records) => markKill(records, false)),
    message: /the deadline killed its embryonic session but the kill line is not marked as the deadline's/,
  },
  {
    invariant: 'killLoggedOnce',
    says: "a handshake error whose kill line is marked as the deadline's",
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT, BAD_HEADER], 1, undefined, (records) => markKill(records, true)),
    message: /killed by HANDSHAKE_END, not the deadline, but the kill line is marked as the deadline's/,
  },
  {
    invariant: 'noMemoryFaults',
    says: 'a memory fault',
    ctx: (broken) =>
      lastStep(broken, {}, [ACCEPT], 1, (s) => void s.memory[0]!.faults.push('task freed twice')),
    message: /task freed twice/,
  },
];

describe('the invariants', () => {
  it('have unique names, a "True iff" doc line, and watch only effects that exist', () => {
    expect(new Set(INVARIANTS.map((i) => i.name)).size).toBe(INVARIANTS.length);
    for (const inv of INVARIANTS) {
      expect(inv.doc).toMatch(/^True iff /);
      expect(inv.watches.length).toBeGreaterThan(0);
      for (const e of inv.watches) expect(Object.keys(EFFECTS)).toContain(e);
    }
  });

  it('include every invariant the issue names', () => {
    const names = INVARIANTS.map((i) => i.name);
    for (const n of [
      'feconnBalance',
      'nbconnBalance',
      'actconnBalance',
      'jobsBalance',
      'gaugesZeroWhenIdle',
      'connMaxBounds',
      'cumulativeMonotonic',
      'cumSessLeCumConn',
      'noBufferBeforeHandshake',
      'poolBalancedWhenIdle',
      'fdClosedOnce',
      'taskFreedOnce',
      'sessionsListExact',
      'embryonicEndsOnce',
      'errorKillsInSameStep',
      'deadlineBounded',
      'listenerResumed',
      'frontendQueueDequeued',
      'rateLimitCountsCompletedOnly',
      'maxconnCountsEmbryonic',
      'http500Only',
      'errCodeFirstWins',
      'noMemoryFaults',
    ])
      expect(names).toContain(n);
  });

  it.each(HISTORY_PATHS.map((p) => [p.name, p] as const))(
    'all hold along the history path "%s"',
    (_n, path) => {
      expect(checkTrace(new SystemModel(path.config, 1), path.events)).toEqual([]);
    },
  );

  it.each(BROKEN.map((b) => [b.invariant, b.says, b] as const))('%s fails on %s', (name, _says, b) => {
    const violations = checkInvariants(b.ctx(true), [invariantByName(name)]);
    expect(violations).toHaveLength(1);
    expect(violations[0]!.message).toMatch(b.message);
  });

  it.each(BROKEN.map((b) => [b.invariant, b.says, b] as const))(
    '%s holds on the real step that %s is built from',
    (name, _says, b) => {
      expect(checkInvariants(b.ctx(false), [invariantByName(name)])).toEqual([]);
    },
  );

  it("let an unlimited listener hold more sessions than the global maxconn, never more than the frontend's", () => {
    const ctx = lastStep(false, { unlimited: true, globalMaxconn: 1, feMaxconn: 3 }, [ACCEPT, ACCEPT], 2);
    expect(ctx.next.live).toBe(2);
    expect(checkInvariants(ctx, [invariantByName('maxconnCountsEmbryonic')])).toEqual([]);
  });

  it("fail errCodeFirstWins on a step that changes a connection's err_code once set", () => {
    const model = new SystemModel(makeConfig({}), 1);
    const after = (events: SystemEvent[]) => {
      let r = { state: model.initial(), records: [] as TransitionRecord[] };
      for (const e of events) r = model.step(r.state, e)!;
      return r;
    };
    const bad = after([ACCEPT, BAD_HEADER]);
    const late = after([ACCEPT, TIMER]);
    const ctx: InvariantContext = {
      model,
      config: model.config,
      prev: viewOf(model, bad.state),
      next: viewOf(model, late.state),
      event: TIMER,
      records: late.records,
    };
    expect(checkInvariants(ctx, [invariantByName('errCodeFirstWins')])[0]?.message).toMatch(
      /err_code changed from PRX_BAD_HDR to PRX_TIMEOUT/,
    );
  });

  it('ignore a RATE_PERIOD step in the session-rate accounting', () => {
    const ctx = lastStep(false, { rateLimitSessions: 1 }, [ACCEPT, PROXY_OK, { type: 'RATE_PERIOD' }]);
    expect(ctx.next.counters.feSessPerSec).toBe(0);
    expect(checkInvariants(ctx, [invariantByName('rateLimitCountsCompletedOnly')])).toEqual([]);
  });

  it('want no kill line for a connection that sent nothing under dontlognull, and one for a bad header', () => {
    const silent = lastStep(false, { dontlognull: true }, [ACCEPT, { type: 'CLIENT_CLOSE', conn: 0 }]);
    expect(silent.next.conns[0]!.errCode).toBe('PRX_EMPTY');
    expect(silent.next.conns[0]!.mem.logged).toBe(0);
    expect(checkInvariants(silent, [invariantByName('killLoggedOnce')])).toEqual([]);
    const bad = lastStep(false, { dontlognull: true }, [
      ACCEPT,
      { type: 'PROXY_HEADER_ERROR', conn: 0, code: 'PRX_NOT_HDR' },
    ]);
    expect(bad.next.conns[0]!.mem.logged).toBe(1);
    expect(checkInvariants(bad, [invariantByName('killLoggedOnce')])).toEqual([]);
    // The silent step judged as if dontlognull were off breaks the invariant: a line was due.
    const off = { ...silent, config: { ...silent.config, dontlognull: false } };
    expect(checkInvariants(off, [invariantByName('killLoggedOnce')])[0]?.message).toMatch(/not 1/);
  });

  it('check step invariants only on steps, never on the initial state', () => {
    const ctx = lastStep(false, {}, []);
    expect(ctx.prev).toBeNull();
    const step = INVARIANTS.filter((i) => i.kind === 'step');
    expect(step.length).toBeGreaterThan(0);
    expect(checkInvariants(ctx, step)).toEqual([]);
  });
});

describe('the deadline with and without a timeout', () => {
  const expire = listTransitions(sessionMachine).find(
    (t) => t.source === 'session.embryonic' && t.event === 'TASK_WAKEUP' && t.guard === 'wokenByTimer',
  )!.id;

  it('expires an embryonic session when timeout client is set', () => {
    const r = explore({ config: makeConfig({ timeoutClient: 300 }), connections: 2 });
    expect(r.violation).toBeNull();
    expect(r.transitionsTaken).toContain(expire);
  });

  it('never expires an embryonic session when no timeout is set, as HAProxy (TICK_ETERNITY)', () => {
    const config = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy-ssl-no-timeout')!.config;
    expect(config.timeoutClient).toBeNull();
    const r = explore({ config, connections: 2 });
    expect(r.violation).toBeNull();
    expect(r.complete).toBe(true);
    expect(r.transitionsTaken).not.toContain(expire);
    const model = new SystemModel(config, 1);
    const embryonic = model.step(model.initial(), ACCEPT)!.state;
    expect(model.state(embryonic, 'session', 0)).toBe('embryonic');
    expect(model.isEnabled(embryonic, TIMER)).toBe(false);
  });
});
