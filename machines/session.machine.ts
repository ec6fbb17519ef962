/**
 * The session lifecycle: HAProxy 1.5-dev12's embryonic sessions (2542b53b1 with 22cda21ad).
 *
 * session_accept builds only an embryonic session when the connection has a handshake to run: the
 * session object, the counters, and a task with its deadline (`timeout client`). No buffer is
 * allocated. When the last handshake ends, conn_session_complete calls session_complete, which adds
 * the session to the sessions list, counts it, and allocates its buffers. A handshake error, the
 * deadline, or a failed completion kills the embryonic session instead (kill_mini_session).
 *
 * session_accept's own outcomes are here too: ret = 0 (tcp-request reject, monitor) and ret < 0
 * (an allocation or setup failure, unwound in reverse order, with a 500 in http mode on a raw
 * transport). The effects are emitted in the order HAProxy applies them
 * (haproxy-history.md §3, "Exact sequences per path").
 */
import { assign, setup } from 'xstate';
import {
  answers500,
  configOf,
  handshakeTimeout,
  hasHandshake,
  sslLimitReached,
  type ModelConfig,
} from './config.ts';
import { hostEffects, type BufKind, type Effect, type EffectName } from './effects.ts';
import { DONTLOGNULL_CODES, type ErrCode } from './errCodes.ts';

/** Where a setup step of session_accept or session_complete can fail. `none`: nothing fails. */
export type AcceptFailSite = 'none' | 'session' | 'fcntl' | 'task' | 'dataInit' | CompleteFailSite;

/** Where session_complete can fail: a buffer allocation, the txn, or the frontend's accept(). */
export type CompleteFailSite = 'req' | 'rep' | 'txn' | 'accept';

/** What the source address matched at accept: nothing, `monitor-net`, or a tcp-request reject rule. */
export type SourceClass = 'plain' | 'monitor' | 'denied';

/**
 * True iff HAProxy's session_accept can fail at `site` under `config`: the environment offers the
 * machines only failures that the modelled HAProxy can meet. 'fcntl' is 1.5-dev's O_NONBLOCK call,
 * which 2.x session_accept_fd no longer makes; 'task' can fail in every profile, since the machines
 * allocate the task at accept in every profile (2.x allocates it only for a connection with a
 * handshake to wait for: docs/porting-notes.md); 'dataInit' fails only in the SSL transport's
 * init (raw_sock has none); the allocations of session_complete are reached at accept only when
 * there is no handshake, and the txn only in http mode. Pure.
 */
export function acceptCanFailAt(config: ModelConfig, site: AcceptFailSite): boolean {
  switch (site) {
    case 'none':
    case 'session':
      return true;
    case 'fcntl':
      return config.profile === 'dev12';
    case 'task':
      return true;
    case 'dataInit':
      return config.ssl;
    case 'txn':
      return config.mode === 'http' && !hasHandshake(config);
    default:
      return !hasHandshake(config);
  }
}

/**
 * True iff a source can be classed `src` under `config`: `monitor` needs monitor-net, which only
 * 1.5-dev has (2.3 removed it, and the 2.6 and 2.9 profiles refuse the keyword). Pure.
 */
export function sourceClassReachable(config: ModelConfig, src: SourceClass): boolean {
  return src !== 'monitor' || config.profile === 'dev12';
}

/**
 * The allocations session_accept attempts, in its order, for a connection whose source is `src`
 * under `config` with `sslconns` SSL contexts alive, when none of them fails: the sites an injected
 * allocation failure can hit, the first failing one being the SESSION_ACCEPT event's `fail`.
 * 'dataInit' is the SSL context (SSL_new). 1.5-dev12: the session; then, for a source neither
 * rejected nor a monitor, the task, the SSL context of a TLS bind, and session_complete's buffers
 * when there is no handshake. 2.x: the SSL context first (conn_prepare), then the same. When
 * maxsslconn refuses the SSL context, SSL_new is not attempted, and in 2.x nothing after it is
 * either. Pure; the tests check it against the effects of the machine's paths.
 */
export function acceptAllocations(
  config: ModelConfig,
  src: SourceClass,
  sslconns: number,
): ('session' | 'task' | 'dataInit' | BufKind)[] {
  const ssl = config.ssl && !sslLimitReached(config, sslconns);
  if (config.profile !== 'dev12' && config.ssl && !ssl) return [];
  const rest = src === 'plain' ? (hasHandshake(config) ? [] : sessionBuffers(config)) : [];
  const task = src === 'plain' ? (['task'] as const) : [];
  return config.profile === 'dev12'
    ? ['session', ...task, ...(ssl && src === 'plain' ? (['dataInit'] as const) : []), ...rest]
    : [...(ssl ? (['dataInit'] as const) : []), 'session', ...task, ...rest];
}

