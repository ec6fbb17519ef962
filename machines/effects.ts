/**
 * The effects the machines emit: every counter update, resource change, socket operation and
 * message to another machine is one of these names. A machine never performs an effect itself; its
 * transition returns the names (with params) in HAProxy's order, and a host executes them:
 * machines/system.ts on the model's counters and memory, impl/ on real sockets, pools and timers.
 *
 * Each entry says what it does and which HAProxy statement it stands for. The vocabulary is closed:
 * hosts switch over it exhaustively, so a new effect cannot be silently ignored.
 */
import type { ErrCode } from './errCodes.ts';

export const EFFECTS = {
  // --- global and frontend counters (listener_accept, session_accept, kill_mini_session) ---
  actconnInc: { does: 'actconn++ (skipped for LI_O_UNLIMITED listeners)', haproxy: 'listener_accept' },
  actconnDec: {
    does: 'actconn-- (skipped for LI_O_UNLIMITED listeners)',
    haproxy: 'listener_accept / kill_mini_session / process_session (2.x: listener_release)',
  },
  jobsInc: { does: 'jobs++', haproxy: 'listener_accept (1.5-dev) / session_new (2.x)' },
  jobsDec: {
    does: 'jobs--',
    haproxy: 'listener_accept / kill_mini_session / process_session (2.x: session_free)',
  },
  totalconnInc: { does: 'totalconn++ (CumConns)', haproxy: 'listener_accept (1.5-dev) / session_new (2.x)' },
  connPerSecInc: { does: 'global.conn_per_sec++ (maxconnrate budget)', haproxy: 'listener_accept' },
  nbconnInc: { does: 'l->nbconn++', haproxy: 'listener_accept' },
  nbconnDec: {
    does: 'l->nbconn--',
    haproxy: 'listener_accept / kill_mini_session / process_session (2.x: listener_release)',
  },
  feconnInc: { does: 'p->feconn++ (scur)', haproxy: 'session_accept (2.x: listener_accept)' },
  feconnDec: {
    does: 'p->feconn-- (scur)',
    haproxy: 'session_accept out_free_session / kill_mini_session / process_session (2.x: listener_release)',
  },
  connMaxUpdate: {
    does: 'conn_max = max(conn_max, feconn) (smax)',
    haproxy: 'session_accept (2.x: listener_accept)',
  },
  cumConnInc: {
    does: 'cum_conn++ on frontend and listener, fe_conn_per_sec++ (conn_tot)',
    haproxy: 'proxy_inc_fe_conn_ctr',
  },
  cumSessInc: {
    does: 'cum_sess++ on frontend and listener, fe_sess_per_sec++ (stot)',
    haproxy: 'proxy_inc_fe_sess_ctr',
  },
  deniedConnInc: { does: 'denied_conn++ (dcon)', haproxy: 'tcp_exec_req_rules' },
  sslconnsInc: {
    does: 'sslconns++ (CurrSslConns); 2.x also totalsslconns++ (CumSslConns, since 1.5-dev22)',
    haproxy: 'ssl_sock_init',
  },
  sslconnsDec: { does: 'sslconns-- (CurrSslConns)', haproxy: 'ssl_sock_close' },
  cumSessDec: {
    does: 'MUTANT ONLY (machines/mutants.ts): cum_sess-- on frontend and listener, as if stot were a gauge',
    haproxy: 'never: HAProxy only increments cum_sess (a porting mistake)',
  },

  // --- memory: the session, its task, its buffers, the sessions list ---
  sessionAlloc: {
    does: 'allocate the session from pool2_session',
    haproxy: 'session_accept: pool_alloc2(pool2_session)',
  },
  sessionFree: { does: 'free the session to pool2_session', haproxy: 'pool_free2(pool2_session, s)' },
  taskNew: { does: 'allocate the session task', haproxy: 'session_accept: task_new' },
  taskFree: { does: 'dequeue and free the session task', haproxy: 'task_delete + task_free' },
  sslCtxNew: {
    does: "allocate the connection's SSL context, in accept state (the data layer's context)",
    haproxy: 'conn_data_init → ssl_sock_init: SSL_new',
  },
  sslCtxFree: {
    does: "free the connection's SSL context",
    haproxy:
      'conn_data_close → ssl_sock_close: SSL_free (2.x: conn_full_close → conn_xprt_close → ssl_sock_close)',
  },
  armDeadline: {
    does: 'task->process = expire_mini_session; task->expire = now + timeout (or never); task_queue',
    haproxy: 'session_accept (CO_FL_HANDSHAKE)',
  },
  taskSetHandler: {
    does: 'task->process = l->handler, task->expire = TICK_ETERNITY: the handshake deadline no longer applies',
    haproxy: 'session_complete',
  },
  taskWakeupInit: {
    does: 'task_wakeup(TASK_WOKEN_INIT): process_session starts the stream (connects the backend)',
    haproxy: 'session_complete',
  },
  listAdd: { does: 'LIST_ADDQ(&sessions, &s->list)', haproxy: 'session_complete' },
  listDel: { does: 'LIST_DEL(&s->list)', haproxy: 'session_complete error path (3b24641745) / session_free' },
  bufAlloc: {
    does: 'allocate a buffer or the http txn: params.buf is req, rep or txn',
    haproxy:
      'session_complete: pool_alloc2(pool2_channel) for req and rep; the http txn: frontend_accept, pool_alloc2(pool2_hdr_idx)',
  },
  bufFree: {
    does: 'free a buffer or the http txn: params.buf is req, rep or txn',
    haproxy: 'session_complete out_free_* / session_free',
  },

  // --- macros: expanded into the primitives above by expandSessionEffect (session.machine.ts) and
  // expandListenerEffect (listener.machine.ts). Those that differ by profile stand for a step that
  // moved between 1.5-dev12 and 2.x, and expand to nothing in the profile that does not have it there.
  listenerJobAndTotalconnInc: {
    macro: 'listener',
    does: 'macro: 1.5-dev jobsInc, totalconnInc; nothing in 2.x, whose session_new counts both (sessionNew)',
    haproxy: 'listener_accept (1.5-dev)',
  },
  listenerJobDec: {
    macro: 'listener',
    does: 'macro: 1.5-dev jobsDec once session_accept returned ret <= 0; nothing in 2.x, whose session_free counts it when session_accept_fd fails (unwindSession)',
    haproxy: 'listener_accept (1.5-dev)',
  },
  listenerCounts: {
    macro: 'session',
    does: "macro: 2.x feconnInc (reserved before accept()), connMaxUpdate, cumConnInc (once accept() returned), all before l->accept() runs; nothing in 1.5-dev, which counts them after the session's allocation (sessionNew)",
    haproxy: 'listener_accept (2.x): next_feconn, conn_max, proxy_inc_fe_conn_ctr',
  },
  xprtInit: {
    macro: 'session',
    does: 'macro: 2.x on a TLS bind: sslCtxNew, sslconnsInc, before the session exists and before the tcp-request rules; nothing otherwise (1.5-dev: connDataInit)',
    haproxy: 'session_accept_fd (2.x): conn_prepare → ssl_sock_init',
  },
  sessionNew: {
    macro: 'session',
    does: 'macro: the session and its counts: 1.5-dev sessionAlloc, feconnInc, connMaxUpdate, cumConnInc; 2.x sessionAlloc, totalconnInc, jobsInc',
    haproxy: 'session_accept: pool_alloc2(pool2_session) (1.5-dev); session_new (2.x)',
  },
  connDataInit: {
    macro: 'session',
    does: 'macro: 1.5-dev on a TLS bind: sslCtxNew, sslconnsInc, after fd_insert; nothing in 2.x, whose conn_prepare did it (xprtInit)',
    haproxy: 'session_accept (1.5-dev): conn_data_init → ssl_sock_init',
  },
  unwindSession: {
    macro: 'session',
    does: "macro: a failed session_accept's release once the session exists: 1.5-dev feconnDec, sessionFree at params.site; 2.x sessionFree, jobsDec (session_free), then on a TLS bind sslCtxFree, sslconnsDec (conn_full_close → ssl_sock_close), then feconnDec (listener_release)",
    haproxy:
      'session_accept out_free_session (1.5-dev); session_accept_fd out_free_sess → out_free_conn (2.x)',
  },
  unwindConn: {
    macro: 'session',
    does: 'macro: 2.x, when the session could not be allocated: on a TLS bind sslCtxFree, sslconnsDec (conn_full_close → ssl_sock_close), then feconnDec (listener_release); nothing in 1.5-dev, which had counted nothing yet',
    haproxy: 'session_accept_fd (2.x): out_free_conn',
  },
  writeTimeoutShutw: {
    macro: 'session',
    does: "macro: the client's side after its write timeout (NOLINGER): 1.5-dev setNoLinger, an RST that drops what the kernel held for it; 2.x shutwSilent, a FIN after it",
    haproxy: 'process_session: CF_WRITE_TIMEOUT → SI_FL_NOLINGER, si_shutw (2.x: SC_FL_NOLINGER, sc_shutw)',
  },
  allocBuffers: {
    macro: 'session',
    does: 'macro: bufAlloc req, rep, and txn in http mode',
    haproxy: 'session_complete',
  },
  freeBuffers: {
    macro: 'session',
    does: 'macro: bufFree req, rep, then txn (http mode)',
    haproxy: 'session_free',
  },
  completeFailure: {
    macro: 'session',
    does: 'macro: a session_complete failing at params.site, unwound (listAdd, taskSetHandler, cumSessInc, bufAlloc of what precedes params.site, bufFree of it in reverse, listDel)',
    haproxy: 'session_complete out_free_* (3b24641745)',
  },

  // --- the accepted socket ---
  fdInsert: {
    does: 'register the accepted fd in fdtab with conn_fd_handler as its I/O callback',
    haproxy: 'session_accept: fd_insert',
  },
  fdClose: {
    does: 'close the accepted fd exactly once (fd_delete if it is in fdtab, else close)',
    haproxy: 'session_accept out_close / kill_mini_session / session_free',
  },
  setNoLinger: {
    does: 'the close will be an RST instead of a FIN. After a tcp-request reject HAProxy sets SO_LINGER 0 itself; after a PROXY parse error it sets nothing: the bytes it peeked (MSG_PEEK) are still unread at close, and the kernel answers with an RST. A port that consumes what it parses must set SO_LINGER 0 there to match',
    haproxy:
      'session_accept (tcp-request reject: setsockopt SO_LINGER); conn_recv_proxy (unread peeked bytes)',
  },
  shutwSilent: {
    does: "2.x: the client's side is shut without SO_LINGER 0 (CO_SHW_SILENT: no shutdown() before the close): what the proxy still buffered for it is dropped, and the close is a FIN after what the kernel holds",
    haproxy: 'sc_conn_shutw (2.x): SC_FL_NOLINGER → CO_SHW_SILENT',
  },
  drainInput: {
    does: 'read and drop what the client sent (monitor)',
    haproxy: 'session_accept (82569f915): recv drain',
  },
  send200: {
    does: 'write "HTTP/1.0 200 OK\\r\\n\\r\\n" (monitor in http mode)',
    haproxy: 'session_accept (82569f915)',
  },
  send500: {
    does: "write a 500 without touching the session (the frontend's error message; 2.x: the built-in one)",
    haproxy: 'session_accept out_close (05bf5e1c3, cbaaec475)',
  },
  send500FromSession: {
    does: 'MUTANT ONLY (machines/mutants.ts): write a 500 built from the session (reads s->fe, s->be)',
    haproxy: 'session_accept out_close: error_message(s, HTTP_ERR_500), before 05bf5e1c3',
  },
  logEmbryonicKill: {
    does: 'log "<src> [<date>] <fe>/<bind>: <message of err_code>"; emitted only when kill_mini_session writes its line (p->to_log, and dontlognull does not hide it: the session machine decides); params.byDeadline: the deadline killed it, which dontlognull judged as "no error" (the timeout code is set after that test)',
    haproxy: 'kill_mini_session (0af2912fd, dev15)',
  },
  notifySi: {
    does: 'CO_FL_NOTIFY_SI: the connection handler now notifies the stream interface',
    haproxy: 'session_complete',
  },

  recvProxyHeader: {
    does: 'start reading the PROXY header into the handshake scratch area (never a session buffer)',
    haproxy: 'conn_fd_handler → conn_recv_proxy (CO_FL_ACCEPT_PROXY)',
  },
  startTlsHandshake: {
    does: 'start the TLS handshake on the connection, with the bytes after the PROXY header',
    haproxy: 'conn_fd_handler → ssl_sock_handshake (CO_FL_SSL_WAIT_HS)',
  },

  // --- the listener's socket and queues ---
  listenerStopAccepting: {
    does: 'stop polling the listening socket (fd_stop_recv): new connections wait in the kernel backlog',
    haproxy: 'listener_full / limit_listener',
  },
  listenerResumeAccepting: {
    does: 'poll the listening socket again (fd_want_recv)',
    haproxy: 'resume_listener',
  },
  scheduleQueueTask: {
    does: 'arm the global (or frontend) queue task that will dequeue limited listeners after params.ms, or, with params.rate, when that rate allows the next event (next_event_delay)',
    haproxy: 'listener_accept: task_schedule(global_listener_queue_task / p->task)',
  },

  // --- messages between the machines (routed by the host within the same step) ---
  sessionAccept: {
    does: 'the listener accepted a connection: start its connection and call session_accept',
    haproxy: 'listener_accept → l->accept()',
  },
  acceptReturned: {
    does: 'session_accept returned params.ret to listener_accept',
    haproxy: 'listener_accept',
  },
  connStartHandshake: {
    does: "set the connection's handshake flags (CO_FL_ACCEPT_PROXY, CO_FL_SSL_WAIT_HS) and CO_FL_INIT_SESS",
    haproxy: 'session_accept',
  },
  connNoHandshake: {
    does: 'the connection has no handshake: its data layer is ready at once',
    haproxy: 'session_accept → session_complete',
  },
  handshakeEnded: {
    does: "the last pending handshake flag cleared, or CO_FL_ERROR was set, on an embryonic connection; params.code: the connection's err_code (NONE without an error), which kill_mini_session's dontlognull test reads",
    haproxy: 'conn_fd_handler → conn_session_complete',
  },
  connTimeout: {
    does: 'the handshake deadline struck the connection: its pending handshake names the timeout code',
    haproxy: 'kill_mini_session (PRX_TIMEOUT / SSL_TIMEOUT, 0af2912fd)',
  },
  connClose: {
    does: "close the connection's transport and control layers",
    haproxy: 'conn_data_close / conn_full_close',
  },
  resumeListener: {
    does: 'if the listener is LI_FULL, resume it',
    haproxy: 'kill_mini_session / process_session: resume_listener',
  },
  dequeueGlobal: {
    does: 'resume the listeners on the global queue',
    haproxy: 'dequeue_all_listeners(&global_listener_queue)',
  },
  dequeueFrontend: {
    does: 'resume the listeners on the frontend queue if the session rate allows',
    haproxy: 'dequeue_all_listeners(&fe->listener_queue)',
  },
} as const satisfies Record<string, { does: string; haproxy: string; macro?: MacroOwner }>;

