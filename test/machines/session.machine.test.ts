/**
 * One example per transition of the session machine, driven standalone through MachineRunner.
 * Each case reaches its source state through real events from `absent`, takes one step (with the
 * eventless transitions it passes through) and checks the transitions taken, the target state and
 * the exact effects, in order, with their params.
 *
 * The expected effects are written from haproxy-history.md §3 ("Exact sequences per path", the
 * common release block) and §1 (session_accept's order and its unwinding labels), checked against
 * src/session.c at v1.5-dev12 where the reference is silent on an order. They are not copied from
 * the machine: three places where the machine first differed (connClose before the unwinding,
 * the order inside session_complete, the order of session_free's releases) were fixed in the
 * machine, not in these expectations.
 */
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import type { Effect } from '../../machines/effects.ts';
import type { ErrCode } from '../../machines/errCodes.ts';
import { listTransitions } from '../../machines/introspect.ts';
import {
  acceptAllocations,
  acceptCanFailAt,
  expandSessionEffect,
  sourceClassReachable,
  type AcceptFailSite,
  type CompleteFailSite,
  type SessionEvent,
  type SourceClass,
} from '../../machines/session.machine.ts';
import { CONFIG_SPACE } from '../../properties/bounds.ts';
import { drive, sourceOf } from './drive.ts';

/**
 * Discrepancies between the machine and HAProxy, reported to the lead. A case that names one has
 * its effects written as HAProxy orders them.
 */

/** One example: the transition under test, how its source is reached, and what the step must do. */
interface Case {
  transition: string; //           the id under test ('<source>|<event>|<rank>')
  before?: string; //              the transition taken first in the same step, when the one under test is eventless
  after?: string; //               the eventless transition the step passes through after the one under test
  says: string; //                 the behaviour, as the test's name
  config: Partial<ModelConfig>; // on top of DEFAULT_CONFIG (dev12, tcp, accept-proxy, timeout client 300, logging)
  path: SessionEvent[]; //         events that reach the source state from `absent`
  event: SessionEvent; //          the event under test
  target: string; //               the state after the step
  effects: Effect[]; //            HAProxy's effects, in order, macros expanded
}

const TCP_PROXY: Partial<ModelConfig> = {};
const TCP_PLAIN: Partial<ModelConfig> = { acceptProxy: false };
const TCP_TLS: Partial<ModelConfig> = { acceptProxy: false, ssl: true };
const HTTP_PROXY: Partial<ModelConfig> = { mode: 'http' };
const HTTP_PLAIN: Partial<ModelConfig> = { mode: 'http', acceptProxy: false };
const HTTP_TLS: Partial<ModelConfig> = { mode: 'http', acceptProxy: false, ssl: true };
const SILENT: Partial<ModelConfig> = { logging: false };

const accept = (src: SourceClass = 'plain', fail: AcceptFailSite = 'none', sslconns = 0): SessionEvent => ({
  type: 'SESSION_ACCEPT',
  src,
  fail,
  sslconns,
});
const handshakeEnd = (
  error: boolean,
  fail: CompleteFailSite | 'none' = 'none',
  code: ErrCode = error ? 'PRX_NOT_HDR' : 'NONE',
): SessionEvent => ({ type: 'HANDSHAKE_END', error, code, fail });
const wakeup = (timer: boolean): SessionEvent => ({ type: 'TASK_WAKEUP', timer });

const e = (type: Effect['type'], params?: Record<string, unknown>): Effect =>
  params === undefined ? { type } : { type, params };
const bufAlloc = (buf: string): Effect => e('bufAlloc', { buf });
const bufFree = (buf: string): Effect => e('bufFree', { buf });

