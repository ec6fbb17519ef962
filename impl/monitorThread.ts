/**
 * The live monitor of `proxy --monitor` on a worker thread: the proxy's thread only encodes what
 * the trace records, and the checker (impl/monitor.ts, Monitor: the TraceMonitor of
 * properties/traceCheck.ts) runs beside it, with its own heap and garbage collector. Checking a
 * step costs several times what the proxy spends on it (the composed machines run again, with the
 * model's memory, and every invariant): on the proxy's thread it would slow every accept down.
 *
 * The hand-over is a ring of numbers in shared memory (TraceRing), so that the proxy's thread posts
 * a message only for a line that interns a new value, and wakes the worker only when it sleeps (no
 * line came for a while). ThreadedMonitor is the trace's raw tap (impl/trace.ts, RawTraceTap): it
 * never builds a trace line. TraceEncoder writes each call as a few numbers (an opcode, the time,
 * the machine and the connection as one number, the event's type and params, ids) and publishes the
 * line by moving the ring's write index. Every object or string a line is built from is interned:
 * posted to the worker once, before the first line that names it, then named by its id. The
 * machines' effects and transition lists are the memoised objects of the composition
 * (machines/compose.ts), so they are interned by identity; strings (states, event types, param
 * names and values) by value. Event params are written as numbers, never interned as objects, so an
 * event costs no allocation. Past INTERN_LIMIT ids the tables start again: the encoder writes a
 * `reset` line and its next values belong to the next generation.
 *
 * The worker (impl/monitorWorker.ts) reads the ring every POLL_MS while lines come, and sleeps on
 * the write index (Atomics.waitAsync) when none do; the encoder wakes it (Atomics.notify) only
 * when it said it sleeps. TraceDecoder rebuilds each line with the functions that build the trace
 * file's lines (machines/traceFormat.ts), so the checker sees exactly what `--trace` would write;
 * a line that names a value whose message has not arrived yet waits for it. The worker moves the
 * ring's read index past what it checked: a proxy whose next line would overwrite a line not yet
 * checked stops monitoring (reported) rather than hold the trace without bound.
 *
 * Reports: the worker sends each report back as a message, which the proxy writes to stderr: a
 * divergence is reported a few milliseconds after its step instead of during it. finish() waits
 * until the worker has checked every line, and returns the summary line; then the worker ends.
 * The worker runs impl/monitorWorker.ts as the CLI runs its sources (bin/embryonic.js): from a
 * bundle bin/compile.js builds, or through tsx's loader with EMBRYONIC_COMPILE=0 or when the
 * bundle cannot be built (an error with EMBRYONIC_COMPILE=1).
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { MachineName, Origin, StepInputs, TransitionRecord } from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import { zeroCounters, type Counters } from '../machines/counters.ts';
import type { Effect } from '../machines/effects.ts';
import { countersLine, effectLine, inputLine, stepLine, type TraceLine } from '../machines/traceFormat.ts';
import { MONITOR_PREFIX } from './monitor.ts';
import type { RawTraceTap } from './trace.ts';

/**
 * Numbers the ring holds (a power of two): 2^21, 16 MiB of shared memory, about 3 s of trace at
 * 2,000 connections per second (53 lines and 360 numbers per connection of accept, PROXY header
 * and close, measured; about 410 before a line's machine and connection shared one number).
 */
export const RING_SLOTS = 1 << 21;

/** How long the worker waits between two reads of the ring while lines keep coming. */
export const POLL_MS = 5;

/** Interned values past which both sides start their tables again. */
export const INTERN_LIMIT = 100_000;

/** The most params an event may have: it bounds the numbers of one line (LINE_BOUND). */
export const MAX_PARAMS = 32;

/** How long finish() waits for the worker to check what is left before it gives up. */
const FINISH_TIMEOUT_MS = 30_000;

/** How long a sleeping worker waits before it looks at the ring anyway (a safety net). */
const SLEEP_MS = 1000;

/**
 * A bound on the numbers of one line and the reset line that may follow it: the longest line is
 * an input line with MAX_PARAMS params (opcode, time, place, type, count, three numbers per param,
 * the inputs' flag and three values: 9 + 3 × MAX_PARAMS), and a reset line is 2.
 */
const LINE_BOUND = 12 + 3 * MAX_PARAMS + 2;

