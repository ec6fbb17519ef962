/**
 * Trace conformance: a host's lifecycle trace (machines/traceFormat.ts, docs/TRACE.md) replayed
 * through the composed machines, with every invariant checked on the way.
 *
 * The checker keeps the SET of model states consistent with the trace so far, as TLA+ trace
 * validation does. Each input line is applied to every state of the set; an input whose params or
 * StepInputs are unknown (absent) is applied once per possible value. What follows the input, up to
 * the next one, is evidence that prunes the candidates:
 * - a logged step must be a transition the model took in that step, and a logged effect an effect
 *   it emitted, in the model's order (logged lines form a subsequence of the model's sequence of
 *   steps and effects); unlogged ones are tolerated, unless the header declares that kind complete;
 * - a counters line must equal the model's counters at some point between the last matched line
 *   and the next one.
 * The trace diverges when no candidate survives a line; it violates when an invariant fails in every
 * candidate left. The state kept per connection is small, and a connection is dropped once it is
 * closed and freed, after its end-of-life facts are checked (fd closed exactly once, buffers,
 * task and session freed, unlinked), so a long trace costs time linear in its length.
 *
 * The model steps are those of machines/system.ts (SystemModel.step), run on a one-connection view
 * of the state (the connection the input concerns, renumbered 0, with the global counters), so the
 * memory semantics and the invariants are exactly the model checker's. A step taken again from the
 * same abstract state (the same listener, queue tasks, counters read, connection and event) is
 * taken from a memo instead (StepOutcome), as the compiled explorer does; the invariants are
 * checked on every step all the same.
 */
import type { Defect, Origin, StepInputs, TransitionRecord } from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import {
  copyCounters,
  countersKey,
  newRatePeriod,
  zeroCounters,
  type Counters,
} from '../machines/counters.ts';
import type { Effect } from '../machines/effects.ts';
import {
  SystemModel,
  type ConnMemory,
  type StepObserver,
  type SystemEvent,
  type SystemState,
} from '../machines/system.ts';
import {
  INPUTS,
  STEP_INPUT_FIELDS,
  parseTraceLine,
  validateTraceLine,
  type CompleteKind,
  type CountersLine,
  type EffectLine,
  type FieldType,
  type InputLine,
  type JsonScalar,
  type StepLine,
  type TraceLine,
} from '../machines/traceFormat.ts';
import { writeOnlyCounters } from './compiled.ts';
import { checkInvariants, INVARIANTS, viewOf, type Invariant, type StateView } from './invariants.ts';

/** What a divergence is. */
export type Verdict = 'diverges' | 'violates' | 'invalid' | 'ambiguous';

/** One possible model state, as a divergence report shows it. */
export interface PossibleState {
  listener: string;
  counters: Counters;
  queueTasks: { global: boolean; frontend: boolean };
  live: number; //                  connections whose session is live
  conns: { conn: number; connection: string; session: string; errCode: string | null }[]; // the line's connection first; at most 10
}

/** The first line a trace stops conforming at, and everything needed to see why. */
export interface Divergence {
  verdict: Verdict;
  line: number; //                  1-based line number in the trace (blank lines counted)
  text: string; //                  that line
  message: string; //              what is wrong, as a sentence
  stepLine: number | null; //      the line of the input whose step this line belongs to
  possible: PossibleState[]; //    model states possible just before this line's step (at most 5)
  possibleCount: number; //        how many there were
  expected: string[]; //           for a line inside a step: what the model would log next
  recent: { line: number; text: string }[]; // the last 10 lines, this one included
}

/** What a checker saw so far. */
export interface TraceStats {
  lines: number;
  inputs: number;
  steps: number;
  effects: number;
  counters: number;
  accepted: number; //   connections accepted, in every history consistent with the trace so far
  ended: number; //      connections closed and freed (dropped from the state), in every such history
  maxStates: number; //  largest set of possible states between two inputs
  maxLive: number; //    most connections live at once
}

/** How to check. */
export interface TraceMonitorOptions {
  complete?: readonly CompleteKind[]; // kinds logged exhaustively; overrides the header's `complete`
  maxStates?: number; //               above this many possible states the trace is too ambiguous (4096)
  deadlineSlackMs?: number | null; //  inputs later than the handshake deadline plus this are divergences; null = unchecked (default)
  invariants?: readonly Invariant[]; // INVARIANTS if not given
  defect?: Defect | null; //           a mutant switched into the model (tests)
  trusted?: boolean; //                lines given as objects come from a typed in-process writer (the
  //                                    live monitor): only their shape (an object, a known kind, a
  //                                    numeric t) is checked, not every field against the schema
  memo?: 'on' | 'off' | 'verify'; //    the step memo (StepOutcome): on (default), off, or verify
  //                                    (tests): every hit is computed again and must be the same
  memoLimit?: number; //               outcomes the memo keeps before it starts again (MEMO_LIMIT; tests use less)
}

const KINDS: ReadonlySet<unknown> = new Set(['header', 'input', 'step', 'effect', 'counters']);

/** Why `obj` is not even shaped like a trace line (an object with a known kind and a numeric t), or null. Pure. */
function shapeError(obj: unknown): string | null {
  if (typeof obj !== 'object' || obj === null) return 'a trace line must be a JSON object';
  const { kind, t } = obj as { kind?: unknown; t?: unknown };
  if (!KINDS.has(kind)) return `unknown kind ${JSON.stringify(kind)}`;
  if (typeof t !== 'number') return 't must be a number';
  return null;
}

/** How many of the last lines a divergence shows. */
const RECENT = 10;

/** A timer may fire this much earlier than its deadline: hosts read their clocks at ms granularity. */
const EARLY_TOLERANCE_MS = 2;

/** How many recently ended connections are remembered, to say so when a line names one. */
const ENDED_KEEP = 4096;

/** Step outcomes the memo keeps before it starts again (a bound on its memory). */
export const MEMO_LIMIT = 50_000;

type Item = { kind: 'step'; record: TransitionRecord } | { kind: 'effect'; effect: Effect; origin: Origin };

/** One connection the model holds, by its id in the trace. */
interface ConnRec {
  connection: number; //     interned snapshot id of its connection machine
  session: number; //        interned snapshot id of its session machine
  mem: ConnMemory; //        the model's memory for it (machines/system.ts)
  armedAt: number | null; // t of the input whose step armed its handshake deadline
  since: number; //          line of the ACCEPT_ATTEMPT that accepted it
  key?: string; //           cache of recKey
}

/** One model state: the listener, the counters, the live connections. Never mutated once built. */
interface CheckState {
  listener: number;
  counters: Counters;
  queueTasks: { global: boolean; frontend: boolean };
  conns: ReadonlyMap<number, ConnRec>;
  live: number; //           connections whose session memory is live (ground truth for the gauges)
  sslLive: number; //        connections whose SSL context is live (ground truth for sslconns)
  accepts: number; //        connections accepted, and (ends) closed and freed, by the history
  ends: number; //            that led here: not part of the state, nor of stateKey; TraceStats
  //                          takes their minimum over the possible states
  key?: string; //           cache of stateKey
}

