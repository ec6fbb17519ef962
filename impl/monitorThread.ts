/**
 * The live monitor of `proxy --monitor` on a worker thread: the proxy's thread only encodes what
 * the trace records, and the checker (impl/monitor.ts, Monitor: the TraceMonitor of
 * properties/traceCheck.ts) runs beside it, with its own heap and garbage collector. Checking a
 * step costs several times what the proxy spends on it (the composed machines run again, with the
 * model's memory, and every invariant): on the proxy's thread it would slow every accept down.
 *
 * The hand-over. ThreadedMonitor is the trace's raw tap (impl/trace.ts, RawTraceTap): it never
 * builds a trace line. Each call becomes a few numbers in a Float64Array (an opcode, the time, the
 * machine, the connection, ids), and every object or string the line is built from is interned:
 * sent once, then named by its id. The machines' effects and transition lists are the memoised
 * objects of the composition (machines/compose.ts), so they are interned by identity; events and
 * step inputs, built afresh by the proxy, by a key of their fields; states by value. The lines of
 * BATCH_DELAY_MS are posted together (a message costs several microseconds whatever its size), or
 * at once when BATCH_SLOTS numbers are waiting. The worker
 * (impl/monitorWorker.ts, decodeBatch) rebuilds each line with the functions that build the trace
 * file's lines (machines/traceFormat.ts), so the checker sees exactly what `--trace` would write.
 * Past INTERN_LIMIT ids both sides start their tables again (a batch flagged `reset`).
 *
 * Reports: the worker checks the lines in order and sends each report back as a message, which
 * the proxy writes to stderr: a divergence is reported a few milliseconds after its step instead
 * of during it. finish() posts what is left, waits until the worker has checked every line, and
 * returns the summary line; then the worker ends. A worker that falls MAX_PENDING_BATCHES behind
 * is ended and monitoring stops (reported), rather than queue the trace without bound. The worker
 * loads TypeScript through tsx, as the CLI does (bin/embryonic.js).
 */
import { Worker } from 'node:worker_threads';
import {
  paramsKey,
  type MachineName,
  type Origin,
  type StepInputs,
  type TransitionRecord,
} from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import { zeroCounters, type Counters } from '../machines/counters.ts';
import type { Effect } from '../machines/effects.ts';
import { countersLine, effectLine, inputLine, stepLine, type TraceLine } from '../machines/traceFormat.ts';
import { MONITOR_PREFIX } from './monitor.ts';
import type { RawTraceTap } from './trace.ts';

/** Numbers past which a batch is posted at once. */
export const BATCH_SLOTS = 8192;

/** How long a line may wait before its batch is posted. */
export const BATCH_DELAY_MS = 5;

/** Interned values past which both sides start their tables again. */
export const INTERN_LIMIT = 100_000;

/**
 * Batches posted and not yet checked past which the monitor gives up (about 2 s of lines at
 * BATCH_DELAY_MS): a checker that cannot keep up would otherwise queue the proxy's trace in memory
 * without bound.
 */
export const MAX_PENDING_BATCHES = 400;

/** How long finish() waits for the worker to check what is left before it gives up. */
const FINISH_TIMEOUT_MS = 30_000;

/** The first size of a batch's array; it doubles as needed. */
const FIRST_SLOTS = 1024;

/** The opcodes of a batch. */
const OP = { header: 0, input: 1, step: 2, effect: 3, counters: 4 } as const;

const MACHINE_CODES: readonly (MachineName | null)[] = [null, 'listener', 'connection', 'session'];
const COUNTER_KEYS = Object.keys(zeroCounters()) as (keyof Counters)[];

/** The code of a machine in a batch (its index in MACHINE_CODES). Pure. */
function machineCode(machine: MachineName | null): number {
  return machine === 'session' ? 3 : machine === 'connection' ? 2 : machine === 'listener' ? 1 : 0;
}

/** One batch: the numbers, and the values interned since the previous batch, in id order. */
export interface Batch {
  reset: boolean; //   the tables start again before this batch's values (ids from 0)
  nums: Float64Array;
  fresh: unknown[];
}

/** A message from the proxy's thread to the worker. */
export type ToWorker = { kind: 'batch'; batch: Batch } | { kind: 'finish' };

