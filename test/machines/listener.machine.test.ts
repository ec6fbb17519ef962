/**
 * One example per transition of the listener machine, driven standalone through MachineRunner.
 * The counters its guards compare arrive as event params (the gauges), so each case states the
 * gauges listener_accept or the release block would read at that moment.
 *
 * The expectations come from haproxy-history.md §3 "listener_accept" (its checks in order:
 * maxconnrate, rate-limit sessions, global maxconn, frontend maxconn, accept() errors; then
 * conn_per_sec++, actconn++, jobs++, totalconn++, l->nbconn++; ret ≤ 0 gives the slot back, ret < 0
 * limits for 100 ms, ret > 0 with nbconn ≥ maxconn makes the listener full), and from its helpers
 * limit_listener, listener_full and resume_listener.
 */
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import type { Effect } from '../../machines/effects.ts';
import { listTransitions } from '../../machines/introspect.ts';
import type { ListenerEvent, ListenerGauges } from '../../machines/listener.machine.ts';
import { drive, sourceOf } from './drive.ts';

/** One example: the transition under test, how its source is reached, and what it must do. */
interface Case {
  transition: string; //           the id under test ('<source>|<event>|<rank>')
  says: string; //                 the behaviour, as the test's name
  config: Partial<ModelConfig>; // on top of DEFAULT_CONFIG (maxconn 2 everywhere, no rate limit)
  path: ListenerEvent[]; //        events that reach the source state from `ready`
  event: ListenerEvent; //         the event under test
  target: string; //               the dotted state after the step
  effects: Effect[]; //            the effects, in order, with their params
}

/** The gauges of an idle frontend: nothing counted, no rate limit reached. */
function gauges(partial: Partial<ListenerGauges> = {}): ListenerGauges {
  return { nbconn: 0, actconn: 0, feconn: 0, connRateRemain: Infinity, sessRateRemain: Infinity, ...partial };
}
const attempt = (partial: Partial<ListenerGauges> = {}, acceptError = false): ListenerEvent => ({
  type: 'ACCEPT_ATTEMPT',
  acceptError,
  ...gauges(partial),
});
const returned = (ret: -1 | 0 | 1, partial: Partial<ListenerGauges> = {}): ListenerEvent => ({
  type: 'ACCEPT_RETURNED',
  ret,
  ...gauges(partial),
});

const e = (type: Effect['type'], params?: Record<string, unknown>): Effect =>
  params === undefined ? { type } : { type, params };
const limitGlobal = (ms: number): Effect[] => [
  e('listenerStopAccepting'),
  e('scheduleQueueTask', { queue: 'global', ms }),
];
/** listener_accept's ret ≤ 0 branch: actconn--, jobs--, l->nbconn--. */
const GIVE_SLOT_BACK = [e('actconnDec'), e('jobsDec'), e('nbconnDec')];

const ON_GLOBAL_QUEUE: ListenerEvent[] = [attempt({}, true)];
const ON_FRONTEND_QUEUE: ListenerEvent[] = [attempt({ feconn: 2, nbconn: 1, actconn: 1 })];

