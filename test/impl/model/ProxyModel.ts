/**
 * The model side of the real-proxy scenarios: the composed machines (machines/system.ts
 * SystemModel, with the configuration the proxy runs) driven by what the clients, the backend and
 * the clock do, plus the environment's share that the machines leave to their host: which client
 * is which connection, what a client sent before the proxy read it, which allocation fails next,
 * what the backend does with a new stream, and the virtual timers (handshake deadlines, queue
 * tasks, the one-second rate period) in the order the proxy's clock fires them (impl/clock.ts).
 *
 * The model only predicts. The predictions are compared with what independent observers see
 * (test/impl/model/observe.ts); the proxy's own machine states are never read.
 */
import type { AsyncCommand } from 'fast-check';
import type { TransitionRecord } from '../../../machines/compose.ts';
import { hasHandshake } from '../../../machines/config.ts';
import { newRatePeriod } from '../../../machines/counters.ts';
import type { TlsRead } from '../../../machines/connection.machine.ts';
import {
  acceptAllocations,
  type AcceptFailSite,
  type CompleteFailSite,
  sessionBuffers,
  type SourceClass,
} from '../../../machines/session.machine.ts';
import { SystemModel, type SystemEvent, type SystemState } from '../../../machines/system.ts';
import { checkInvariants, viewOf } from '../../../properties/invariants.ts';
import type { BackendMode } from './backend.ts';
import type { ScenarioConfig } from './configs.ts';
import type { RealSide } from './RealSide.ts';

/** An allocation site of the proxy's pool ('ssl': the SSL context, the machines' 'dataInit' site). */
export type AllocSite = 'session' | 'task' | 'ssl' | 'req' | 'rep' | 'txn';
export const ALLOC_SITES: readonly AllocSite[] = ['session', 'task', 'ssl', 'req', 'rep', 'txn'];

/** A PROXY header a client can send: whole (v1, v2, v2 LOCAL), split (strict: truncated), or not one. */
export type HeaderKind = 'v1' | 'v2' | 'local' | 'partial' | 'bad';

/** What the model knows of one client. Client i is connection i of the SystemModel. */
export interface ClientModel {
  id: number;
  src: SourceClass;
  did: 'fin' | 'rst' | null; //    what the client did to its own connection
  pending: ('fin' | 'rst')[]; //    what it did before the proxy read it (it sat in the backlog)
  headerSent: boolean;
  tlsStarted: boolean; //           the proxy ran TLS on it (its bytes may hold a TLS alert)
  tlsDone: boolean; //              the client completed its TLS handshake
  tlsSent: TlsRead; //              what it sent of a TLS handshake it did not complete
  stream: { mode: BackendMode } | null; // the data phase, with the backend mode it met
  echoed: string; //                what an echo backend must have sent back
  toBackend: number; //             data-phase bytes that reach the backend
  ended: boolean; //                its session ended (SESSION_END) after a stream
}

/** One virtual timer, as the proxy's TestClock holds it. */
interface ModelTimer {
  kind: 'deadline' | 'queue' | 'rate';
  conn: number | null; //       the connection of a deadline
  queue: 'global' | 'frontend' | null;
  due: number;
  seq: number; //               arming order (ties fire in it)
}

/** What the model counted since the run began (the proxy's ledgers are compared as deltas). */
export interface ModelTally {
  allocs: Record<AllocSite, number>;
  frees: Record<AllocSite, number>;
  failed: Record<AllocSite, number>;
  streams: number; //  data phases started (taskWakeupInit)
  refused: number; //  of those, refused by the backend
}

const zeroSites = (): Record<AllocSite, number> => ({ session: 0, task: 0, ssl: 0, req: 0, rep: 0, txn: 0 });

/** A model step that the machines did not accept: the scenario asked for the impossible. */
export class ModelError extends Error {}

/**
 * The model of one run. Mutated by the commands; `state` is replaced at each step. Owns nothing
 * outside itself.
 */