/** A model state reached by the current step, with the step's sequence and how far the trace matched it. */
interface Candidate {
  before: CheckState;
  after: CheckState;
  items: readonly Item[]; // the model's steps and effects for this input, in emission order; the
  //                          connection the input concerns is named 0 in them (see `conn`)
  counters: readonly Counters[]; // counters[p] + offset: the counters after the first p items
  offset: Counters | null; //  what to add to every counters[p] (write-only counters), or null: nothing
  conn: number | null; //    the trace's id of the connection the items name 0
  cursor: number; //         items matched so far: the next logged line must match at or after it
  violation: string | null; // an invariant that fails in `after`
  branch: string; //         the values chosen for what the input left unknown
  ended: number | null; //   the connection this step closed and freed, if any
}

interface Branch {
  params: Record<string, JsonScalar>;
  inputs: StepInputs;
  label: string;
}

/**
 * Records the sequence of one step as the model's host sees it (a StepObserver of
 * SystemModel.step): each machine step, then its effects, with the counters after each. The model
 * steps a one-connection view, so the records and origins name the connection the input concerns
 * 0, as the view does; a candidate says which trace id that is (Candidate.conn).
 */
class SequenceRecorder implements StepObserver {
  readonly items: Item[] = [];
  readonly counters: Counters[];

  /**
   * `initial` is the counters of the state stepped from: a CheckState's, never mutated (the model
   * steps a clone), so it is shared rather than copied.
   */
  constructor(initial: Counters) {
    this.counters = [initial];
  }

  record(record: TransitionRecord): void {
    this.items.push({ kind: 'step', record });
    this.counters.push(this.counters[this.counters.length - 1]!);
  }

  execute(effect: Effect, origin: Origin, counters: Counters | null): void {
    this.items.push({ kind: 'effect', effect, origin });
    // `counters` is the model's own, mutated by the effects that follow: a copy is kept.
    this.counters.push(counters ? copyCounters(counters) : this.counters[this.counters.length - 1]!);
  }
}

/**
 * What one model step of a one-connection view did (SystemModel.step, the view's connection
 * numbered 0): the state after it and its sequence. The step memo of TraceMonitor shares one
 * outcome between every input that takes the same step from the same abstract state, so an
 * outcome is never mutated. Why that is sound: a step reads the listener, the queue tasks, the
 * counters that are not write-only (writeOnlyCounters, properties/compiled.ts), the one
 * connection's snapshots and memory, and the event; the write-only counters only move by a delta
 * that nothing else depends on. So the outcome from a state whose write-only counters differ by
 * d from `base` is this one with d added to those counters, at every point of the sequence. The
 * memo's 'verify' mode checks exactly that on every hit (test/properties/traceCheck.test.ts).
 */
interface StepOutcome {
  listener: number; //              the listener's snapshot after the step
  queueTasks: { global: boolean; frontend: boolean };
  counters: Counters; //            after, from `base`
  base: Counters; //                the counters the step was computed from
  connection: number; //            the connection's snapshots after the step
  session: number;
  mem: ConnMemory; //               its memory after the step (one object per content: memIds)
  items: readonly Item[]; //        the sequence (SequenceRecorder)
  itemCounters: readonly Counters[]; // counters after each prefix of `items`, from `base`
  records: readonly TransitionRecord[];
  armed: boolean; //                an armDeadline effect for connection 0: the step armed its deadline
}

/**
 * The checker, fed one line at a time: the offline trace-check and the live `proxy --monitor`
 * share it. Requires the configuration the host runs. Owns nothing outside itself; never throws on
 * bad input (a bad line is a Divergence with verdict 'invalid').
 */
export class TraceMonitor {
  readonly model: SystemModel;
  readonly stats: TraceStats = {
    lines: 0,
    inputs: 0,
    steps: 0,
    effects: 0,
    counters: 0,
    accepted: 0,
    ended: 0,
    maxStates: 1,
    maxLive: 0,
  };
  private readonly invariants: readonly Invariant[];
  private readonly maxStates: number;
  private readonly slack: number | null;
  private readonly trusted: boolean;
  private complete: Set<CompleteKind>;
  private readonly completeFixed: boolean;
  private readonly template: SystemState; //  a one-connection state with connection 0 in the backlog
  private candidates: Candidate[];
  private lenient = false; //                   completeness is not enforced until the next input (after a divergence)
  private lastT = 0;
  private sawLine = false;
  private stepLine: number | null = null;
  // The last RECENT lines (for reports), as a ring: slot i % RECENT holds the i-th line remembered.
  // Two flat arrays rather than an object per line: remember() runs on every line.
  private readonly recentLines: number[] = [];
  private readonly recentObjs: unknown[] = [];
  private remembered = 0;
  private readonly endedAt = new Map<number, number>(); // recently ended connections → line (for messages)
  // The order endedAt's entries were set in, as a ring of ENDED_KEEP slots (id and line): the slot
  // about to be reused names the entry to forget, unless that id ended again since.
  private readonly endedIds: number[] = [];
  private readonly endedLines: number[] = [];
  private endedNext = 0;
  // The step memo (StepOutcome): outcomes by stepKey; each distinct memory content once, with an id.
  private readonly memoMode: 'on' | 'off' | 'verify';
  private readonly memo = new Map<string, StepOutcome | null>();
  private readonly memByContent = new Map<string, ConnMemory>();
  private readonly memIds = new Map<ConnMemory, number>(); // ids only grow: a key never outlives its meaning
  private nextMemId = 0;
  private readonly memoLimit: number;
  private hits = 0;
  private readonly writeOnly: readonly (keyof Counters)[];
  private readonly readCounters: readonly (keyof Counters)[];

  constructor(
    readonly config: ModelConfig,
    options: TraceMonitorOptions = {},
  ) {
    this.model = new SystemModel(config, 1, options.defect ?? null);
    this.invariants = options.invariants ?? INVARIANTS;
    this.maxStates = options.maxStates ?? 4096;
    this.slack = options.deadlineSlackMs ?? null;
    this.trusted = options.trusted ?? false;
    this.complete = new Set(options.complete ?? []);
    this.completeFixed = options.complete !== undefined;
    this.memoMode = options.memo ?? 'on';
    this.memoLimit = options.memoLimit ?? MEMO_LIMIT;
    this.writeOnly = writeOnlyCounters(config);
    this.readCounters = (Object.keys(zeroCounters()) as (keyof Counters)[]).filter(
      (k) => !this.writeOnly.includes(k),
    );
    this.template = this.model.initial();
    const initial: CheckState = {
      listener: this.template.world.listener,
      counters: { ...this.template.counters },
      queueTasks: { ...this.template.queueTasks },
      conns: new Map(),
      live: 0,
      sslLive: 0,
      accepts: 0,
      ends: 0,
    };
    this.candidates = [trivialCandidate(initial)];
  }

