/**
 * The composed system: one frontend with one listener, the global counters, and N connections,
 * stepped by pure transitions. It is the model the checkers explore and the tests replay.
 *
 * The model holds no timer and does no I/O. Time is an event (TIMER_EXPIRE, QUEUE_TASK,
 * RATE_PERIOD), and an allocation's outcome is a parameter of the event whose step allocates.
 * Counters change only through the machines' counter effects (counters.ts). Memory is explicit:
 * each connection's fd, session, task, buffers and list membership is a small record whose
 * resources go none → live → freed, so that "used after free" and "freed twice" are facts the
 * model records (`faults`) rather than crashes it cannot see.
 */
import { handshakeTimeout, type ModelConfig } from './config.ts';
import {
  applyCounterEffect,
  copyCounters,
  listenerGauges,
  newRatePeriod,
  zeroCounters,
  type Counters,
} from './counters.ts';
import {
  Composition,
  NO_FAILURE,
  type Defect,
  type Host,
  type Origin,
  type TransitionRecord,
  type World,
} from './compose.ts';
import type { Effect, BufKind } from './effects.ts';
import type { ProxyFailCode, SslErrCode } from './errCodes.ts';
import {
  acceptCanFailAt,
  sourceClassReachable,
  type AcceptFailSite,
  type CompleteFailSite,
  type SourceClass,
} from './session.machine.ts';
import { proxyFailReachable, type TlsRead } from './connection.machine.ts';

/** The life of one resource in the model's memory. */
export type Life = 'none' | 'live' | 'freed';

/** The model's memory for one connection: what it holds, and what went wrong with it. */
export interface ConnMemory {
  fd: 'none' | 'open' | 'closed'; //        the accepted fd: created by accept(), closed once
  fdCloses: number; //                      how many times the fd was closed (must end at exactly 1)
  inFdtab: boolean; //                      registered by fd_insert
  linger: 'fin' | 'rst'; //                 how the close will look to the client (SO_LINGER 0 = rst)
  closedWith: 'fin' | 'rst' | null; //      how it was closed; null = not yet
  session: Life; //                         the session object (pool2_session)
  task: Life; //                            the session task
  taskProcess: 'none' | 'expire' | 'handler'; // expire_mini_session or l->handler
  deadline: number | null; //               armed handshake deadline in ms after accept; null = none (TICK_ETERNITY)
  bufs: Record<BufKind, Life>; //           req/rep channels and the http txn
  sslCtx: Life; //                          the SSL context of the data layer (SSL transport only)
  inList: boolean; //                       linked in the global sessions list
  embryonicEnds: number; //                 how many times the embryonic session ended (completion or kill)
  sent: string[]; //                        what the proxy wrote to the client itself ('200', '500')
  logged: number; //                        embryonic-kill log lines
  faults: string[]; //                      memory faults seen while executing effects (use after free, double free)
}

/** The whole model state. */
export interface SystemState {
  world: World; //                 the machines' snapshots (interned ids)
  counters: Counters; //           HAProxy's counters, changed only by counter effects
  memory: ConnMemory[]; //         one record per connection, index = connection id
  queueTasks: { global: boolean; frontend: boolean }; // queue tasks scheduled
}

/** The environment's events: what can happen to the system next. */
export type SystemEvent =
  | { type: 'ACCEPT'; src?: SourceClass; fail?: AcceptFailSite; acceptError?: boolean } // the listening fd is readable
  | { type: 'PROXY_HEADER_OK'; conn: number; fail?: CompleteFailSite | 'none' }
  | { type: 'PROXY_HEADER_ERROR'; conn: number; code: ProxyFailCode }
  | { type: 'TLS_OK'; conn: number; fail?: CompleteFailSite | 'none' }
  | { type: 'TLS_ERROR'; conn: number; code: SslErrCode }
  | { type: 'CLIENT_CLOSE'; conn: number; tlsRead?: TlsRead } // tlsRead: 'none' if not given
  | { type: 'CLIENT_RESET'; conn: number; tlsRead?: TlsRead }
  | { type: 'TIMER_EXPIRE'; conn: number } //  the session task's deadline struck
  | { type: 'TASK_WAKEUP'; conn: number } //   the session task was woken for another reason
  | { type: 'SESSION_END'; conn: number; writeTimeout?: boolean } // process_session ended the stream (false if not given)
  | { type: 'QUEUE_TASK'; queue: 'global' | 'frontend' } // a queue task fired
  | { type: 'RATE_PERIOD' }; //                one second elapsed: rate counters rotate

