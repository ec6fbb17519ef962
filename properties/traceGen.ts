/**
 * Reference traces: the composed machines run as a host runs them, writing the trace a host
 * writes (machines/traceFormat.ts). Connections come and go under arbitrary ids, as in a real
 * proxy, and the host here is the smallest one that can drive the machines: it keeps the counters
 * (for the listener's gauges), the queue tasks, and each session task's deadline, and writes every
 * line through `tracingHost`, exactly as a proxy that adopted the format would.
 *
 * Used by the tests (traces that must conform, and the raw material of mutated traces that must
 * not) and by the 10k-connection measurement of trace-check. Deterministic for a given seed.
 */
import {
  Composition,
  NO_FAILURE,
  type Defect,
  type Host,
  type Origin,
  type StepInputs,
  type World,
} from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import {
  applyCounterEffect,
  listenerGauges,
  newRatePeriod,
  zeroCounters,
  type Counters,
} from '../machines/counters.ts';
import type { Effect } from '../machines/effects.ts';
import type { TlsRead } from '../machines/connection.machine.ts';
import type { ProxyErrCode, ProxyFailCode, SslErrCode } from '../machines/errCodes.ts';
import {
  acceptCanFailAt,
  sourceClassReachable,
  type AcceptFailSite,
  type CompleteFailSite,
  type SourceClass,
} from '../machines/session.machine.ts';
import {
  countersLine,
  headerLine,
  inputLine,
  tracingHost,
  type CompleteKind,
  type InputLine,
  type TraceLine,
} from '../machines/traceFormat.ts';

/** One environment event of a scripted scenario, on a connection named by any integer id. */
export type ScriptEvent = (
  | { type: 'ACCEPT'; conn: number; src?: SourceClass; fail?: AcceptFailSite; acceptError?: boolean }
  | { type: 'PROXY_HEADER_OK'; conn: number; fail?: CompleteFailSite | 'none' }
  | { type: 'PROXY_HEADER_ERROR'; conn: number; code: ProxyFailCode }
  | { type: 'TLS_OK'; conn: number; fail?: CompleteFailSite | 'none' }
  | { type: 'TLS_ERROR'; conn: number; code: SslErrCode }
  | { type: 'CLIENT_CLOSE'; conn: number; tlsRead?: TlsRead } // 'none' if not given
  | { type: 'CLIENT_RESET'; conn: number; tlsRead?: TlsRead }
  | { type: 'TIMER_EXPIRE'; conn: number } //  the deadline struck (time jumps to it if it is later)
  | { type: 'TASK_WAKEUP'; conn: number } //   woken for another reason
  | { type: 'SESSION_END'; conn: number; writeTimeout?: boolean } // false if not given
  | { type: 'QUEUE_TASK'; queue: 'global' | 'frontend' }
  | { type: 'RATE_PERIOD' }
) & { dt?: number }; //                         ms elapsed before the event (1 if not given)

/** What the generated trace logs besides the inputs. */
export interface TraceGenOptions {
  header?: boolean; //                  a header line with the configuration (default true)
  steps?: boolean; //                   a line per machine step (default true)
  transitions?: boolean; //             step lines carry their transition ids (default true)
  effects?: boolean; //                 a line per effect (default true)
  counters?: boolean; //                a counters line after each input (default true)
  inputs?: 'full' | 'partial' | 'none'; // how much of each input's params and StepInputs to log (default full)
  defect?: Defect | null; //            a mutant switched into the machines
  seed?: number; //                     for 'partial' inputs: which fields are left out
}

/** The host's view of one connection's session task. */
interface TaskInfo {
  process: 'none' | 'expire' | 'handler';
  deadline: number | null; // ms after armedAt; null = none
  armedAt: number;
}

/** Returns a PRNG over [0, 1) seeded by `seed` (mulberry32). Pure apart from its own state. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The model run as a host: applies scenario events to the composed machines and writes the trace.
 * Requires a complete ModelConfig. Lines go to `emit`; the generator keeps none of them.
 */