/** The name of one effect. */
export type EffectName = keyof typeof EFFECTS;

/**
 * The machines whose runner expands macro effects (machines/compose.ts, MachineRunner): each macro
 * names its own in EFFECTS, and only that machine's actions may use it.
 */
export type MacroOwner = 'session' | 'listener';

/** The effects that are macros: the machines' runners expand them, so no host ever executes one. */
export type MacroEffectName = {
  [K in EffectName]: (typeof EFFECTS)[K] extends { macro: MacroOwner } ? K : never;
}[EffectName];

/** The effects a host executes: every effect but the macros. */
export type PrimitiveEffectName = Exclude<EffectName, MacroEffectName>;

/** Returns true iff effect `name` is a macro (EFFECTS gives it an owner). Pure. */
export function isMacroEffect(name: EffectName): name is MacroEffectName {
  return 'macro' in EFFECTS[name];
}

/** Returns the machine whose runner expands macro `name`. Pure. */
export function macroOwner(name: MacroEffectName): MacroOwner {
  return EFFECTS[name].macro;
}

/** Params of the effects that take some; the others take none. */
export interface EffectParams {
  bufAlloc: { buf: BufKind };
  bufFree: { buf: BufKind };
  armDeadline: { ms: number | null };
  acceptReturned: { ret: -1 | 0 | 1 };
  /**
   * `rate`: the task waits for that rate to allow the next event (HAProxy's next_event_delay on
   * global.conn_per_sec or p->fe_sess_per_sec), which the host computes from its rate counters
   * under its profile; `ms` is then only the nominal wait, one period, for a reader of the trace
   * (the model has no clock). Without `rate`, it fires after `ms`.
   */
  scheduleQueueTask: { queue: 'global' | 'frontend'; ms: number; rate?: 'conn' | 'sess' };
  handshakeEnded: { error: boolean; code: ErrCode };
  fdClose: { site: string };
  completeFailure: { site: 'req' | 'rep' | 'txn' | 'accept' };
  unwindSession: { site: string };
  logEmbryonicKill: { byDeadline: boolean };
  sessionFree: { site: string };
  listDel: { site: string };
  feconnDec: { site: string };
}

/** The session's allocations after its handshake: the two channel buffers and, in http mode, the txn. */
export type BufKind = 'req' | 'rep' | 'txn';

/** One effect as a machine returns it. */
export interface Effect {
  type: EffectName;
  params?: Record<string, unknown>;
}

/**
 * The implementation every machine registers for an effect in `setup({ actions })`: it does
 * nothing, because effects are executed by the host from the list `transition()` returns, never
 * inside the machine. Registering the name keeps the machine's config plain data and lets XState
 * check that every name used in the config exists.
 */
export function hostEffect(): void {}

/**
 * Returns an `actions` object for `setup()` that registers each name of `names` as a host effect.
 * Pure.
 */
export function hostEffects<const N extends readonly EffectName[]>(
  names: N,
): Record<N[number], (_args: unknown, _params: Record<string, unknown> | undefined) => void> {
  const out = {} as Record<N[number], (_args: unknown, _params: Record<string, unknown> | undefined) => void>;
  for (const n of names) (out as Record<string, () => void>)[n] = hostEffect;
  return out;
}
