/**
 * The listener lifecycle: whether a bind accepts new connections, and why not when it does not.
 *
 * In 1.5-dev12 a listener is LI_READY (its socket is polled), LI_FULL (l->nbconn reached
 * l->maxconn) or LI_LIMITED (waiting on the global queue or its frontend's queue for a global limit,
 * a rate limit, the frontend's maxconn or a transient accept error). Connections that arrive while it
 * is not ready wait in the kernel's listen backlog. A release (kill_mini_session or the end of
 * process_session) resumes a full listener and dequeues the queues (src/protocols.c at 2542b53b1,
 * src/listener.c from d1d545418).
 *
 * 2.x (the profiles 2.6 and 2.9) keeps the states and tests the limits in its own listener_accept's
 * order (src/listener.c at v2.6.12): the rates, then the bind's maxconn, the frontend's, and the
 * global one last, where 1.5-dev12 tests the global maxconn before the frontend's; and a bind
 * without maxconn has no limit of its own (config.ts bindFull). Both test the frontend's and the
 * global maxconn at the top of each turn of their accept loop, so HAProxy limits a listener right
 * after the accept that reached one of them while its turn budget (max_accept) lasts; the machine
 * takes those at the next attempt (ACCEPT_ATTEMPT), which changes when a 1 s global retry starts,
 * not which connections are accepted.
 *
 * The counters the guards compare arrive as event params: the machine decides, the host counts.
 */
import { setup } from 'xstate';
import { bindFull, configOf, type ModelConfig } from './config.ts';
import { hostEffects, type Effect } from './effects.ts';

/** Context of the listener. */
export interface ListenerContext {
  config: ModelConfig; // the frontend and bind configuration (never changes)
}

/** The counters listener_accept and resume_listener compare, as the host holds them now. */
export interface ListenerGauges {
  nbconn: number; //          l->nbconn
  actconn: number; //         actconn (global)
  feconn: number; //          p->feconn
  connRateRemain: number; //  budget left in global.conn_per_sec this second (Infinity = no limit)
  sessRateRemain: number; //  budget left in p->fe_sess_per_sec this second (Infinity = no limit)
}

/**
 * The names of the gauges. The machine reads them in its guards and nowhere else (no action params,
 * no context): the composition relies on it to key its memoised steps on the guards' outcomes
 * (machines/compose.ts, MachineRunner).
 */
export const LISTENER_GAUGES = [
  'nbconn',
  'actconn',
  'feconn',
  'connRateRemain',
  'sessRateRemain',
] as const satisfies readonly (keyof ListenerGauges)[];

/** Events the listener machine accepts. "from" names who sends it. */
export type ListenerEvent =
  | ({ type: 'ACCEPT_ATTEMPT'; acceptError: boolean } & ListenerGauges) // from I/O: the listening fd is readable
  | ({ type: 'ACCEPT_RETURNED'; ret: -1 | 0 | 1 } & ListenerGauges) //   from the session: session_accept returned
  | ({ type: 'RESUME' } & ListenerGauges) //                            from a release: resume_listener if LI_FULL
  | ({ type: 'DEQUEUE_GLOBAL' } & ListenerGauges) //                    from a release or the global queue task
  | ({ type: 'DEQUEUE_FRONTEND' } & ListenerGauges); //                 from a release or the frontend task

/**
 * True iff <actconn> connections take every global slot for this listener: `actconn >=
 * global.maxconn`, never for an LI_O_UNLIMITED listener. Pure.
 */
function globalFull(config: ModelConfig, actconn: number): boolean {
  return !config.unlimited && actconn >= config.globalMaxconn;
}

/**
 * Expands a macro effect of this machine into the primitive effects it stands for under
 * config.profile; returns any other effect unchanged in a one-element list. Pure.
 * - listenerJobAndTotalconnInc: 1.5-dev's listener_accept counts the job and totalconn (jobsInc,
 *   totalconnInc); 2.x's session_new does (the session machine's sessionNew), so nothing here.
 * - listenerJobDec: 1.5-dev's listener_accept gives the job back when session_accept returned
 *   ret <= 0 (jobsDec); 2.x's session_free does (unwindSession), so nothing here.
 */