function freshMemory(): ConnMemory {
  return {
    fd: 'none',
    fdCloses: 0,
    inFdtab: false,
    linger: 'fin',
    closedWith: null,
    session: 'none',
    task: 'none',
    taskProcess: 'none',
    deadline: null,
    bufs: { req: 'none', rep: 'none', txn: 'none' },
    sslCtx: 'none',
    inList: false,
    embryonicEnds: 0,
    sent: [],
    logged: 0,
    faults: [],
  };
}

function cloneMemory(m: ConnMemory): ConnMemory {
  return { ...m, bufs: { ...m.bufs }, sent: [...m.sent], faults: [...m.faults] };
}

/** Returns 'live' for an allocation, recording a fault in `m` if `life` was not 'none'. */
function alloc(m: ConnMemory, life: Life, what: string): Life {
  if (life !== 'none') m.faults.push(`${what} allocated twice`);
  return 'live';
}

/** Returns 'freed' for a release, recording a fault in `m` unless `life` was 'live'. */
function free(m: ConnMemory, life: Life, what: string): Life {
  if (life !== 'live')
    m.faults.push(life === 'freed' ? `${what} freed twice` : `${what} freed but never allocated`);
  return 'freed';
}

/**
 * Told of each machine step and each effect of a SystemModel.step as the model's host sees them,
 * in emission order, with the connection ids of the state stepped. `counters` are the host's
 * counters after a counter effect changed them (the observer copies what it keeps), null after any
 * other effect. Must not throw.
 */
export interface StepObserver {
  record(record: TransitionRecord): void;
  execute(effect: Effect, origin: Origin, counters: Counters | null): void;
}

/**
 * The model's host: executes effects on the counters and the memory records of a SystemState.
 * Pure with respect to the outside world; mutates only the state it was given.
 */
class ModelHost implements Host {
  readonly records: TransitionRecord[] = [];

  constructor(
    private readonly s: SystemState,
    private readonly config: ModelConfig,
    private readonly observer?: StepObserver,
  ) {}

  gauges() {
    return listenerGauges(this.s.counters, this.config);
  }

  sslconns(): number {
    return this.s.counters.sslconns;
  }

  record(r: TransitionRecord): void {
    this.records.push(r);
    this.observer?.record(r);
    if (r.conn === null) return;
    const m = this.s.memory[r.conn]!;
    // accept() creates the fd: the connection leaves the backlog with it open.
    if (r.machine === 'connection' && r.from === 'pending') m.fd = 'open';
    // Ground truth for "each embryonic session ends exactly once": any step out of embryonic.
    if (r.machine === 'session' && r.from === 'embryonic' && r.to !== 'embryonic') m.embryonicEnds++;
  }

  execute(effect: Effect, origin: Origin): void {
    const counted = applyCounterEffect(this.s.counters, effect.type, this.config);
    this.observer?.execute(effect, origin, counted ? this.s.counters : null);
    if (counted) return;
    if (effect.type === 'scheduleQueueTask') {
      this.s.queueTasks[(effect.params as { queue: 'global' | 'frontend' }).queue] = true;
      return;
    }
    if (origin.conn === null) return;
    const m = this.s.memory[origin.conn]!;
    switch (effect.type) {
      case 'sessionAccept':
        break;
      case 'sessionAlloc':
        m.session = alloc(m, m.session, 'session');
        break;
      case 'sessionFree':
        m.session = free(m, m.session, 'session');
        break;
      case 'taskNew':
        m.task = alloc(m, m.task, 'task');
        break;
      case 'taskFree':
        m.task = free(m, m.task, 'task');
        m.taskProcess = 'none';
        break;
      case 'armDeadline':
        if (m.task !== 'live') m.faults.push('deadline armed on a task that is not live');
        m.taskProcess = 'expire';
        m.deadline = (effect.params as { ms: number | null }).ms;
        break;
      case 'taskSetHandler':
        if (m.task !== 'live') m.faults.push('task handler set on a task that is not live');
        m.taskProcess = 'handler';
        m.deadline = null;
        break;
      case 'taskWakeupInit':
        if (m.task !== 'live') m.faults.push('task woken after free');
        break;
      case 'listAdd':
        if (m.session !== 'live') m.faults.push('a session that is not live was linked');
        if (m.inList) m.faults.push('session linked twice');
        m.inList = true;
        break;
      case 'listDel':
        if (!m.inList) m.faults.push('session unlinked but not linked');
        m.inList = false;
        break;
      case 'bufAlloc': {
        const buf = (effect.params as { buf: BufKind }).buf;
        m.bufs[buf] = alloc(m, m.bufs[buf], buf);
        break;
      }
      case 'bufFree': {
        const buf = (effect.params as { buf: BufKind }).buf;
        m.bufs[buf] = free(m, m.bufs[buf], buf);
        break;
      }
      case 'sslCtxNew':
        if (m.fd !== 'open') m.faults.push('SSL context created on an fd that is not open');
        m.sslCtx = alloc(m, m.sslCtx, 'SSL context');
        break;
      case 'sslCtxFree':
        m.sslCtx = free(m, m.sslCtx, 'SSL context');
        break;
      case 'fdInsert':
        if (m.fd !== 'open') m.faults.push('fd_insert on an fd that is not open');
        m.inFdtab = true;
        break;
      case 'fdClose':
        if (m.fd === 'closed') m.faults.push('fd closed twice');
        m.fdCloses++;
        m.fd = 'closed';
        m.inFdtab = false;
        m.closedWith ??= m.linger;
        break;
      case 'setNoLinger':
        if (m.fd !== 'open') m.faults.push('SO_LINGER set on a closed fd');
        m.linger = 'rst';
        break;
      case 'shutwSilent':
        if (m.fd !== 'open') m.faults.push('shutdown on a closed fd');
        break;
      case 'drainInput':
        if (m.fd !== 'open') m.faults.push('read on a closed fd');
        break;
      case 'send200':
      case 'send500':
        if (m.fd !== 'open') m.faults.push('write on a closed fd');
        m.sent.push(effect.type === 'send200' ? '200' : '500');
        break;
      case 'send500FromSession': // mutants only: the 500 of session_accept before 05bf5e1c3
        if (m.session !== 'live')
          m.faults.push(`500 built from a session that is ${m.session === 'none' ? 'NULL' : 'freed'}`);
        if (m.fd !== 'open') m.faults.push('write on a closed fd');
        m.sent.push('500');
        break;
      case 'logEmbryonicKill':
        if (m.session !== 'live') m.faults.push('kill logged from a session that is not live');
        m.logged++;
        break;
      case 'notifySi':
        if (m.fd !== 'open') m.faults.push('stream interface notified on a closed connection');
        break;
      default:
        break;
    }
  }
}