/** Lines the decoder reads before it moves the read index, so that the encoder sees the room. */
const READ_PUBLISH_LINES = 64;

/** The opcodes of the ring. */
const OP = { header: 0, input: 1, step: 2, effect: 3, counters: 4, reset: 5 } as const;

/** The tags of an event param's value (the number after the tag is the value, or 0). */
const TAG = { number: 0, false: 1, true: 2, null: 3, string: 4 } as const;

/** An event whose type is -1 is the event of the previous line that carried one (its id). */
const SAME_EVENT = -1;

/** The control words before the ring's numbers (Int32, indices): positions wrap at 2^32. */
const CTL = { write: 0, read: 1, sleeping: 2 } as const;
const CTL_BYTES = 16;

const MACHINE_CODES: readonly (MachineName | null)[] = [null, 'listener', 'connection', 'session'];
const COUNTER_KEYS = Object.keys(zeroCounters()) as (keyof Counters)[];
const INPUT_KEYS = ['src', 'acceptFail', 'completeFail'] as const;

/** The code of a machine in the ring (its index in MACHINE_CODES). Pure. */
function machineCode(machine: MachineName | null): number {
  return machine === 'session' ? 3 : machine === 'connection' ? 2 : machine === 'listener' ? 1 : 0;
}

/** The largest connection id a place can hold exactly (4 × id + 3 stays a safe integer). */
const MAX_PLACED_CONN = 2 ** 51 - 1;

/**
 * The machine and the connection of a line as one number of the ring (its place): 4 × conn +
 * the machine's code, or −1 − the code for a line of no connection. Requires conn to be null or
 * an integer from 0 to MAX_PLACED_CONN (the proxy's ids count from 1). Pure.
 */
function placeOf(machine: MachineName | null, conn: number | null): number {
  return conn === null ? -1 - machineCode(machine) : conn * 4 + machineCode(machine);
}

/**
 * The ring in shared memory: control words (the write index, which the encoder moves after each
 * whole line; the read index, which the decoder moves past what it checked; the sleeping flag),
 * then the numbers. One encoder writes, one decoder reads; either side may be on either thread.
 */
export class TraceRing {
  readonly ctl: Int32Array;
  readonly data: Float64Array;
  readonly mask: number;

  /** Views `buffer` (made by create(), possibly on another thread) as a ring. */
  constructor(readonly buffer: SharedArrayBuffer) {
    this.ctl = new Int32Array(buffer, 0, CTL_BYTES / 4);
    this.data = new Float64Array(buffer, CTL_BYTES);
    this.mask = this.data.length - 1;
  }

  /** Returns an empty ring of `slots` numbers. Throws unless `slots` is a power of two ≥ 2 × LINE_BOUND. */
  static create(slots: number = RING_SLOTS): TraceRing {
    if (slots < 2 * LINE_BOUND || (slots & (slots - 1)) !== 0)
      throw new Error(
        `a trace ring holds a power of two of at least ${2 * LINE_BOUND} numbers, not ${slots}`,
      );
    return new TraceRing(new SharedArrayBuffer(CTL_BYTES + slots * 8));
  }
}

/** The live monitor's state, as `show monitor` prints it (ThreadedMonitor.status). */
export interface MonitorStatus {
  state: 'checking' | 'finishing' | 'stopped'; // lines are checked; the proxy stops; monitoring stopped
  lines: number; //                              lines handed over to the worker so far
  behind: { numbers: number; ms: number }; //    not checked yet: numbers of the ring, ms of trace
  why: string | null; //                         why monitoring stopped, if it did
}

/** A message from the proxy's thread to the worker. */
export type ToWorker =
  | { kind: 'values'; gen: number; values: unknown[] } // values interned since the last message, in id order
  | { kind: 'finish' };

/** A message from the worker to the proxy's thread. */
export type FromWorker =
  | { kind: 'report'; text: string } //  one report of the Monitor, to write as it is
  | { kind: 'stopped'; why: string } //  its checker stopped (reported already): lines are no longer wanted
  | { kind: 'summary'; text: string }; // finish()'s summary line; the worker then ends

/** What the worker needs to start: the configuration the proxy runs, the ring, where to load from. */
export interface WorkerData {
  config: ModelConfig;
  ring: SharedArrayBuffer;
  compile: string; // URL of bin/compile.js
  root: string; //    the repository's root directory
}