/** session_accept up to proxy_inc_fe_conn_ctr: pool_alloc, feconn++, conn_max, cum_conn++ (§1 steps 1, 6). */
const ACCEPT_COUNTERS = [e('sessionAlloc'), e('feconnInc'), e('connMaxUpdate'), e('cumConnInc')];
/** task_new, then fd_insert (§1 steps 10, 12). */
const TASK_AND_FD = [e('taskNew'), e('fdInsert')];
/** out_free_session: p->feconn--, pool_free2(pool2_session). */
const OUT_FREE_SESSION = [
  e('feconnDec', { site: 'out_free_session' }),
  e('sessionFree', { site: 'out_free_session' }),
];
/** out_close: the fd is closed (fd_delete or close), and listener_accept gets `ret`. */
const outClose = (ret: -1 | 0 | 1): Effect[] => [
  e('connClose'),
  e('fdClose', { site: 'out_close' }),
  e('acceptReturned', { ret }),
];
/** session_complete's start: LIST_ADDQ, t->process = l->handler, proxy_inc_fe_sess_ctr (src/session.c:289-308). */
const COMPLETE_START = [e('listAdd'), e('taskSetHandler'), e('cumSessInc')];
/** session_complete's end: CO_FL_NOTIFY_SI, task_wakeup(TASK_WOKEN_INIT). */
const COMPLETE_END = [e('notifySi'), e('taskWakeupInit')];
/** The common release block (§3), after feconn--. */
const RELEASE_AFTER_FECONN = [
  e('actconnDec'),
  e('jobsDec'),
  e('nbconnDec'),
  e('resumeListener'),
  e('dequeueGlobal'),
  e('dequeueFrontend'),
];
/** process_session's end: the client's close and the release block, then session_free of <bufs> and the task. */
function streamEnd(...bufs: string[]): Effect[] {
  return [
    e('connClose'),
    e('fdClose', { site: 'process_session' }),
    e('feconnDec', { site: 'process_session' }),
    ...RELEASE_AFTER_FECONN,
    ...bufs.map(bufFree),
    e('listDel', { site: 'session_free' }),
    e('sessionFree', { site: 'session_free' }),
    e('taskFree'),
  ];
}
/** kill_mini_session after its log line: conn_data_close, release block, task_free, fd_delete, free. */
const KILL = [
  e('connClose'),
  e('feconnDec', { site: 'kill_mini_session' }),
  ...RELEASE_AFTER_FECONN,
  e('taskFree'),
  e('fdClose', { site: 'kill_mini_session' }),
  e('sessionFree', { site: 'kill_mini_session' }),
];
/** A kill with its log line; dontlognull judges a deadline kill as "no error" (byDeadline). */
const LOGGED_KILL = [e('logEmbryonicKill', { byDeadline: false }), ...KILL];
const LOGGED_EXPIRY = [e('logEmbryonicKill', { byDeadline: true }), ...KILL];
/** Unlinked again on session_complete's error path (3b24641745). */
const LIST_DEL_COMPLETE = e('listDel', { site: 'session_complete' });
/** session_complete after a handshake, failing at the txn: both buffers freed again, unlinked. */
const TXN_FAILED_AFTER_HANDSHAKE = [
  ...COMPLETE_START,
  bufAlloc('req'),
  bufAlloc('rep'),
  bufFree('rep'),
  bufFree('req'),
  LIST_DEL_COMPLETE,
];

/** 2.x's listener_accept: feconn reserved before accept(), then conn_max and proxy_inc_fe_conn_ctr. */
const LISTENER_COUNTS = [e('feconnInc'), e('connMaxUpdate'), e('cumConnInc')];
/** 2.x's session_new: the session, totalconn++, jobs++. */
const SESSION_NEW = [e('sessionAlloc'), e('totalconnInc'), e('jobsInc')];
/** 2.x's conn_prepare on a TLS bind (ssl_sock_init), and conn_full_close's release of it (ssl_sock_close). */
const XPRT_INIT = [e('sslCtxNew'), e('sslconnsInc')];
const XPRT_CLOSE = [e('sslCtxFree'), e('sslconnsDec')];
/** 2.x's listener_release, reached from session_accept_fd's out_free_conn: the frontend's slot. */
const LISTENER_RELEASE = e('feconnDec', { site: 'listener_release' });
/** 2.x's out_free_sess: session_free (jobs--), then out_free_conn's conn_full_close on a TLS bind. */
const OUT_FREE_SESS_TLS = [
  e('sessionFree', { site: 'out_free_sess' }),
  e('jobsDec'),
  ...XPRT_CLOSE,
  LISTENER_RELEASE,
];
const TCP_TLS_26: Partial<ModelConfig> = { ...TCP_TLS, profile: '2.6' };