export class TraceGenerator {
  readonly composition: Composition;
  readonly world: World;
  readonly counters: Counters = zeroCounters();
  readonly queueTasks = { global: false, frontend: false };
  readonly queueTaskMs = { global: 0, frontend: 0 }; // in how many ms each scheduled queue task fires
  readonly tasks = new Map<number, TaskInfo>();
  t = 0;
  inputs = 0;
  accepted = 0;
  private readonly host: Host;
  private readonly opts: Required<Omit<TraceGenOptions, 'defect' | 'seed'>>;
  private readonly random: () => number;

  constructor(
    readonly config: ModelConfig,
    private readonly emit: (line: TraceLine) => void,
    options: TraceGenOptions = {},
  ) {
    this.opts = {
      header: options.header ?? true,
      steps: options.steps ?? true,
      transitions: options.transitions ?? true,
      effects: options.effects ?? true,
      counters: options.counters ?? true,
      inputs: options.inputs ?? 'full',
    };
    this.random = prng(options.seed ?? 1);
    this.composition = new Composition(config, options.defect ?? null);
    this.world = this.composition.initialWorld();
    const base: Host = {
      gauges: () => listenerGauges(this.counters, this.config),
      sslconns: () => this.counters.sslconns,
      execute: (effect: Effect, origin: Origin) => this.execute(effect, origin),
    };
    this.host = tracingHost(base, emit, () => this.t, {
      steps: this.opts.steps,
      effects: this.opts.effects,
      transitions: this.opts.transitions,
    });
    const complete: CompleteKind[] = [];
    if (this.opts.steps) complete.push('step');
    if (this.opts.effects) complete.push('effect');
    if (this.opts.header) emit(headerLine(0, config, complete, 'embryonic traceGen'));
  }

  /** The dotted state of connection `conn`'s `machine`, or null if the host holds no such connection. */
  stateOf(machine: 'connection' | 'session', conn: number): string | null {
    return this.world.conns.has(conn) ? this.composition.stateOf(this.world, machine, conn) : null;
  }

  /** The listener's dotted state. */
  listener(): string {
    return this.composition.stateOf(this.world, 'listener');
  }

  /** When connection `conn`'s handshake deadline strikes, or null if none is armed. */
  due(conn: number): number | null {
    const task = this.tasks.get(conn);
    return task && task.process === 'expire' && task.deadline !== null ? task.armedAt + task.deadline : null;
  }

  /** True iff `event` can happen now (as SystemModel.isEnabled, over dynamic connections). */
  isEnabled(event: ScriptEvent): boolean {
    switch (event.type) {
      case 'ACCEPT':
        return this.listener() === 'ready' && !this.world.conns.has(event.conn);
      case 'PROXY_HEADER_OK':
      case 'PROXY_HEADER_ERROR':
        return this.stateOf('connection', event.conn) === 'handshake.proxyHeader';
      case 'TLS_OK':
      case 'TLS_ERROR':
        return this.stateOf('connection', event.conn) === 'handshake.tls';
      case 'CLIENT_CLOSE':
      case 'CLIENT_RESET': {
        const state = this.stateOf('connection', event.conn);
        return (event.tlsRead ?? 'none') === 'none'
          ? (state?.startsWith('handshake.') ?? false)
          : state === 'handshake.tls';
      }
      case 'TIMER_EXPIRE':
        return this.due(event.conn) !== null;
      case 'TASK_WAKEUP':
        return this.tasks.get(event.conn)?.process === 'expire';
      case 'SESSION_END':
        return this.stateOf('session', event.conn) === 'initialized';
      case 'QUEUE_TASK':
        return this.queueTasks[event.queue];
      case 'RATE_PERIOD':
        return true;
    }
  }

