/**
 * The driver: the one module of impl/ that calls the machines. One Frontend per frontend (the
 * configuration has one, with one bind) holds the machines' World, the proxy's counters, one
 * record per connection (socket, fd, scratch area, timer, pool items, stream) and the accept loop,
 * and it is the machines' Host: it executes every effect they return (execute(), one exhaustive
 * switch over EffectName) and turns socket I/O, timers and allocation outcomes into their events.
 * It never decides a transition itself.
 *
 * The listen backlog. HAProxy stops polling its listening socket when the listener is full or
 * limited (fd_stop_recv), and new connections wait in the kernel's listen backlog: accepted by the
 * kernel (the client sees "connected"), not read, with no timer. Node cannot stop accept(), so the
 * server is created with pauseOnConnect and every new socket is parked, unread and without any
 * timer, in a FIFO array (`backlog`): that array is the kernel backlog. serverOnConnection parks
 * the socket and calls drainBacklog, which takes connections from the head of the array while the
 * host's `accepting` flag is set; the flag is cleared and set by the machines' effects
 * listenerStopAccepting / listenerResumeAccepting, never computed from the machines' states. A
 * parked connection's deadline starts only when listener_accept takes it (haproxy-2.6-observed.md,
 * maxconn row: the queued connections close at about twice the deadline). A parked socket whose
 * client closes stays parked until taken; its handshake read then sees the EOF (CLIENT_CLOSE), as
 * with the kernel backlog. Two differences remain, documented: a parked socket holds an fd (the
 * kernel backlog holds none), and the park is bounded by `ulimit -n` rather than by somaxconn.
 *
 * Allocation outcomes are planned before a step (impl/pool.ts, two phases): drainBacklog plans
 * session_accept's allocations, connectionEvent plans session_complete's before an event that can
 * end the handshake, and the plan is committed when the step reaches it.
 *
 * Ownership: a Conn record owns its client socket from serverOnConnection until fdClose closes it
 * (exactly once, through the fd table), and its pool items from their allocation to their free
 * effect. The record is dropped once both of its machines are final (reap).
 */
import { readSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { classifySource } from '../machines/acl.ts';
import {
  Composition,
  type Defect,
  type Host,
  type Origin,
  type StepInputs,
  type TransitionRecord,
  type World,
} from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import type { ConnectionEvent } from '../machines/connection.machine.ts';
import { nextEventDelay, RatePeriods } from './rates.ts';
import {
  applyCounterEffect,
  listenerGauges,
  newRatePeriod,
  zeroCounters,
  type Counters,
} from '../machines/counters.ts';
import { isMacroEffect, type BufKind, type Effect, type EffectName } from '../machines/effects.ts';
import { errCodeMessage, type ErrCode } from '../machines/errCodes.ts';
import type { SessionEvent, SourceClass } from '../machines/session.machine.ts';
import type { ListenerGauges } from '../machines/listener.machine.ts';
import type { ProxyEndpoint, ProxyHeader } from './proxy/parse.ts';
import { frontendBackend, modelConfigOf, type ProxyConfig } from './config.ts';
import { adoptClientSocket } from './clientSocket.ts';
import type { FdReport, FdTab } from './fdtab.ts';
import { readProxyHeader, startTlsHandshake, trash } from './handshake.ts';
import { formatEmbryonicKill, type Logger } from './log.ts';
import { Pool, type AllocPlan, type PoolItem, type PoolLedger } from './pool.ts';
import { zeroTraffic, type BackendRuntime, type StatsSource } from './stats.ts';
import { streamAbort, streamStart, type Stream } from './stream.ts';
import type { Trace } from './trace.ts';
import { realClock, type Clock, type Timer } from './clock.ts';
import {
  allocatesBuffersAtAccept,
  keepsActconn,
  plantBuffersAtAccept,
  skipsFdClose,
  unplantBuffers,
} from './faults.ts';

/** What the I/O handlers of a connection are doing. */
export type ConnPhase =
  | 'backlog' //      parked, unread, no timer (the kernel backlog)
  | 'accepted' //     taken by listener_accept; session_accept runs
  | 'proxyHeader' //  reading the PROXY header (impl/handshake.ts)
  | 'tls' //          the TLS handshake runs (impl/handshake.ts)
  | 'completing' //   the handshake ended; the session completes or is killed in this step
  | 'stream' //       the data phase (impl/stream.ts)
  | 'closed'; //      fdClose ran

/** One accepted socket and everything the proxy holds for it. */
export interface Conn {
  readonly id: number;
  readonly fe: Frontend;
  readonly socket: net.Socket; //   the accepted TCP socket
  readonly fd: number; //           its OS fd (socket._handle.fd)
  readonly address: string; //      the client's real address and port
  readonly port: number;
  src: SourceClass; //              what the source matched at accept (acl.ts)
  phase: ConnPhase;
  acceptDate: number; //            epoch ms when listener_accept took it (HAProxy's accept_date)
  acceptTime: number; //            performance.now() then
  completeTime: number | null; //   performance.now() when the session completed
  tls: tls.TLSSocket | null; //     the TLS layer over `socket`, once started
  scratch: Buffer | null; //        the bytes so far: of a tolerant PROXY header (≤ tune.bufsize + one read), then of the first TLS record
  proxied: ProxyHeader | null; //   the PROXY header read, if any
  rejectedSource: ProxyEndpoint | null; // the source of a PROXY header found invalid after its addresses were taken
  timer: Timer | null; //           the handshake deadline (armDeadline), on the frontend's clock
  noLinger: boolean; //             setNoLinger: the close is an RST
  silentClose: boolean; //          shutwSilent (2.x, a data-phase write timeout): FIN now, drop the queue
  closed: boolean; //               fdClose ran
  session: PoolItem | null;
  task: PoolItem | null;
  ssl: PoolItem | null; //          the SSL context of a TLS connection, from accept (sslCtxNew) to the close
  req: PoolItem | null; //          the session's channel buffers and transaction (BufKind), from
  rep: PoolItem | null; //          session_complete on; fields of the record rather than an object
  txn: PoolItem | null; //          of their own, which every embryonic connection would carry
  stream: Stream | null;
}

/** The HTTP messages the proxy writes itself. */
export const HTTP_200 = 'HTTP/1.0 200 OK\r\n\r\n';
/** The 500 of the 1.5-dev era (dev12 profile), then HAProxy 2.x's http_err_msgs[HTTP_ERR_500]. */
export const HTTP_500_DEV12 =
  'HTTP/1.0 500 Server Error\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>500 Server Error</h1>\nAn internal server error occured.\n</body></html>\n';
export const HTTP_500 =
  'HTTP/1.1 500 Internal Server Error\r\nContent-length: 97\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\n\r\n<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n';

/** How long a FIN close waits for written bytes to reach the kernel before destroying anyway. */
export const FLUSH_TIMEOUT_MS = 1000;

/** The services a Frontend uses, owned by the caller (impl/proxy.ts). */
export interface FrontendDeps {
  pool: Pool;
  fdtab: FdTab;
  logger: Logger;
  trace: Trace | null;
  clock?: Clock; // deadlines, queue tasks and the rate period (impl/clock.ts); default: the real clock
  defect?: Defect | null; // tests only: a mutant switched into the machines (impl/monitor.ts); default none
}

const servers = new WeakMap<net.Server, Frontend>();
const flushers = new WeakMap<net.Socket, Frontend>();

/**
 * One frontend with its listener, driven by the machines. Implements Host for the Composition and
 * StatsSource for the stats socket. Requires a configuration with one bind (impl/config.ts).
 * Owns its listening socket, its parked and accepted sockets and its timers until stop().
 */
export class Frontend implements Host, StatsSource {
  readonly model: ModelConfig;
  readonly composition: Composition;
  readonly world: World;
  readonly counters: Counters = zeroCounters();
  readonly maxima = { listenerConnMax: 0, connRateMax: 0, sessRateMax: 0, feConnRateMax: 0 };
  readonly traffic = { bin: 0, bout: 0 };
  readonly backends: BackendRuntime[];
  readonly backend: BackendRuntime; //            the one the frontend's sessions go to
  readonly conns = new Map<number, Conn>(); //   every connection not yet reaped, parked ones included
  readonly backlog: Conn[] = []; //              the listen backlog, oldest first
  readonly sessions = new Set<number>(); //      HAProxy's sessions list (listAdd / listDel)
  readonly violations: string[] = [];
  readonly secureContext: tls.SecureContext | null;
  readonly startedAt = Date.now();
  readonly pool: Pool;
  readonly fdtab: FdTab;
  readonly logger: Logger;
  readonly trace: Trace | null;
  accepting = true; //                           cleared/set by listenerStop/ResumeAccepting only
  stopping = false;
  private readonly server: net.Server;
  private nextId = 1;
  private depth = 0; //                          > 0 while a step runs (no nested step)
  private acceptingConn: Conn | null = null; //  the connection listener_accept is taking
  private taken = false; //                      sessionAccept ran for acceptingConn
  private plan: AllocPlan | null = null; //      the allocation plan of the step in progress
  private drainPending: NodeJS.Immediate | null = null;
  private readonly queueTimers: Record<'global' | 'frontend', { timer: Timer; due: number } | null> = {
    global: null,
    frontend: null,
  };
  private rateTimer: Timer | null = null; //   armed for the end of the current rate period
  private readonly rates: RatePeriods;
  readonly clock: Clock;
  private readonly flushing = new Set<net.Socket>();

  constructor(
    readonly cfg: ProxyConfig,
    deps: FrontendDeps,
  ) {
    this.model = modelConfigOf(cfg);
    this.composition = new Composition(this.model, deps.defect ?? null);
    this.world = this.composition.initialWorld();
    this.pool = deps.pool;
    this.fdtab = deps.fdtab;
    this.logger = deps.logger;
    this.trace = deps.trace;
    const trace = deps.trace;
    if (trace)
      this.record = function traceOnStep(record: TransitionRecord): void {
        trace.step(record);
      };
    const ssl = cfg.frontend.bind.ssl;
    this.secureContext = ssl ? tls.createSecureContext({ cert: ssl.pem, key: ssl.pem }) : null;
    this.backends = cfg.backends.map((b) => ({
      cfg: b,
      counters: zeroTraffic(),
      servers: b.servers.map((s) => ({ name: s.name, host: s.host, port: s.port, counters: zeroTraffic() })),
      next: 0,
    }));
    this.backend = this.backends.find((b) => b.cfg.name === frontendBackend(cfg).name)!;
    this.server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    servers.set(this.server, this);
    this.server.on('connection', serverOnConnection);
    this.clock = deps.clock ?? realClock;
    this.rates = new RatePeriods(this.model.profile, this.clock.now());
    if (this.model.profile === 'dev12') this.rateTimer = this.clock.after(1000, rateOnPeriod, this);
  }

  /** Binds the listening socket. Resolves with the port bound; rejects if the bind fails. */
  listen(): Promise<number> {
    const { host, port } = this.cfg.frontend.bind;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 511 }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** The address the listener is bound to, "ip:port". */
  listenAddress(): string {
    const a = this.server.address() as net.AddressInfo | null;
    return a ? `${a.address}:${a.port}` : `${this.cfg.frontend.bind.host}:${this.cfg.frontend.bind.port}`;
  }

  /** The listener's state for `show stat` (HAProxy's l->state). */
  listenerState(): 'ready' | 'full' | 'limited' {
    const s = this.composition.stateOf(this.world, 'listener');
    return s === 'full' ? 'full' : s.startsWith('limited') ? 'limited' : 'ready';
  }

  /** The pool ledger, for `show pool` (a copy). */
  poolLedger(): PoolLedger {
    return this.pool.ledger();
  }

  /** The fd table and its ledger, for `show fd` (a copy). */
  fdReport(): FdReport {
    return this.fdtab.report();
  }

  /**
   * What this host found wrong in the effects it executed (allocated twice, freed but not
   * allocated, a stream without its buffers, ...), for `show violations`: a copy, oldest first.
   * Empty in a sound run.
   */
  hostViolations(): string[] {
    return [...this.violations];
  }

  /**
   * Stops the frontend as a hard stop: stops listening, and closes every parked and accepted
   * client socket and every backend socket at once, outside the machines (each close is recorded
   * in the fd ledger at site 'stop'); clears every timer. Resolves with the number of client fds
   * closed, once the listening socket is closed.
   */
  stop(): Promise<number> {
    this.stopping = true;
    this.accepting = false;
    this.rateTimer?.cancel();
    this.rateTimer = null;
    if (this.drainPending) clearImmediate(this.drainPending);
    for (const q of ['global', 'frontend'] as const) {
      this.queueTimers[q]?.timer.cancel();
      this.queueTimers[q] = null;
    }
    let closed = 0;
    for (const conn of this.conns.values()) {
      conn.timer?.cancel();
      conn.timer = null;
      if (conn.stream) streamAbort(conn, null);
      if (!conn.closed) {
        conn.closed = true;
        conn.phase = 'closed';
        if (this.fdtab.close(conn.fd, conn.id, 'fin', 'stop')) closed++;
        conn.tls?.destroy();
        conn.socket.destroy();
      }
    }
    for (const s of this.flushing) s.destroy();
    this.flushing.clear();
    this.backlog.length = 0;
    return new Promise((resolve) => this.server.close(() => resolve(closed)));
  }

  // --- Host ---

  /** The gauges the listener's guards compare (Host). */
  gauges(): ListenerGauges {
    return listenerGauges(this.counters, this.model);
  }

  /** global.sslconns, which session_accept compares with maxsslconn (Host). */
  sslconns(): number {
    return this.counters.sslconns;
  }

  /**
   * Told of each machine step (Host): writes it to the trace. Absent without a trace, so that the
   * composition does not build the step's record for nobody.
   */
  readonly record: ((record: TransitionRecord) => void) | undefined = undefined;

  /**
   * Executes one effect of a machine (Host). One case per primitive effect (PrimitiveEffectName);
   * the compiler checks that none is missing. A macro cannot reach a host (the machines' runner
   * expands it): one that does is a violation. Effects that are messages between machines are
   * routed by the Composition and do nothing here.
   */
  execute(effect: Effect, origin: Origin): void {
    this.trace?.effect(effect, origin);
    const name: EffectName = effect.type;
    if (isMacroEffect(name)) {
      // The machines' runner expands macros into primitives (bufAlloc, sessionAlloc, ...).
      this.violations.push(`macro effect ${name} reached the host unexpanded`);
      return;
    }
    const p = (effect.params ?? {}) as Record<string, unknown>;
    switch (name) {
      // --- counters (machines/counters.ts), and the maxima HAProxy keeps next to them ---
      case 'actconnDec':
        // planted fault keep-actconn-on-kill (impl/faults.ts): kill_mini_session is the session's
        // release without a stream.
        if (keepsActconn(origin.machine === 'session' && !this.need(origin).stream)) return;
        applyCounterEffect(this.counters, name, this.model);
        return;
      case 'actconnInc':
      case 'jobsInc':
      case 'jobsDec':
      case 'totalconnInc':
      case 'nbconnDec':
      case 'feconnInc':
      case 'feconnDec':
      case 'connMaxUpdate':
      case 'deniedConnInc':
      case 'sslconnsInc':
      case 'sslconnsDec':
      case 'cumSessDec': // a mutant's effect (machines/mutants.ts); counters.ts applies it as it says
        applyCounterEffect(this.counters, name, this.model);
        return;
      case 'connPerSecInc':
        applyCounterEffect(this.counters, name, this.model);
        this.maxima.connRateMax = Math.max(this.maxima.connRateMax, this.counters.connPerSec);
        this.rateCounted();
        return;
      case 'nbconnInc':
        applyCounterEffect(this.counters, name, this.model);
        this.maxima.listenerConnMax = Math.max(this.maxima.listenerConnMax, this.counters.nbconn);
        return;
      case 'cumConnInc':
        applyCounterEffect(this.counters, name, this.model);
        this.maxima.feConnRateMax = Math.max(this.maxima.feConnRateMax, this.counters.feConnPerSec);
        this.rateCounted();
        return;
      case 'cumSessInc':
        applyCounterEffect(this.counters, name, this.model);
        this.maxima.sessRateMax = Math.max(this.maxima.sessRateMax, this.counters.feSessPerSec);
        this.rateCounted();
        return;

      // --- memory ---
      case 'sessionAlloc': {
        const conn = this.need(origin);
        if (conn.session) this.violations.push(`connection ${conn.id}: session allocated twice`);
        conn.session = this.pool.alloc('session');
        return;
      }
      case 'sessionFree': {
        const conn = this.need(origin);
        if (conn.session) this.pool.free(conn.session);
        else
          this.violations.push(`connection ${conn.id}: session freed but not allocated (${String(p.site)})`);
        conn.session = null;
        unplantBuffers(conn, (item) => this.pool.free(item)); // planted fault only (impl/faults.ts)
        return;
      }
      case 'taskNew': {
        const conn = this.need(origin);
        if (conn.task) this.violations.push(`connection ${conn.id}: task allocated twice`);
        conn.task = this.pool.alloc('task');
        return;
      }
      case 'taskFree': {
        const conn = this.need(origin);
        this.cancelDeadline(conn);
        if (conn.task) this.pool.free(conn.task);
        else this.violations.push(`connection ${conn.id}: task freed but not allocated`);
        conn.task = null;
        return;
      }
      case 'sslCtxNew': {
        const conn = this.need(origin);
        if (conn.ssl) this.violations.push(`connection ${conn.id}: SSL context allocated twice`);
        conn.ssl = this.pool.alloc('ssl');
        return;
      }
      case 'sslCtxFree': {
        const conn = this.need(origin);
        if (conn.ssl) this.pool.free(conn.ssl);
        else this.violations.push(`connection ${conn.id}: SSL context freed but not allocated`);
        conn.ssl = null;
        return;
      }
      case 'armDeadline': {
        const conn = this.need(origin);
        const ms = p.ms as number | null;
        this.cancelDeadline(conn);
        if (ms !== null) conn.timer = this.clock.after(ms, timerOnExpire, this, conn.id);
        plantBuffersAtAccept(conn, (b) => this.pool.alloc(b)); // planted fault only (impl/faults.ts)
        return;
      }
      case 'taskSetHandler':
        this.cancelDeadline(this.need(origin));
        return;
      case 'taskWakeupInit':
        streamStart(this.need(origin));
        return;
      case 'listAdd': {
        const conn = this.need(origin);
        if (this.sessions.has(conn.id)) this.violations.push(`connection ${conn.id}: session linked twice`);
        this.sessions.add(conn.id);
        return;
      }
      case 'listDel': {
        const conn = this.need(origin);
        if (!this.sessions.delete(conn.id))
          this.violations.push(`connection ${conn.id}: session unlinked but not linked (${String(p.site)})`);
        return;
      }
      case 'bufAlloc': {
        const conn = this.need(origin);
        const buf = p.buf as BufKind;
        if (conn[buf] && allocatesBuffersAtAccept()) return; // planted fault: allocated at accept
        if (conn[buf]) this.violations.push(`connection ${conn.id}: ${buf} allocated twice`);
        conn[buf] = this.pool.alloc(buf);
        return;
      }
      case 'bufFree': {
        const conn = this.need(origin);
        const buf = p.buf as BufKind;
        const item = conn[buf];
        // The backend socket reads into the rep buffer (impl/stream.ts): it must be gone first.
        if (buf === 'rep' && conn.stream?.backend && !conn.stream.backend.destroyed)
          this.violations.push(
            `connection ${conn.id}: rep freed while the backend socket can still read into it`,
          );
        if (item) this.pool.free(item);
        else this.violations.push(`connection ${conn.id}: ${buf} freed but not allocated`);
        conn[buf] = null;
        return;
      }
      // --- the accepted socket ---
      case 'fdInsert': {
        const conn = this.need(origin);
        this.fdtab.insert(conn.fd, conn.id);
        return;
      }
      case 'fdClose':
        this.closeClient(this.need(origin), String(p.site));
        return;
      case 'setNoLinger':
        this.need(origin).noLinger = true;
        return;
      case 'shutwSilent':
        this.need(origin).silentClose = true;
        return;
      case 'drainInput':
        drainInput(this.need(origin));
        return;
      case 'send200':
        this.need(origin).socket.write(HTTP_200);
        return;
      case 'send500':
        this.need(origin).socket.write(this.model.profile === 'dev12' ? HTTP_500_DEV12 : HTTP_500);
        return;
      case 'send500FromSession':
        // A mutant's effect (machines/mutants.ts): the pre-05bf5e1c3 500 that reads a freed session.
        // The proxy runs no mutant; a real one would write garbage, so nothing is written.
        this.violations.push(
          `connection ${String(origin.conn)}: send500FromSession (a mutant) reached the proxy`,
        );
        return;
      case 'logEmbryonicKill':
        this.logKill(this.need(origin)); // only when kill_mini_session logs: the machine decided
        return;
      case 'notifySi':
        // CO_FL_NOTIFY_SI: from now on the stream (impl/stream.ts) owns the connection's I/O.
        return;
      case 'recvProxyHeader':
        readProxyHeader(this.need(origin));
        return;
      case 'startTlsHandshake':
        startTlsHandshake(this.need(origin));
        return;

      // --- the listener's socket and queues ---
      case 'listenerStopAccepting':
        this.accepting = false;
        return;
      case 'listenerResumeAccepting':
        this.accepting = true;
        this.scheduleDrain();
        return;
      case 'scheduleQueueTask':
        this.scheduleQueueTask(
          p.queue as 'global' | 'frontend',
          p.ms as number,
          p.rate as 'conn' | 'sess' | undefined,
        );
        return;

      // --- messages between the machines: routed by the Composition ---
      case 'sessionAccept': {
        // listener_accept → accept(): the connection at the head of the backlog is taken.
        const conn = this.acceptingConn;
        if (!conn || this.backlog[0] !== conn) {
          this.violations.push('sessionAccept without a connection at the head of the backlog');
          return;
        }
        this.backlog.shift();
        this.taken = true;
        conn.phase = 'accepted';
        conn.acceptDate = Date.now();
        conn.acceptTime = performance.now();
        this.fdtab.take(conn.fd, conn.id);
        if (this.plan) this.pool.commit(this.plan);
        this.plan = null;
        return;
      }
      case 'handshakeEnded':
        // conn_session_complete: a planned session_complete failure is reached now.
        if (p.error === false && this.plan) this.pool.commit(this.plan);
        this.plan = null;
        return;
      case 'acceptReturned':
      case 'connStartHandshake':
      case 'connNoHandshake':
      case 'connTimeout':
      case 'connClose':
      case 'resumeListener':
      case 'dequeueGlobal':
      case 'dequeueFrontend':
        return;
      default: {
        const unknown: never = name;
        this.violations.push(`unknown effect ${String(unknown)}`);
      }
    }
  }

  // --- events from the I/O modules (impl/handshake.ts, impl/stream.ts) ---

  /**
   * Delivers a handshake outcome to connection `conn`'s machine. For an event that can end the
   * handshake (PROXY_HEADER_OK, TLS_OK), session_complete's allocations are planned first.
   * Requires that no step is running (I/O callbacks only).
   */
  connectionEvent(conn: Conn, event: ConnectionEvent): void {
    const completing = event.type === 'PROXY_HEADER_OK' || event.type === 'TLS_OK';
    const plan = completing ? this.pool.planComplete(this.model) : { site: 'none' as const };
    conn.phase = 'completing';
    this.step(
      conn,
      'connection',
      event,
      { src: conn.src, acceptFail: 'none', completeFail: Pool.completeFail(plan) },
      plan,
    );
  }

  /** Delivers `event` to connection `conn`'s session machine (deadline, end of stream). */
  sessionEvent(conn: Conn, event: SessionEvent): void {
    this.step(conn, 'session', event, { src: conn.src, acceptFail: 'none', completeFail: 'none' }, null);
  }

  /** Delivers `event` to the listener machine (queue tasks). */
  listenerEvent(event: { type: 'DEQUEUE_GLOBAL' | 'DEQUEUE_FRONTEND' }): void {
    this.step(
      null,
      'listener',
      { ...event, ...this.gauges() },
      { src: 'plain', acceptFail: 'none', completeFail: 'none' },
      null,
    );
  }

  /**
   * listener_accept, as long as the listener polls and the backlog holds connections: plans the
   * head connection's allocations, classifies its source, and asks the listener to accept it.
   * Stops when the listener stops accepting or did not take the connection.
   */
  acceptLoop(): void {
    if (this.depth > 0) return this.scheduleDrain();
    while (this.accepting && !this.stopping && this.backlog.length > 0) {
      const conn = this.backlog[0]!;
      conn.src = classifySource(conn.address, {
        reject: this.cfg.frontend.rejects,
        monitor: this.cfg.frontend.monitors,
      });
      const plan = this.pool.planAccept(conn.src, this.model, this.counters.sslconns);
      this.acceptingConn = conn;
      this.taken = false;
      this.plan = plan;
      const inputs: StepInputs = { src: conn.src, acceptFail: Pool.acceptFail(plan), completeFail: 'none' };
      this.trace?.input('listener', conn.id, { type: 'ACCEPT_ATTEMPT', acceptError: false }, inputs);
      this.depth++;
      try {
        this.composition.acceptAttempt(this.world, this, conn.id, inputs);
      } finally {
        this.depth--;
        this.acceptingConn = null;
        this.plan = null;
      }
      this.trace?.counters(this.counters);
      this.reap(conn);
      // The listener stops accepting whenever it refuses an attempt (a fact of the machine, tested
      // in test/machines/listener.machine.test.ts): this guard only keeps a future change of it
      // from spinning on the head of the backlog.
      if (!this.taken) break;
    }
  }

  /** Parks a socket Node accepted: the kernel backlog (serverOnConnection). */
  park(accepted: net.Socket): void {
    // A plain bind's socket reads into the proxy's memory (impl/clientSocket.ts); TLS takes the
    // accepted socket's own stream.
    const socket = this.secureContext === null ? adoptClientSocket(accepted, this.pool.bufsize) : accepted;
    const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
    const fd = handle?.fd ?? -1;
    const conn: Conn = {
      id: this.nextId++,
      fe: this,
      socket,
      fd,
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      src: 'plain',
      phase: 'backlog',
      acceptDate: 0,
      acceptTime: 0,
      completeTime: null,
      tls: null,
      scratch: null,
      proxied: null,
      rejectedSource: null,
      timer: null,
      noLinger: false,
      silentClose: false,
      closed: false,
      session: null,
      task: null,
      ssl: null,
      req: null,
      rep: null,
      txn: null,
      stream: null,
    };
    socket.on('error', socketOnError);
    this.conns.set(conn.id, conn);
    this.fdtab.open(fd, conn.id);
    this.composition.addConnection(this.world, conn.id);
    this.backlog.push(conn);
  }

  /**
   * The current rate period ended (rateOnPeriod): RATE_PERIOD, time rather than a machine event,
   * when there is something to rotate. Under 2.x the next period's timer is armed here while
   * events keep coming (impl/rates.ts).
   */
  ratePeriod(): void {
    const c = this.counters;
    const runsOn = this.rates.rotate(c);
    // Armed for the period's own end, not a second after this callback: a late timer does not drift.
    const due = this.rates.due();
    this.rateTimer =
      runsOn && due !== null
        ? this.clock.after(Math.max(0, due - this.clock.now()), rateOnPeriod, this)
        : null;
    if (c.connPerSec === 0 && c.feConnPerSec === 0 && c.feSessPerSec === 0) return; // nothing to rotate
    this.trace?.input(null, null, { type: 'RATE_PERIOD' });
    newRatePeriod(this.counters);
  }

  /** A rate count was taken: under 2.x it may begin a period (impl/rates.ts), whose end is armed. */
  private rateCounted(): void {
    if (this.stopping || !this.rates.counted(this.clock.now())) return;
    this.rateTimer = this.clock.after(1000, rateOnPeriod, this);
  }

  /** Records that the session of `conn` completed (for %Tw). */
  markComplete(conn: Conn): void {
    conn.completeTime = performance.now();
  }

  // --- internals ---

  private step(
    conn: Conn | null,
    machine: 'listener' | 'connection' | 'session',
    event: { type: string } & Record<string, unknown>,
    inputs: StepInputs,
    plan: AllocPlan | null,
  ): void {
    if (this.depth > 0) {
      this.violations.push(`nested step ${machine} ${event.type}: ignored`);
      return;
    }
    if (this.stopping) return;
    this.trace?.input(machine, conn ? conn.id : null, event, inputs);
    this.plan = plan;
    this.depth++;
    try {
      this.composition.dispatch(this.world, this, machine, conn ? conn.id : null, event, inputs);
    } finally {
      this.depth--;
      this.plan = null;
    }
    this.trace?.counters(this.counters);
    if (conn) this.reap(conn);
  }

  /** Drops `conn`'s record and its machines once both machines are final. */
  private reap(conn: Conn): void {
    if (!this.world.conns.has(conn.id)) return;
    if (this.composition.stateOf(this.world, 'session', conn.id) !== 'freed') return;
    if (this.composition.stateOf(this.world, 'connection', conn.id) !== 'closed') return;
    this.world.conns.delete(conn.id);
    this.conns.delete(conn.id);
    const held = [
      conn.session && 'session',
      conn.task && 'task',
      ...(['req', 'rep', 'txn'] as const).filter((b) => conn[b]),
    ].filter(Boolean);
    if (held.length > 0) this.violations.push(`connection ${conn.id} ended holding ${held.join(', ')}`);
    if (conn.timer) this.violations.push(`connection ${conn.id} ended with its deadline armed`);
    // A freed session left in the sessions list ('show sess' would walk freed memory: 3b24641745).
    if (this.sessions.delete(conn.id))
      this.violations.push(`connection ${conn.id} ended still linked in the sessions list`);
  }

  private need(origin: Origin): Conn {
    const conn = origin.conn === null ? null : this.conns.get(origin.conn);
    if (!conn) throw new Error(`effect for unknown connection ${String(origin.conn)}`);
    return conn;
  }

  private cancelDeadline(conn: Conn): void {
    conn.timer?.cancel();
    conn.timer = null;
  }

  /**
   * fdClose: closes the client socket exactly once, with an RST after setNoLinger, else a FIN: after
   * the bytes still queued (for at most FLUSH_TIMEOUT_MS), or at once, dropping them, after a write
   * timeout of the data phase under 2.x (shutwSilent).
   */
  private closeClient(conn: Conn, site: string): void {
    const how = conn.noLinger ? 'rst' : 'fin';
    if (conn.closed) {
      this.fdtab.close(conn.fd, conn.id, how, site); // records the second close as a violation
      return;
    }
    conn.closed = true;
    conn.phase = 'closed';
    if (!this.fdtab.close(conn.fd, conn.id, how, site)) return;
    if (skipsFdClose(conn.socket.destroyed)) return; // planted fault (impl/faults.ts): recorded, never closed
    const raw = conn.socket;
    if (how === 'rst') {
      if (!raw.destroyed) raw.resetAndDestroy();
      conn.tls?.destroy();
      return;
    }
    const s = conn.tls ?? raw;
    if (s.destroyed) return;
    if (s.writableLength === 0 || conn.silentClose) {
      s.destroy();
      if (conn.tls && !raw.destroyed) raw.destroy();
      return;
    }
    // Written bytes (a 500, the last forwarded data) go to the kernel first, then the close.
    this.flushing.add(s);
    flushers.set(s, this);
    s.once('finish', socketOnFlushed);
    s.end();
    setTimeout(flushOnExpire, FLUSH_TIMEOUT_MS, s).unref();
  }

  /** Forgets a socket whose FIN close completed. */
  flushed(s: net.Socket): void {
    this.flushing.delete(s);
    s.destroy();
  }

  private logKill(conn: Conn): void {
    const code = (this.composition.contextOf(this.world, 'connection', conn.id).errCode ??
      null) as ErrCode | null;
    const src = conn.proxied?.source ?? conn.rejectedSource;
    const bind = this.cfg.frontend.bind.name ?? '1';
    this.logger.log(
      formatEmbryonicKill({
        address: src?.address ?? conn.address,
        port: src?.port ?? conn.port,
        acceptDate: conn.acceptDate,
        frontend: this.cfg.frontend.name,
        bind,
        message: errCodeMessage(code ?? 'NONE'),
      }),
    );
  }

  private scheduleDrain(): void {
    if (this.drainPending || this.stopping) return;
    this.drainPending = setImmediate(drainBacklog, this);
  }

  /** drainBacklog's entry: the scheduled drain ran. */
  drainRan(): void {
    this.drainPending = null;
    this.acceptLoop();
  }

  /**
   * task_schedule of a queue task: in <ms>, or, with <rate>, when that rate allows the next event
   * (next_event_delay under the profile, impl/rates.ts, which HAProxy does not bound: a 2.x period
   * that counted more events than the limit pays the excess back). Keeps an earlier expiry.
   */
  private scheduleQueueTask(queue: 'global' | 'frontend', ms: number, rate?: 'conn' | 'sess'): void {
    if (rate !== undefined) ms = this.rateDelay(rate);
    const due = this.clock.now() + ms;
    const current = this.queueTimers[queue];
    if (current && current.due <= due) return; // task_schedule keeps the earlier expiry
    current?.timer.cancel();
    this.queueTimers[queue] = { timer: this.clock.after(ms, queueTaskOnExpire, this, queue), due };
  }

  /** next_event_delay of the global connection rate or of the frontend's session rate, now. */
  private rateDelay(rate: 'conn' | 'sess'): number {
    const conn = rate === 'conn';
    const freq = conn ? this.model.maxconnrate : this.model.rateLimitSessions;
    if (freq === null || freq <= 0) return 0;
    const curr = conn ? this.counters.connPerSec : this.counters.feSessPerSec;
    const prev = conn ? this.rates.prev.connPerSec : this.rates.prev.feSessPerSec;
    const now = this.clock.now();
    return nextEventDelay(this.model.profile, freq, curr, prev, this.rates.elapsed(now));
  }

  /** A queue task fired (queueTaskOnExpire). */
  queueTaskRan(queue: 'global' | 'frontend'): void {
    this.queueTimers[queue] = null;
    this.listenerEvent({ type: queue === 'global' ? 'DEQUEUE_GLOBAL' : 'DEQUEUE_FRONTEND' });
  }
}

/**
 * drainInput: reads and drops what the client sent, without blocking, as HAProxy's
 * recv(MSG_DONTWAIT) loop (82569f915): a synchronous read(2) on the fd until it would block, into
 * the handshake scratch area, never a pool buffer. Bounded to 16 reads.
 */
function drainInput(conn: Conn): void {
  const scratch = trash(conn.fe.pool.bufsize);
  for (let i = 0; i < 16; i++) {
    try {
      if (readSync(conn.fd, scratch, 0, scratch.length, null) === 0) return;
    } catch {
      return; // EAGAIN: nothing more to read now (or the socket is gone)
    }
  }
}

// --- handlers: module-level named functions, their context found through the WeakMaps ---

/** The listening socket accepted a connection: park it, then let listener_accept take what it may. */
function serverOnConnection(this: net.Server, socket: net.Socket): void {
  const fe = servers.get(this);
  if (!fe || fe.stopping) {
    socket.destroy();
    return;
  }
  fe.park(socket);
  fe.acceptLoop();
}

/** listener_accept after a resume (fd_want_recv: the next poll loop accepts). */
function drainBacklog(fe: Frontend): void {
  fe.drainRan();
}

/** The handshake deadline struck: TASK_WAKEUP with TASK_WOKEN_TIMER (expire_mini_session). */
function timerOnExpire(fe: Frontend, id: number): void {
  const conn = fe.conns.get(id);
  if (!conn || conn.timer === null) return;
  conn.timer = null;
  fe.sessionEvent(conn, { type: 'TASK_WAKEUP', timer: true });
}

/** The global or frontend queue task fired. */
function queueTaskOnExpire(fe: Frontend, queue: 'global' | 'frontend'): void {
  fe.queueTaskRan(queue);
}

/** One second elapsed: the per-second rate counters restart (freq_ctr rotation). */
function rateOnPeriod(fe: Frontend): void {
  fe.ratePeriod();
}

/**
 * An error on a client socket outside the handshake and data phases (parked, or just accepted).
 * Nothing reads such a socket, so this is a write error (EPIPE after a 200/500); the close
 * follows through the machines. The handshake and stream modules add their own handlers.
 */
function socketOnError(this: net.Socket, _err: Error): void {
  // Handled by the phase's own handler, or harmless: the socket is closed by fdClose.
}

/** A FIN close finished flushing the written bytes. */
function socketOnFlushed(this: net.Socket): void {
  const fe = flushers.get(this);
  if (fe) fe.flushed(this);
  else this.destroy();
}

/** A FIN close did not flush in time (the client does not read): destroy anyway. */
function flushOnExpire(s: net.Socket): void {
  const fe = flushers.get(s);
  if (fe) fe.flushed(s);
  else s.destroy();
}