  /**
   * Checks the next line of the trace: a TraceLine object, or its NDJSON text (a blank text line is
   * counted and ignored). Returns null if the trace still conforms, else the Divergence. After a
   * divergence the monitor goes on as if the offending line were absent (an input it cannot apply
   * is skipped), so a live monitor can report later divergences too.
   */
  feed(line: unknown): Divergence | null {
    this.stats.lines++;
    const no = this.stats.lines;
    let obj: unknown = line;
    if (typeof line === 'string') {
      if (line.trim() === '') return null;
      const parsed = parseTraceLine(line);
      if (parsed.error !== undefined) {
        this.remember(no, line);
        return this.divergence('invalid', parsed.error, this.states(), null, []);
      }
      obj = parsed.line;
    }
    this.remember(no, typeof line === 'string' ? line : obj);
    if (typeof line !== 'string') {
      const error = this.trusted ? shapeError(obj) : validateTraceLine(obj);
      if (error !== null) return this.divergence('invalid', error, this.states(), null, []);
    }
    const l = obj as TraceLine;
    if (l.t < this.lastT)
      return this.divergence('invalid', `t goes back from ${this.lastT} to ${l.t}`, this.states(), null, []);
    this.lastT = l.t;
    const first = !this.sawLine;
    this.sawLine = true;
    switch (l.kind) {
      case 'header':
        if (!first)
          return this.divergence('invalid', 'a header must be the first line', this.states(), null, []);
        if (!this.completeFixed) this.complete = new Set(l.complete ?? []);
        return null;
      case 'input':
        this.stats.inputs++;
        return this.onInput(l);
      case 'step':
        this.stats.steps++;
        return this.onEvidence(l);
      case 'effect':
        this.stats.effects++;
        return this.onEvidence(l);
      case 'counters':
        this.stats.counters++;
        return this.onEvidence(l);
    }
  }

  /**
   * Ends the trace: checks that the last step logged everything the header declares complete.
   * Returns null if the whole trace conforms, else the Divergence (at the line after the last).
   */
  finish(): Divergence | null {
    const { survivors, missing } = this.closeStep();
    const chosen = survivors.length > 0 ? survivors : this.candidates;
    this.settle(chosen);
    this.candidates = chosen.map((c) => ({ ...c, ended: null }));
    if (survivors.length > 0 || missing === null) return null;
    this.stats.lines++;
    this.remember(this.stats.lines, '(end of trace)');
    return this.divergence(
      'diverges',
      `the trace ends, but the step of line ${this.stepLine} is missing ${missing}`,
      this.befores(this.candidates),
      null,
      [],
    );
  }

  /** The number of model states consistent with the trace so far. */
  get possibleStates(): number {
    return this.candidates.length;
  }

  /** How many model steps the step memo gave (StepOutcome) instead of the model. */
  get memoHits(): number {
    return this.hits;
  }

  // --- inputs -------------------------------------------------------------------------------

  private onInput(line: InputLine): Divergence | null {
    const { survivors, missing } = this.closeStep();
    let divergence: Divergence | null = null;
    if (survivors.length === 0 && missing !== null) {
      divergence = this.divergence(
        'diverges',
        `the step of line ${this.stepLine} ended without ${missing}, which the trace logs exhaustively`,
        this.befores(this.candidates),
        null,
        this.expectations(this.candidates),
      );
    }
    const chosen = survivors.length > 0 ? survivors : this.candidates;
    this.settle(chosen);
    const states = dedupe(chosen.map((c) => c.after));
    this.stats.maxStates = Math.max(this.stats.maxStates, states.length);
    this.lenient = false;
    this.stepLine = this.stats.lines;
    if (states.length > this.maxStates) {
      this.candidates = states.slice(0, this.maxStates).map(trivialCandidate);
      return (
        divergence ??
        this.divergence(
          'ambiguous',
          `${states.length} model states are consistent with the trace, more than ${this.maxStates}: log more (params, inputs, effects or counters)`,
          states,
          line.conn,
          [],
        )
      );
    }
    const next: Candidate[] = [];
    const reasons: string[] = [];
    const branches = branchesOf(line);
    for (const s of states) {
      for (const b of branches) {
        const r = this.apply(s, line, b);
        if (typeof r === 'string') {
          if (!reasons.includes(r)) reasons.push(r);
        } else next.push(r);
      }
    }
    if (next.length === 0) {
      this.candidates = states.map(trivialCandidate);
      this.lenient = true;
      return divergence ?? this.divergence('diverges', reasons.join('; or '), states, line.conn, []);
    }
    this.candidates = dedupeCandidates(next);
    if (this.candidates.length > this.maxStates) {
      const count = this.candidates.length;
      this.candidates = this.candidates.slice(0, this.maxStates);
      return (
        divergence ??
        this.divergence(
          'ambiguous',
          `${count} ways to apply this input are consistent with the trace, more than ${this.maxStates}: log more (params, inputs, effects or counters)`,
          states,
          line.conn,
          [],
        )
      );
    }
    const live = next[0]!.after.live;
    if (live > this.stats.maxLive) this.stats.maxLive = live;
    return divergence ?? this.violationIfAll(line.conn);
  }