  /**
   * Applies `event`: writes its input line, steps the machines (their steps and effects are written
   * as they happen), then a counters line. Returns false, and writes nothing, if it cannot happen.
   */
  apply(event: ScriptEvent): boolean {
    if (!this.isEnabled(event)) return false;
    this.t += event.dt ?? 1;
    this.inputs++;
    const c = this.composition;
    const w = this.world;
    const h = this.host;
    const base: StepInputs = { ...NO_FAILURE };
    switch (event.type) {
      case 'ACCEPT': {
        const inputs = { ...base, src: event.src ?? 'plain', acceptFail: event.fail ?? 'none' };
        this.input(
          'listener',
          event.conn,
          { type: 'ACCEPT_ATTEMPT', acceptError: event.acceptError ?? false },
          inputs,
        );
        c.addConnection(w, event.conn);
        c.acceptAttempt(w, h, event.conn, inputs, event.acceptError ?? false);
        if (c.stateOf(w, 'connection', event.conn) !== 'pending') this.accepted++;
        break;
      }
      case 'PROXY_HEADER_OK':
      case 'TLS_OK': {
        const inputs = { ...base, completeFail: event.fail ?? 'none' };
        this.input('connection', event.conn, { type: event.type }, inputs);
        c.dispatch(w, h, 'connection', event.conn, { type: event.type }, inputs);
        break;
      }
      case 'PROXY_HEADER_ERROR':
      case 'TLS_ERROR':
        this.input('connection', event.conn, { type: event.type, code: event.code }, base);
        c.dispatch(w, h, 'connection', event.conn, { type: event.type, code: event.code }, base);
        break;
      case 'CLIENT_CLOSE':
      case 'CLIENT_RESET': {
        const e = { type: event.type, tlsRead: event.tlsRead ?? 'none' } as const;
        this.input('connection', event.conn, e, base);
        c.dispatch(w, h, 'connection', event.conn, e, base);
        break;
      }
      case 'TIMER_EXPIRE':
      case 'TASK_WAKEUP': {
        const timer = event.type === 'TIMER_EXPIRE';
        if (timer) this.t = Math.max(this.t, this.due(event.conn)!);
        this.input('session', event.conn, { type: 'TASK_WAKEUP', timer }, base);
        c.dispatch(w, h, 'session', event.conn, { type: 'TASK_WAKEUP', timer }, base);
        break;
      }
      case 'SESSION_END': {
        const e = { type: 'SESSION_END', writeTimeout: event.writeTimeout ?? false } as const;
        this.input('session', event.conn, e, base);
        c.dispatch(w, h, 'session', event.conn, e, base);
        break;
      }
      case 'QUEUE_TASK': {
        const type = event.queue === 'global' ? 'DEQUEUE_GLOBAL' : 'DEQUEUE_FRONTEND';
        this.queueTasks[event.queue] = false;
        this.input('listener', null, { type }, base);
        c.dispatch(w, h, 'listener', null, { type, ...h.gauges() }, base);
        break;
      }
      case 'RATE_PERIOD':
        this.input(null, null, { type: 'RATE_PERIOD' }, base);
        newRatePeriod(this.counters);
        break;
    }
    if ('conn' in event) this.forgetIfDone(event.conn);
    if (this.opts.counters) this.emit(countersLine(this.t, this.counters));
    return true;
  }

  /** Writes the input line, with as much of its params and StepInputs as the options log. */
  private input(
    machine: InputLine['machine'],
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs: StepInputs,
  ): void {
    const mode = this.opts.inputs;
    if (mode === 'full') {
      this.emit(inputLine(this.t, machine, conn, event, inputs));
      return;
    }
    const { type, ...params } = event;
    const shownParams: Record<string, unknown> = { type };
    for (const [k, v] of Object.entries(params))
      if (mode === 'partial' && this.random() < 0.5) shownParams[k] = v;
    const shownInputs: Partial<StepInputs> = {};
    for (const k of Object.keys(inputs) as (keyof StepInputs)[])
      if (mode === 'partial' && this.random() < 0.5) (shownInputs as Record<string, unknown>)[k] = inputs[k];
    const line = inputLine(this.t, machine, conn, shownParams as { type: string }, shownInputs);
    if (Object.keys(shownInputs).length === 0) delete line.inputs;
    this.emit(line);
  }

  private execute(effect: Effect, origin: Origin): void {
    if (applyCounterEffect(this.counters, effect.type, this.config)) return;
    if (effect.type === 'scheduleQueueTask') {
      const { queue, ms } = effect.params as { queue: 'global' | 'frontend'; ms: number };
      this.queueTasks[queue] = true;
      this.queueTaskMs[queue] = ms;
      return;
    }
    if (origin.conn === null) return;
    const task = this.tasks.get(origin.conn);
    switch (effect.type) {
      case 'taskNew':
        this.tasks.set(origin.conn, { process: 'none', deadline: null, armedAt: this.t });
        break;
      case 'armDeadline':
        if (task) {
          task.process = 'expire';
          task.deadline = (effect.params as { ms: number | null }).ms;
          task.armedAt = this.t;
        }
        break;
      case 'taskSetHandler':
        if (task) task.process = 'handler';
        break;
      case 'taskFree':
        this.tasks.delete(origin.conn);
        break;
      default:
        break;
    }
  }