/** A message from the worker to the proxy's thread. */
export type FromWorker =
  | { kind: 'report'; text: string } //  one report of the Monitor, to write as it is
  | { kind: 'checked' } //               one batch is checked
  | { kind: 'summary'; text: string }; // finish()'s summary line; the worker then ends

/** What the worker needs to start: the configuration the proxy runs, and where to load from. */
export interface WorkerData {
  config: ModelConfig;
  entry: string; // URL of impl/monitorWorker.ts
  tsx: string; //   URL of tsx's ESM API
}

/**
 * Encodes the raw trace into batches (the proxy's side of the hand-over). Owns its buffers until
 * take() hands a batch over. Never throws on a well-typed call.
 */
export class TraceEncoder implements RawTraceTap {
  /** `internLimit`: interned values past which the tables start again (INTERN_LIMIT; tests use less). */
  constructor(private readonly internLimit = INTERN_LIMIT) {}

  private nums = new Float64Array(FIRST_SLOTS);
  private pos = 0;
  private fresh: unknown[] = [];
  private nextId = 0;
  private reset = false;
  private readonly byIdentity = new Map<object, number>();
  private readonly byKey = new Map<string, number>();
  private readonly byState = new Map<string, number>(); // state values, keyed by themselves
  private lastEvent: object | null = null; //              the event internEvent saw last, and its id
  private lastEventId = -1;

  /** Numbers waiting. */
  get size(): number {
    return this.pos;
  }

  header(line: TraceLine): void {
    this.push2(OP.header, line.t);
    this.push(this.internObject(line));
  }

  input(
    t: number,
    machine: MachineName | null,
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs?: Partial<StepInputs>,
  ): void {
    this.push2(OP.input, t);
    this.push2(machineCode(machine), conn ?? -1);
    this.push2(this.internEvent(event), inputs === undefined ? -1 : this.internInputs(inputs));
  }

  step(t: number, record: TransitionRecord): void {
    this.push2(OP.step, t);
    this.push2(machineCode(record.machine), record.conn ?? -1);
    this.push2(this.internEvent(record.event), this.internState(record.from));
    this.push2(this.internState(record.to), this.internObject(record.transitions));
  }

  effect(t: number, effect: Effect, origin: Origin): void {
    this.push2(OP.effect, t);
    this.push2(machineCode(origin.machine), origin.conn ?? -1);
    this.push(this.internObject(effect));
  }

  counters(t: number, counters: Counters): void {
    this.push2(OP.counters, t);
    for (const k of COUNTER_KEYS) this.push(counters[k]);
  }

  /** Hands the waiting batch over (null if nothing waits); the encoder starts a new one. */
  take(): Batch | null {
    if (this.pos === 0) return null;
    const batch: Batch = { reset: this.reset, nums: this.nums.slice(0, this.pos), fresh: this.fresh };
    this.pos = 0;
    this.fresh = [];
    this.reset = this.nextId > this.internLimit;
    if (this.reset) {
      this.byIdentity.clear();
      this.byKey.clear();
      this.byState.clear();
      this.lastEvent = null;
      this.nextId = 0;
    }
    return batch;
  }

  private push(x: number): void {
    if (this.pos === this.nums.length) {
      const grown = new Float64Array(this.nums.length * 2);
      grown.set(this.nums);
      this.nums = grown;
    }
    this.nums[this.pos++] = x;
  }

  private push2(a: number, b: number): void {
    this.push(a);
    this.push(b);
  }

  private intern(value: unknown): number {
    this.fresh.push(value);
    return this.nextId++;
  }

  /** Returns the id of `value`, found in `ids` under `key`, or interned now and filed there. */
  private internIn<K>(ids: Map<K, number>, key: K, value: unknown): number {
    const id = ids.get(key);
    if (id !== undefined) return id;
    const fresh = this.intern(value);
    ids.set(key, fresh);
    return fresh;
  }

  private internObject(o: object): number {
    return this.internIn(this.byIdentity, o, o);
  }

  private internState(state: string): number {
    return this.internIn(this.byState, state, state);
  }