export class ProxyModel {
  readonly sys: SystemModel;
  state: SystemState;
  readonly clients: ClientModel[] = [];
  readonly armed = new Set<AllocSite>();
  backendMode: BackendMode = 'echo';
  readonly tally: ModelTally = {
    allocs: zeroSites(),
    frees: zeroSites(),
    failed: zeroSites(),
    streams: 0,
    refused: 0,
  };
  readonly transitions = new Map<string, number>(); // transition id → times the model took it
  /** The transitions each machine instance took, in order: the listener's, and each client's two. */
  readonly lives = {
    listener: [] as string[],
    conns: new Map<number, { connection: string[]; session: string[] }>(),
  };
  private readonly timers: ModelTimer[] = [];
  private ratePrev = { conn: 0, sess: 0 }; // the counts of the rate period before this one
  private seq = 1;
  private readonly followUps: number[] = []; // streams the backend ends at once (close, refuse)

  /**
   * A model of `config` for up to `maxClients` clients, starting at virtual time `now`, right
   * after a rate period (the run aligns the proxy's clock on a second first).
   */
  constructor(
    readonly config: ScenarioConfig,
    readonly maxClients: number,
    public now: number,
  ) {
    this.sys = new SystemModel(config.model, maxClients);
    this.state = this.sys.initial();
    // dev12: a period every second from the start; 2.x: from the first count after an idle second.
    if (config.model.profile === 'dev12')
      this.timers.push({ kind: 'rate', conn: null, queue: null, due: now + 1000, seq: 0 });
  }

  // --- what the machines say ---

  /** The dotted state of client `c`'s connection machine. */
  connState(c: number): string {
    return this.sys.state(this.state, 'connection', c);
  }

  /** The state of client `c`'s session machine. */
  sessionState(c: number): string {
    return this.sys.state(this.state, 'session', c);
  }

  /** The listener machine's state. */
  listenerState(): string {
    return this.sys.state(this.state, 'listener');
  }

  /** True iff client `c` waits in the listen backlog (connected, not accepted). */
  parked(c: number): boolean {
    return this.connState(c) === 'pending';
  }

  /** True iff the proxy holds client `c`'s connection open (accepted, fd not closed). */
  held(c: number): boolean {
    return this.state.memory[c]!.fd === 'open';
  }

  /** True iff client `c` can still act on its connection: connected, not closed by either side. */
  open(c: number): boolean {
    const m = this.state.memory[c]!;
    return this.clients[c]!.did === null && m.fd !== 'closed';
  }

  /** The clients in `predicate`'s favour, by id. */
  eligible(predicate: (c: ClientModel) => boolean): ClientModel[] {
    return this.clients.filter(predicate);
  }

  /**
   * Returns the `pick`-th (modulo their number) client for which `predicate` holds, or null if none
   * does: commands name their client relative to the ones that can take them, so that a shrunk
   * scenario still finds one.
   */
  pick(pick: number, predicate: (c: ClientModel) => boolean): number | null {
    const ok = this.clients.filter(predicate);
    return ok.length === 0 ? null : ok[pick % ok.length]!.id;
  }

  /**
   * The `pick`-th client (as pick() counts) in its TLS handshake that has neither closed nor sent
   * anything of it yet: the one a TLS command acts on. Null if there is none.
   */
  pickInFreshTls(pick: number): number | null {
    return this.pick(
      pick,
      (c) => c.did === null && c.tlsSent === 'none' && this.connState(c.id) === 'handshake.tls',
    );
  }

  /** True iff another client may connect. */
  canConnect(): boolean {
    return this.clients.length < this.maxClients;
  }

  /** Milliseconds until the earliest armed deadline or queue task, or null if none is armed. */
  nextTimerIn(): number | null {
    const due = this.timers.filter((t) => t.kind !== 'rate').map((t) => t.due);
    return due.length === 0 ? null : Math.max(0, Math.min(...due) - this.now);
  }

  /** True iff nothing is left: no session, no parked client, no deadline or queue task. */
  idle(): boolean {
    return (
      this.timers.every((t) => t.kind === 'rate') &&
      this.clients.every((c) => !this.parked(c.id) && !this.held(c.id))
    );
  }