  /** Forgets connection `conn` once it is closed and freed, or if it is still in the backlog. */
  private forgetIfDone(conn: number): void {
    if (!this.world.conns.has(conn)) return;
    const connection = this.composition.stateOf(this.world, 'connection', conn);
    const session = this.composition.stateOf(this.world, 'session', conn);
    if (connection === 'pending' || (connection === 'closed' && session === 'freed')) {
      this.world.conns.delete(conn);
      this.tasks.delete(conn);
    }
  }
}

/** Returns the trace of a scripted scenario: each event applied in order. Throws on an event that cannot happen. */
export function scriptedTrace(
  config: ModelConfig,
  events: readonly ScriptEvent[],
  options: TraceGenOptions = {},
): TraceLine[] {
  const lines: TraceLine[] = [];
  const gen = new TraceGenerator(config, (l) => lines.push(l), options);
  events.forEach((e, i) => {
    if (!gen.apply(e)) throw new Error(`event ${i} (${JSON.stringify(e)}) cannot happen here`);
  });
  return lines;
}

/** A random scenario: how many connections, which ids, how often things fail. */
export interface RandomScenario {
  connections: number; //   connections to accept (each then runs to its end)
  seed: number;
  firstId?: number; //      id of the first connection (default 1000)
  idStride?: number; //     gap between consecutive ids (default 7): ids are arbitrary, not indices
  failures?: number; //     probability that an accept or a handshake goes wrong (default 0.1)
}

/** What a random run did. */
export interface RandomRunStats {
  inputs: number;
  accepted: number;
  finalT: number;
  stuck: boolean; //        true iff the run stopped with work left because nothing could happen
}

/**
 * Runs a random scenario to its end: accepts `connections` connections (as fast as the listener
 * allows) and drives each through its handshake, failures included, to its close. Lines go to
 * `emit`. Returns what happened. Deterministic for a given seed.
 */
