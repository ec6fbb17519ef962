/**
 * The mutants: switchable defects of the model, one per bug. Each is a Defect (compose.ts): guard
 * overrides, a rewrite of the effects a machine step emits, or (once) a machine replaced. With a
 * defect switched in, the model behaves as HAProxy did before the fix, or as a port that made the
 * mistake would; the model checker (properties/explore.ts) must then find an invariant that fails.
 *
 * Two families:
 * - history: the bugs HAProxy fixed in this code after the seed (haproxy-history.md "Seed bugs"
 *   and §2), each with the commit that fixed it, and one it still has, with the commit that
 *   brought it (transport-init-failure-leaks-fd, seen on Debian's 2.6.12 by the conformance suite);
 * - porting: the mistakes a port of the design is likely to make, one per invariant family, so that
 *   every invariant is shown to catch something (no invariant is a tautology).
 *
 * `violates` names the invariants (properties/invariants.ts) the defect is expected to violate; the
 * first is the one expected to report it. The tests check both claims by exploration.
 */
import { assign, createMachine, type AnyStateMachine } from 'xstate';
import type { Defect, TransitionRecord } from './compose.ts';
import type { ModelConfig } from './config.ts';
import { connectionMachine } from './connection.machine.ts';
import type { Effect, EffectName } from './effects.ts';
import { listTransitions } from './introspect.ts';
import { sessionBuffers, sessionMachine } from './session.machine.ts';

/** One defect and what it stands for. */
export interface Mutant {
  id: string;
  kind: 'history' | 'porting';
  commit: string | null; //        the HAProxy commit that fixed it (or the range it lived in); null for porting mistakes
  title: string;
  description: string;
  violates: readonly string[]; //  invariants it violates; the first one is expected to report it
  /** The defect for `config` (a few defects only exist under some configurations). Pure. */
  defect(config: ModelConfig): Defect;
}

type Step = Omit<TransitionRecord, 'effects'>;

/** kill_mini_session: a session step out of embryonic into freed (timeout, handshake error, failed completion). */
function isKill(r: Step): boolean {
  return r.machine === 'session' && r.from === 'embryonic' && r.to === 'freed';
}

/** The end of process_session: an initialized session freed. */
function isSessionEnd(r: Step): boolean {
  return r.machine === 'session' && r.from === 'initialized' && r.to === 'freed';
}

/** session_accept building an embryonic session. */
function isEmbryonicAccept(r: Step): boolean {
  return r.machine === 'session' && r.from === 'absent' && r.to === 'embryonic';
}

/** session_complete after a handshake: an embryonic session initialized. */
function isCompletionAfterHandshake(r: Step): boolean {
  return r.machine === 'session' && r.from === 'embryonic' && r.to === 'initialized';
}

/** A kill after a handshake that ended well but whose session_complete failed. */
function isCompletionFailureKill(r: Step): boolean {
  return isKill(r) && r.event.type === 'HANDSHAKE_END' && r.event.error === false && r.event.fail !== 'none';
}

function without(effects: Effect[], drop: (e: Effect) => boolean): Effect[] {
  return effects.filter((e) => !drop(e));
}

function ofType(type: EffectName): (e: Effect) => boolean {
  return (e) => e.type === type;
}

/** Inserts `added` after the first effect of type `after` (or before it, with `before`). */
function insert(
  effects: Effect[],
  at: EffectName,
  added: Effect[],
  where: 'after' | 'before' = 'after',
): Effect[] {
  const i = effects.findIndex(ofType(at));
  if (i < 0) return effects;
  const cut = where === 'after' ? i + 1 : i;
  return [...effects.slice(0, cut), ...added, ...effects.slice(cut)];
}

/** A defect that rewrites the effects of the steps `when` selects. */
function rewriting(when: (r: Step) => boolean, change: (effects: Effect[], r: Step) => Effect[]): Defect {
  return { rewrite: (r, effects) => (when(r) ? change(effects, r) : effects) };
}

/** The guards of the transport init's failures: 1.5-dev's in conn_data_init, 2.x's in conn_prepare. */
const TRANSPORT_INIT_GUARDS = [
  'sslconnsAtLimit',
  'dataInitFails',
  'sslconnsAtLimitAtPrepare',
  'dataInitFailsAtPrepare',
];