  // --- what the clients, the backend and the clock do ---

  /** A client connects from a source of class `src`; the proxy accepts what it can. Returns its id. */
  connect(src: SourceClass): number {
    if (!this.canConnect()) throw new ModelError('no connection left in the model');
    const id = this.clients.length;
    this.clients.push({
      id,
      src,
      did: null,
      pending: [],
      headerSent: false,
      tlsStarted: false,
      tlsDone: false,
      tlsSent: 'none',
      stream: null,
      echoed: '',
      toBackend: 0,
      ended: false,
    });
    this.settle();
    return id;
  }

  /** Client `c` sends a PROXY header of kind `kind` (it is waiting for one). */
  header(c: number, kind: HeaderKind): void {
    this.need(c, 'handshake.proxyHeader');
    this.clients[c]!.headerSent = true;
    if (kind === 'partial') this.apply({ type: 'PROXY_HEADER_ERROR', conn: c, code: 'PRX_TRUNCATED' });
    else if (kind === 'bad') this.apply({ type: 'PROXY_HEADER_ERROR', conn: c, code: 'PRX_NOT_HDR' });
    else this.apply({ type: 'PROXY_HEADER_OK', conn: c, fail: this.completeFail() });
    this.settle();
  }

  /** Client `c` completes its TLS handshake (the proxy runs one for it). */
  tlsHandshake(c: number): void {
    this.need(c, 'handshake.tls');
    this.clients[c]!.tlsDone = true;
    this.apply({ type: 'TLS_OK', conn: c, fail: this.completeFail() });
    this.settle();
  }

  /** Client `c` sends part of a TLS record (the start of a ClientHello) and nothing more yet. */
  tlsPartialHello(c: number): void {
    this.need(c, 'handshake.tls');
    this.clients[c]!.tlsSent = 'partialRecord';
    this.settle();
  }

  /** Client `c` sends bytes that are not TLS during its TLS handshake. */
  tlsGarbage(c: number): void {
    this.need(c, 'handshake.tls');
    this.apply({ type: 'TLS_ERROR', conn: c, code: 'SSL_HANDSHAKE' });
    this.settle();
  }

  /** Client `c` sends `text` in its data phase. */
  data(c: number, text: string): void {
    const cl = this.clients[c]!;
    if (!cl.stream || cl.ended) throw new ModelError(`c${c} has no data phase`);
    if (cl.stream.mode === 'echo' || cl.stream.mode === 'reset') cl.toBackend += Buffer.byteLength(text);
    if (cl.stream.mode === 'echo') cl.echoed += text;
    else if (cl.stream.mode === 'reset') this.endStream(c);
    this.settle();
  }

  /** Client `c` half-closes (FIN) or resets (RST) its connection. */
  close(c: number, how: 'fin' | 'rst'): void {
    const cl = this.clients[c]!;
    if (cl.did === 'rst' || (cl.did === 'fin' && how === 'fin')) return;
    cl.did = how;
    if (this.parked(c)) cl.pending.push(how);
    else this.deliver(c, how);
    this.settle();
  }

  /** The next allocation at `site` fails (the proxy's `set fault`). */
  injectFault(site: AllocSite): void {
    this.armed.add(site);
  }

  /** New streams meet a backend in mode `mode`. */
  setBackend(mode: BackendMode): void {
    this.backendMode = mode;
  }