/**
 * Writes the raw trace into a ring (the proxy's side of the hand-over). Calls `sendValues` with
 * the values a line interns before that line is published, and `onFail` once, with why, when a
 * line does not fit (the decoder is behind) or cannot be encoded; it then writes nothing more.
 * Never throws on a well-typed call.
 */
export class TraceEncoder implements RawTraceTap {
  private w: number; //                  where the next number goes (an int32 position)
  private gen = 0; //                    the generation of the tables (reset lines count them)
  private nextId = 0;
  private fresh: unknown[] = [];
  private failed = false;
  private t = 0; //                      the time of the line being written
  /** Lines published so far. */
  lines = 0;
  private lastEvent: object | null = null; // the event the previous line with an event carried
  private readonly byIdentity = new Map<object, number>();
  private readonly byString = new Map<string, number>();
  private readonly data: Float64Array;
  private readonly mask: number;
  private readonly ctl: Int32Array;

  /** `internLimit`: interned values past which the tables start again (INTERN_LIMIT; tests use less). */
  constructor(
    private readonly ring: TraceRing,
    private readonly sendValues: (gen: number, values: unknown[]) => void,
    private readonly onFail: (why: string) => void,
    private readonly internLimit = INTERN_LIMIT,
  ) {
    this.data = ring.data;
    this.mask = ring.mask;
    this.ctl = ring.ctl;
    this.w = Atomics.load(this.ctl, CTL.write);
  }

  header(line: TraceLine): void {
    if (!this.begin(line.t)) return;
    this.put(OP.header);
    this.put(line.t);
    this.put(this.internObject(line));
    this.end();
  }

  input(
    t: number,
    machine: MachineName | null,
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs?: Partial<StepInputs>,
  ): void {
    if (!this.begin(t)) return;
    this.put(OP.input);
    this.put(t);
    if (!this.putPlace(machine, conn)) return;
    if (!this.putEvent(event)) return;
    if (inputs === undefined) this.put(-1);
    else {
      this.put(1);
      // Each key: -1 absent, -2 present but undefined, else its value's id.
      for (const k of INPUT_KEYS) {
        const v = inputs[k];
        this.put(v !== undefined ? this.internString(v) : k in inputs ? -2 : -1);
      }
    }
    this.end();
  }

  step(t: number, record: TransitionRecord): void {
    if (!this.begin(t)) return;
    this.put(OP.step);
    this.put(t);
    if (!this.putPlace(record.machine, record.conn)) return;
    if (!this.putEvent(record.event)) return;
    this.put(this.internString(record.from));
    this.put(this.internString(record.to));
    this.put(this.internObject(record.transitions));
    this.end();
  }

  effect(t: number, effect: Effect, origin: Origin): void {
    if (!this.begin(t)) return;
    this.put(OP.effect);
    this.put(t);
    if (!this.putPlace(origin.machine, origin.conn)) return;
    this.put(this.internObject(effect));
    this.end();
  }

  counters(t: number, counters: Counters): void {
    if (!this.begin(t)) return;
    this.put(OP.counters);
    this.put(t);
    for (const k of COUNTER_KEYS) this.put(counters[k]);
    this.end();
  }

  /**
   * How far the decoder is behind: the numbers published and not read yet, and how much older
   * (in trace ms) the oldest of those lines is than the last line written; zeros when it has read
   * everything. Reads the ring's indices only.
   */
  backlog(): { numbers: number; ms: number } {
    const read = Atomics.load(this.ctl, CTL.read);
    const numbers = (Atomics.load(this.ctl, CTL.write) - read) >>> 0;
    if (numbers === 0) return { numbers, ms: 0 };
    return { numbers, ms: Math.round((this.t - this.timeAt(read)) * 1000) / 1000 };
  }

  /** The time of the line at position <pos> (a line's start: its opcode, then its time). */
  private timeAt(pos: number): number {
    return this.data[(pos + 1) & this.mask]!;
  }

  /** True if a line of up to LINE_BOUND numbers fits; else fails (the decoder is behind). */
  private begin(t: number): boolean {
    if (this.failed) return false;
    this.t = t;
    const read = Atomics.load(this.ctl, CTL.read);
    if (((this.w - read) >>> 0) + LINE_BOUND <= this.data.length) return true;
    // The line at the read index is the oldest not yet checked: its time says how far behind.
    this.fail(
      `the checker fell ${Math.round(t - this.timeAt(read))} ms of trace behind the proxy (the ring holds ${this.data.length} numbers)`,
    );
    return false;
  }