/**
 * The composed model for one configuration and N connections.
 * Requires n ≥ 1. Steps are pure: `step` returns a new state and never changes the one it was given.
 */
export class SystemModel {
  readonly composition: Composition;

  constructor(
    readonly config: ModelConfig,
    readonly n: number,
    readonly defect: Defect | null = null,
    /** false: XState computes every machine step, none is memoised (an anchor for benchmarks). */
    memoise = true,
  ) {
    this.composition = new Composition(config, defect, memoise);
  }

  /** Returns the initial state: the listener ready, every connection pending in the backlog, counters at zero. */
  initial(): SystemState {
    const world = this.composition.initialWorld();
    for (let i = 0; i < this.n; i++) this.composition.addConnection(world, i);
    return {
      world,
      counters: zeroCounters(),
      memory: Array.from({ length: this.n }, freshMemory),
      queueTasks: { global: false, frontend: false },
    };
  }

  /** Returns a deep copy of `s` that shares nothing mutable with it. Pure. */
  clone(s: SystemState): SystemState {
    const conns = new Map<number, { connection: number; session: number }>();
    for (const [k, v] of s.world.conns) conns.set(k, { ...v });
    return {
      world: { listener: s.world.listener, conns },
      counters: copyCounters(s.counters),
      memory: s.memory.map(cloneMemory),
      queueTasks: { ...s.queueTasks },
    };
  }

  /** Returns the dotted state of a machine in `s`: the listener's, or connection `conn`'s. */
  state(s: SystemState, machine: 'listener' | 'connection' | 'session', conn: number | null = null): string {
    return this.composition.stateOf(s.world, machine, conn);
  }

  /** Returns connection `conn`'s err_code in `s`, or null. */
  errCode(s: SystemState, conn: number): string | null {
    return (this.composition.contextOf(s.world, 'connection', conn).errCode as string | null) ?? null;
  }

  /** Returns the oldest connection still in the backlog, or null if none. */
  nextPending(s: SystemState): number | null {
    for (let i = 0; i < this.n; i++) if (this.state(s, 'connection', i) === 'pending') return i;
    return null;
  }