  /**
   * Applies input `line` with the unknowns of `branch` to state `s`. Returns the candidate it
   * leads to, or why the input cannot happen in `s`.
   */
  private apply(s: CheckState, line: InputLine, branch: Branch): Candidate | string {
    const conn = line.conn;
    const rec = conn === null ? undefined : s.conns.get(conn);
    if (line.name === 'ACCEPT_ATTEMPT') {
      if (rec) return `connection ${conn} is already accepted (line ${rec.since})`;
    } else if (conn !== null && !rec) {
      const ended = this.endedAt.get(conn);
      return ended === undefined
        ? `connection ${conn} was never accepted`
        : `connection ${conn} was closed and freed at line ${ended}: nothing can happen to it any more`;
    }
    const event = systemEvent(line, branch);
    if (event.type === 'RATE_PERIOD') {
      const counters = { ...s.counters };
      newRatePeriod(counters);
      const after: CheckState = {
        listener: s.listener,
        counters,
        queueTasks: s.queueTasks,
        conns: s.conns,
        live: s.live,
        sslLive: s.sslLive,
        accepts: s.accepts,
        ends: s.ends,
      };
      return { ...trivialCandidate(after), before: s, counters: [counters], branch: branch.label };
    }
    if (rec) {
      const late = this.timing(line, rec, event);
      if (late) return late;
    }
    const one = this.oneConnection(s, rec);
    const o = this.outcome(one, s, rec, event);
    if (o === null) return this.notEnabled(s, line, rec, event);
    const offset = this.offsetOf(s.counters, o.base);
    const counters = offset === null ? o.counters : this.withOffset(o.counters, offset);
    const mem = o.mem;
    const conns = new Map(s.conns);
    let ended: number | null = null;
    let live = s.live;
    let sslLive = s.sslLive;
    let violation: string | null = null;
    let accepted = false;
    if (conn !== null) {
      const id = conn;
      live += (mem.session === 'live' ? 1 : 0) - (rec && rec.mem.session === 'live' ? 1 : 0);
      sslLive += (mem.sslCtx === 'live' ? 1 : 0) - (rec && rec.mem.sslCtx === 'live' ? 1 : 0);
      const connection = this.model.composition.runners.connection.value(o.connection);
      const session = this.model.composition.runners.session.value(o.session);
      accepted = !rec && connection !== 'pending';
      if (connection === 'pending') conns.delete(id);
      else if (connection === 'closed' && session === 'freed') {
        violation = endOfLife(mem);
        if (violation) violation = `connection ${id} ended, but ${violation}`;
        conns.delete(id);
        ended = id;
      } else {
        conns.set(id, {
          connection: o.connection,
          session: o.session,
          mem,
          armedAt: o.armed ? line.t : (rec?.armedAt ?? null),
          since: rec?.since ?? this.stats.lines,
        });
      }
    }
    const after: CheckState = {
      listener: o.listener,
      counters,
      queueTasks: o.queueTasks,
      conns,
      live,
      sslLive,
      accepts: s.accepts + (accepted ? 1 : 0),
      ends: s.ends + (ended === null ? 0 : 1),
    };
    const after1: SystemState = {
      world: {
        listener: o.listener,
        conns: new Map<number, { connection: number; session: number }>().set(0, {
          connection: o.connection,
          session: o.session,
        }),
      },
      counters,
      memory: [mem],
      queueTasks: o.queueTasks,
    };
    violation ??= this.invariantsFail(one, s, after1, after, event, o.records, conn);
    return {
      before: s,
      after,
      items: o.items,
      counters: o.itemCounters,
      offset,
      conn,
      cursor: 0,
      violation,
      branch: branch.label,
      ended,
    };
  }

  // --- the step memo --------------------------------------------------------------------------

  /**
   * The outcome of `event` from `one`, the one-connection view of `s` with `rec` as connection 0;
   * null if the event is not enabled there. From the memo when the same step was taken from the
   * same abstract state before (StepOutcome says why that is sound).
   */
  private outcome(
    one: SystemState,
    s: CheckState,
    rec: ConnRec | undefined,
    event: SystemEvent,
  ): StepOutcome | null {
    if (this.memoMode === 'off') return this.computeOutcome(one, event);
    if (this.memo.size >= this.memoLimit) {
      // Start again. A connection's memory gets a new id when it is next seen, never an old one.
      this.memo.clear();
      this.memByContent.clear();
      this.memIds.clear();
    }
    const key = this.stepKey(s, rec, event);
    const known = this.memo.get(key);
    if (known !== undefined) {
      this.hits++;
      if (this.memoMode === 'verify') this.verifyOutcome(known, one, event, key);
      return known;
    }
    const o = this.computeOutcome(one, event);
    this.memo.set(key, o);
    return o;
  }

  /** Runs the model's step of `event` from `one` and records what it did; null if not enabled. */
  private computeOutcome(one: SystemState, event: SystemEvent): StepOutcome | null {
    const recorder = new SequenceRecorder(one.counters);
    // step() returns null exactly when the event is not enabled (SystemModel.isEnabled), before it
    // tells the recorder anything.
    const r = this.model.step(one, event, recorder);
    if (r === null) return null;
    const slots = r.state.world.conns.get(0)!;
    let armed = false;
    for (const it of recorder.items)
      if (it.kind === 'effect' && it.effect.type === 'armDeadline' && it.origin.conn === 0) {
        armed = true;
        break;
      }
    return {
      listener: r.state.world.listener,
      queueTasks: r.state.queueTasks,
      counters: r.state.counters,
      base: one.counters,
      connection: slots.connection,
      session: slots.session,
      mem: this.canonicalMem(r.state.memory[0]!),
      items: recorder.items,
      itemCounters: recorder.counters,
      records: r.records,
      armed,
    };
  }

  /**
   * The memo's key of a step: the event, and what the step reads of `s` and of connection `rec`
   * (the listener, the queue tasks, the counters that are not write-only, the connection's
   * snapshots and memory, or none for the backlog's).
   */
  private stepKey(s: CheckState, rec: ConnRec | undefined, event: SystemEvent): string {
    let key = '';
    const e = event as unknown as Record<string, unknown>;
    for (const k in e) key += `${k}=${String(e[k])},`; // names too: an optional field cannot shift the rest
    key += `|${s.listener}|${s.queueTasks.global ? 1 : 0}${s.queueTasks.frontend ? 1 : 0}|`;
    for (const k of this.readCounters) key += `${s.counters[k]},`;
    if (rec === undefined) return `${key}|-`;
    return `${key}|${rec.connection},${rec.session},${this.memIds.get(rec.mem) ?? this.memIds.get(this.canonicalMem(rec.mem))!}`;
  }

  /** The one object of `m`'s content the memo uses (registered with an id on first sight). */
  private canonicalMem(m: ConnMemory): ConnMemory {
    if (this.memIds.has(m)) return m;
    const content = JSON.stringify(m);
    const known = this.memByContent.get(content);
    if (known !== undefined) return known;
    this.memByContent.set(content, m);
    this.memIds.set(m, this.nextMemId++);
    return m;
  }

  /** What the write-only counters of `now` add to those of `base`, or null if nothing. */
  private offsetOf(now: Counters, base: Counters): Counters | null {
    if (now === base) return null;
    let offset: Counters | null = null;
    for (const k of this.writeOnly) {
      const d = now[k] - base[k];
      if (d !== 0) (offset ??= zeroCounters())[k] = d;
    }
    return offset;
  }

  /** A copy of `c` with `offset` added to its write-only counters. */
  private withOffset(c: Counters, offset: Counters): Counters {
    const out = copyCounters(c);
    for (const k of this.writeOnly) out[k] += offset[k];
    return out;
  }