  /** Publishes the line written since begin(), after posting the values it interned. */
  private end(): void {
    if (this.fresh.length > 0) {
      const values = this.fresh;
      this.fresh = [];
      try {
        this.sendValues(this.gen, values);
      } catch (err) {
        // A value the structured clone refuses: the worker could never read this line.
        this.fail(`a trace value could not be posted to the worker: ${(err as Error).message}`);
        return;
      }
    }
    if (this.nextId > this.internLimit) this.restart();
    this.lines++;
    Atomics.store(this.ctl, CTL.write, this.w);
    if (Atomics.load(this.ctl, CTL.sleeping) !== 0) {
      Atomics.store(this.ctl, CTL.sleeping, 0);
      Atomics.notify(this.ctl, CTL.write);
    }
  }

  /**
   * Writes a reset line, with the time of the line it follows (LINE_BOUND keeps room for it), and
   * starts the tables again.
   */
  private restart(): void {
    this.put(OP.reset);
    this.put(this.t);
    this.byIdentity.clear();
    this.byString.clear();
    this.nextId = 0;
    this.gen++;
  }

  private fail(why: string): void {
    this.failed = true;
    this.onFail(why);
  }

  private put(x: number): void {
    this.data[this.w & this.mask] = x;
    this.w = (this.w + 1) | 0;
  }

  /** Writes the place of a line (placeOf); false (and failed) for a connection id it cannot hold. */
  private putPlace(machine: MachineName | null, conn: number | null): boolean {
    if (conn !== null && !(Number.isInteger(conn) && conn >= 0 && conn <= MAX_PLACED_CONN)) {
      this.fail(`connection id ${conn} cannot be written in the ring (an integer from 0 to 2^51 - 1)`);
      return false;
    }
    this.put(placeOf(machine, conn));
    return true;
  }

  /**
   * Writes `event`: SAME_EVENT if it is the event of the previous line that carried one (an
   * input's event object comes back in the machine step it causes; events are never changed once
   * dispatched), else its type's id, its number of params, and per param its name's id and its
   * value (a tag, then the number, the string's id, or 0). A value that is not a scalar is written
   * as its String(), which is what the trace line would hold. False (and failed) if the event has
   * more than MAX_PARAMS params.
   */
  private putEvent(event: { type: string } & Record<string, unknown>): boolean {
    if (event === this.lastEvent) {
      this.put(SAME_EVENT);
      return true;
    }
    this.put(this.internString(event.type));
    const countAt = this.w;
    this.put(0);
    let n = 0;
    for (const k in event) {
      if (k === 'type') continue;
      if (++n > MAX_PARAMS) {
        this.fail(`event ${event.type} has more than ${MAX_PARAMS} params`);
        return false;
      }
      this.put(this.internString(k));
      const v = event[k];
      if (typeof v === 'number') {
        this.put(TAG.number);
        this.put(v);
      } else if (typeof v === 'string') {
        this.put(TAG.string);
        this.put(this.internString(v));
      } else if (typeof v === 'boolean') {
        this.put(v ? TAG.true : TAG.false);
        this.put(0);
      } else if (v === null) {
        this.put(TAG.null);
        this.put(0);
      } else {
        this.put(TAG.string);
        this.put(this.internString(String(v)));
      }
    }
    this.data[countAt & this.mask] = n;
    this.lastEvent = event;
    return true;
  }

  private intern(value: unknown): number {
    this.fresh.push(value);
    return this.nextId++;
  }

  private internObject(o: object): number {
    const id = this.byIdentity.get(o);
    if (id !== undefined) return id;
    const fresh = this.intern(o);
    this.byIdentity.set(o, fresh);
    return fresh;
  }

  private internString(s: string): number {
    const id = this.byString.get(s);
    if (id !== undefined) return id;
    const fresh = this.intern(s);
    this.byString.set(s, fresh);
    return fresh;
  }
}

/** What decodeLine returns for a line that names a value not received yet. */
const WAITING = Symbol('waiting');