  private internKey(key: string, value: unknown): number {
    return this.internIn(this.byKey, key, value);
  }

  /**
   * Interns an event by its type and params (paramsKey): two keys are equal only for equal events.
   * The event last interned is remembered by identity: an input's event object comes back in the
   * machine step it causes, and events are never changed once dispatched, so the same object has
   * the same key. The copy filed is made only for a new key.
   */
  private internEvent(event: { type: string } & Record<string, unknown>): number {
    if (event === this.lastEvent) return this.lastEventId;
    const key = `e${event.type}${paramsKey(event)}`;
    const id = this.byKey.get(key) ?? this.internKey(key, { ...event });
    this.lastEvent = event;
    this.lastEventId = id;
    return id;
  }

  private internInputs(inputs: Partial<StepInputs>): number {
    const key = `i${inputs.src}|${inputs.acceptFail}|${inputs.completeFail}|${Object.keys(inputs).length}`;
    return this.byKey.get(key) ?? this.internKey(key, { ...inputs });
  }
}

/**
 * Rebuilds the trace lines of `batch` with the builders of the trace file's lines, using and
 * extending `table` (the interned values by id; emptied by a batch flagged `reset`). Returns them in order.
 * Requires the batches of one encoder, each once, in order.
 */
export function decodeBatch(batch: Batch, table: unknown[]): TraceLine[] {
  // The values interned by this batch follow those of earlier batches, since the last reset.
  if (batch.reset) table.length = 0;
  for (const v of batch.fresh) table.push(v);
  const out: TraceLine[] = [];
  const n = batch.nums;
  let i = 0;
  const conn = (x: number): number | null => (x < 0 ? null : x);
  while (i < n.length) {
    const op = n[i++]!;
    const t = n[i++]!;
    switch (op) {
      case OP.header:
        out.push(table[n[i++]!] as TraceLine);
        break;
      case OP.input: {
        const machine = MACHINE_CODES[n[i++]!]!;
        const c = conn(n[i++]!);
        const event = table[n[i++]!] as { type: string } & Record<string, unknown>;
        const inputs = n[i++]!;
        out.push(
          inputLine(t, machine, c, event, inputs < 0 ? undefined : (table[inputs] as Partial<StepInputs>)),
        );
        break;
      }
      case OP.step: {
        const machine = MACHINE_CODES[n[i++]!] as MachineName;
        const c = conn(n[i++]!);
        const event = table[n[i++]!] as TransitionRecord['event'];
        const from = table[n[i++]!] as string;
        const to = table[n[i++]!] as string;
        const transitions = table[n[i++]!] as string[];
        out.push(stepLine(t, { machine, conn: c, event, from, to, transitions, effects: [] }));
        break;
      }
      case OP.effect: {
        const machine = MACHINE_CODES[n[i++]!] as MachineName;
        const c = conn(n[i++]!);
        out.push(effectLine(t, table[n[i++]!] as Effect, { machine, conn: c }));
        break;
      }
      case OP.counters: {
        const counters = {} as Counters;
        for (const k of COUNTER_KEYS) counters[k] = n[i++]!;
        out.push(countersLine(t, counters));
        break;
      }
      default:
        throw new Error(`monitor batch: unknown opcode ${op} at ${i - 2}`);
    }
  }
  return out;
}

/**
 * A live monitor whose checking runs on a worker thread. It is the trace's raw tap (give it to the
 * Trace, impl/trace.ts, as `raw`). Reports through `report`, on the proxy's thread, one call per
 * message. Owns its worker: finish() ends it. Never throws from the tap's calls.
 */
export class ThreadedMonitor implements RawTraceTap {
  private readonly encoder = new TraceEncoder();
  private flushScheduled = false;
  private readonly worker: Worker;
  private summary: Promise<string> | null = null;
  private resolveSummary: ((text: string) => void) | null = null;
  private failure: string | null = null; // why the worker is gone, if it is
  private pending = 0; //                    batches posted and not yet checked
  private readonly maxPending: number;