/** True iff the SESSION_ACCEPT `event` finds maxsslconn reached: ssl_sock_init refuses the SSL context. */
function sslconnsRefused(context: SessionContext, event: SessionEvent): boolean {
  return event.type === 'SESSION_ACCEPT' && sslLimitReached(context.config, event.sslconns);
}

/** True iff SSL_new fails for the SESSION_ACCEPT `event` (only the SSL transport has an init). */
function sslNewFails(context: SessionContext, event: SessionEvent): boolean {
  return event.type === 'SESSION_ACCEPT' && event.fail === 'dataInit' && context.config.ssl;
}

/** Context of one session. */
export interface SessionContext {
  config: ModelConfig; //  the frontend's configuration (never changes)
  ret: -1 | 0 | 1 | null; // what session_accept returns to listener_accept; null = not returned yet
  // conn->err_code as kill_mini_session reads it: the code HANDSHAKE_END brought, NONE until then
  // (a deadline kill is judged before the timer names the pending handshake: NONE).
  connErrCode: ErrCode;
}

/** Events the session machine accepts. "from" names who sends it. */
export type SessionEvent =
  | { type: 'SESSION_ACCEPT'; src: SourceClass; fail: AcceptFailSite; sslconns: number } // from the listener via session_accept; sslconns: global.sslconns now
  | { type: 'HANDSHAKE_END'; error: boolean; code: ErrCode; fail: CompleteFailSite | 'none' } // from the connection
  | { type: 'TASK_WAKEUP'; timer: boolean } //                             from the scheduler
  // from process_session: the stream ended; writeTimeout: it ended on the client's write timeout
  // (the rep channel's CF_WRITE_TIMEOUT), which marks the client's side SI_FL_NOLINGER before its shutw
  | { type: 'SESSION_END'; writeTimeout: boolean };

/**
 * The prefix of every path once the session is allocated, as macros that expand per profile
 * (expandSessionEffect): 2.x's listener_accept counts and transport init, then the session with its
 * counts. 1.5-dev12: sessionAlloc, feconnInc, connMaxUpdate, cumConnInc.
 */
const ACCEPT_START = ['listenerCounts', 'xprtInit', 'sessionNew'] as const;

/** A failed session_accept's release of the session it allocated, through <site> (1.5-dev's label). */
function unwindSession(site: string) {
  return { type: 'unwindSession', params: { site } } as const;
}

/**
 * 1.5-dev: conn_data_init failed (maxsslconn refused the SSL context, or SSL_new returned NULL):
 * session_accept unwinds through out_free_task after counting the session and registering the fd,
 * and returns -1. (2.x meets the failure before the session exists: ACCEPT_AT_PREPARE_FAILURE.)
 */
const DATA_INIT_UNWIND = [
  ...ACCEPT_START,
  'taskNew',
  'fdInsert',
  'taskFree',
  unwindSession('out_free_session'),
  { type: 'setRet', params: { ret: -1 } },
] as const;

/**
 * 2.x: the transport's init failed in conn_prepare (maxsslconn, or SSL_new returned NULL), before
 * conn_ctrl_init and session_new: only listener_accept's counts happened, and listener_release
 * gives the frontend's slot back. session_accept_fd returns -1.
 */
const ACCEPT_AT_PREPARE_FAILURE = [
  'listenerCounts',
  { type: 'feconnDec', params: { site: 'listener_release' } },
  { type: 'setRet', params: { ret: -1 } },
] as const;

/**
 * The release block after feconn's decrement, as kill_mini_session and process_session's end both
 * run it: the global counts, then the listener resumed and the queues' waiters woken.
 */
const RELEASE_AFTER_FECONN = [
  'actconnDec',
  'jobsDec',
  'nbconnDec',
  'resumeListener',
  'dequeueGlobal',
  'dequeueFrontend',
] as const;

/** kill_mini_session after its optional log line: close, release block, task, fd, session. */
const KILL_MINI_SESSION = [
  'connClose',
  { type: 'feconnDec', params: { site: 'kill_mini_session' } },
  ...RELEASE_AFTER_FECONN,
  'taskFree',
  { type: 'fdClose', params: { site: 'kill_mini_session' } },
  { type: 'sessionFree', params: { site: 'kill_mini_session' } },
] as const;

/** session_complete's start: the list, the task's new handler, then the session counters. */
const COMPLETE_START = ['listAdd', 'taskSetHandler', 'cumSessInc'] as const;