  /**
   * The 'verify' mode of the memo: computes the step of a memo hit again, and throws unless it is
   * the outcome the memo gave, with the write-only counters moved by the same delta everywhere.
   */
  private verifyOutcome(known: StepOutcome | null, one: SystemState, event: SystemEvent, key: string): void {
    const fresh = this.computeOutcome(one, event);
    const why = (what: string): never => {
      throw new Error(`step memo: the outcome of ${JSON.stringify(event)} at key ${key} differs: ${what}`);
    };
    if (known === null || fresh === null) {
      if (known !== fresh) why(`enabled ${fresh !== null}, memo ${known !== null}`);
      return;
    }
    const offset = this.offsetOf(one.counters, known.base);
    const shifted = (c: Counters): Counters => (offset === null ? c : this.withOffset(c, offset));
    const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
    if (fresh.listener !== known.listener) why('the listener');
    if (!same(fresh.queueTasks, known.queueTasks)) why('the queue tasks');
    if (fresh.connection !== known.connection || fresh.session !== known.session) why('the snapshots');
    if (!same(fresh.mem, known.mem)) why('the memory');
    if (fresh.armed !== known.armed) why('armed');
    if (!same(fresh.records, known.records)) why('the records');
    if (!same(fresh.items, known.items)) why('the sequence');
    if (!same(fresh.counters, shifted(known.counters))) why('the counters after');
    if (!same(fresh.itemCounters, known.itemCounters.map(shifted))) why('the counters in the sequence');
  }

  /** The state of `s` as a one-connection SystemState: connection `rec` (or a pending one) as id 0. */
  private oneConnection(s: CheckState, rec: ConnRec | undefined): SystemState {
    const t = this.template;
    return {
      world: {
        listener: s.listener,
        conns: new Map<number, { connection: number; session: number }>().set(
          0,
          rec ? { connection: rec.connection, session: rec.session } : t.world.conns.get(0)!,
        ),
      },
      counters: s.counters,
      memory: [rec ? rec.mem : t.memory[0]!],
      queueTasks: s.queueTasks,
    };
  }

  /** Why input `line` cannot happen in `s`, in words. */
  private notEnabled(s: CheckState, line: InputLine, rec: ConnRec | undefined, event: SystemEvent): string {
    const runners = this.model.composition.runners;
    const listener = runners.listener.value(s.listener);
    const connection = rec ? runners.connection.value(rec.connection) : 'pending';
    const session = rec ? runners.session.value(rec.session) : 'absent';
    const who = `connection ${line.conn}`;
    switch (event.type) {
      case 'ACCEPT':
        return `the listener is ${listener}: it does not accept connections`;
      case 'PROXY_HEADER_OK':
      case 'PROXY_HEADER_ERROR':
        return `${who} is ${connection}, not waiting for a PROXY header`;
      case 'TLS_OK':
      case 'TLS_ERROR':
        return `${who} is ${connection}, not in a TLS handshake`;
      case 'CLIENT_CLOSE':
      case 'CLIENT_RESET':
        return (event.tlsRead ?? 'none') === 'none'
          ? `${who} is ${connection}, not in a handshake`
          : `${who} is ${connection}, not in a TLS handshake, so it cannot have sent TLS bytes (tlsRead ${event.tlsRead})`;
      case 'TIMER_EXPIRE':
        return `${who} has no handshake deadline armed (session ${session}, task ${rec?.mem.task}, deadline ${rec?.mem.deadline})`;
      case 'TASK_WAKEUP':
        return `${who} has no task running expire_mini_session (session ${session})`;
      case 'SESSION_END':
        return `${who}'s session is ${session}, not initialized`;
      case 'QUEUE_TASK':
        return `the ${event.queue} queue task is not scheduled`;
      case 'RATE_PERIOD':
        return 'RATE_PERIOD cannot be refused';
    }
  }

  /** Checks the time of an input against connection `rec`'s handshake deadline. */
  private timing(line: InputLine, rec: ConnRec, event: SystemEvent): string | null {
    const { deadline } = rec.mem;
    if (rec.armedAt === null || deadline === null || rec.mem.taskProcess !== 'expire') return null;
    const due = rec.armedAt + deadline;
    if (event.type === 'TIMER_EXPIRE' && line.t + EARLY_TOLERANCE_MS < due)
      return `the handshake deadline of connection ${line.conn} struck early: armed at t=${rec.armedAt} for ${deadline} ms, it fired at t=${line.t}`;
    if (event.type !== 'TIMER_EXPIRE' && this.slack !== null && line.t > due + this.slack)
      return `connection ${line.conn} is still embryonic at t=${line.t}, ${line.t - due} ms after its handshake deadline (t=${due}): it should have been killed`;
    return null;
  }

  /** Checks the invariants on the step from `one` to `after1`; returns the first violation or null. */
  private invariantsFail(
    one: SystemState,
    before: CheckState,
    after1: SystemState,
    after: CheckState,
    event: SystemEvent,
    records: readonly TransitionRecord[],
    conn: number | null,
  ): string | null {
    const ctx = {
      model: this.model,
      config: this.config,
      prev: this.view(one, before, conn !== null),
      next: this.view(after1, after, conn !== null),
      event,
      records,
    };
    const bad = checkInvariants(ctx, this.invariants)[0];
    if (!bad) return null;
    const message =
      conn === null ? bad.message : bad.message.replace(/^connection 0\b/, `connection ${conn}`);
    return `invariant ${bad.invariant} fails: ${message}`;
  }

  /**
   * The invariants' view of a one-connection state, with the global counts of `totals`: live
   * sessions and live SSL contexts.
   */
  private view(s: SystemState, totals: CheckState, withConn: boolean): StateView {
    // viewOf returns a fresh object that nothing else holds: it is adjusted in place.
    const v = viewOf(this.model, s);
    if (!withConn) v.conns = [];
    v.live = totals.live;
    v.sslLive = totals.sslLive;
    return v;
  }

  // --- evidence: steps, effects, counters ---------------------------------------------------