export function randomTrace(
  config: ModelConfig,
  scenario: RandomScenario,
  emit: (line: TraceLine) => void,
  options: TraceGenOptions = {},
): RandomRunStats {
  const rnd = prng(scenario.seed);
  const gen = new TraceGenerator(config, emit, { seed: scenario.seed, ...options });
  const fail = scenario.failures ?? 0.1;
  const firstId = scenario.firstId ?? 1000;
  const stride = scenario.idStride ?? 7;
  const live: number[] = [];
  const rateLimited = config.maxconnrate !== null || config.rateLimitSessions !== null;
  let offered = 0;
  let stuck = false;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const PRX: ProxyErrCode[] = ['PRX_TRUNCATED', 'PRX_NOT_HDR', 'PRX_BAD_HDR', 'PRX_BAD_PROTO', 'PRX_ABORT'];
  const SSL: SslErrCode[] = ['SSL_HANDSHAKE', 'SSL_ABORT', 'SSL_CA_FAIL'];
  const SITES: CompleteFailSite[] = ['req', 'rep', 'txn', 'accept'];
  const TLS_READS: TlsRead[] = ['none', 'partialRecord', 'wholeRecords'];
  const SOURCES = (['monitor', 'denied'] as const).filter((s) => sourceClassReachable(config, s));
  const ACCEPT_SITES = SITES.filter((f) => acceptCanFailAt(config, f)); // no handshake: completes at accept
  const SETUP_SITES = (['session', 'fcntl', 'task', 'dataInit'] as const).filter((f) =>
    acceptCanFailAt(config, f),
  );

  const acceptEvent = (conn: number): ScriptEvent => {
    const r = rnd();
    if (r >= fail) return { type: 'ACCEPT', conn, dt: Math.floor(rnd() * 3) };
    const kind = Math.floor((r / fail) * 4);
    if (kind === 0) return { type: 'ACCEPT', conn, src: pick(SOURCES) };
    if (kind === 1) return { type: 'ACCEPT', conn, fail: pick(SETUP_SITES) };
    if (kind === 2 && ACCEPT_SITES.length > 0) return { type: 'ACCEPT', conn, fail: pick(ACCEPT_SITES) };
    if (kind === 2) return { type: 'ACCEPT', conn, dt: 0 };
    return { type: 'ACCEPT', conn, acceptError: true };
  };

  const connEvent = (conn: number): ScriptEvent | null => {
    const connection = gen.stateOf('connection', conn);
    const session = gen.stateOf('session', conn);
    const due = gen.due(conn);
    const dt = Math.floor(rnd() * 4);
    // A timer that is due fires before anything else can happen to its connection.
    if (due !== null && gen.t + dt >= due) return { type: 'TIMER_EXPIRE', conn };
    const r = rnd();
    if (connection === 'handshake.proxyHeader' || connection === 'handshake.tls') {
      const proxy = connection === 'handshake.proxyHeader';
      if (r < 1 - fail)
        return {
          type: proxy ? 'PROXY_HEADER_OK' : 'TLS_OK',
          conn,
          dt,
          fail: rnd() < fail / 2 ? pick(SITES) : 'none',
        };
      const k = Math.floor(((r - (1 - fail)) / fail) * 5);
      if (k === 0)
        return proxy
          ? { type: 'PROXY_HEADER_ERROR', conn, code: pick(PRX), dt }
          : { type: 'TLS_ERROR', conn, code: pick(SSL), dt };
      if (k === 1 || k === 2) {
        const type = k === 1 ? 'CLIENT_CLOSE' : 'CLIENT_RESET';
        return proxy ? { type, conn, dt } : { type, conn, dt, tlsRead: pick(TLS_READS) };
      }
      if (k === 3) return { type: 'TASK_WAKEUP', conn, dt };
      return due !== null ? { type: 'TIMER_EXPIRE', conn } : { type: 'TASK_WAKEUP', conn, dt };
    }
    if (session === 'initialized')
      // r is not used yet here: the draws stay those of the traces before SESSION_END had a param.
      return r < fail / 2
        ? { type: 'SESSION_END', conn, dt, writeTimeout: true }
        : { type: 'SESSION_END', conn, dt };
    return null;
  };

  let guard = scenario.connections * 40 + 1000;
  while ((offered < scenario.connections || live.length > 0) && guard-- > 0) {
    const options: (() => ScriptEvent | null)[] = [];
    if (offered < scenario.connections && gen.listener() === 'ready')
      options.push(() => acceptEvent(firstId + offered * stride));
    if (live.length > 0) {
      const i = Math.floor(rnd() * live.length);
      options.push(() => connEvent(live[i]!));
      options.push(() => connEvent(live[i]!));
    }
    for (const queue of ['global', 'frontend'] as const) {
      if (!gen.queueTasks[queue]) continue;
      // A task armed for a second or more fires after a rate period has started.
      const ms = gen.queueTaskMs[queue];
      const rates = gen.counters.connPerSec > 0 || gen.counters.feSessPerSec > 0;
      options.push(() =>
        rateLimited && ms >= 1000 && rates
          ? { type: 'RATE_PERIOD', dt: ms }
          : { type: 'QUEUE_TASK', queue, dt: 1 },
      );
    }
    if (rateLimited && rnd() < 0.05) options.push(() => ({ type: 'RATE_PERIOD', dt: 10 }));
    if (options.length === 0) {
      stuck = true;
      break;
    }
    const event = pick(options)();
    const acceptedBefore = gen.accepted;
    if (!event || !gen.apply(event)) continue;
    if (event.type === 'ACCEPT') {
      // An id the listener did not take (accept() failed, or a limit) is offered again later.
      if (gen.accepted > acceptedBefore) offered++;
      if (gen.stateOf('connection', event.conn) !== null) live.push(event.conn);
    } else if ('conn' in event && gen.stateOf('connection', event.conn) === null) {
      const at = live.indexOf(event.conn);
      live[at] = live[live.length - 1]!;
      live.pop();
    }
  }
  if (guard <= 0) stuck = true;
  return { inputs: gen.inputs, accepted: gen.accepted, finalT: gen.t, stuck };
}