  /**
   * Applies `event` to a copy of `s` and returns the new state with the machine steps taken.
   * Returns null when the event cannot happen in `s` (see `enabled`). `observer`, if given, is told
   * of every step and effect in emission order. Pure apart from what the observer does.
   */
  step(
    s: SystemState,
    event: SystemEvent,
    observer?: StepObserver,
  ): { state: SystemState; records: TransitionRecord[] } | null {
    if (!this.isEnabled(s, event)) return null;
    const next = this.clone(s);
    const host = new ModelHost(next, this.config, observer);
    const c = this.composition;
    switch (event.type) {
      case 'ACCEPT': {
        const conn = this.nextPending(next)!;
        c.acceptAttempt(
          next.world,
          host,
          conn,
          { src: event.src ?? 'plain', acceptFail: event.fail ?? 'none', completeFail: 'none' },
          event.acceptError ?? false,
        );
        break;
      }
      case 'PROXY_HEADER_OK':
      case 'TLS_OK':
        c.dispatch(
          next.world,
          host,
          'connection',
          event.conn,
          { type: event.type },
          { src: 'plain', acceptFail: 'none', completeFail: event.fail ?? 'none' },
        );
        break;
      case 'PROXY_HEADER_ERROR':
      case 'TLS_ERROR':
        c.dispatch(
          next.world,
          host,
          'connection',
          event.conn,
          { type: event.type, code: event.code },
          NO_FAILURE,
        );
        break;
      case 'CLIENT_CLOSE':
      case 'CLIENT_RESET':
        c.dispatch(
          next.world,
          host,
          'connection',
          event.conn,
          { type: event.type, tlsRead: event.tlsRead ?? 'none' },
          NO_FAILURE,
        );
        break;
      case 'TIMER_EXPIRE':
      case 'TASK_WAKEUP':
        c.dispatch(
          next.world,
          host,
          'session',
          event.conn,
          { type: 'TASK_WAKEUP', timer: event.type === 'TIMER_EXPIRE' },
          NO_FAILURE,
        );
        break;
      case 'SESSION_END':
        c.dispatch(
          next.world,
          host,
          'session',
          event.conn,
          { type: 'SESSION_END', writeTimeout: event.writeTimeout ?? false },
          NO_FAILURE,
        );
        break;
      case 'QUEUE_TASK':
        next.queueTasks[event.queue] = false;
        c.dispatch(
          next.world,
          host,
          'listener',
          null,
          { type: event.queue === 'global' ? 'DEQUEUE_GLOBAL' : 'DEQUEUE_FRONTEND', ...host.gauges() },
          NO_FAILURE,
        );
        break;
      case 'RATE_PERIOD':
        newRatePeriod(next.counters);
        break;
    }
    return { state: next, records: host.records };
  }

  /**
   * True iff `event` can happen in `s`: the environment can only act on what exists. A pending
   * connection can be accepted only while the listener polls its socket, and only with a setup
   * failure and a source class the modelled HAProxy can meet (acceptCanFailAt,
   * sourceClassReachable); handshake input only
   * reaches a connection waiting for it; a timer fires only if armed; a stream ends only if it exists.
   */
  isEnabled(s: SystemState, event: SystemEvent): boolean {
    switch (event.type) {
      case 'ACCEPT':
        return (
          this.state(s, 'listener') === 'ready' &&
          this.nextPending(s) !== null &&
          acceptCanFailAt(this.config, event.fail ?? 'none') &&
          sourceClassReachable(this.config, event.src ?? 'plain')
        );
      case 'PROXY_HEADER_OK':
      case 'PROXY_HEADER_ERROR':
        return (
          this.inRange(event.conn) &&
          this.state(s, 'connection', event.conn) === 'handshake.proxyHeader' &&
          (event.type === 'PROXY_HEADER_OK' || proxyFailReachable(this.config, event.code))
        );
      case 'TLS_OK':
      case 'TLS_ERROR':
        return this.inRange(event.conn) && this.state(s, 'connection', event.conn) === 'handshake.tls';
      case 'CLIENT_CLOSE':
      case 'CLIENT_RESET': {
        // A client can have sent TLS bytes only once its TLS handshake has started.
        if (!this.inRange(event.conn)) return false;
        const state = this.state(s, 'connection', event.conn);
        return (event.tlsRead ?? 'none') === 'none'
          ? state.startsWith('handshake.')
          : state === 'handshake.tls';
      }
      case 'TIMER_EXPIRE': {
        const m = this.inRange(event.conn) ? s.memory[event.conn]! : null;
        return m !== null && m.task === 'live' && m.taskProcess === 'expire' && m.deadline !== null;
      }
      case 'TASK_WAKEUP': {
        const m = this.inRange(event.conn) ? s.memory[event.conn]! : null;
        return m !== null && m.task === 'live' && m.taskProcess === 'expire';
      }
      case 'SESSION_END':
        return this.inRange(event.conn) && this.state(s, 'session', event.conn) === 'initialized';
      case 'QUEUE_TASK':
        return s.queueTasks[event.queue];
      case 'RATE_PERIOD':
        return (
          (this.config.maxconnrate !== null || this.config.rateLimitSessions !== null) &&
          (s.counters.connPerSec > 0 || s.counters.feSessPerSec > 0)
        );
    }
  }

  private inRange(conn: number): boolean {
    return Number.isInteger(conn) && conn >= 0 && conn < this.n;
  }
}

export { handshakeTimeout };