  private onEvidence(line: StepLine | EffectLine | CountersLine): Divergence | null {
    // A candidate belongs to the current step only, so its cursor moves in place. A counters line
    // matches a point between items (the cursor stays there: the next line may match the same
    // counters); a step or effect line consumes the item it matches.
    // The survivors are copied out only once a candidate fails: usually every one survives.
    const candidates = this.candidates;
    let next: Candidate[] | null = null;
    const logged = line.kind === 'counters' ? Object.keys(line.counters) : null;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const at =
        line.kind === 'counters'
          ? findCounters(c, line, logged!, this.complete, this.lenient)
          : findItem(c, line, this.complete, this.lenient);
      if (at >= 0) {
        c.cursor = logged ? at : at + 1;
        next?.push(c);
      } else next ??= candidates.slice(0, i);
    }
    next ??= candidates;
    if (next.length === 0) {
      const skipped = this.skippedBefore(line);
      const what = skipped
        ? `${skipped} is missing before this line, and the trace logs every ${skipped.split(' ')[0]}`
        : line.kind === 'counters'
          ? `counters ${JSON.stringify(line.counters)} are not the model's at this point of the step`
          : `the model's step of line ${this.stepLine ?? '(none)'} has no ${describeLine(line)} here`;
      this.lenient = true;
      return this.divergence(
        'diverges',
        what,
        this.befores(this.candidates),
        line.conn,
        this.expectations(this.candidates),
      );
    }
    this.candidates = next;
    return this.violationIfAll(line.conn);
  }

  /**
   * When `line` would match later in the first candidate's sequence if lines of a complete kind
   * could be skipped: the first such line it skips, in words. Null otherwise.
   */
  private skippedBefore(line: StepLine | EffectLine | CountersLine): string | null {
    const c = this.candidates[0];
    if (!c || this.complete.size === 0) return null;
    const none = new Set<CompleteKind>();
    const at =
      line.kind === 'counters'
        ? findCounters(c, line, Object.keys(line.counters), none, true)
        : findItem(c, line, none, true);
    if (at < 0) return null;
    const missing = c.items.slice(c.cursor, at).find((item) => this.complete.has(item.kind));
    return missing ? describeItem(missing, c.conn) : null;
  }

  /**
   * Ends the current step: the candidates whose remaining sequence has nothing of a complete kind.
   * Returns them, and what the first candidate misses if none is left.
   */
  private closeStep(): { survivors: Candidate[]; missing: string | null } {
    if (this.lenient || this.complete.size === 0) return { survivors: this.candidates, missing: null };
    const survivors: Candidate[] = [];
    let missing: string | null = null;
    for (const c of this.candidates) {
      const m = firstMissing(c, this.complete);
      if (m === null) survivors.push(c);
      else missing ??= describeItem(m, c.conn);
    }
    return { survivors, missing };
  }

  /** A 'violates' divergence if every candidate fails an invariant; then their violations are cleared. */
  private violationIfAll(conn: number | null): Divergence | null {
    if (!this.candidates.every((c) => c.violation !== null)) return null;
    const message = this.candidates[0]!.violation!;
    const d = this.divergence(
      'violates',
      message,
      this.befores(this.candidates),
      conn,
      this.expectations(this.candidates),
    );
    this.candidates = this.candidates.map((c) => ({ ...c, violation: null }));
    return d;
  }

  // --- reports --------------------------------------------------------------------------------

  private states(): CheckState[] {
    return dedupe(this.candidates.map((c) => c.after));
  }

  private befores(candidates: readonly Candidate[]): CheckState[] {
    return dedupe(candidates.map((c) => c.before));
  }

  /** What the model would log next, for the first candidates. */
  private expectations(candidates: readonly Candidate[]): string[] {
    const out: string[] = [];
    for (const c of candidates.slice(0, 3)) {
      const rest = c.items.slice(c.cursor, c.cursor + 8).map((item) => describeItem(item, c.conn));
      const more = c.items.length - c.cursor - rest.length;
      const head = c.branch ? `[${c.branch}] ` : '';
      out.push(
        rest.length === 0
          ? `${head}nothing more in this step`
          : `${head}${rest.join(', ')}${more > 0 ? `, … (${more} more)` : ''}`,
      );
    }
    return out;
  }

  private divergence(
    verdict: Verdict,
    message: string,
    states: readonly CheckState[],
    focus: number | null,
    expected: string[],
  ): Divergence {
    const recent: { line: number; text: string }[] = [];
    for (let i = Math.max(0, this.remembered - RECENT); i < this.remembered; i++)
      recent.push({ line: this.recentLines[i % RECENT]!, text: textOf(this.recentObjs[i % RECENT]) });
    return {
      verdict,
      line: this.stats.lines,
      text: this.remembered > 0 ? textOf(this.recentObjs[(this.remembered - 1) % RECENT]) : '',
      message,
      stepLine: this.stepLine,
      possible: states.slice(0, 5).map((s) => this.summarize(s, focus)),
      possibleCount: states.length,
      expected,
      recent,
    };
  }

  private summarize(s: CheckState, focus: number | null): PossibleState {
    const runners = this.model.composition.runners;
    const ids = [...s.conns.keys()];
    if (focus !== null && s.conns.has(focus)) {
      ids.splice(ids.indexOf(focus), 1);
      ids.unshift(focus);
    }
    return {
      listener: runners.listener.value(s.listener),
      counters: { ...s.counters },
      queueTasks: { ...s.queueTasks },
      live: s.live,
      conns: ids.slice(0, 10).map((conn) => {
        const r = s.conns.get(conn)!;
        const ctx = runners.connection.snaps[r.connection]!.context as { errCode?: string | null };
        return {
          conn,
          connection: runners.connection.value(r.connection),
          session: runners.session.value(r.session),
          errCode: ctx.errCode ?? null,
        };
      }),
    };
  }

  private remember(line: number, obj: unknown): void {
    const slot = this.remembered % RECENT;
    this.recentLines[slot] = line;
    this.recentObjs[slot] = obj;
    this.remembered++;
  }

  /**
   * Takes the candidates `chosen` of the step that closes: the accepts and ends they all agree on
   * become the stats (under ambiguity one history may end a connection a step before another, or
   * never), and each connection one of them ended is remembered for the messages of later lines.
   */
  private settle(chosen: readonly Candidate[]): void {
    let accepts = Infinity;
    let ends = Infinity;
    for (const c of chosen) {
      if (c.ended !== null) this.markEnded(c.ended, this.stepLine ?? 0);
      accepts = Math.min(accepts, c.after.accepts);
      ends = Math.min(ends, c.after.ends);
    }
    if (chosen.length > 0) {
      this.stats.accepted = accepts;
      this.stats.ended = ends;
    }
  }

  private markEnded(conn: number, line: number): void {
    if (this.endedAt.get(conn) === line) return; // another candidate of the same step ended it
    this.endedAt.set(conn, line);
    // Remember the connections of the last ENDED_KEEP endings: forget the entry set ENDED_KEEP
    // endings ago, unless its id ended again since. (Deleting a Map's first key instead costs a
    // walk over the holes its earlier deletions left.)
    const slot = this.endedNext;
    this.endedNext = (slot + 1) % ENDED_KEEP;
    if (slot < this.endedIds.length && this.endedAt.get(this.endedIds[slot]!) === this.endedLines[slot])
      this.endedAt.delete(this.endedIds[slot]!);
    this.endedIds[slot] = conn;
    this.endedLines[slot] = line;
  }
}

function trivialCandidate(s: CheckState): Candidate {
  return {
    before: s,
    after: s,
    items: [],
    counters: [s.counters],
    offset: null,
    conn: null,
    cursor: 0,
    violation: null,
    branch: '',
    ended: null,
  };
}

/** The values an absent field can take. */
function domainOf(of: FieldType): JsonScalar[] {
  if (of.type === 'boolean') return [false, true];
  if (of.type === 'enum') return [...of.values];
  return [];
}

/** The params of each input (INPUTS), as entries: branchesOf reads them for every input line. */
const PARAM_FIELDS = Object.fromEntries(
  Object.entries(INPUTS).map(([name, spec]) => [
    name,
    Object.entries(spec.params as Record<string, { of: FieldType }>),
  ]),
) as Record<InputLine['name'], [string, { of: FieldType }][]>;