/** The buffers session_complete allocates, in its order: the channels, then the http txn. */
export function sessionBuffers(config: ModelConfig): BufKind[] {
  return config.mode === 'http' ? ['req', 'rep', 'txn'] : ['req', 'rep'];
}

/**
 * Expands a macro effect of this machine into the primitive effects it stands for, in HAProxy's
 * order under config.profile; returns any other effect unchanged in a one-element list. Pure.
 * The steps that moved from 1.5-dev12 to 2.x (2.x counts feconn, conn_max and cum_conn in
 * listener_accept, inits the transport in conn_prepare before the session exists, and counts
 * totalconn and jobs in session_new and session_free) expand to nothing where they are not:
 * - listenerCounts: 2.x feconnInc, connMaxUpdate, cumConnInc.
 * - xprtInit: 2.x on a TLS bind sslCtxNew, sslconnsInc.
 * - sessionNew: sessionAlloc, then 1.5-dev feconnInc, connMaxUpdate, cumConnInc; 2.x totalconnInc,
 *   jobsInc.
 * - connDataInit: 1.5-dev on a TLS bind sslCtxNew, sslconnsInc.
 * - unwindSession{site}: 1.5-dev feconnDec and sessionFree at `site`; 2.x sessionFree, jobsDec,
 *   on a TLS bind sslCtxFree and sslconnsDec, then feconnDec at listener_release.
 * - unwindConn: 2.x on a TLS bind sslCtxFree, sslconnsDec, then feconnDec at listener_release.
 * - allocBuffers: session_complete's allocations (req, rep, and the txn in http mode).
 * - freeBuffers: session_free's releases: req, rep, then the txn (http_end_txn).
 * - writeTimeoutShutw: the client's side after its write timeout (SI_FL_NOLINGER): 1.5-dev
 *   setNoLinger, an RST; 2.x shutwSilent, a FIN.
 * - completeFailure{site}: a session_complete that fails at `site`: the list and the session
 *   counters first, what was allocated before `site`, freed again in reverse (out_free_rep,
 *   out_free_req), then the LIST_DEL that 3b24641745 added.
 */
export function expandSessionEffect(config: ModelConfig, effect: Effect): Effect[] {
  const bufs = sessionBuffers(config);
  const dev12 = config.profile === 'dev12';
  const e = (...types: EffectName[]): Effect[] => types.map((type) => ({ type }));
  const xprtClose = !dev12 && config.ssl ? e('sslCtxFree', 'sslconnsDec') : [];
  const listenerRelease: Effect = { type: 'feconnDec', params: { site: 'listener_release' } };
  switch (effect.type) {
    case 'listenerCounts':
      return dev12 ? [] : e('feconnInc', 'connMaxUpdate', 'cumConnInc');
    case 'xprtInit':
      return !dev12 && config.ssl ? e('sslCtxNew', 'sslconnsInc') : [];
    case 'sessionNew':
      return dev12
        ? e('sessionAlloc', 'feconnInc', 'connMaxUpdate', 'cumConnInc')
        : e('sessionAlloc', 'totalconnInc', 'jobsInc');
    case 'connDataInit':
      return dev12 && config.ssl ? e('sslCtxNew', 'sslconnsInc') : [];
    case 'unwindSession': {
      const site = (effect.params as { site: string }).site;
      return dev12
        ? [
            { type: 'feconnDec', params: { site } },
            { type: 'sessionFree', params: { site } },
          ]
        : [
            { type: 'sessionFree', params: { site: 'out_free_sess' } },
            ...e('jobsDec'),
            ...xprtClose,
            listenerRelease,
          ];
    }
    case 'unwindConn':
      return dev12 ? [] : [...xprtClose, listenerRelease];
    case 'writeTimeoutShutw':
      return e(dev12 ? 'setNoLinger' : 'shutwSilent');
    case 'allocBuffers':
      return bufs.map((buf) => ({ type: 'bufAlloc', params: { buf } }));
    case 'freeBuffers':
      return bufs.map((buf) => ({ type: 'bufFree', params: { buf } }));
    case 'completeFailure': {
      const site = (effect.params as { site: CompleteFailSite }).site;
      const stop = site === 'accept' ? bufs.length : bufs.indexOf(site);
      const allocated = bufs.slice(0, stop === -1 ? bufs.length : stop);
      return [
        ...COMPLETE_START.map((type) => ({ type })),
        ...allocated.map((buf) => ({ type: 'bufAlloc' as const, params: { buf } })),
        ...[...allocated].reverse().map((buf) => ({ type: 'bufFree' as const, params: { buf } })),
        { type: 'listDel', params: { site: 'session_complete' } },
      ];
    }
    default:
      return [effect];
  }
}