const CASES: Case[] = [
  // --- ready: listener_accept ---
  {
    transition: 'listener.ready|ACCEPT_ATTEMPT|0',
    says: 'stops accepting and waits on the global queue until the connection rate allows the next event when maxconnrate has no budget left',
    config: { maxconnrate: 10 },
    path: [],
    event: attempt({ connRateRemain: 0 }),
    target: 'limited.onGlobalQueue',
    effects: [
      e('listenerStopAccepting'),
      e('scheduleQueueTask', { queue: 'global', ms: 1000, rate: 'conn' }),
    ],
  },
  {
    transition: 'listener.ready|ACCEPT_ATTEMPT|1',
    says: 'stops accepting and waits on the frontend queue with its rate task when rate-limit sessions has no budget left',
    config: { rateLimitSessions: 5 },
    path: [],
    event: attempt({ sessRateRemain: 0 }),
    target: 'limited.onFrontendQueue',
    effects: [
      e('listenerStopAccepting'),
      e('scheduleQueueTask', { queue: 'frontend', ms: 1000, rate: 'sess' }),
    ],
  },
  {
    transition: 'listener.ready|ACCEPT_ATTEMPT|2',
    says: 'stops accepting and retries on the global queue in 1 s when actconn reached the global maxconn',
    config: { feMaxconn: 5, globalMaxconn: 2 },
    path: [],
    event: attempt({ actconn: 2, nbconn: 1, feconn: 1 }),
    target: 'limited.onGlobalQueue',
    effects: limitGlobal(1000),
  },
  {
    transition: 'listener.ready|ACCEPT_ATTEMPT|3',
    says: "stops accepting and waits on the frontend queue, with no timer, when feconn reached the frontend's maxconn",
    config: { feMaxconn: 2, bindMaxconn: 5, globalMaxconn: 10 },
    path: [],
    event: attempt({ feconn: 2, nbconn: 1, actconn: 1 }),
    target: 'limited.onFrontendQueue',
    effects: [e('listenerStopAccepting')],
  },
  {
    transition: 'listener.ready|ACCEPT_ATTEMPT|4',
    says: 'stops accepting and retries on the global queue in 100 ms when accept() fails for lack of a resource',
    config: {},
    path: [],
    event: attempt({}, true),
    target: 'limited.onGlobalQueue',
    effects: limitGlobal(100),
  },
  {
    transition: 'listener.ready|ACCEPT_ATTEMPT|5',
    says: 'takes a slot in conn_per_sec, actconn, jobs, totalconn and nbconn, then calls session_accept',
    config: {},
    path: [],
    event: attempt(),
    target: 'ready',
    effects: [
      e('connPerSecInc'),
      e('actconnInc'),
      e('jobsInc'),
      e('totalconnInc'),
      e('nbconnInc'),
      e('sessionAccept'),
    ],
  },
  {
    transition: 'listener.ready|ACCEPT_ATTEMPT|5',
    says: 'takes no job and no totalconn at accept under 2.x, where session_new counts them',
    config: { profile: '2.6' },
    path: [],
    event: attempt(),
    target: 'ready',
    effects: [e('connPerSecInc'), e('actconnInc'), e('nbconnInc'), e('sessionAccept')],
  },
  {
    transition: 'listener.ready|ACCEPT_RETURNED|0',
    says: 'gives actconn and nbconn back, and no job, when session_accept_fd fails critically under 2.x, whose session_free gave the job back',
    config: { profile: '2.6' },
    path: [attempt()],
    event: returned(-1, { nbconn: 1, actconn: 1 }),
    target: 'limited.onGlobalQueue',
    effects: [e('actconnDec'), e('nbconnDec'), ...limitGlobal(100)],
  },
  {
    transition: 'listener.ready|ACCEPT_RETURNED|0',
    says: 'gives the slot back and limits itself on the global queue for 100 ms when session_accept fails critically',
    config: {},
    path: [attempt()],
    event: returned(-1, { nbconn: 1, actconn: 1 }),
    target: 'limited.onGlobalQueue',
    effects: [...GIVE_SLOT_BACK, ...limitGlobal(100)],
  },
  {
    transition: 'listener.ready|ACCEPT_RETURNED|1',
    says: 'gives the slot back and keeps accepting when session_accept ignores the connection',
    config: {},
    path: [attempt()],
    event: returned(0, { nbconn: 1, actconn: 1 }),
    target: 'ready',
    effects: [...GIVE_SLOT_BACK],
  },
  {
    transition: 'listener.ready|ACCEPT_RETURNED|2',
    says: 'becomes full when the kept connection took the last slot of the bind',
    config: { bindMaxconn: 2 },
    path: [attempt()],
    event: returned(1, { nbconn: 2, actconn: 2, feconn: 2 }),
    target: 'full',
    effects: [e('listenerStopAccepting')],
  },
  {
    transition: 'listener.ready|ACCEPT_RETURNED|3',
    says: 'keeps accepting when the connection is kept and slots remain',
    config: { bindMaxconn: 2 },
    path: [attempt()],
    event: returned(1, { nbconn: 1, actconn: 1, feconn: 1 }),
    target: 'ready',
    effects: [],
  },
  // --- full ---
  {
    transition: 'listener.full|RESUME|0',
    says: 'is resumed and polled again when a release frees a slot of the bind',
    config: { bindMaxconn: 2 },
    path: [attempt(), returned(1, { nbconn: 2, actconn: 2, feconn: 2 })],
    event: { type: 'RESUME', ...gauges({ nbconn: 1, actconn: 1, feconn: 1 }) },
    target: 'ready',
    effects: [e('listenerResumeAccepting')],
  },
  // --- limited.onGlobalQueue ---
  {
    transition: 'listener.limited.onGlobalQueue|DEQUEUE_GLOBAL|0',
    says: 'stays on the global queue, with no timer, when the global task finds every global slot taken',
    config: {},
    path: ON_GLOBAL_QUEUE,
    event: { type: 'DEQUEUE_GLOBAL', ...gauges({ actconn: 2 }) },
    target: 'limited.onGlobalQueue',
    effects: [],
  },
  {
    transition: 'listener.limited.onGlobalQueue|DEQUEUE_GLOBAL|1',
    says: 'is polled again when the global queue is dequeued',
    config: {},
    path: ON_GLOBAL_QUEUE,
    event: { type: 'DEQUEUE_GLOBAL', ...gauges() },
    target: 'ready',
    effects: [e('listenerResumeAccepting')],
  },
  // --- limited.onFrontendQueue ---
  {
    transition: 'listener.limited.onFrontendQueue|DEQUEUE_FRONTEND|0',
    says: "stays on the frontend queue, with no timer, when the frontend's task finds the frontend at its maxconn",
    config: { feMaxconn: 2, bindMaxconn: 5, globalMaxconn: 10 },
    path: ON_FRONTEND_QUEUE,
    event: { type: 'DEQUEUE_FRONTEND', ...gauges({ feconn: 2, actconn: 2, nbconn: 2 }) },
    target: 'limited.onFrontendQueue',
    effects: [],
  },
  {
    transition: 'listener.limited.onFrontendQueue|DEQUEUE_FRONTEND|1',
    says: "stays on the frontend queue when the session rate still has no budget, and arms the frontend's task",
    config: { rateLimitSessions: 5 },
    path: [attempt({ sessRateRemain: 0 })],
    event: { type: 'DEQUEUE_FRONTEND', ...gauges({ sessRateRemain: 0 }) },
    target: 'limited.onFrontendQueue',
    effects: [{ type: 'scheduleQueueTask', params: { queue: 'frontend', ms: 1000, rate: 'sess' } }],
  },
  {
    transition: 'listener.limited.onFrontendQueue|DEQUEUE_FRONTEND|2',
    says: 'is polled again when the frontend queue is dequeued after a session of the frontend ends',
    config: { feMaxconn: 2, bindMaxconn: 5, globalMaxconn: 10 },
    path: ON_FRONTEND_QUEUE,
    event: { type: 'DEQUEUE_FRONTEND', ...gauges({ feconn: 1 }) },
    target: 'ready',
    effects: [e('listenerResumeAccepting')],
  },
];