const CASES: Case[] = [
  // --- absent: session_accept ---
  {
    transition: 'session.absent|SESSION_ACCEPT|0',
    after: 'session.setupFailed|always|1',
    says: 'refuses the SSL context in conn_prepare under 2.x once sslconns has reached maxsslconn: counted in conn_tot only, no session, -1',
    config: { ...TCP_TLS_26, maxsslconn: 2 },
    path: [],
    event: accept('plain', 'none', 2),
    target: 'freed',
    effects: [...LISTENER_COUNTS, LISTENER_RELEASE, ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|0',
    after: 'session.setupFailed|always|1',
    says: 'refuses the SSL context under 2.x before the tcp-request rules run: a source they reject is not denied',
    config: { ...TCP_TLS_26, maxsslconn: 2 },
    path: [],
    event: accept('denied', 'none', 2),
    target: 'freed',
    effects: [...LISTENER_COUNTS, LISTENER_RELEASE, ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|1',
    after: 'session.setupFailed|always|1',
    says: 'fails the SSL context allocation in conn_prepare under 2.x before the session exists, with no 500 on a TLS transport',
    config: { ...HTTP_TLS, profile: '2.6' },
    path: [],
    event: accept('plain', 'dataInit'),
    target: 'freed',
    effects: [...LISTENER_COUNTS, LISTENER_RELEASE, ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|2',
    after: 'session.setupFailed|always|1',
    says: 'counts the connection in conn_tot but not in totalconn under 2.x when the session cannot be allocated, and frees the SSL context conn_prepare made',
    config: TCP_TLS_26,
    path: [],
    event: accept('plain', 'session'),
    target: 'freed',
    effects: [...LISTENER_COUNTS, ...XPRT_INIT, ...XPRT_CLOSE, LISTENER_RELEASE, ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|3',
    after: 'session.rejected|always|0',
    says: 'makes and frees an SSL context for a source the tcp-request rules reject under 2.x, which runs them once the session exists',
    config: TCP_TLS_26,
    path: [],
    event: accept('denied'),
    target: 'freed',
    effects: [
      ...LISTENER_COUNTS,
      ...XPRT_INIT,
      ...SESSION_NEW,
      e('deniedConnInc'),
      e('setNoLinger'),
      ...OUT_FREE_SESS_TLS,
      ...outClose(0),
    ],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|2',
    after: 'session.setupFailed|always|1',
    says: 'closes the fd and returns -1 without counting anything when the session cannot be allocated',
    config: TCP_PROXY,
    path: [],
    event: accept('plain', 'session'),
    target: 'freed',
    effects: [...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|3',
    after: 'session.rejected|always|0',
    says: 'counts a tcp-request reject in denied_conn, sets SO_LINGER 0 and returns 0 through out_free_session',
    config: TCP_PROXY,
    path: [],
    event: accept('denied'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, e('deniedConnInc'), e('setNoLinger'), ...OUT_FREE_SESSION, ...outClose(0)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|4',
    after: 'session.setupFailed|always|0',
    says: 'unwinds a failed fcntl(O_NONBLOCK) through out_free_session before monitor-net is even looked at',
    config: HTTP_PLAIN,
    path: [],
    event: accept('monitor', 'fcntl'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, ...OUT_FREE_SESSION, e('send500'), ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|5',
    after: 'session.monitored|always|1',
    says: 'answers a monitor-net source at accept, with no handshake, and returns 0 through out_free_session',
    config: TCP_PROXY,
    path: [],
    event: accept('monitor'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, e('drainInput'), ...OUT_FREE_SESSION, ...outClose(0)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|6',
    after: 'session.setupFailed|always|0',
    says: 'unwinds a failed task_new through out_free_session and answers 500 in http mode on a raw transport',
    config: HTTP_PLAIN,
    path: [],
    event: accept('plain', 'task'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, ...OUT_FREE_SESSION, e('send500'), ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|7',
    after: 'session.setupFailed|always|1',
    says: 'refuses a TLS connection at accept when sslconns has reached maxsslconn: no SSL context, unwound through out_free_task, -1',
    config: { ...TCP_TLS, maxsslconn: 2 },
    path: [],
    event: accept('plain', 'none', 2),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, ...TASK_AND_FD, e('taskFree'), ...OUT_FREE_SESSION, ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|8',
    after: 'session.setupFailed|always|1',
    says: 'unwinds a failed conn_data_init through out_free_task and sends no 500 on a TLS transport',
    config: HTTP_TLS,
    path: [],
    event: accept('plain', 'dataInit'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, ...TASK_AND_FD, e('taskFree'), ...OUT_FREE_SESSION, ...outClose(-1)],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|10',
    says: 'builds only an embryonic session when a handshake is pending: a task with the handshake deadline, no buffer, and returns 1',
    config: TCP_PROXY,
    path: [],
    event: accept(),
    target: 'embryonic',
    effects: [
      ...ACCEPT_COUNTERS,
      ...TASK_AND_FD,
      e('connStartHandshake'),
      e('armDeadline', { ms: 300 }),
      e('acceptReturned', { ret: 1 }),
    ],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|9',
    says: 'creates the SSL context at accept and counts it in sslconns, below maxsslconn, before any byte of the handshake: an embryonic session, no buffer, 1',
    config: { ...TCP_TLS, maxsslconn: 2 },
    path: [],
    event: accept('plain', 'none', 1),
    target: 'embryonic',
    effects: [
      ...ACCEPT_COUNTERS,
      ...TASK_AND_FD,
      e('sslCtxNew'),
      e('sslconnsInc'),
      e('connStartHandshake'),
      e('armDeadline', { ms: 300 }),
      e('acceptReturned', { ret: 1 }),
    ],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|9',
    says: 'makes the SSL context under 2.x before the session, which session_new counts in totalconn and jobs',
    config: { ...TCP_TLS_26, maxsslconn: 2 },
    path: [],
    event: accept('plain', 'none', 1),
    target: 'embryonic',
    effects: [
      ...LISTENER_COUNTS,
      ...XPRT_INIT,
      ...SESSION_NEW,
      ...TASK_AND_FD,
      e('connStartHandshake'),
      e('armDeadline', { ms: 300 }),
      e('acceptReturned', { ret: 1 }),
    ],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|11',
    after: 'session.setupFailed|always|1',
    says: 'counts a session, unlinks it and unwinds through out_free_task when session_complete fails without a handshake',
    config: TCP_PLAIN,
    path: [],
    event: accept('plain', 'rep'),
    target: 'freed',
    effects: [
      ...ACCEPT_COUNTERS,
      ...TASK_AND_FD,
      e('connNoHandshake'),
      ...COMPLETE_START,
      bufAlloc('req'),
      bufFree('req'),
      LIST_DEL_COMPLETE,
      e('taskFree'),
      ...OUT_FREE_SESSION,
      ...outClose(-1),
    ],
  },
  {
    transition: 'session.absent|SESSION_ACCEPT|12',
    says: 'completes the session at once when no handshake is pending: listed, counted, with req, rep and the http txn',
    config: HTTP_PLAIN,
    path: [],
    event: accept(),
    target: 'initialized',
    effects: [
      ...ACCEPT_COUNTERS,
      ...TASK_AND_FD,
      e('connNoHandshake'),
      ...COMPLETE_START,
      bufAlloc('req'),
      bufAlloc('rep'),
      bufAlloc('txn'),
      ...COMPLETE_END,
      e('acceptReturned', { ret: 1 }),
    ],
  },
  // --- embryonic ---
  {
    transition: 'session.embryonic|HANDSHAKE_END|0',
    after: 'session.killed|always|0',
    says: 'kills the embryonic session when the handshake fails, without completing it',
    config: TCP_PROXY,
    path: [accept()],
    event: handshakeEnd(true),
    target: 'freed',
    effects: [...LOGGED_KILL],
  },
  {
    transition: 'session.embryonic|HANDSHAKE_END|1',
    after: 'session.killed|always|0',
    says: 'counts the session, frees what it allocated, unlinks it and kills it when session_complete fails after the handshake',
    config: HTTP_PROXY,
    path: [accept()],
    event: handshakeEnd(false, 'txn'),
    target: 'freed',
    effects: [...TXN_FAILED_AFTER_HANDSHAKE, ...LOGGED_KILL],
  },
  {
    transition: 'session.embryonic|HANDSHAKE_END|2',
    says: 'completes the embryonic session when the last handshake ends: listed, counted in cum_sess, with its buffers and the session handler',
    config: TCP_PROXY,
    path: [accept()],
    event: handshakeEnd(false),
    target: 'initialized',
    effects: [...COMPLETE_START, bufAlloc('req'), bufAlloc('rep'), ...COMPLETE_END],
  },
  {
    transition: 'session.embryonic|TASK_WAKEUP|0',
    after: 'session.expired|always|0',
    says: 'kills the embryonic session when its handshake deadline strikes, after naming the timeout on the connection',
    config: TCP_TLS,
    path: [accept()],
    event: wakeup(true),
    target: 'freed',
    effects: [e('connTimeout'), ...LOGGED_EXPIRY],
  },
  {
    transition: 'session.embryonic|TASK_WAKEUP|1',
    says: 'ignores a wakeup that is not its timer',
    config: TCP_PROXY,
    path: [accept()],
    event: wakeup(false),
    target: 'embryonic',
    effects: [],
  },
  // --- initialized ---
  {
    transition: 'session.initialized|SESSION_END|0',
    says: 'releases the slot, frees the buffers, unlinks and frees the session, then its task when the stream ends',
    config: HTTP_PROXY,
    path: [accept(), handshakeEnd(false)],
    event: { type: 'SESSION_END', writeTimeout: false },
    target: 'freed',
    effects: streamEnd('req', 'rep', 'txn'),
  },
  ...(
    [
      ['dev12', 'setNoLinger', 'with an RST (SO_LINGER 0) in 1.5-dev12'],
      ['2.6', 'shutwSilent', 'silently, with a FIN, in 2.x'],
    ] as const
  ).map(([profile, shutw, how]) => ({
    transition: 'session.initialized|SESSION_END|1',
    says: `closes the client ${how} when its write timeout ended the stream, then releases the session as at any end`,
    config: { ...TCP_PROXY, profile },
    path: [accept(), handshakeEnd(false)],
    event: { type: 'SESSION_END', writeTimeout: true } as const,
    target: 'freed',
    effects: [e(shutw), ...streamEnd('req', 'rep')],
  })),
  // --- expired (passed through) ---
  {
    transition: 'session.expired|always|0',
    before: 'session.embryonic|TASK_WAKEUP|0',
    says: 'logs the kill of an expired embryonic session when the frontend logs',
    config: TCP_PROXY,
    path: [accept()],
    event: wakeup(true),
    target: 'freed',
    effects: [e('connTimeout'), ...LOGGED_EXPIRY],
  },
  {
    transition: 'session.expired|always|1',
    before: 'session.embryonic|TASK_WAKEUP|0',
    says: 'kills an expired embryonic session silently when the frontend does not log',
    config: SILENT,
    path: [accept()],
    event: wakeup(true),
    target: 'freed',
    effects: [e('connTimeout'), ...KILL],
  },
  {
    transition: 'session.expired|always|1',
    before: 'session.embryonic|TASK_WAKEUP|0',
    says: 'kills an expired embryonic session silently under dontlognull, which judges it before the timeout code is set',
    config: { ...TCP_PROXY, dontlognull: true },
    path: [accept()],
    event: wakeup(true),
    target: 'freed',
    effects: [e('connTimeout'), ...KILL],
  },
  // --- killed (passed through) ---
  {
    transition: 'session.killed|always|0',
    before: 'session.embryonic|HANDSHAKE_END|0',
    says: 'logs the kill of an embryonic session whose TLS handshake failed when the frontend logs',
    config: TCP_TLS,
    path: [accept()],
    event: handshakeEnd(true),
    target: 'freed',
    effects: [...LOGGED_KILL],
  },
  {
    transition: 'session.killed|always|1',
    before: 'session.embryonic|HANDSHAKE_END|0',
    says: 'kills an embryonic session silently when the frontend does not log',
    config: SILENT,
    path: [accept()],
    event: handshakeEnd(true),
    target: 'freed',
    effects: [...KILL],
  },
  {
    transition: 'session.killed|always|0',
    before: 'session.embryonic|HANDSHAKE_END|0',
    says: 'logs the kill of an embryonic session that sent something invalid, under dontlognull too',
    config: { ...TCP_PROXY, dontlognull: true },
    path: [accept()],
    event: handshakeEnd(true, 'none', 'PRX_NOT_HDR'),
    target: 'freed',
    effects: [...LOGGED_KILL],
  },
  ...(['PRX_EMPTY', 'PRX_ABORT', 'SSL_EMPTY', 'SSL_ABORT'] as const).map((code) => ({
    transition: 'session.killed|always|1',
    before: 'session.embryonic|HANDSHAKE_END|0',
    says: `kills an embryonic session silently under dontlognull when its connection ended with ${code}`,
    config: { ...TCP_PROXY, ssl: true, dontlognull: true },
    path: [accept()],
    event: handshakeEnd(true, 'none', code),
    target: 'freed',
    effects: [...KILL],
  })),
  {
    transition: 'session.killed|always|1',
    before: 'session.embryonic|HANDSHAKE_END|1',
    says: 'kills an embryonic session silently under dontlognull when session_complete failed (err_code NONE)',
    config: { ...HTTP_PROXY, dontlognull: true },
    path: [accept()],
    event: handshakeEnd(false, 'txn'),
    target: 'freed',
    effects: [...TXN_FAILED_AFTER_HANDSHAKE, ...KILL],
  },
  // --- rejected (passed through) ---
  {
    transition: 'session.rejected|always|0',
    before: 'session.absent|SESSION_ACCEPT|3',
    says: 'closes a rejected connection at out_close and returns 0, with no 500 even in http mode',
    config: HTTP_PLAIN,
    path: [],
    event: accept('denied'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, e('deniedConnInc'), e('setNoLinger'), ...OUT_FREE_SESSION, ...outClose(0)],
  },
  // --- monitored (passed through) ---
  {
    transition: 'session.monitored|always|0',
    before: 'session.absent|SESSION_ACCEPT|5',
    says: 'drains a monitor-net request and answers "HTTP/1.0 200 OK" in http mode, then closes and returns 0',
    config: HTTP_PLAIN,
    path: [],
    event: accept('monitor'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, e('drainInput'), e('send200'), ...OUT_FREE_SESSION, ...outClose(0)],
  },
  {
    transition: 'session.monitored|always|1',
    before: 'session.absent|SESSION_ACCEPT|5',
    says: 'drains a monitor-net request in tcp mode and answers with the close alone',
    config: TCP_PLAIN,
    path: [],
    event: accept('monitor'),
    target: 'freed',
    effects: [...ACCEPT_COUNTERS, e('drainInput'), ...OUT_FREE_SESSION, ...outClose(0)],
  },
  // --- setupFailed (passed through) ---
  {
    transition: 'session.setupFailed|always|0',
    before: 'session.absent|SESSION_ACCEPT|2',
    says: "answers 500 from the frontend's error message, without a session, when the session allocation fails in http mode",
    config: HTTP_PLAIN,
    path: [],
    event: accept('plain', 'session'),
    target: 'freed',
    effects: [e('send500'), ...outClose(-1)],
  },
  {
    transition: 'session.setupFailed|always|1',
    before: 'session.absent|SESSION_ACCEPT|11',
    says: 'returns 0 and sends no 500 when the direct completion fails in the 2.6 profile',
    config: { profile: '2.6', mode: 'http', acceptProxy: false },
    path: [],
    event: accept('plain', 'req'),
    target: 'freed',
    effects: [
      ...LISTENER_COUNTS,
      ...SESSION_NEW,
      ...TASK_AND_FD,
      e('connNoHandshake'),
      ...COMPLETE_START,
      LIST_DEL_COMPLETE,
      e('taskFree'),
      e('sessionFree', { site: 'out_free_sess' }),
      e('jobsDec'),
      LISTENER_RELEASE,
      ...outClose(0),
    ],
  },
];

describe('the session machine', () => {
  const states = [...new Set(CASES.map((c) => sourceOf(c.transition)))];
  describe.each(states)('in %s', (state) => {
    for (const c of CASES.filter((x) => sourceOf(x.transition) === state))
      it(c.says, () => {
        const { source, step, target } = drive('session', c.config, c.path, c.event);
        expect(source).toBe(sourceOf(c.before ?? c.transition));
        expect(step.transitions).toEqual([c.before, c.transition, c.after].filter((t) => t !== undefined));
        expect(target).toBe(c.target);
        expect(step.effects).toEqual(c.effects);
      });
  });

  it('has an example for every transition of the machine, and none for a transition it lacks', () => {
    const ids = listTransitions(MACHINES.session).map((t) => t.id);
    expect([...new Set(CASES.map((c) => c.transition))].sort()).toEqual([...ids].sort());
  });

  describe('the handshake deadline', () => {
    it.each([
      ['timeout client in dev12', { timeoutClient: 300, timeoutClientHs: 100 }, 300],
      ['no deadline (TICK_ETERNITY) when timeout client is unset', { timeoutClient: null }, null],
      ['timeout client-hs in 2.9', { profile: '2.9', timeoutClient: 300, timeoutClientHs: 100 }, 100],
      [
        'timeout client in 2.9 when client-hs is unset',
        { profile: '2.9', timeoutClient: 300, timeoutClientHs: null },
        300,
      ],
    ] as const)('arms %s', (_name, config, ms) => {
      const { step } = drive('session', config as Partial<ModelConfig>, [], accept());
      expect(step.effects.filter((x) => x.type === 'armDeadline')).toEqual([e('armDeadline', { ms })]);
    });
  });

  describe('the unwinding of a failed session_complete', () => {
    it.each([
      ['req', []],
      ['rep', ['req']],
      ['txn', ['req', 'rep']],
      ['accept', ['req', 'rep', 'txn']],
    ] as const)(
      'frees, in reverse, only what was allocated before a failure at %s, then unlinks the session',
      (site, allocated) => {
        const out = expandSessionEffect(makeConfig(HTTP_PLAIN), e('completeFailure', { site }));
        const buffers = out.filter((x) => x.type === 'bufAlloc' || x.type === 'bufFree');
        expect(buffers).toEqual([...allocated.map(bufAlloc), ...[...allocated].reverse().map(bufFree)]);
        expect(out.at(-1)).toEqual(LIST_DEL_COMPLETE);
        expect(out.filter((x) => x.type === 'cumSessInc')).toHaveLength(1);
      },
    );
  });

  it('never allocates a buffer for an embryonic session', () => {
    const { step } = drive('session', HTTP_PROXY, [], accept());
    expect(step.effects.filter((x) => x.type === 'bufAlloc' || x.type === 'allocBuffers')).toEqual([]);
  });

  it('acts on the deadline only in the embryonic state: a completed session ignores TASK_WAKEUP', () => {
    const { step, target } = drive('session', TCP_PROXY, [accept(), handshakeEnd(false)], wakeup(true));
    expect(step.transitions).toEqual([]);
    expect(target).toBe('initialized');
  });
});

describe("HAProxy's session_accept, for the environment", () => {
  // The order acceptAllocations states is the order the machine's own path allocates in, when
  // nothing fails: the allocation effects of SESSION_ACCEPT, in every configuration of the space,
  // for each source class it can meet, below maxsslconn and at it.
  const ALLOC_SITE: Partial<Record<Effect['type'], string>> = {
    sessionAlloc: 'session',
    taskNew: 'task',
    sslCtxNew: 'dataInit',
  };
  it.each(CONFIG_SPACE.map((c) => [c.name, c.config] as const))(
    'lists the allocations of session_accept in the order the machine makes them under %s',
    (_, config) => {
      for (const src of ['plain', 'denied', 'monitor'] as const) {
        if (!sourceClassReachable(config, src)) continue;
        for (const sslconns of config.maxsslconn === null ? [0] : [0, config.maxsslconn]) {
          const { step } = drive('session', config, [], accept(src, 'none', sslconns));
          const made = step.effects.flatMap((x) =>
            x.type === 'bufAlloc' ? [String(x.params!.buf)] : (ALLOC_SITE[x.type] ?? []),
          );
          expect(made, `${src}, sslconns ${sslconns}`).toEqual(acceptAllocations(config, src, sslconns));
        }
      }
    },
  );

  it.each([
    ['session', {}, true],
    ['fcntl', {}, true],
    ['fcntl', { profile: '2.6' }, false],
    ['task', { profile: '2.6', acceptProxy: false }, true],
    ['dataInit', { ssl: false }, false],
    ['dataInit', { ssl: true }, true],
    ['req', { acceptProxy: true }, false],
    ['req', { acceptProxy: false }, true],
    ['txn', { mode: 'tcp', acceptProxy: false }, false],
    ['txn', { mode: 'http', acceptProxy: false }, true],
  ] as const)('can fail at %s under %j: %s', (site, config, can) => {
    expect(acceptCanFailAt(makeConfig(config), site)).toBe(can);
  });

  it('classes a source as a monitor only where monitor-net exists (1.5-dev)', () => {
    expect(sourceClassReachable(makeConfig({ profile: 'dev12' }), 'monitor')).toBe(true);
    expect(sourceClassReachable(makeConfig({ profile: '2.6' }), 'monitor')).toBe(false);
    expect(sourceClassReachable(makeConfig({ profile: '2.9' }), 'denied')).toBe(true);
  });
});