/**
 * The end of an initialized session, whatever ended its stream: process_session's release block
 * (the client's close and the slot's counters, the listener and the queues), then session_free
 * (buffers, list, session) and the task.
 */
const SESSION_END_RELEASE = [
  'connClose',
  { type: 'fdClose', params: { site: 'process_session' } },
  { type: 'feconnDec', params: { site: 'process_session' } },
  ...RELEASE_AFTER_FECONN,
  'freeBuffers',
  { type: 'listDel', params: { site: 'session_free' } },
  { type: 'sessionFree', params: { site: 'session_free' } },
  'taskFree',
] as const;

export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as { config: ModelConfig },
  },
  actions: {
    ...hostEffects([
      'sessionAlloc',
      'sessionFree',
      'feconnInc',
      'feconnDec',
      'connMaxUpdate',
      'cumConnInc',
      'cumSessInc',
      'deniedConnInc',
      'actconnDec',
      'jobsDec',
      'nbconnDec',
      'taskNew',
      'taskFree',
      'sslCtxNew',
      'sslconnsInc',
      'armDeadline',
      'taskSetHandler',
      'taskWakeupInit',
      'listAdd',
      'listDel',
      'allocBuffers',
      'freeBuffers',
      'completeFailure',
      'listenerCounts',
      'xprtInit',
      'sessionNew',
      'connDataInit',
      'unwindSession',
      'unwindConn',
      'fdInsert',
      'fdClose',
      'setNoLinger',
      'writeTimeoutShutw',
      'drainInput',
      'send200',
      'send500',
      'logEmbryonicKill',
      'notifySi',
      'acceptReturned',
      'connStartHandshake',
      'connNoHandshake',
      'connTimeout',
      'connClose',
      'resumeListener',
      'dequeueGlobal',
      'dequeueFrontend',
    ]),
    setRet: assign({ ret: (_, params: { ret: -1 | 0 | 1 }) => params.ret }),
    keepConnErrCode: assign({
      connErrCode: ({ context, event }) =>
        event.type === 'HANDSHAKE_END' ? event.code : context.connErrCode,
    }),
  },
  guards: {
    sessionAllocFails: ({ event }) => event.type === 'SESSION_ACCEPT' && event.fail === 'session',
    sourceDenied: ({ event }) => event.type === 'SESSION_ACCEPT' && event.src === 'denied',
    sourceIsMonitor: ({ event }) => event.type === 'SESSION_ACCEPT' && event.src === 'monitor',
    fcntlFails: ({ event }) => event.type === 'SESSION_ACCEPT' && event.fail === 'fcntl',
    taskFails: ({ event }) => event.type === 'SESSION_ACCEPT' && event.fail === 'task',
    // raw_sock has no init: conn_data_init can fail only on the SSL transport.
    dataInitFails: ({ context, event }) => sslNewFails(context, event),
    sslconnsAtLimit: ({ context, event }) => sslconnsRefused(context, event),
    // 2.x inits the transport before the session and the rules (since 1.6-dev2, 02a0c0e40), first
    // thing in session_accept_fd, in conn_prepare (since 1b3c931bf, 2.4).
    sslconnsAtLimitAtPrepare: ({ context, event }) =>
      context.config.profile !== 'dev12' && sslconnsRefused(context, event),
    dataInitFailsAtPrepare: ({ context, event }) =>
      context.config.profile !== 'dev12' && sslNewFails(context, event),
    sslTransport: ({ context }) => context.config.ssl,
    handshakePending: ({ context }) => hasHandshake(context.config),
    completionFails: ({ event }) =>
      (event.type === 'SESSION_ACCEPT' || event.type === 'HANDSHAKE_END') &&
      ['req', 'rep', 'txn', 'accept'].includes(event.fail),
    connectionHasError: ({ event }) => event.type === 'HANDSHAKE_END' && event.error,
    wokenByTimer: ({ event }) => event.type === 'TASK_WAKEUP' && event.timer,
    noClientWriteTimeout: ({ event }) => event.type === 'SESSION_END' && !event.writeTimeout,
    clientWriteTimedOut: ({ event }) => event.type === 'SESSION_END' && event.writeTimeout,
    httpMode: ({ context }) => context.config.mode === 'http',
    answers500: ({ context }) => context.ret === -1 && answers500(context.config),
    // kill_mini_session's `log`: p->to_log, unless dontlognull hides a connection that sent nothing.
    logsKill: ({ context }) =>
      context.config.logging &&
      !(context.config.dontlognull && DONTLOGNULL_CODES.includes(context.connErrCode)),
  },
}).createMachine({
  id: 'session',
  description:
    'One session, from the accept of its connection to its free: embryonic while the connection handshakes, initialized once completed.',
  meta: { haproxy: 'struct session; src/session.c' },
  context: ({ input }) => ({ config: configOf(input), ret: null, connErrCode: 'NONE' }),
  initial: 'absent',
  states: {
    absent: {
      description: 'No session exists yet: its connection waits in the listen backlog.',
      meta: { haproxy: 'listener_accept, before l->accept()', impl: 'Frontend.park' },
      on: {
        SESSION_ACCEPT: [
          {
            guard: 'sslconnsAtLimitAtPrepare',
            target: 'setupFailed',
            actions: [...ACCEPT_AT_PREPARE_FAILURE],
            description:
              "2.x: sslconns has reached maxsslconn, and the transport's init comes first: ssl_sock_init refuses the SSL context (CO_ER_SSL_TOO_MANY) in conn_prepare, before the fd is registered, the session allocated or the tcp-request rules run. Only listener_accept's counts happened (conn_tot, not CumConns); the slot is released and listener_accept limits the listener for 100 ms.",
            meta: {
              haproxy:
                'session_accept_fd (2.x): conn_prepare → ssl_sock_init: sslconns >= maxsslconn → -1; goto out_free_conn → listener_release',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'dataInitFailsAtPrepare',
            target: 'setupFailed',
            actions: [...ACCEPT_AT_PREPARE_FAILURE],
            description:
              "2.x: the SSL context cannot be allocated (SSL_new returned NULL) in conn_prepare, before the session exists: only listener_accept's counts happened.",
            meta: {
              haproxy: 'session_accept_fd (2.x): conn_prepare → ssl_sock_init → -1; goto out_free_conn',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'sessionAllocFails',
            target: 'setupFailed',
            actions: ['listenerCounts', 'xprtInit', 'unwindConn', { type: 'setRet', params: { ret: -1 } }],
            description:
              "The session cannot be allocated. 1.5-dev: pool_alloc2(pool2_session) is session_accept's first step, nothing was counted yet, straight to out_close. 2.x: listener_accept counted the connection (conn_tot) and conn_prepare made the SSL context of a TLS bind, which conn_full_close releases (ssl_sock_close); totalconn and jobs, which session_new counts, never move.",
            meta: {
              haproxy:
                'session_accept: goto out_close (1.5-dev); session_accept_fd: session_new → NULL, goto out_free_conn (2.x)',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'sourceDenied',
            target: 'rejected',
            actions: [
              ...ACCEPT_START,
              'deniedConnInc',
              'setNoLinger',
              unwindSession('out_free_session'),
              { type: 'setRet', params: { ret: 0 } },
            ],
            description:
              'A tcp-request connection rule rejected the source: denied_conn++, SO_LINGER 0 (RST), ret = 0 through out_free_session. 2.x runs the rules once the session exists, after conn_prepare: on a TLS bind the SSL context is made (counted in CumSslConns) and freed again.',
            meta: { haproxy: 'session_accept: tcp_exec_req_rules → out_free_session', impl: 'drainBacklog' },
          },
          {
            guard: 'fcntlFails',
            target: 'setupFailed',
            actions: [
              ...ACCEPT_START,
              unwindSession('out_free_session'),
              { type: 'setRet', params: { ret: -1 } },
            ],
            description:
              'fcntl(O_NONBLOCK) failed (after the tcp rules, before monitor-net): unwound through out_free_session.',
            meta: { haproxy: 'session_accept: goto out_free_session' },
          },
          {
            guard: 'sourceIsMonitor',
            target: 'monitored',
            actions: [...ACCEPT_START, { type: 'setRet', params: { ret: 0 } }],
            description:
              'The source matches monitor-net: answered at once, no handshake, no session completion.',
            meta: {
              haproxy: 'session_accept monitor-net (82569f915, dev13 semantics)',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'taskFails',
            target: 'setupFailed',
            actions: [
              ...ACCEPT_START,
              unwindSession('out_free_session'),
              { type: 'setRet', params: { ret: -1 } },
            ],
            description: 'task_new failed: unwound through out_free_session.',
            meta: { haproxy: 'session_accept: goto out_free_session', impl: 'drainBacklog' },
          },
          {
            guard: 'sslconnsAtLimit',
            target: 'setupFailed',
            actions: [...DATA_INIT_UNWIND],
            description:
              '1.5-dev: sslconns has reached maxsslconn: ssl_sock_init refuses the SSL context before allocating it, conn_data_init fails, and session_accept unwinds through out_free_task. As after any setup failure (ret = -1), listener_accept limits the listener and retries 100 ms later.',
            meta: {
              haproxy:
                'ssl_sock_init: global.maxsslconn && sslconns >= global.maxsslconn → -1; session_accept: goto out_free_task',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'dataInitFails',
            target: 'setupFailed',
            actions: [...DATA_INIT_UNWIND],
            description:
              '1.5-dev: conn_data_init failed (SSL_new returned NULL): unwound through out_free_task.',
            meta: { haproxy: 'session_accept: goto out_free_task' },
          },
          {
            guard: 'sslTransport',
            target: 'embryonic',
            actions: [
              ...ACCEPT_START,
              'taskNew',
              'fdInsert',
              'connDataInit',
              'connStartHandshake',
              { type: 'armDeadline', params: ({ context }) => ({ ms: handshakeTimeout(context.config) }) },
              { type: 'setRet', params: { ret: 1 } },
              { type: 'acceptReturned', params: { ret: 1 } },
            ],
            description:
              'The SSL transport: conn_data_init creates the SSL context and counts it in sslconns before any byte of the handshake is read (2.x: earlier, in conn_prepare, before the session: xprtInit), and sets CO_FL_SSL_WAIT_HS. Only the embryonic session is built, with the handshake deadline; no buffer is allocated.',
            meta: {
              haproxy:
                'session_accept: conn_data_init → ssl_sock_init (SSL_new, sslconns++); CO_FL_HANDSHAKE → expire_mini_session, return 1',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'handshakePending',
            target: 'embryonic',
            actions: [
              ...ACCEPT_START,
              'taskNew',
              'fdInsert',
              'connStartHandshake',
              { type: 'armDeadline', params: ({ context }) => ({ ms: handshakeTimeout(context.config) }) },
              { type: 'setRet', params: { ret: 1 } },
              { type: 'acceptReturned', params: { ret: 1 } },
            ],
            description:
              'CO_FL_HANDSHAKE is set: only the embryonic session is built. Its task gets expire_mini_session and the handshake deadline; no buffer is allocated.',
            meta: {
              haproxy: 'session_accept: CO_FL_HANDSHAKE → expire_mini_session, CO_FL_INIT_SESS, return 1',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'completionFails',
            target: 'setupFailed',
            actions: [
              ...ACCEPT_START,
              'taskNew',
              'fdInsert',
              'connNoHandshake',
              {
                type: 'completeFailure',
                params: ({ event }) => ({ site: (event as { fail: CompleteFailSite }).fail }),
              },
              'taskFree',
              unwindSession('out_free_session'),
              {
                type: 'setRet',
                params: ({ context }) => ({ ret: context.config.profile === 'dev12' ? -1 : 0 }),
              },
            ],
            description:
              'No handshake, and session_complete failed in session_accept: counted as a session, unwound through out_free_task. From 2.6 on (conn_complete_session) it returns 0 here: no 500.',
            meta: { haproxy: 'session_accept → session_complete < 0 → out_free_task', impl: 'drainBacklog' },
          },
          {
            target: 'initialized',
            actions: [
              ...ACCEPT_START,
              'taskNew',
              'fdInsert',
              'connNoHandshake',
              ...COMPLETE_START,
              'allocBuffers',
              'notifySi',
              'taskWakeupInit',
              { type: 'setRet', params: { ret: 1 } },
              { type: 'acceptReturned', params: { ret: 1 } },
            ],
            description:
              'No handshake: session_complete runs at once and the session is initialized in session_accept.',
            meta: { haproxy: 'session_accept → session_complete > 0', impl: 'drainBacklog' },
          },
        ],
      },
    },
    embryonic: {
      description:
        'The minimal session of session_accept: counted in feconn/actconn/jobs/nbconn, a task running expire_mini_session with the handshake deadline, the fd, and no buffer. It is not in the sessions list.',
      meta: { haproxy: 'session_accept (CO_FL_INIT_SESS); expire_mini_session', impl: 'drainBacklog' },
      on: {
        HANDSHAKE_END: [
          {
            guard: 'connectionHasError',
            target: 'killed',
            actions: ['keepConnErrCode'],
            description:
              'A handshake failed (CO_FL_ERROR): conn_session_complete does not complete and kills the embryonic session in the same callback.',
            meta: {
              haproxy: 'conn_session_complete: CO_FL_ERROR → kill_mini_session (22cda21ad)',
              impl: 'Frontend.connectionEvent',
            },
          },
          {
            guard: 'completionFails',
            target: 'killed',
            actions: [
              'keepConnErrCode',
              {
                type: 'completeFailure',
                params: ({ event }) => ({ site: (event as { fail: CompleteFailSite }).fail }),
              },
            ],
            description:
              'The handshake ended but session_complete failed: the session was counted (cum_sess) and is unlinked (3b24641745), then killed.',
            meta: {
              haproxy: 'conn_session_complete: session_complete < 0 → kill_mini_session',
              impl: 'Frontend.connectionEvent',
            },
          },
          {
            target: 'initialized',
            actions: [...COMPLETE_START, 'allocBuffers', 'notifySi', 'taskWakeupInit'],
            description:
              'The last handshake ended: session_complete links the session, counts it, allocates its buffers and replaces the deadline with the session handler.',
            meta: {
              haproxy: 'conn_session_complete → session_complete > 0; conn->flags &= ~CO_FL_INIT_SESS',
              impl: 'Frontend.connectionEvent',
            },
          },
        ],
        TASK_WAKEUP: [
          {
            guard: 'wokenByTimer',
            target: 'expired',
            actions: ['connTimeout'],
            description: 'The handshake deadline struck (TASK_WOKEN_TIMER).',
            meta: {
              haproxy: 'expire_mini_session: TASK_WOKEN_TIMER → kill_mini_session',
              impl: 'timerOnExpire',
            },
          },
          {
            description: 'Woken for another reason than its timer: expire_mini_session does nothing (I13).',
            meta: { haproxy: 'expire_mini_session: !(t->state & TASK_WOKEN_TIMER) → return t' },
          },
        ],
      },
    },
    initialized: {
      description:
        'The initialized session: in the sessions list, counted in cum_sess, with its req/rep buffers (and the http txn), its task running process_session.',
      meta: { haproxy: 'session_complete (SN_INITIALIZED); process_session', impl: 'streamStart' },
      on: {
        SESSION_END: [
          {
            guard: 'noClientWriteTimeout',
            target: 'freed',
            actions: [...SESSION_END_RELEASE],
            description:
              'The stream ended: process_session releases the slot (release block), session_free frees the buffers and unlinks the session, then the task is freed. The close is a FIN, after what the proxy still buffered for the client.',
            meta: {
              haproxy: 'process_session end: release block, session_free, task_free',
              impl: 'streamOnEnd',
            },
          },
          {
            guard: 'clientWriteTimedOut',
            target: 'freed',
            actions: ['writeTimeoutShutw', ...SESSION_END_RELEASE],
            description:
              "The stream ended on the client's write timeout: process_session marked the client's side NOLINGER before its shutw, and what the proxy still buffered for it is dropped. 1.5-dev sets SO_LINGER 0, so the close is an RST that drops what the kernel held too; 2.x shuts it silently (CO_SHW_SILENT), so the kernel sends what it holds, then the close's FIN. Then the release, as at any end.",
            meta: {
              haproxy:
                'process_session: CF_WRITE_TIMEOUT → SI_FL_NOLINGER, si_shutw (2.x: SC_FL_NOLINGER, sc_shutw); then the end',
              impl: 'streamTaskOnExpire',
            },
          },
        ],
      },
    },
    expired: {
      description: 'The handshake deadline killed the embryonic session. It passes at once to freed.',
      meta: { haproxy: 'expire_mini_session → kill_mini_session', impl: 'timerOnExpire' },
      always: [
        {
          guard: 'logsKill',
          target: 'freed',
          actions: [{ type: 'logEmbryonicKill', params: { byDeadline: true } }, ...KILL_MINI_SESSION],
          description:
            'kill_mini_session, with its log line (the message names the pending handshake: PRX_TIMEOUT or SSL_TIMEOUT). Never under dontlognull: its test runs before the timer sets that code, on CO_ER_NONE.',
          meta: { haproxy: 'kill_mini_session (log: 0af2912fd)', impl: 'Frontend.execute' },
        },
        {
          target: 'freed',
          actions: [...KILL_MINI_SESSION],
          description:
            'kill_mini_session, silent: the frontend does not log, or dontlognull hides a deadline kill.',
          meta: { haproxy: 'kill_mini_session', impl: 'Frontend.execute' },
        },
      ],
    },
    killed: {
      description:
        'A handshake error or a failed completion killed the embryonic session. It passes at once to freed.',
      meta: { haproxy: 'conn_session_complete → kill_mini_session', impl: 'Frontend.connectionEvent' },
      always: [
        {
          guard: 'logsKill',
          target: 'freed',
          actions: [{ type: 'logEmbryonicKill', params: { byDeadline: false } }, ...KILL_MINI_SESSION],
          description:
            "kill_mini_session, with its log line: the message of the connection's err_code (CO_ER_NONE after a failed completion).",
          meta: { haproxy: 'kill_mini_session (log: 0af2912fd)', impl: 'Frontend.execute' },
        },
        {
          target: 'freed',
          actions: [...KILL_MINI_SESSION],
          description:
            'kill_mini_session, silent: the frontend does not log, or dontlognull hides a connection that sent nothing (err_code NONE, PRX_EMPTY, PRX_ABORT, SSL_EMPTY or SSL_ABORT).',
          meta: {
            haproxy: 'kill_mini_session (dontlognull: 8e3bf699d, 20879a023)',
            impl: 'Frontend.execute',
          },
        },
      ],
    },
    rejected: {
      description:
        'A tcp-request connection rule rejected the connection at accept (ret = 0). It passes at once to freed.',
      meta: { haproxy: 'session_accept: ret = 0, out_close', impl: 'drainBacklog' },
      always: {
        target: 'freed',
        actions: [
          'connClose',
          { type: 'fdClose', params: { site: 'out_close' } },
          { type: 'acceptReturned', params: { ret: 0 } },
        ],
        description:
          'out_close closes the fd with an RST (SO_LINGER 0); listener_accept releases the slot and keeps accepting.',
        meta: { haproxy: 'session_accept out_close; listener_accept ret == 0', impl: 'drainBacklog' },
      },
    },
    monitored: {
      description: 'A monitor-net source got its answer at accept (ret = 0). It passes at once to freed.',
      meta: { haproxy: 'session_accept monitor-net (82569f915)', impl: 'drainBacklog' },
      always: [
        {
          guard: 'httpMode',
          target: 'freed',
          actions: [
            'drainInput',
            'send200',
            { type: 'feconnDec', params: { site: 'out_free_session' } },
            { type: 'sessionFree', params: { site: 'out_free_session' } },
            'connClose',
            { type: 'fdClose', params: { site: 'out_close' } },
            { type: 'acceptReturned', params: { ret: 0 } },
          ],
          description: 'http mode: drain the request, answer "HTTP/1.0 200 OK", close.',
          meta: {
            haproxy: 'session_accept: send "HTTP/1.0 200 OK\\r\\n\\r\\n", ret = 0',
            impl: 'drainBacklog',
          },
        },
        {
          target: 'freed',
          actions: [
            'drainInput',
            { type: 'feconnDec', params: { site: 'out_free_session' } },
            { type: 'sessionFree', params: { site: 'out_free_session' } },
            'connClose',
            { type: 'fdClose', params: { site: 'out_close' } },
            { type: 'acceptReturned', params: { ret: 0 } },
          ],
          description: 'tcp mode: drain and close, which is the answer.',
          meta: { haproxy: 'session_accept monitor-net, ret = 0', impl: 'drainBacklog' },
        },
      ],
    },
    setupFailed: {
      description:
        'session_accept failed (ret < 0, or 0 in 2.6 for a failed completion). It passes at once to freed.',
      meta: { haproxy: 'session_accept out_close', impl: 'drainBacklog' },
      always: [
        {
          guard: 'answers500',
          target: 'freed',
          actions: [
            'send500',
            'connClose',
            { type: 'fdClose', params: { site: 'out_close' } },
            { type: 'acceptReturned', params: ({ context }) => ({ ret: context.ret }) },
          ],
          description:
            "ret < 0 in http mode on a raw transport: a 500 built from the frontend's error message, never from the session.",
          meta: { haproxy: 'session_accept out_close: 500 (cbaaec475, 05bf5e1c3)', impl: 'drainBacklog' },
        },
        {
          target: 'freed',
          actions: [
            'connClose',
            { type: 'fdClose', params: { site: 'out_close' } },
            { type: 'acceptReturned', params: ({ context }) => ({ ret: context.ret }) },
          ],
          description: 'No 500 (tcp mode, TLS transport, or ret = 0): the fd is closed.',
          meta: { haproxy: 'session_accept out_close: fd_delete / close', impl: 'drainBacklog' },
        },
      ],
    },
    freed: {
      type: 'final',
      description: 'No session exists any more: its memory, task, buffers and fd are released.',
      meta: { haproxy: 'pool_free2(pool2_session, s)', impl: 'Frontend.reap' },
    },
  },
});