describe('the listener machine', () => {
  const states = [...new Set(CASES.map((c) => sourceOf(c.transition)))];
  describe.each(states)('in %s', (state) => {
    for (const c of CASES.filter((x) => sourceOf(x.transition) === state))
      it(c.says, () => {
        const { source, step, target } = drive('listener', c.config, c.path, c.event);
        expect(source).toBe(state);
        expect(step.transitions).toEqual([c.transition]);
        expect(target).toBe(c.target);
        expect(step.effects).toEqual(c.effects);
      });
  });

  it('has an example for every transition of the machine, and none for a transition it lacks', () => {
    const ids = listTransitions(MACHINES.listener).map((t) => t.id);
    expect([...new Set(CASES.map((c) => c.transition))].sort()).toEqual([...ids].sort());
  });

  it('checks maxconnrate before rate-limit sessions, and both before the global maxconn', () => {
    const config = { maxconnrate: 10, rateLimitSessions: 5, globalMaxconn: 2 };
    const all = { connRateRemain: 0, sessRateRemain: 0, actconn: 2 };
    expect(drive('listener', config, [], attempt(all)).step.transitions).toEqual([
      'listener.ready|ACCEPT_ATTEMPT|0',
    ]);
    expect(drive('listener', config, [], attempt({ ...all, connRateRemain: 3 })).step.transitions).toEqual([
      'listener.ready|ACCEPT_ATTEMPT|1',
    ]);
  });

  it('ignores maxconnrate and the global maxconn on an unlimited listener, and still accepts', () => {
    const { step, target } = drive(
      'listener',
      { unlimited: true, maxconnrate: 10, globalMaxconn: 2, feMaxconn: 5 },
      [],
      attempt({ connRateRemain: 0, actconn: 2 }),
    );
    expect(step.transitions).toEqual(['listener.ready|ACCEPT_ATTEMPT|5']);
    expect(target).toBe('ready');
  });

  it('makes a 2.x listener full after the accept that fills its bind, as dev12 does', () => {
    const config = { profile: '2.6' as const, bindMaxconn: 2, feMaxconn: 5 };
    const kept = drive('listener', config, [attempt()], returned(1, { nbconn: 2, actconn: 2, feconn: 2 }));
    expect(kept.step.transitions).toEqual(['listener.ready|ACCEPT_RETURNED|2']);
    expect(kept.target).toBe('full');
  });

  it("tests the frontend's maxconn before the global one under 2.x, after it under dev12", () => {
    const both = attempt({ actconn: 2, feconn: 2, nbconn: 1 });
    const limits = { feMaxconn: 2, bindMaxconn: 5, globalMaxconn: 2 };
    expect(drive('listener', limits, [], both).target).toBe('limited.onGlobalQueue');
    expect(drive('listener', { ...limits, profile: '2.6' }, [], both).target).toBe('limited.onFrontendQueue');
  });

  it('gives a bind without maxconn no limit of its own under 2.x, and the frontend maxconn under dev12', () => {
    expect(makeConfig({ feMaxconn: 7 }).bindMaxconn).toBe(7);
    expect(makeConfig({ profile: '2.6', feMaxconn: 7 }).bindMaxconn).toBeNull();
    const many = attempt({ nbconn: 50, feconn: 1, actconn: 1 });
    expect(drive('listener', { profile: '2.6', feMaxconn: 100, globalMaxconn: 100 }, [], many).target).toBe(
      'ready',
    );
  });

  it('stays full when a release leaves the bind without a free slot', () => {
    const { step, target } = drive(
      'listener',
      { bindMaxconn: 2 },
      [attempt(), returned(1, { nbconn: 2, actconn: 2, feconn: 2 })],
      { type: 'RESUME', ...gauges({ nbconn: 2, actconn: 2, feconn: 2 }) },
    );
    expect(step.transitions).toEqual([]);
    expect(target).toBe('full');
  });

  it('leaves a listener on the global queue alone when the frontend queue is dequeued', () => {
    const { step, target } = drive('listener', {}, ON_GLOBAL_QUEUE, {
      type: 'DEQUEUE_FRONTEND',
      ...gauges(),
    });
    expect(step.transitions).toEqual([]);
    expect(target).toBe('limited.onGlobalQueue');
  });
});