  /**
   * Starts the worker for `config`. `options.maxPendingBatches` (MAX_PENDING_BATCHES; tests use
   * less): batches the worker may be behind before monitoring stops.
   */
  constructor(
    config: ModelConfig,
    private readonly report: (text: string) => void,
    options: { maxPendingBatches?: number } = {},
  ) {
    this.maxPending = options.maxPendingBatches ?? MAX_PENDING_BATCHES;
    const data: WorkerData = {
      config,
      entry: new URL('./monitorWorker.ts', import.meta.url).href,
      tsx: import.meta.resolve('tsx/esm/api'),
    };
    this.worker = new Worker(BOOTSTRAP, { eval: true, workerData: data });
    this.worker.on('message', this.workerOnMessage.bind(this));
    this.worker.on('error', this.workerOnError.bind(this));
  }

  header(line: TraceLine): void {
    if (this.taking()) this.encoder.header(line);
  }

  input(
    t: number,
    machine: MachineName | null,
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs?: Partial<StepInputs>,
  ): void {
    if (this.taking()) this.encoder.input(t, machine, conn, event, inputs);
  }

  step(t: number, record: TransitionRecord): void {
    if (this.taking()) this.encoder.step(t, record);
  }

  effect(t: number, effect: Effect, origin: Origin): void {
    if (this.taking()) this.encoder.effect(t, effect, origin);
  }

  counters(t: number, counters: Counters): void {
    if (this.taking()) this.encoder.counters(t, counters);
  }

  /** Posts the waiting batch to the worker. */
  flush(): void {
    this.flushScheduled = false;
    if (this.failure !== null) return;
    const batch = this.encoder.take();
    if (batch === null) return;
    if (this.pending >= this.maxPending) {
      this.giveUp(
        `the checker fell ${this.pending} batch${this.pending === 1 ? '' : 'es'} (about ${this.pending * BATCH_DELAY_MS} ms of trace) behind the proxy`,
      );
      return;
    }
    this.pending++;
    // The numbers' buffer is transferred, not copied: the batch owns it (take() sliced it out of
    // the encoder's array). Posting a batch of 4096 numbers took 24 us copied and 7 transferred.
    this.worker.postMessage({ kind: 'batch', batch } satisfies ToWorker, [batch.nums.buffer as ArrayBuffer]);
  }

  /**
   * Ends the check (the proxy stops): posts what is left, waits until the worker has checked every
   * line and what the last step still owed, and resolves with the summary line (reports come
   * before it). The worker is ended afterwards. Idempotent; never rejects.
   */
  finish(): Promise<string> {
    this.summary ??= this.finishOnce();
    return this.summary;
  }

  /** finish() waited too long: the summary says so. */
  overdue(): void {
    this.resolveSummary?.(
      `${MONITOR_PREFIX} stopped early (the worker did not finish within ${FINISH_TIMEOUT_MS} ms)`,
    );
  }

  /** True while lines are taken: schedules the batch's post, or posts a full batch now. */
  private taking(): boolean {
    if (this.failure !== null || this.summary !== null) return false;
    if (this.encoder.size >= BATCH_SLOTS) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setTimeout(monitorOnBatchDue, BATCH_DELAY_MS, this).unref();
    }
    return true;
  }

  private async finishOnce(): Promise<string> {
    this.flush();
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

  private workerOnMessage(m: FromWorker): void {
    if (m.kind === 'report') this.report(m.text);
    else if (m.kind === 'checked') this.pending--;
    else this.resolveSummary?.(m.text);
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

function monitorOnBatchDue(monitor: ThreadedMonitor): void {
  monitor.flush();
}

function monitorOnFinishOverdue(monitor: ThreadedMonitor): void {
  monitor.overdue();
}

/**
 * The worker's first code: registers tsx's loader on the worker's thread (loader hooks are per
 * thread), then loads impl/monitorWorker.ts. It runs as a CommonJS script, as `eval` workers do,
 * or as an ES module when the worker inherits --input-type=module (a proxy started by `node
 * --input-type=module -e`, as the benchmarks start it): so it uses only dynamic import(), which
 * both have, and no require.
 */
const BOOTSTRAP = `
import('node:worker_threads')
  .then(({ workerData }) =>
    import(workerData.tsx).then((tsx) => { tsx.register(); return import(workerData.entry); }))
  .catch((err) => { setImmediate(() => { throw err; }); });
`;