export function expandListenerEffect(config: ModelConfig, effect: Effect): Effect[] {
  const dev12 = config.profile === 'dev12';
  switch (effect.type) {
    case 'listenerJobAndTotalconnInc':
      return dev12 ? [{ type: 'jobsInc' }, { type: 'totalconnInc' }] : [];
    case 'listenerJobDec':
      return dev12 ? [{ type: 'jobsDec' }] : [];
    default:
      return [effect];
  }
}

export const listenerMachine = setup({
  types: {
    context: {} as ListenerContext,
    events: {} as ListenerEvent,
    input: {} as { config: ModelConfig },
  },
  actions: hostEffects([
    'connPerSecInc',
    'actconnInc',
    'actconnDec',
    'listenerJobAndTotalconnInc',
    'listenerJobDec',
    'nbconnInc',
    'nbconnDec',
    'sessionAccept',
    'listenerStopAccepting',
    'listenerResumeAccepting',
    'scheduleQueueTask',
  ]),
  guards: {
    connRateExhausted: ({ context, event }) =>
      !context.config.unlimited && context.config.maxconnrate !== null && event.connRateRemain <= 0,
    sessRateExhausted: ({ context, event }) =>
      context.config.rateLimitSessions !== null && event.sessRateRemain <= 0,
    globalMaxconnReached: ({ context, event }) => globalFull(context.config, event.actconn),
    // listener_accept's order: 1.5-dev12 tests the global maxconn before the frontend's, 2.x after.
    globalMaxconnFirst: ({ context, event }) =>
      globalFull(context.config, event.actconn) &&
      (context.config.profile === 'dev12' || event.feconn < context.config.feMaxconn),
    frontendFull: ({ context, event }) => event.feconn >= context.config.feMaxconn,
    acceptFails: ({ event }) => event.type === 'ACCEPT_ATTEMPT' && event.acceptError,
    acceptCritical: ({ event }) => event.type === 'ACCEPT_RETURNED' && event.ret < 0,
    acceptIgnored: ({ event }) => event.type === 'ACCEPT_RETURNED' && event.ret === 0,
    listenerFull: ({ context, event }) => bindFull(context.config, event.nbconn),
    sessRateBlocks: ({ context, event }) =>
      context.config.rateLimitSessions !== null && event.sessRateRemain <= 0,
    slotFree: ({ context, event }) => !bindFull(context.config, event.nbconn),
  },
}).createMachine({
  id: 'listener',
  description: 'One bind of the frontend: ready to accept, full, or limited on a queue.',
  meta: { haproxy: 'struct listener; listener_accept, listener_full, limit_listener, resume_listener' },
  context: ({ input }) => ({ config: configOf(input) }),
  initial: 'ready',
  states: {
    ready: {
      description:
        'LI_READY: the listening socket is polled and listener_accept takes connections from the backlog.',
      meta: { haproxy: 'LI_READY', impl: 'drainBacklog' },
      on: {
        ACCEPT_ATTEMPT: [
          {
            guard: 'connRateExhausted',
            target: 'limited.onGlobalQueue',
            actions: [
              'listenerStopAccepting',
              { type: 'scheduleQueueTask', params: { queue: 'global', ms: 1000, rate: 'conn' } },
            ],
            description:
              'maxconnrate has no budget left this second: limited on the global queue, whose task is armed for when the connection rate allows the next event (next_event_delay, within a period).',
            meta: {
              haproxy:
                'listener_accept: global.cps_lim → limit_listener(global_listener_queue), task_schedule(next_event_delay(&global.conn_per_sec))',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'sessRateExhausted',
            target: 'limited.onFrontendQueue',
            actions: [
              'listenerStopAccepting',
              { type: 'scheduleQueueTask', params: { queue: 'frontend', ms: 1000, rate: 'sess' } },
            ],
            description:
              "rate-limit sessions has no budget left: limited on the frontend queue, whose task is armed for when the session rate allows the next event (next_event_delay: about 1000/rate ms in 1.5-dev, 1 ms in 2.x when the count is at the limit, so that 2.x's task runs again while the frontend's sessions are still alive). The budget is spent by initialized sessions only (fe_sess_per_sec).",
            meta: {
              haproxy:
                'listener_accept: p->fe_sps_lim → limit_listener(&p->listener_queue), task_schedule(p->task, next_event_delay(&p->fe_sess_per_sec))',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'globalMaxconnFirst',
            target: 'limited.onGlobalQueue',
            actions: [
              'listenerStopAccepting',
              { type: 'scheduleQueueTask', params: { queue: 'global', ms: 1000 } },
            ],
            description:
              "actconn reached the global maxconn: limited on the global queue, retried in 1 s or at the next release. 1.5-dev12 tests it before the frontend's maxconn, 2.x after (so a full frontend takes the frontend's queue there).",
            meta: {
              haproxy: 'listener_accept: actconn >= global.maxconn → limit_listener(global)',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'frontendFull',
            target: 'limited.onFrontendQueue',
            actions: ['listenerStopAccepting'],
            description:
              "feconn reached the frontend's maxconn: limited on the frontend queue until a session of the frontend ends.",
            meta: {
              haproxy: 'listener_accept: p->feconn >= p->maxconn → limit_listener(&p->listener_queue)',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'acceptFails',
            target: 'limited.onGlobalQueue',
            actions: [
              'listenerStopAccepting',
              { type: 'scheduleQueueTask', params: { queue: 'global', ms: 100 } },
            ],
            description:
              'accept() failed for lack of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): limited, retried in 100 ms.',
            meta: { haproxy: 'listener_accept: accept() ENFILE/EMFILE/ENOBUFS/ENOMEM' },
          },
          {
            actions: [
              'connPerSecInc',
              'actconnInc',
              'listenerJobAndTotalconnInc',
              'nbconnInc',
              'sessionAccept',
            ],
            description:
              'accept() returned a connection: it takes a slot in actconn, jobs and nbconn before session_accept runs. Embryonic connections take maxconn slots. 2.x counts jobs and totalconn later, in session_new.',
            meta: {
              haproxy:
                'listener_accept: actconn++, jobs++, totalconn++ (1.5-dev; 2.x: session_new), l->nbconn++, l->accept()',
              impl: 'drainBacklog',
            },
          },
        ],
        ACCEPT_RETURNED: [
          {
            guard: 'acceptCritical',
            target: 'limited.onGlobalQueue',
            actions: [
              'actconnDec',
              'listenerJobDec',
              'nbconnDec',
              'listenerStopAccepting',
              { type: 'scheduleQueueTask', params: { queue: 'global', ms: 100 } },
            ],
            description:
              'session_accept failed critically (ret < 0): the slot is released and the listener is limited for 100 ms.',
            meta: {
              haproxy:
                'listener_accept: ret < 0 → limit_listener(global), retry in 100 ms (2.x: the slot is released by listener_release in session_accept_fd)',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'acceptIgnored',
            actions: ['actconnDec', 'listenerJobDec', 'nbconnDec'],
            description:
              'session_accept ignored the connection (ret = 0): the slot is released and accepting goes on.',
            meta: {
              haproxy:
                'listener_accept: ret == 0 → continue (2.x: the slot is released by listener_release in session_accept_fd)',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'listenerFull',
            target: 'full',
            actions: ['listenerStopAccepting'],
            description:
              'The new connection took the last slot of the bind: the listener is full at once (2.x: at the top of the next turn of its accept loop, before any accept).',
            meta: {
              haproxy:
                'listener_accept: l->nbconn >= l->maxconn → listener_full (1.5-dev after the accept; 2.x at the next turn)',
              impl: 'drainBacklog',
            },
          },
          {
            description: 'The connection was kept (ret > 0) and slots remain.',
            meta: { haproxy: 'listener_accept: ret > 0', impl: 'drainBacklog' },
          },
        ],
      },
    },
    full: {
      description: 'LI_FULL: l->nbconn reached the bind maxconn. New connections wait in the kernel backlog.',
      meta: { haproxy: 'listener_full: LI_FULL, fd_stop_recv', impl: 'Frontend.park' },
      on: {
        RESUME: {
          guard: 'slotFree',
          target: 'ready',
          actions: ['listenerResumeAccepting'],
          description: 'A release freed a slot: resume_listener makes the listener ready again.',
          meta: { haproxy: 'kill_mini_session / process_session: resume_listener', impl: 'drainBacklog' },
        },
      },
    },
    limited: {
      description:
        'LI_LIMITED: waiting on a queue for a limit to lift. New connections wait in the kernel backlog.',
      meta: { haproxy: 'limit_listener: LI_LIMITED, fd_stop_recv', impl: 'Frontend.park' },
      initial: 'onGlobalQueue',
      states: {
        onGlobalQueue: {
          description:
            'On global_listener_queue: a global limit (maxconn, maxconnrate) or a transient error.',
          meta: { haproxy: 'global_listener_queue', impl: 'queueTaskOnExpire' },
          on: {
            DEQUEUE_GLOBAL: [
              {
                guard: 'globalMaxconnReached',
                description:
                  'The global task found every global slot still taken: the listener stays queued, with no timer, since each of those connections dequeues the queue when it is released. (A release never takes this branch: it has just given a slot back.)',
                meta: {
                  haproxy:
                    'manage_global_listener_queue: actconn >= global.maxconn → goto out, no dequeue_all_listeners(&global_listener_queue)',
                  impl: 'queueTaskOnExpire',
                },
              },
              {
                target: '#listener.ready',
                actions: ['listenerResumeAccepting'],
                description:
                  'Dequeued by a release or the queue task: ready again. (resume_listener would make it full if nbconn >= maxconn, but a limited listener accepted nothing since it was below its maxconn.)',
                meta: {
                  haproxy: 'dequeue_all_listeners(&global_listener_queue) → resume_listener',
                  impl: 'queueTaskOnExpire',
                },
              },
            ],
          },
        },
        onFrontendQueue: {
          description: "On the frontend's listener_queue: the frontend's maxconn or its session rate limit.",
          meta: { haproxy: 'p->listener_queue', impl: 'queueTaskOnExpire' },
          on: {
            DEQUEUE_FRONTEND: [
              {
                guard: 'frontendFull',
                description:
                  "The frontend's task found the frontend still at its maxconn: the listener stays queued, with no timer, since each of its sessions, when released, dequeues the queue (or arms this task while the session rate is spent). (A release never takes this branch: it has just given a slot back.)",
                meta: {
                  haproxy: 'manage_proxy: p->feconn >= p->maxconn → goto out, no dequeue',
                  impl: 'queueTaskOnExpire',
                },
              },
              {
                guard: 'sessRateBlocks',
                actions: [
                  { type: 'scheduleQueueTask', params: { queue: 'frontend', ms: 1000, rate: 'sess' } },
                ],
                description:
                  "The session rate still has no budget: the listener stays queued, and the frontend's task is armed for when the budget returns. On a release this is HAProxy's fix 65ae1347c (2024): before it, the last session's end left the listener queued with no timer, for good.",
                meta: {
                  haproxy:
                    'manage_proxy: next_event_delay(&p->fe_sess_per_sec, p->fe_sps_lim, 0) > 0 → p->task re-armed, no dequeue; on a release, listener_release since 65ae1347c',
                  impl: 'queueTaskOnExpire',
                },
              },
              {
                target: '#listener.ready',
                actions: ['listenerResumeAccepting'],
                description:
                  'Dequeued by a release of the frontend or by its rate task: ready again (below its bind maxconn, as when it was limited).',
                meta: {
                  haproxy:
                    'release block or manage_proxy: dequeue_all_listeners(&p->listener_queue) → resume_listener',
                  impl: 'queueTaskOnExpire',
                },
              },
            ],
          },
        },
      },
    },
  },
});