/**
 * Reads the ring (the worker's side of the hand-over): rebuilds each published line with the
 * builders of the trace file's lines, using the values received with values(). Requires the
 * values of one encoder, each message once, in order.
 */
export class TraceDecoder {
  private r: number; // the position of the next line to read (an int32 position)
  private i = 0; //     the cursor within the line being read
  private gen = 0;
  private readonly tables = new Map<number, unknown[]>(); // values by generation, in id order
  private lastEvent: ({ type: string } & Record<string, unknown>) | null = null;
  private readonly data: Float64Array;
  private readonly mask: number;
  private readonly ctl: Int32Array;
  /** True when the next line names a value whose message has not arrived: values() clears it. */
  waiting = false;

  constructor(ring: TraceRing) {
    this.data = ring.data;
    this.mask = ring.mask;
    this.ctl = ring.ctl;
    this.r = Atomics.load(this.ctl, CTL.read);
  }

  /** Takes the values of generation `gen` the encoder posted (a ToWorker 'values' message). */
  values(gen: number, values: readonly unknown[]): void {
    let table = this.tables.get(gen);
    if (table === undefined) {
      table = [];
      this.tables.set(gen, table);
    }
    for (const v of values) table.push(v);
    this.waiting = false;
  }

  /**
   * Hands every published line it can rebuild to `onLine`, in order, and moves the read index past
   * them (every READ_PUBLISH_LINES lines, and at the end: a long drain frees room as it goes).
   * Stops early at a line that names a value not received yet (`waiting`). Returns how many lines
   * it handed over.
   */
  drain(onLine: (line: TraceLine) => void): number {
    const end = Atomics.load(this.ctl, CTL.write);
    let lines = 0;
    while (this.r !== end) {
      const line = this.decodeLine();
      if (line === WAITING) {
        this.waiting = true;
        break;
      }
      if (line !== null) {
        onLine(line);
        if (++lines % READ_PUBLISH_LINES === 0) Atomics.store(this.ctl, CTL.read, this.r);
      }
    }
    Atomics.store(this.ctl, CTL.read, this.r);
    return lines;
  }

  /**
   * Says the decoder sleeps until the encoder publishes past what it read. Returns null if lines
   * were published meanwhile (read them now), else a promise settled when the encoder wakes it or
   * after SLEEP_MS.
   */
  sleep(): Promise<unknown> | null {
    Atomics.store(this.ctl, CTL.sleeping, 1);
    const seen = Atomics.load(this.ctl, CTL.write);
    if (seen !== this.r) {
      Atomics.store(this.ctl, CTL.sleeping, 0);
      return null;
    }
    const waited = Atomics.waitAsync(this.ctl, CTL.write, seen, SLEEP_MS);
    return waited.async ? waited.value : null;
  }

  /** The number at the cursor; moves the cursor past it. */
  private next(): number {
    const x = this.data[this.i & this.mask]!;
    this.i = (this.i + 1) | 0;
    return x;
  }

  /**
   * Rebuilds the line at the read index and moves past it; null for a reset line; WAITING, without
   * moving, for a line that names a value not received yet.
   */
  private decodeLine(): TraceLine | null | typeof WAITING {
    const table = this.tables.get(this.gen) ?? NO_VALUES;
    this.i = this.r;
    const op = this.next();
    const t = this.next();
    let line: TraceLine | null;
    switch (op) {
      case OP.header: {
        const id = this.next();
        if (id >= table.length) return WAITING;
        line = table[id] as TraceLine;
        break;
      }
      case OP.input: {
        const place = this.next();
        const machine = machineOf(place);
        const c = connOf(place);
        const event = this.decodeEvent(table);
        if (event === WAITING) return WAITING;
        let inputs: Partial<StepInputs> | undefined;
        if (this.next() >= 0) {
          inputs = {};
          for (const k of INPUT_KEYS) {
            const v = this.next();
            if (v >= table.length) return WAITING;
            if (v !== -1) (inputs as Record<string, unknown>)[k] = v === -2 ? undefined : table[v];
          }
        }
        line = inputLine(t, machine, c, event, inputs);
        this.lastEvent = event;
        break;
      }
      case OP.step: {
        const place = this.next();
        const machine = machineOf(place) as MachineName;
        const c = connOf(place);
        const event = this.decodeEvent(table);
        if (event === WAITING) return WAITING;
        const from = this.next();
        const to = this.next();
        const transitions = this.next();
        if (Math.max(from, to, transitions) >= table.length) return WAITING;
        line = stepLine(t, {
          machine,
          conn: c,
          event,
          from: table[from] as string,
          to: table[to] as string,
          transitions: table[transitions] as string[],
          effects: [],
        });
        this.lastEvent = event;
        break;
      }
      case OP.effect: {
        const place = this.next();
        const machine = machineOf(place) as MachineName;
        const c = connOf(place);
        const id = this.next();
        if (id >= table.length) return WAITING;
        line = effectLine(t, table[id] as Effect, { machine, conn: c });
        break;
      }
      case OP.counters: {
        const counters = {} as Counters;
        for (const k of COUNTER_KEYS) counters[k] = this.next();
        line = countersLine(t, counters);
        break;
      }
      case OP.reset:
        this.tables.delete(this.gen);
        this.gen++;
        line = null;
        break;
      default:
        throw new Error(`monitor ring: unknown opcode ${op} at position ${this.r}`);
    }
    this.r = this.i;
    return line;
  }