describe("what the proxy's accept loop rests on", () => {
  // impl/driver.ts polls while the listener accepts and ends its loop when an attempt is not taken:
  // that never spins only if the machine stops the polling on every way out of ready, resumes it
  // on every way back, and takes the connection on every attempt that stays in ready.
  const READY = MACHINES.listener.id + '.ready';
  const transitions = listTransitions(MACHINES.listener);

  it('stops accepting on every transition that leaves ready, and resumes on every one that returns', () => {
    const wrong = transitions.filter((t) => {
      const from = t.source === READY;
      const to = t.targets.length === 0 ? from : t.targets.every((id) => id === READY);
      const stops = t.actions.includes('listenerStopAccepting');
      const resumes = t.actions.includes('listenerResumeAccepting');
      return stops !== (from && !to) || resumes !== (!from && to);
    });
    expect(wrong.map((t) => t.id)).toEqual([]);
    expect(transitions.some((t) => t.actions.includes('listenerStopAccepting'))).toBe(true);
  });

  it('takes the connection on every accept attempt that leaves the listener ready', () => {
    const staying = transitions.filter(
      (t) => t.source === READY && t.event === 'ACCEPT_ATTEMPT' && t.targets.length === 0,
    );
    expect(staying.length).toBeGreaterThan(0);
    expect(staying.filter((t) => !t.actions.includes('sessionAccept')).map((t) => t.id)).toEqual([]);
  });
});