/** Every way to fill what input `line` leaves unknown (absent params, absent StepInputs it uses). */
function branchesOf(line: InputLine): Branch[] {
  const spec = INPUTS[line.name];
  const given = line.inputs ?? {};
  let out: Branch[] = [
    {
      params: { ...line.params },
      inputs: {
        src: given.src ?? 'plain',
        acceptFail: given.acceptFail ?? 'none',
        completeFail: given.completeFail ?? 'none',
      },
      label: '',
    },
  ];
  for (const [k, f] of PARAM_FIELDS[line.name]) {
    if (line.params?.[k] === undefined)
      out = widen(out, k, domainOf(f.of), (b, v) => ({ ...b, params: { ...b.params, [k]: v } }));
  }
  for (const k of spec.uses as readonly (keyof StepInputs)[]) {
    if (given[k] === undefined)
      out = widen(out, k, domainOf(STEP_INPUT_FIELDS[k]!.of), (b, v) => ({
        ...b,
        inputs: { ...b.inputs, [k]: v },
      }));
  }
  return out;
}

/** Each branch of `branches` once per value of field `key`, labelled with it. */
function widen(
  branches: Branch[],
  key: string,
  values: readonly JsonScalar[],
  set: (b: Branch, v: JsonScalar) => Branch,
): Branch[] {
  return branches.flatMap((b) =>
    values.map((v) => {
      const n = set(b, v);
      n.label = `${b.label}${b.label ? ' ' : ''}${key}=${String(v)}`;
      return n;
    }),
  );
}

/** The SystemEvent (machines/system.ts) for input `line` with `branch`, on connection 0. */
function systemEvent(line: InputLine, branch: Branch): SystemEvent {
  const p = branch.params;
  const i = branch.inputs;
  switch (line.name) {
    case 'ACCEPT_ATTEMPT':
      return { type: 'ACCEPT', src: i.src, fail: i.acceptFail, acceptError: p.acceptError === true };
    case 'PROXY_HEADER_OK':
    case 'TLS_OK':
      return { type: line.name, conn: 0, fail: i.completeFail };
    case 'PROXY_HEADER_ERROR':
      return { type: 'PROXY_HEADER_ERROR', conn: 0, code: p.code as never };
    case 'TLS_ERROR':
      return { type: 'TLS_ERROR', conn: 0, code: p.code as never };
    case 'CLIENT_CLOSE':
    case 'CLIENT_RESET':
      return { type: line.name, conn: 0, tlsRead: p.tlsRead as never };
    case 'SESSION_END':
      return p.writeTimeout === true
        ? { type: line.name, conn: 0, writeTimeout: true }
        : { type: line.name, conn: 0 };
    case 'TASK_WAKEUP':
      return { type: p.timer === true ? 'TIMER_EXPIRE' : 'TASK_WAKEUP', conn: 0 };
    case 'DEQUEUE_GLOBAL':
      return { type: 'QUEUE_TASK', queue: 'global' };
    case 'DEQUEUE_FRONTEND':
      return { type: 'QUEUE_TASK', queue: 'frontend' };
    case 'RATE_PERIOD':
      return { type: 'RATE_PERIOD' };
  }
}

/**
 * What a connection that is closed and freed must have done: its end-of-life facts (fd closed
 * exactly once and out of fdtab, buffers, session and task freed, unlinked, at most one kill line,
 * no memory fault). Null if all hold. Pure.
 */
function endOfLife(m: ConnMemory): string | null {
  if (m.fdCloses !== 1) return `its fd was closed ${m.fdCloses} times, not exactly once`;
  if (m.inFdtab) return 'its fd is still registered in fdtab';
  const bufs = (['req', 'rep', 'txn'] as const).filter((b) => m.bufs[b] === 'live');
  if (bufs.length > 0) return `its ${bufs.join(', ')} ${bufs.length > 1 ? 'are' : 'is'} still allocated`;
  if (m.session === 'live') return 'its session was never freed';
  if (m.task === 'live') return 'its task was never freed';
  if (m.sslCtx === 'live') return 'its SSL context was never freed';
  if (m.inList) return 'its session is still in the sessions list';
  if (m.logged > 1) return `it logged ${m.logged} kill lines, not at most one`;
  if (m.faults.length > 0) return m.faults.join('; ');
  return null;
}

const norm = (v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? null : v);

/** The trace's id of the connection `item` names: `conn` for the view's connection 0. Pure. */
function itemConn(item: Item, conn: number | null): number | null {
  const c = item.kind === 'step' ? item.record.conn : item.origin.conn;
  return c === 0 ? conn : c;
}

/** True if `line` logs `item`, whose connection 0 is `conn` in the trace. Pure. */
function itemMatches(item: Item, line: StepLine | EffectLine, conn: number | null): boolean {
  if (line.kind === 'step') {
    if (item.kind !== 'step') return false;
    const r = item.record;
    if (
      r.machine !== line.machine ||
      itemConn(item, conn) !== line.conn ||
      r.from !== line.from ||
      r.to !== line.to ||
      r.event.type !== line.event.type
    )
      return false;
    for (const k in line.event) if (k !== 'type' && norm(r.event[k]) !== line.event[k]) return false;
    if (line.transitions !== undefined) {
      if (line.transitions.length !== r.transitions.length) return false;
      for (let i = 0; i < r.transitions.length; i++)
        if (line.transitions[i] !== r.transitions[i]) return false;
    }
    return true;
  }
  if (item.kind !== 'effect') return false;
  if (
    item.effect.type !== line.name ||
    itemConn(item, conn) !== line.conn ||
    item.origin.machine !== line.machine
  )
    return false;
  if (line.params === undefined) return true;
  const p = item.effect.params ?? {};
  const keys = Object.keys(line.params);
  if (keys.length !== Object.keys(p).length) return false;
  for (const k of keys) if (norm(p[k]) !== line.params[k]) return false;
  return true;
}

/** The first item at or after the cursor that `line` matches, skipping only kinds not logged exhaustively; -1 if none. */
function findItem(
  c: Candidate,
  line: StepLine | EffectLine,
  complete: ReadonlySet<CompleteKind>,
  lenient: boolean,
): number {
  for (let i = c.cursor; i < c.items.length; i++) {
    const item = c.items[i]!;
    if (itemMatches(item, line, c.conn)) return i;
    if (!lenient && complete.has(item.kind)) return -1;
  }
  return -1;
}

/**
 * The first position at or after the cursor whose counters match `line` on every counter it logs
 * (`logged`: Object.keys(line.counters), computed once per line); -1 if none.
 */