  /**
   * Virtual time moves `ms` forward: every timer due by then fires in (due, armed) order; the
   * accepts a release allows happen after, at the new time (the proxy defers them with setImmediate).
   */
  advance(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      const next = this.earliest();
      if (!next || next.due > target) break;
      this.now = next.due;
      if (next.kind === 'rate') {
        const s = this.sys.clone(this.state);
        const c = s.counters;
        this.ratePrev = { conn: c.connPerSec, sess: c.feSessPerSec };
        if (this.config.model.profile !== 'dev12' && c.connPerSec + c.feConnPerSec + c.feSessPerSec === 0) {
          this.timers.splice(this.timers.indexOf(next), 1); // 2.x: an idle second ends the periods
          continue;
        }
        newRatePeriod(c);
        this.state = s;
        next.due += 1000;
        next.seq = this.seq++;
        continue;
      }
      this.timers.splice(this.timers.indexOf(next), 1);
      if (next.kind === 'deadline') this.apply({ type: 'TIMER_EXPIRE', conn: next.conn! });
      else this.apply({ type: 'QUEUE_TASK', queue: next.queue! });
    }
    this.now = target;
    this.settle();
  }

  // --- internals ---

  private need(c: number, connState: string): void {
    if (this.connState(c) !== connState)
      throw new ModelError(`c${c} is ${this.connState(c)}, not ${connState}`);
  }

  /** What a client's FIN or RST does to its connection, by the state the proxy holds it in. */
  private deliver(c: number, how: 'fin' | 'rst'): void {
    const conn = this.connState(c);
    if (conn.startsWith('handshake.')) {
      const tlsRead = conn === 'handshake.tls' ? this.clients[c]!.tlsSent : 'none';
      this.apply({ type: how === 'fin' ? 'CLIENT_CLOSE' : 'CLIENT_RESET', conn: c, tlsRead });
      return;
    }
    const cl = this.clients[c]!;
    if (this.sessionState(c) === 'initialized' && cl.stream && !cl.ended) this.endStream(c);
    // A connection closed at accept (reject, monitor, setup failure) never reads it.
  }

  /** The stream of `c` ends (process_session): its session ends. */
  private endStream(c: number): void {
    this.clients[c]!.ended = true;
    this.apply({ type: 'SESSION_END', conn: c });
  }

  /**
   * Lets the proxy do what it does on its own, to a fixed point: accept from the backlog while the
   * listener polls, read what parked clients sent once their connection is read, and end the
   * streams the backend ends at once.
   */
  private settle(): void {
    for (let guard = 0; guard < 1000; guard++) {
      if (this.acceptOne()) continue;
      const waiting = this.clients.find((cl) => cl.pending.length > 0 && !this.parked(cl.id));
      if (waiting) {
        this.deliver(waiting.id, waiting.pending.shift()!);
        continue;
      }
      const follow = this.followUps.shift();
      if (follow !== undefined) {
        const cl = this.clients[follow]!;
        if (!cl.ended && this.sessionState(follow) === 'initialized') this.endStream(follow);
        continue;
      }
      return;
    }
    throw new ModelError('the model did not settle');
  }

  /** listener_accept for the oldest parked client, if the listener polls. Returns true if it stepped. */
  private acceptOne(): boolean {
    const next = this.sys.nextPending(this.state);
    if (next === null || next >= this.clients.length) return false;
    if (!this.sys.isEnabled(this.state, { type: 'ACCEPT' })) return false;
    const src = this.clients[next]!.src;
    this.apply({ type: 'ACCEPT', src, fail: this.acceptFail(src) });
    return true;
  }

  /** Where session_accept's allocations fail now for a client of class `src` (the machine's order). */
  private acceptFail(src: SourceClass): AcceptFailSite {
    const walk = acceptAllocations(this.config.model, src, this.state.counters.sslconns);
    return walk.find((s) => this.armed.has(s === 'dataInit' ? 'ssl' : s)) ?? 'none';
  }

  /** Where session_complete's allocations fail now. */
  private completeFail(): CompleteFailSite | 'none' {
    return sessionBuffers(this.config.model).find((s) => this.armed.has(s)) ?? 'none';
  }

  /** Applies one environment event to the machines and books its consequences. */
  private apply(event: SystemEvent): void {
    const seq = this.seq++; // a period this step begins was armed by its first effects
    const r = this.sys.step(this.state, event);
    if (!r) throw new ModelError(`the machines do not accept ${JSON.stringify(event)} now`);
    const broken = checkInvariants({
      model: this.sys,
      config: this.config.model,
      next: viewOf(this.sys, r.state),
      prev: viewOf(this.sys, this.state),
      event,
      records: r.records,
    });
    if (broken.length > 0)
      throw new ModelError(`the model broke ${broken[0]!.invariant}: ${broken[0]!.message}`);
    this.state = r.state;
    const c = r.state.counters;
    if (
      this.config.model.profile !== 'dev12' &&
      c.connPerSec + c.feConnPerSec + c.feSessPerSec > 0 &&
      !this.timers.some((t) => t.kind === 'rate')
    )
      this.timers.push({ kind: 'rate', conn: null, queue: null, due: this.now + 1000, seq });
    this.book(event, r.records);
  }

  /**
   * In how many ms the rate <rate> allows its next event, as HAProxy's next_event_delay gives it
   * under the configuration's profile: 1.5-dev weighs the last period's count by what is left of
   * this one and answers 999 ms / that many events; 2.x counts in event·ms over a sliding second
   * and answers the excess over the limit, spread over the limit's events (1 ms at the limit).
   */
  private rateWait(rate: 'conn' | 'sess'): number {
    const m = this.config.model;
    const limit = rate === 'conn' ? m.maxconnrate : m.rateLimitSessions;
    if (limit === null) return 0;
    const c = this.state.counters;
    const now = rate === 'conn' ? c.connPerSec : c.feSessPerSec;
    const last = this.ratePrev[rate];
    const period = this.timers.find((t) => t.kind === 'rate');
    const left = period ? period.due - this.now : 1000; // ms left in the current period
    if (m.profile === 'dev12') {
      // last × (1 − elapsed/1000 − a hair), rounded down: a whole product loses one, zero stays zero.
      const share = (last * left) / 1000;
      const weighted = now + (share === 0 ? 0 : Math.ceil(share) - 1);
      return weighted < limit ? 0 : Math.max(1, Math.floor(999 / weighted));
    }
    const excess = last * left + now * 1000 - limit * 1000;
    return excess < 0 ? 0 : Math.max(1, Math.floor(excess / limit));
  }

  private book(event: SystemEvent, records: TransitionRecord[]): void {
    let completed = false;
    for (const rec of records) {
      for (const t of rec.transitions) this.transitions.set(t, (this.transitions.get(t) ?? 0) + 1);
      if (rec.machine === 'listener') this.lives.listener.push(...rec.transitions);
      else {
        const life = this.lives.conns.get(rec.conn!) ?? { connection: [], session: [] };
        life[rec.machine].push(...rec.transitions);
        this.lives.conns.set(rec.conn!, life);
      }
      const conn = rec.conn;
      if (rec.machine === 'connection' && rec.to === 'handshake.tls' && conn !== null)
        this.clients[conn]!.tlsStarted = true;
      for (const e of rec.effects) {
        const p = (e.params ?? {}) as Record<string, unknown>;
        switch (e.type) {
          case 'sessionAlloc':
            this.tally.allocs.session++;
            break;
          case 'sessionFree':
            this.tally.frees.session++;
            break;
          case 'taskNew':
            this.tally.allocs.task++;
            break;
          case 'sslCtxNew':
            this.tally.allocs.ssl++;
            break;
          case 'sslCtxFree':
            this.tally.frees.ssl++;
            break;
          case 'taskFree':
            this.tally.frees.task++;
            this.cancelDeadline(conn);
            break;
          case 'bufAlloc':
            this.tally.allocs[p.buf as AllocSite]++;
            break;
          case 'bufFree':
            this.tally.frees[p.buf as AllocSite]++;
            break;
          case 'armDeadline':
            this.cancelDeadline(conn);
            if (p.ms !== null)
              this.timers.push({
                kind: 'deadline',
                conn,
                queue: null,
                due: this.now + (p.ms as number),
                seq: this.seq++,
              });
            break;
          case 'taskSetHandler':
            this.cancelDeadline(conn);
            break;
          case 'scheduleQueueTask': {
            const queue = p.queue as 'global' | 'frontend';
            const wait = p.rate === undefined ? (p.ms as number) : this.rateWait(p.rate as 'conn' | 'sess');
            const due = this.now + wait;
            const current = this.timers.find((t) => t.kind === 'queue' && t.queue === queue);
            if (current && current.due <= due) break;
            if (current) this.timers.splice(this.timers.indexOf(current), 1);
            this.timers.push({ kind: 'queue', conn: null, queue, due, seq: this.seq++ });
            break;
          }
          case 'handshakeEnded':
            if (p.error === false) completed = true;
            break;
          case 'taskWakeupInit': {
            const cl = this.clients[conn!]!;
            if (this.backendMode === 'refuse' && cl.pending.includes('rst'))
              throw new ModelError(
                `c${conn} starts its stream against a refusing backend with its reset waiting: the proxy counts the refusal only if it reads it first (see resetMeetsRefusal)`,
              );
            cl.stream = { mode: this.backendMode };
            this.tally.streams++;
            if (this.backendMode === 'refuse') this.tally.refused++;
            if (this.backendMode === 'refuse' || this.backendMode === 'close') this.followUps.push(conn!);
            break;
          }
          default:
            break;
        }
      }
    }
    // An injected failure is consumed when the step reaches its allocation (impl/pool.ts commit).
    if (event.type === 'ACCEPT') {
      const accepted = records.some((r) => r.machine === 'session' && r.from === 'absent');
      if (accepted && event.fail && event.fail !== 'none')
        this.consume(event.fail === 'dataInit' ? 'ssl' : (event.fail as AllocSite));
    } else if ((event.type === 'PROXY_HEADER_OK' || event.type === 'TLS_OK') && completed) {
      if (event.fail && event.fail !== 'none') this.consume(event.fail as AllocSite);
    }
  }

  private consume(site: AllocSite): void {
    this.armed.delete(site);
    this.tally.failed[site]++;
  }

  private cancelDeadline(conn: number | null): void {
    const i = this.timers.findIndex((t) => t.kind === 'deadline' && t.conn === conn);
    if (i !== -1) this.timers.splice(i, 1);
  }

  private earliest(): ModelTimer | null {
    let best: ModelTimer | null = null;
    for (const t of this.timers)
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    return best;
  }
}