  /** Rebuilds the event the encoder's putEvent wrote; WAITING if it names a value not received. */
  private decodeEvent(
    table: readonly unknown[],
  ): ({ type: string } & Record<string, unknown>) | typeof WAITING {
    const type = this.next();
    if (type === SAME_EVENT) return this.lastEvent!;
    if (type >= table.length) return WAITING;
    const event: { type: string } & Record<string, unknown> = { type: table[type] as string };
    const n = this.next();
    for (let p = 0; p < n; p++) {
      const key = this.next();
      const tag = this.next();
      const x = this.next();
      if (key >= table.length || (tag === TAG.string && x >= table.length)) return WAITING;
      event[table[key] as string] =
        tag === TAG.number ? x : tag === TAG.string ? table[x] : tag === TAG.null ? null : tag === TAG.true;
    }
    return event;
  }
}

/** The connection a place (placeOf) names: null for a line of no connection. Pure. */
function connOf(place: number): number | null {
  return place < 0 ? null : (place - (place % 4)) / 4;
}

/** The machine a place (placeOf) names. Pure. */
function machineOf(place: number): MachineName | null {
  return MACHINE_CODES[place < 0 ? -1 - place : place % 4]!;
}

const NO_VALUES: readonly unknown[] = [];

/**
 * A live monitor whose checking runs on a worker thread. It is the trace's raw tap (give it to the
 * Trace, impl/trace.ts, as `raw`). Reports through `report`, on the proxy's thread, one call per
 * message. Owns its worker and its ring: finish() ends the worker. Never throws from the tap's calls.
 */
export class ThreadedMonitor implements RawTraceTap {
  private readonly encoder: TraceEncoder;
  private readonly worker: Worker;
  private summary: Promise<string> | null = null;
  private resolveSummary: ((text: string) => void) | null = null;
  private failure: string | null = null; //        why monitoring stopped, if it did
  private checkerStopped: string | null = null; // why the worker's checker stopped, if it did

  /** Starts the worker for `config`. `options.ringSlots`: the ring's size (RING_SLOTS; tests use less). */
  constructor(
    config: ModelConfig,
    private readonly report: (text: string) => void,
    options: { ringSlots?: number } = {},
  ) {
    const ring = TraceRing.create(options.ringSlots ?? RING_SLOTS);
    this.encoder = new TraceEncoder(ring, this.valuesOut.bind(this), this.giveUp.bind(this));
    const data: WorkerData = {
      config,
      ring: ring.buffer,
      compile: new URL('../bin/compile.js', import.meta.url).href,
      root: fileURLToPath(new URL('..', import.meta.url)),
    };
    this.worker = new Worker(BOOTSTRAP, { eval: true, workerData: data });
    this.worker.on('message', this.workerOnMessage.bind(this));
    this.worker.on('error', this.workerOnError.bind(this));
  }

  header(line: TraceLine): void {
    if (this.taking) this.encoder.header(line);
  }

  input(
    t: number,
    machine: MachineName | null,
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs?: Partial<StepInputs>,
  ): void {
    if (this.taking) this.encoder.input(t, machine, conn, event, inputs);
  }

  step(t: number, record: TransitionRecord): void {
    if (this.taking) this.encoder.step(t, record);
  }