/** The session's transitions out of a failed transport init: maxsslconn reached, or SSL_new failed. */
const TRANSPORT_INIT_FAILURES: ReadonlySet<string> = new Set(
  listTransitions(sessionMachine)
    .filter((t) => TRANSPORT_INIT_GUARDS.includes(t.guard ?? ''))
    .map((t) => t.id),
);

/** A defect that drops every effect of type `type` from the kill path. */
function keptOnKill(type: EffectName): Defect {
  return rewriting(isKill, (effects) => without(effects, ofType(type)));
}

/**
 * The connection machine of a port whose kill stamps the pending handshake's timeout code on a
 * connection that already failed: the failed connection still takes the deadline's TIMEOUT and
 * overwrites err_code, as kill_mini_session would without its `!conn->err_code` test.
 */
const connectionOverwritingErrCode: AnyStateMachine = (() => {
  const config = connectionMachine.config as unknown as {
    states: Record<string, { on?: Record<string, unknown> } & Record<string, unknown>>;
  } & Record<string, unknown>;
  const error = config.states.error!;
  const impl = connectionMachine.implementations;
  return createMachine(
    {
      ...config,
      states: {
        ...config.states,
        error: {
          ...error,
          on: {
            ...error.on,
            TIMEOUT: {
              actions: ['stampTimeoutCode'],
              description:
                'MUTANT: the kill names the pending handshake in err_code, over the code already set.',
              meta: { haproxy: 'kill_mini_session without `if (!conn->err_code ...)` (0af2912fd)' },
            },
          },
        },
      },
    } as never,
    {
      ...impl,
      actions: {
        ...impl.actions,
        stampTimeoutCode: assign({
          errCode: ({ context }: { context: { errCode: string | null } }) =>
            context.errCode?.startsWith('SSL_') ? 'SSL_TIMEOUT' : 'PRX_TIMEOUT',
        }),
      },
    } as never,
  ) as unknown as AnyStateMachine;
})();