function findCounters(
  c: Candidate,
  line: CountersLine,
  logged: readonly string[],
  complete: ReadonlySet<CompleteKind>,
  lenient: boolean,
): number {
  const values = line.counters as Record<string, number>;
  const offset = c.offset as unknown as Record<string, number> | null;
  for (let p = c.cursor; p <= c.items.length; p++) {
    const at = c.counters[p]! as unknown as Record<string, number>;
    let equal = true;
    for (let i = 0; i < logged.length && equal; i++) {
      const k = logged[i]!;
      equal = (offset === null ? at[k] : at[k]! + offset[k]!) === values[k];
    }
    if (equal) return p;
    if (p < c.items.length && !lenient && complete.has(c.items[p]!.kind)) return -1;
  }
  return -1;
}

/** The first item after the cursor of a kind logged exhaustively: a line the trace is missing. */
function firstMissing(c: Candidate, complete: ReadonlySet<CompleteKind>): Item | null {
  for (let i = c.cursor; i < c.items.length; i++) if (complete.has(c.items[i]!.kind)) return c.items[i]!;
  return null;
}

function paramsText(params: Record<string, unknown> | undefined): string {
  if (!params || Object.keys(params).length === 0) return '';
  return `{${Object.entries(params)
    .map(([k, v]) => `${k}=${String(norm(v))}`)
    .join(' ')}}`;
}

function connText(conn: number | null): string {
  return conn === null ? '' : ` ${conn}`;
}

/** One model item in words, its connection 0 named `conn`: 'effect fdClose{site=kill_mini_session} (session 3)'. */
function describeItem(item: Item, conn: number | null): string {
  if (item.kind === 'effect')
    return `effect ${item.effect.type}${paramsText(item.effect.params)} (${item.origin.machine}${connText(itemConn(item, conn))})`;
  const r = item.record;
  const { type, ...params } = r.event;
  return `step ${type}${r.machine === 'listener' ? '' : paramsText(params)} (${r.machine}${connText(itemConn(item, conn))} ${r.from} → ${r.to})`;
}

function describeLine(line: StepLine | EffectLine): string {
  if (line.kind === 'effect')
    return `effect ${line.name}${paramsText(line.params)} (${line.machine}${connText(line.conn)})`;
  const { type, ...params } = line.event;
  return `step ${type}${paramsText(params)} (${line.machine}${connText(line.conn)} ${line.from} → ${line.to})`;
}

function textOf(obj: unknown): string {
  return typeof obj === 'string' ? obj : JSON.stringify(obj);
}

/** Removes duplicate states (equal listener, counters, queues and connections). */
function dedupe(states: CheckState[]): CheckState[] {
  if (states.length < 2) return states;
  const seen = new Map<string, CheckState>();
  for (const s of states) if (!seen.has(stateKey(s))) seen.set(stateKey(s), s);
  return seen.size === states.length ? states : [...seen.values()];
}

/** Removes candidates that reach the same state by the same sequence: they accept the same lines. */
function dedupeCandidates(candidates: Candidate[]): Candidate[] {
  if (candidates.length < 2) return candidates;
  const seen = new Map<string, Candidate>();
  for (const c of candidates) {
    let key = `${stateKey(c.after)}#${c.violation ?? ''}#`;
    for (const item of c.items)
      key +=
        item.kind === 'step'
          ? `${item.record.conn}:${item.record.transitions.join(',')}${JSON.stringify(item.record.event)};`
          : `${item.origin.machine}${item.origin.conn}:${item.effect.type}${item.effect.params ? JSON.stringify(item.effect.params) : ''};`;
    if (!seen.has(key)) seen.set(key, c);
  }
  return seen.size === candidates.length ? candidates : [...seen.values()];
}

/** A string equal for two states iff they are the same (connections compared in insertion order). */
function stateKey(s: CheckState): string {
  if (s.key !== undefined) return s.key;
  let key =
    `${s.listener}|${s.queueTasks.global ? 1 : 0}${s.queueTasks.frontend ? 1 : 0}|${s.live}|` +
    `${countersKey(s.counters)}|${s.sslLive}|`;
  for (const [id, rec] of s.conns) key += `${id}=${recKey(rec)}/`;
  s.key = key;
  return key;
}

function recKey(r: ConnRec): string {
  r.key ??= `${r.connection},${r.session},${r.armedAt},${JSON.stringify(r.mem)}`;
  return r.key;
}

/** The outcome of checking a whole trace. */
export interface TraceCheckResult {
  verdict: 'conforms' | Verdict;
  divergence: Divergence | null;
  stats: TraceStats;
  seconds: number;
}

/**
 * Checks the NDJSON lines of a whole trace under `config`, stopping at the first divergence.
 * Returns the verdict, the divergence if any, and what was seen. Pure apart from reading `lines`.
 */
export function checkTraceLines(
  lines: Iterable<string>,
  config: ModelConfig,
  options: TraceMonitorOptions = {},
): TraceCheckResult {
  const started = performance.now();
  const monitor = new TraceMonitor(config, options);
  let divergence: Divergence | null = null;
  for (const text of lines) {
    divergence = monitor.feed(text);
    if (divergence) break;
  }
  divergence ??= monitor.finish();
  return {
    verdict: divergence ? divergence.verdict : 'conforms',
    divergence,
    stats: monitor.stats,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Returns a divergence as text for a terminal: the line, why, the possible model states, what the
 * model expected, and the last lines. Pure.
 */
export function formatDivergence(d: Divergence): string {
  const out: string[] = [];
  const what = {
    diverges: 'diverges',
    violates: 'violates an invariant',
    invalid: 'is invalid',
    ambiguous: 'is too ambiguous',
  }[d.verdict];
  out.push(`line ${d.line} ${what}: ${d.message}`);
  out.push(`  ${d.text}`);
  if (d.stepLine !== null && d.stepLine !== d.line)
    out.push(`  (in the step of the input at line ${d.stepLine})`);
  if (d.expected.length > 0) {
    out.push('', 'the model would log next:');
    for (const e of d.expected) out.push(`  ${e}`);
  }
  out.push(
    '',
    `possible model states before this step: ${d.possibleCount}${d.possibleCount > d.possible.length ? ` (${d.possible.length} shown)` : ''}`,
  );
  d.possible.forEach((s, i) => {
    const q = [s.queueTasks.global ? 'global' : '', s.queueTasks.frontend ? 'frontend' : ''].filter(Boolean);
    out.push(
      `  #${i + 1} listener ${s.listener}${q.length ? ` (queue tasks: ${q.join(', ')})` : ''}, ${s.live} live`,
    );
    out.push(
      `     counters ${Object.entries(s.counters)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    for (const c of s.conns)
      out.push(
        `     conn ${c.conn}: connection ${c.connection}, session ${c.session}${c.errCode ? `, ${c.errCode}` : ''}`,
      );
    if (s.live > s.conns.length) out.push(`     … ${s.live - s.conns.length} more connections`);
  });
  out.push('', 'last lines:');
  for (const r of d.recent) out.push(`  ${String(r.line).padStart(6)}  ${r.text}`);
  return out.join('\n');
}