  effect(t: number, effect: Effect, origin: Origin): void {
    if (this.taking) this.encoder.effect(t, effect, origin);
  }

  counters(t: number, counters: Counters): void {
    if (this.taking) this.encoder.counters(t, counters);
  }

  /**
   * Ends the check (the proxy stops): waits until the worker has checked every line and what the
   * last step still owed, and resolves with the summary line (reports come before it). The worker
   * is ended afterwards. Idempotent; never rejects.
   */
  finish(): Promise<string> {
    this.summary ??= this.finishOnce();
    return this.summary;
  }

  /**
   * What `show monitor` says (impl/stats.ts): whether lines are being checked, how many the proxy
   * has handed over, and how far behind the checker is (TraceEncoder.backlog). Reads only.
   */
  status(): MonitorStatus {
    return {
      state:
        this.failure !== null || this.checkerStopped !== null
          ? 'stopped'
          : this.taking
            ? 'checking'
            : 'finishing',
      lines: this.encoder.lines,
      behind: this.encoder.backlog(),
      why: this.failure ?? this.checkerStopped,
    };
  }

  /** finish() waited too long: the summary says so. */
  overdue(): void {
    this.resolveSummary?.(
      `${MONITOR_PREFIX} stopped early (the worker did not finish within ${FINISH_TIMEOUT_MS} ms)`,
    );
  }

  private async finishOnce(): Promise<string> {
    if (this.failure !== null) return `${MONITOR_PREFIX} stopped early (${this.failure})`;
    const done = new Promise<string>((resolve) => {
      this.resolveSummary = resolve;
    });
    this.worker.postMessage({ kind: 'finish' } satisfies ToWorker);
    const timer = setTimeout(monitorOnFinishOverdue, FINISH_TIMEOUT_MS, this);
    try {
      return await done;
    } finally {
      clearTimeout(timer);
      await this.worker.terminate();
    }
  }

  /** True while lines are encoded: until finish(), a failure, or the worker's checker stopping. */
  private get taking(): boolean {
    return this.summary === null && this.failure === null && this.checkerStopped === null;
  }

  /** Posts values the encoder interned (before the line that names them is published). */
  private valuesOut(gen: number, values: unknown[]): void {
    this.worker.postMessage({ kind: 'values', gen, values } satisfies ToWorker);
  }

  private workerOnMessage(m: FromWorker): void {
    if (m.kind === 'report') this.report(m.text);
    else if (m.kind === 'stopped') {
      // The checker reported why; the worker lives on to give its summary at finish().
      this.checkerStopped = m.why;
    } else this.resolveSummary?.(m.text);
  }

  private workerOnError(err: Error): void {
    this.giveUp(`internal error in the monitor's worker: ${err.message}`);
  }

  /** Stops monitoring for `why`: reports it, ends the worker; the proxy serves on. */
  private giveUp(why: string): void {
    if (this.failure !== null) return;
    this.failure = why;
    this.report(`${MONITOR_PREFIX} ${why}; monitoring stops, the proxy serves on`);
    this.resolveSummary?.(`${MONITOR_PREFIX} stopped early (${why})`);
    void this.worker.terminate();
  }
}

function monitorOnFinishOverdue(monitor: ThreadedMonitor): void {
  monitor.overdue();
}

/**
 * The worker's first code: loads impl/monitorWorker.ts as bin/embryonic.js loads the CLI
 * (bin/compile.js runnableEntry): from its bundle, or, with EMBRYONIC_COMPILE=0 or when the bundle
 * cannot be built (said in a line on stderr), from the source with tsx's loader registered on the
 * worker's thread; EMBRYONIC_COMPILE=1 makes a failed build the worker's error. It runs as a
 * CommonJS script, as `eval` workers do, or as an ES module when the worker inherits
 * --input-type=module (a proxy started by `node --input-type=module -e`, as the benchmarks start
 * it): so it uses only dynamic import(), which both have, and no require.
 */
const BOOTSTRAP = `
import('node:worker_threads')
  .then(async ({ workerData: d }) => {
    const { runnableEntry } = await import(d.compile);
    const { url } = await runnableEntry(d.root, 'impl/monitorWorker.ts',
      'embryonic: monitor: running the worker from its TypeScript sources');
    return import(url);
  })
  .catch((err) => { setImmediate(() => { throw err; }); });
`;