export const MUTANTS: readonly Mutant[] = [
  // --- HAProxy's history ---
  {
    id: 'seed-completes-on-error',
    kind: 'history',
    commit: '2542b53b1 (fixed by 22cda21ad)',
    title: 'a handshake error completes the session',
    description:
      "The seed's conn_session_initialize calls session_complete without checking CO_FL_ERROR: a connection whose PROXY or TLS handshake failed gets an initialized session, with buffers, counted in cum_sess, instead of being killed.",
    violates: ['errorKillsInSameStep', 'noBufferBeforeHandshake'],
    defect: () => ({ guards: { session: { connectionHasError: () => false } } }),
  },
  {
    id: 'no-list-del-on-completion-failure',
    kind: 'history',
    commit: '3b24641745',
    title: 'a failed session_complete leaves the session in the sessions list',
    description:
      "session_complete links the session (LIST_ADDQ) before allocating its buffers, and its error path had no LIST_DEL: the session is freed while still linked, so 'show sess' walks freed memory.",
    violates: ['sessionsListExact'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'session',
        (effects) =>
          without(
            effects,
            (e) => e.type === 'listDel' && (e.params as { site: string }).site === 'session_complete',
          ),
      ),
  },
  {
    id: '500-from-freed-session',
    kind: 'history',
    commit: '05bf5e1c3',
    title: 'the 500 is built from a freed or NULL session',
    description:
      "out_close builds the 500 with error_message(s, HTTP_ERR_500), which reads s->fe and s->be: after out_free_session s is freed, and after a failed session allocation s is NULL. 05bf5e1c3 builds it from the frontend's error message instead.",
    violates: ['http500Only', 'noMemoryFaults'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'session',
        (effects) => effects.map((e) => (e.type === 'send500' ? { ...e, type: 'send500FromSession' } : e)),
      ),
  },
  {
    id: '500-over-ssl',
    kind: 'history',
    commit: 'cbaaec475',
    title: 'a plaintext 500 is written on a TLS connection',
    description:
      'out_close sent the 500 in http mode whatever the transport, writing plaintext HTTP into a TLS connection. cbaaec475 sends it only when l->data == &raw_sock.',
    violates: ['http500Only'],
    defect: () => ({
      guards: {
        session: {
          answers500: ({ context }) => {
            const c = context as { ret: number | null; config: ModelConfig };
            return c.ret === -1 && c.config.mode === 'http';
          },
        },
      },
    }),
  },
  {
    id: 'error-closed-at-deadline',
    kind: 'history',
    commit: '78eaebed1..91083f5c8',
    title: 'a handshake error is only acted on at the deadline',
    description:
      '78eaebed1 removed the leave-path call that killed an embryonic session on CO_FL_ERROR, relying on a wake callback that was not armed for embryonic connections until 91083f5c8: a failed handshake held its fd, its slot and its counters until the deadline, forever without timeout client.',
    violates: ['errorKillsInSameStep', 'embryonicEndsOnce'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'connection',
        (effects) =>
          without(effects, (e) => e.type === 'handshakeEnded' && (e.params as { error: boolean }).error),
      ),
  },
  {
    id: 'connection-lost-on-completion-failure',
    kind: 'history',
    commit: 'f8a49eab4 (fixed by b4f98098a)',
    title: 'the connection is lost when session_complete fails',
    description:
      'session_complete cleared s->target, the only pointer to the connection, before failing; kill_mini_session then reached the connection through NULL. HAProxy crashed; a port with null checks skips the close instead, so the fd and the connection are never closed.',
    violates: ['fdClosedOnce', 'fdtabExact'],
    defect: () =>
      rewriting(isCompletionFailureKill, (effects) =>
        without(effects, (e) => e.type === 'connClose' || e.type === 'fdClose'),
      ),
  },
  {
    id: 'fd-leak-tracked-xprt',
    kind: 'history',
    commit: '0ede5a331',
    title: 'session_free leaks the fd when the transport is tracked',
    description:
      'When the logs need TLS fields, the transport is tracked (CO_FL_XPRT_TRACKED) and its close deferred to session_free, which called conn_xprt_close: the transport was closed, never the fd. 0ede5a331 uses conn_full_close. Only TLS listeners with logging are affected.',
    violates: ['fdClosedOnce', 'fdtabExact'],
    defect: (config) =>
      config.ssl && config.logging
        ? rewriting(isSessionEnd, (effects) => without(effects, ofType('fdClose')))
        : {},
  },
  {
    id: 'kill-not-logged',
    kind: 'history',
    commit: '2542b53b1..0af2912fd',
    title: 'an embryonic session is killed without a log line',
    description:
      "Until 0af2912fd (1.5-dev15) kill_mini_session closed a failed or timed-out handshake silently: even with option tcplog, nothing in the logs said that a client's connection was dropped, nor why. 0af2912fd logs one line per kill, with the connection's err_code, whenever the frontend logs (unless dontlognull hides it).",
    violates: ['killLoggedOnce'],
    defect: () => keptOnKill('logEmbryonicKill'),
  },

  // --- porting mistakes ---
  {
    id: 'buffers-at-accept',
    kind: 'porting',
    commit: null,
    title: 'buffers allocated at accept',
    description:
      "The port allocates the session's buffers (and txn) in session_accept, as before 2542b53b1, so every connection that never finishes its handshake costs an initialized session's memory.",
    violates: ['noBufferBeforeHandshake'],
    defect: (config) =>
      rewriting(isEmbryonicAccept, (effects) =>
        insert(
          effects,
          'taskNew',
          sessionBuffers(config).map((buf) => ({ type: 'bufAlloc', params: { buf } })),
        ),
      ),
  },
  {
    id: 'deadline-not-armed',
    kind: 'porting',
    commit: null,
    title: 'the handshake deadline is not armed',
    description:
      'The port creates the embryonic task but never sets its expiry from timeout client: a client that connects and sends nothing holds its slot forever.',
    violates: ['deadlineBounded'],
    defect: () =>
      rewriting(isEmbryonicAccept, (effects) =>
        effects.map((e) => (e.type === 'armDeadline' ? { ...e, params: { ms: null } } : e)),
      ),
  },
  {
    id: 'default-handshake-deadline',
    kind: 'porting',
    commit: null,
    title: 'a default deadline is armed when no timeout is set',
    description:
      'The port arms a default handshake deadline (10 s) when neither timeout client nor client-hs is set. HAProxy arms none (tick_add_ifset gives TICK_ETERNITY) and only warns about the missing timeout: the port differs from HAProxy.',
    violates: ['deadlineBounded'],
    defect: () =>
      rewriting(isEmbryonicAccept, (effects) =>
        effects.map((e) =>
          e.type === 'armDeadline' && (e.params as { ms: number | null }).ms === null
            ? { ...e, params: { ms: 10_000 } }
            : e,
        ),
      ),
  },
  {
    id: 'feconn-kept-on-kill',
    kind: 'porting',
    commit: null,
    title: 'feconn is not released on the kill path',
    description:
      'kill_mini_session forgets p->feconn--: each killed embryonic session leaks a frontend slot.',
    violates: ['feconnBalance', 'gaugesZeroWhenIdle'],
    defect: () => keptOnKill('feconnDec'),
  },
  {
    id: 'actconn-kept-on-kill',
    kind: 'porting',
    commit: null,
    title: 'actconn is not released on the kill path',
    description: 'kill_mini_session forgets actconn--: each killed embryonic session leaks a global slot.',
    violates: ['actconnBalance', 'gaugesZeroWhenIdle'],
    defect: () => keptOnKill('actconnDec'),
  },
  {
    id: 'jobs-kept-on-kill',
    kind: 'porting',
    commit: null,
    title: 'jobs is not released on the kill path',
    description:
      'kill_mini_session forgets jobs--: the process never sees itself idle and cannot stop softly.',
    violates: ['jobsBalance', 'gaugesZeroWhenIdle'],
    defect: () => keptOnKill('jobsDec'),
  },
  {
    id: 'nbconn-kept-on-kill',
    kind: 'porting',
    commit: null,
    title: 'nbconn is not released on the kill path',
    description:
      "kill_mini_session forgets l->nbconn--: the listener's slots leak until it stays full for good.",
    violates: ['nbconnBalance', 'gaugesZeroWhenIdle'],
    defect: () => keptOnKill('nbconnDec'),
  },
  {
    id: 'full-listener-not-resumed',
    kind: 'porting',
    commit: null,
    title: 'a full listener is not resumed by a kill',
    description:
      'kill_mini_session releases the slot but does not call resume_listener: a listener made full by embryonic connections stays full after they are killed.',
    violates: ['listenerResumed'],
    defect: () => keptOnKill('resumeListener'),
  },
  {
    id: 'frontend-queue-kept-on-kill',
    kind: 'porting',
    commit: null,
    title: "the frontend's queue is not dequeued by a kill",
    description:
      "kill_mini_session does not dequeue the frontend's listener queue: a listener limited by the frontend's maxconn waits for a session end that may never come.",
    violates: ['frontendQueueDequeued'],
    defect: () => keptOnKill('dequeueFrontend'),
  },
  {
    id: 'frontend-task-not-armed-on-release',
    kind: 'history',
    commit: '65ae1347c (2024, 3.0-dev6; the release block has had the bug since 1.5-dev)',
    title: "the frontend's task is not armed when the session rate blocks a release's dequeue",
    description:
      "A release that finds rate-limit sessions spent leaves the listener on the frontend's queue without arming the frontend's task, as the release block did (kill_mini_session and process_session in 1.5-dev, listener_release in 2.x) until 65ae1347c: after the last session's end the listener stays limited for good. The model's DEQUEUE_FRONTEND does not say who sent it, so the defect also takes its re-arm from the frontend's task (manage_proxy), which HAProxy always had; the counterexample the explorer finds is the release's.",
    violates: ['limitedListenerCanResume'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'listener' && r.event.type === 'DEQUEUE_FRONTEND',
        (effects) => without(effects, ofType('scheduleQueueTask')),
      ),
  },
  {
    id: 'global-queue-kept-on-kill',
    kind: 'porting',
    commit: null,
    title: 'the global queue is not dequeued by a kill',
    description:
      'kill_mini_session does not dequeue the global listener queue: a listener limited by a global limit waits for its retry timer although a slot is free.',
    violates: ['globalQueueDequeued'],
    defect: () => keptOnKill('dequeueGlobal'),
  },
  {
    id: 'fd-closed-twice-on-unwind',
    kind: 'porting',
    commit: null,
    title: 'the fd is closed twice on an unwind path',
    description:
      "session_accept's out_free_task closes the connection with conn_full_close (which deletes the fd), then out_close closes the fd again: the second close may hit an fd number already reused by another connection.",
    violates: ['fdClosedOnce', 'noMemoryFaults'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'session' && r.from === 'absent' && r.to === 'freed',
        (effects) =>
          effects.some(ofType('taskFree'))
            ? insert(effects, 'connClose', [{ type: 'fdClose', params: { site: 'out_free_task' } }])
            : effects,
      ),
  },
  {
    id: 'fd-registered-at-completion',
    kind: 'porting',
    commit: null,
    title: 'the fd is registered in fdtab only when the session completes',
    description:
      "The port registers the accepted fd with its poller in session_complete, with the rest of the stream's setup, instead of in session_accept before the handshake test (fd_insert, 2542b53b1): an embryonic connection's fd is polled by nothing, so its PROXY header or TLS handshake is never read and every client waits for the deadline to kill it.",
    violates: ['fdtabExact'],
    defect: () =>
      rewriting(
        (r) => isEmbryonicAccept(r) || isCompletionAfterHandshake(r),
        (effects, r) =>
          isEmbryonicAccept(r)
            ? without(effects, ofType('fdInsert'))
            : insert(effects, 'listAdd', [{ type: 'fdInsert' }], 'before'),
      ),
  },
  {
    id: 'kill-logged-twice',
    kind: 'porting',
    commit: null,
    title: 'a failed handshake is logged twice',
    description:
      'The port logs the handshake failure where conn_session_complete sees CO_FL_ERROR, then calls kill_mini_session, which logs the kill again: every failed handshake gives two log lines (a deadline kill still gives one).',
    violates: ['killLoggedOnce'],
    defect: () =>
      rewriting(
        (r) => isKill(r) && r.event.type === 'HANDSHAKE_END' && r.event.error === true,
        (effects) => {
          const line = effects.find(ofType('logEmbryonicKill'));
          return line === undefined ? effects : insert(effects, 'logEmbryonicKill', [line], 'before');
        },
      ),
  },
  {
    id: 'task-kept-on-kill',
    kind: 'porting',
    commit: null,
    title: 'the task is not freed on a kill',
    description:
      'kill_mini_session frees the session but not its task: the task leaks and may later run on freed memory.',
    violates: ['taskFreedOnce', 'poolBalancedWhenIdle'],
    defect: () => keptOnKill('taskFree'),
  },
  {
    id: 'transport-init-failure-leaks-fd',
    kind: 'history',
    commit: '1b3c931bf (2.4-dev13; still in 3.5-dev5)',
    title: 'a connection whose SSL context is refused (maxsslconn) or cannot be allocated is never closed',
    description:
      "1b3c931bf moved the transport's init (ssl_sock_init, with its maxsslconn test) into conn_prepare, which session_accept_fd calls before conn_ctrl_init. When it fails, out_free_conn's conn_full_close finds no CO_FL_CTRL_READY and closes nothing: the accepted fd is never registered, never polled and never closed, while listener_release gives its slot back. The client stays connected until HAProxy exits, and no counter shows it. Measured on Debian's 2.6.12 (case lim/maxsslconn/tls-connection-beyond-maxsslconn-is-closed-at-accept); 2.3 ran conn_ctrl_init first and closed it.",
    violates: ['fdClosedOnce'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'session' && r.transitions.some((t) => TRANSPORT_INIT_FAILURES.has(t)),
        (effects) =>
          without(effects, (e) => e.type === 'fdInsert' || e.type === 'connClose' || e.type === 'fdClose'),
      ),
  },
  {
    id: 'sslconns-kept-on-close',
    kind: 'porting',
    commit: null,
    title: 'closing a TLS connection frees its SSL context but keeps its sslconns slot',
    description:
      'ssl_sock_close forgets sslconns--: every TLS connection leaks a slot of maxsslconn, and once the leaks reach it every new TLS connection is refused at accept.',
    violates: ['sslconnsBalance'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'connection' && r.to === 'closed',
        (effects) => without(effects, ofType('sslconnsDec')),
      ),
  },
  {
    id: 'maxsslconn-ignored',
    kind: 'porting',
    commit: null,
    title: 'maxsslconn is not checked at accept',
    description:
      'The accept path creates an SSL context for every TLS connection without comparing sslconns with maxsslconn: a flood of handshakes that never end holds more SSL contexts than the limit allows.',
    violates: ['sslconnsWithinLimit'],
    defect: () => ({
      guards: { session: { sslconnsAtLimit: () => false, sslconnsAtLimitAtPrepare: () => false } },
    }),
  },
  {
    id: 'ssl-context-leak-on-kill',
    kind: 'porting',
    commit: null,
    title: 'killing an embryonic TLS connection leaks its SSL context',
    description:
      'kill_mini_session closes the socket without the data layer: the SSL context created at accept is never freed, and sslconns never drops. Both move together, so the counter alone shows nothing until the limit is reached.',
    violates: ['sslContextFreedAtClose', 'poolBalancedWhenIdle'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'connection' && r.from === 'error' && r.to === 'closed',
        (effects) => without(effects, (e) => e.type === 'sslCtxFree' || e.type === 'sslconnsDec'),
      ),
  },
  {
    id: 'ssl-context-at-client-hello',
    kind: 'porting',
    commit: null,
    title: 'the SSL context is created when the TLS handshake starts, not at accept',
    description:
      'A port creates the TLS state, and counts it against maxsslconn, only once the TLS handshake begins (after the PROXY header, or at the first ClientHello byte). An embryonic connection waiting for its PROXY header then holds a slot of maxconn but none of maxsslconn, so maxsslconn no longer bounds the connections that will need a context.',
    violates: ['sslContextWithSession'],
    defect: () => ({
      rewrite: (r, effects) => {
        const moved = (e: Effect) => e.type === 'sslCtxNew' || e.type === 'sslconnsInc';
        if (r.machine === 'session' && r.from === 'absent') return without(effects, moved);
        if (r.machine === 'connection' && r.to === 'handshake.tls' && r.from !== 'handshake.tls')
          return [{ type: 'sslCtxNew' }, { type: 'sslconnsInc' }, ...effects];
        return effects;
      },
    }),
  },
  {
    id: 'tls-end-not-notified',
    kind: 'porting',
    commit: null,
    title: 'the end of the TLS handshake does not complete the session',
    description:
      'Only the PROXY header handler calls conn_session_complete: when TLS is the last handshake, the connection is ready but its session stays embryonic until the deadline kills it.',
    violates: ['embryonicEndsOnce'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'connection' && r.event.type === 'TLS_OK',
        (effects) => without(effects, ofType('handshakeEnded')),
      ),
  },
  {
    id: 'conn-max-before-feconn',
    kind: 'porting',
    commit: null,
    title: 'conn_max is updated before feconn++',
    description:
      'session_accept updates conn_max before incrementing feconn, so smax always lags scur by one.',
    violates: ['connMaxBounds'],
    defect: () =>
      rewriting(
        (r) => r.machine === 'session' && r.from === 'absent',
        (effects) =>
          insert(
            without(effects, ofType('connMaxUpdate')),
            'feconnInc',
            [{ type: 'connMaxUpdate' }],
            'before',
          ),
      ),
  },
  {
    id: 'sessions-counted-at-accept',
    kind: 'porting',
    commit: null,
    title: 'embryonic connections are counted as sessions',
    description:
      'The port counts a session (cum_sess, fe_sess_per_sec) when the embryonic session is built, and again at completion: embryonic connections consume the rate-limit sessions budget and cum_sess overtakes cum_conn.',
    violates: ['rateLimitCountsCompletedOnly', 'cumSessLeCumConn'],
    defect: () =>
      rewriting(isEmbryonicAccept, (effects) => insert(effects, 'cumConnInc', [{ type: 'cumSessInc' }])),
  },
  {
    id: 'cum-sess-as-gauge',
    kind: 'porting',
    commit: null,
    title: 'cum_sess is released like a gauge',
    description:
      "The port decrements cum_sess in process_session's release block, next to feconn, as if stot were a current count.",
    violates: ['cumulativeMonotonic'],
    defect: () =>
      rewriting(isSessionEnd, (effects) => insert(effects, 'feconnDec', [{ type: 'cumSessDec' }])),
  },
  {
    id: 'txn-leak-on-session-end',
    kind: 'porting',
    commit: null,
    title: 'the http txn is not freed by session_free',
    description: 'session_free frees the channels but not the http txn (http_end_txn and its hdr_idx pool).',
    violates: ['poolBalancedWhenIdle'],
    defect: () =>
      rewriting(isSessionEnd, (effects) =>
        without(effects, (e) => e.type === 'bufFree' && (e.params as { buf: string }).buf === 'txn'),
      ),
  },
  {
    id: 'maxconn-off-by-one',
    kind: 'porting',
    commit: null,
    title: 'the maxconn checks use > instead of >=',
    description:
      "listener_accept and listener_full compare with '>' instead of '>=': every limit lets one connection too many in, embryonic ones included.",
    violates: ['maxconnCountsEmbryonic'],
    defect: () => {
      // The guards' argument, as the composition passes it: the listener's context and its event.
      type Args = {
        context: { config: ModelConfig };
        event: { nbconn: number; feconn: number; actconn: number };
      };
      const frontendOver = (a: unknown): boolean => {
        const { context, event } = a as Args;
        return event.feconn > context.config.feMaxconn;
      };
      const globalOver = (a: unknown): boolean => {
        const { context, event } = a as Args;
        return !context.config.unlimited && event.actconn > context.config.globalMaxconn;
      };
      return {
        guards: {
          listener: {
            listenerFull: (a) => {
              const { context, event } = a as Args;
              return context.config.bindMaxconn !== null && event.nbconn > context.config.bindMaxconn;
            },
            frontendFull: frontendOver,
            globalMaxconnReached: globalOver,
            globalMaxconnFirst: (a) =>
              globalOver(a) && ((a as Args).context.config.profile === 'dev12' || !frontendOver(a)),
          },
        },
      };
    },
  },
  {
    id: 'dontlognull-ignored',
    kind: 'porting',
    commit: null,
    title: 'option dontlognull does not hide the kills of connections that sent nothing',
    description:
      "The port logs every kill_mini_session when the frontend logs, forgetting option dontlognull (8e3bf699d, 20879a023): health checks and port scanners that connect and close without a byte fill the log with 'Connection closed while waiting for PROXY protocol header' and timeouts.",
    violates: ['killLoggedOnce'],
    defect: () => ({
      guards: {
        session: { logsKill: ({ context }) => (context as { config: ModelConfig }).config.logging },
      },
    }),
  },
  {
    id: 'tls-close-always-empty',
    kind: 'porting',
    commit: null,
    title: 'a close during TLS is always "closed during SSL handshake"',
    description:
      "The port maps a client's close or reset during the TLS handshake to SSL_EMPTY or SSL_ABORT whatever it had sent, as this model did until a review: a client that sends half a ClientHello and closes is logged as having sent nothing (SSL_EMPTY, hidden by dontlognull) where HAProxy says SSL_HANDSHAKE.",
    violates: ['errCodeFirstWins'],
    defect: () => ({ guards: { connection: { tlsHandshakeNotEmpty: () => false } } }),
  },
  {
    id: 'kill-stamps-timeout-code',
    kind: 'porting',
    commit: null,
    title: "the kill overwrites the handshake's error code with a timeout",
    description:
      "kill_mini_session names the pending handshake's timeout in err_code on every kill, without checking that the wakeup was the timer and that no code is set: a malformed PROXY header is logged as a PROXY timeout.",
    violates: ['errCodeFirstWins'],
    defect: () => ({
      machines: { connection: connectionOverwritingErrCode },
      ...rewriting(
        (r) => isKill(r) && r.event.type === 'HANDSHAKE_END',
        (effects) => [{ type: 'connTimeout' }, ...effects],
      ),
    }),
  },
];

/** Returns the mutant with id `id`. Throws if there is none (a programmer error). */
export function mutantById(id: string): Mutant {
  const found = MUTANTS.find((m) => m.id === id);
  if (!found) throw new Error(`no mutant ${id}`);
  return found;
}