/** Where the proxy holds client `c`, as a script says it. Pure. */
export function whereIs(m: Readonly<ProxyModel>, c: number): string {
  if (m.parked(c)) return 'in the backlog';
  const conn = m.connState(c);
  if (conn === 'handshake.proxyHeader') return 'while its PROXY header is awaited';
  if (conn === 'handshake.tls') return 'during its TLS handshake';
  if (m.sessionState(c) === 'initialized') return 'in its data phase';
  return `(${conn})`;
}

/**
 * True iff client `c`, if it waits in the backlog with a reset the proxy has not read, would start
 * its stream against a backend in `mode` that refuses it. Without a handshake the stream starts at
 * accept, and the proxy then has two events to read at once: the client's reset, already in its
 * kernel, and the backend's refusal. It counts the refusal (BACKEND econ) only if it reads that one
 * first, and both orders happen. On loopback the refusal usually comes within connect(); but a SYN
 * that finds a TIME_WAIT the backend left on the same ports (a close-mode stream: the backend
 * closed first) gets an ACK instead of the RST, and is refused only when the kernel sends it again
 * (2 jiffies, ~10 ms, later): by then the proxy has read the reset and dropped the connect. No
 * client can know which, so the scenarios never bring a client there (ResetCommand,
 * BackendModeCommand, finishRun) and the model stops if one gets there (book). Pure.
 */
export function resetMeetsRefusal(m: Readonly<ProxyModel>, c: number, mode: BackendMode): boolean {
  return mode === 'refuse' && !hasHandshake(m.config.model) && m.parked(c) && m.clients[c]!.src === 'plain';
}

/** One client action, as fast-check runs it: the model predicts, the real side acts and is checked. */
export type ProxyCommand = AsyncCommand<ProxyModel, RealSide>;
