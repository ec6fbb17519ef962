/**
 * The compiled model: the composed system (machines/system.ts) as integer tables, for the
 * explorer's hot path. A compact state is N + 1 integers: a global id (the listener's snapshot,
 * the queue tasks, the counters) and one local id per connection (its two machine snapshots and
 * its memory record, interned by connTuple). A step is two table reads and a copy.
 *
 * Where the tables come from. Every entry is XState's own answer: the first time a step is needed,
 * the compact state is decoded into a SystemState and `SystemModel.step` computes it, through the
 * machines' transition functions (compose.ts), the model's host and its memory; the result is
 * encoded and kept. Defects (machines/mutants.ts: guard overrides, replaced machines, effect
 * rewrites) are honoured the same way, since they live inside that SystemModel. Nothing here
 * decides a transition, runs a guard or executes an effect.
 *
 * Why one entry serves many states. In a SystemModel step (compose.ts, system.ts):
 * - an event touches the global part and at most one connection: its own (a connection or session
 *   event), or the one ACCEPT takes from the backlog (the lowest id whose connection is pending);
 *   messages between machines go to `origin.conn`, to the accepting connection or to the listener;
 * - a connection's machines and memory are read only for that connection, and its id is only a
 *   name: the machines never see it (the same fact symmetry reduction rests on);
 * - the counters are read only through the listener's gauges (nbconn, actconn, feconn, and the
 *   rate counters when a rate limit is set), by session_accept's maxsslconn test (sslconns), by
 *   connMaxUpdate (feconn, connMax) and by RATE_PERIOD;
 *   the others (writeOnlyCounters) only ever move by one counter effect at a time.
 * So the outcome of a step is a function of the listener, the queue tasks, the counters that are
 * read (together, the "abstract global"), the local id of the one connection and the kind of
 * event; the write-only counters move by a delta that is part of the outcome, and the records name
 * whichever connection took the step. An entry is keyed by exactly that.
 * These claims are checked, not trusted: each entry checks when it is filled that no other
 * connection changed or stepped, and test/properties/compiled.test.ts checks that `step` and
 * `SystemModel.step` agree on every event in every reachable state of every configuration, and
 * that both engines of properties/explore.ts find the same states and the same counterexamples.
 *
 * Invariants are not compiled: the explorer runs the checks of properties/invariants.ts as they
 * are. A check that says what it reads of its context (CheckScope) is a function of a few table
 * ids, so InvariantMemo runs it once per those ids, on a context that holds it to its word, and
 * remembers that it held; the other checks run on views built from the tables (`view`), whose
 * per-connection parts are built once per local id and connection id.
 */
import type { TransitionRecord } from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import { zeroCounters, type Counters } from '../machines/counters.ts';
import type { ConnMemory, SystemEvent, SystemModel, SystemState } from '../machines/system.ts';
import {
  scopeOf,
  type CheckScope,
  type ConnView,
  type Invariant,
  type InvariantContext,
  type StateView,
} from './invariants.ts';

/** The events an explorer tries: those of the system, and those of each connection. */
export interface Alphabet {
  events: SystemEvent[]; //   every event, indexed by id
  global: number[]; //        ids of the events that name no connection, in order
  perConn: number[][]; //     ids of the events of each connection, in the same order for every connection
}

/**
 * The counters that nothing in a step reads under `config` (no guard, gauge, enabling condition,
 * reset or other counter's update) and that counter effects only ever move by one (counters.ts),
 * so that a step adds a fixed delta to them. The cumulative counters and jobs always are. The rate
 * counters are too when neither maxconnrate nor rate-limit sessions is set: the gauges then read
 * an infinite budget and RATE_PERIOD, which resets them, never happens. Every other counter is
 * part of the abstract global, so a counter added to counters.ts later is safe by default. Pure.
 */
export function writeOnlyCounters(config: ModelConfig): (keyof Counters)[] {
  const always: (keyof Counters)[] = [
    'cumConn',
    'cumSess',
    'deniedConn',
    'lCumConn',
    'lCumSess',
    'jobs',
    'totalconn',
    'totalsslconns',
  ];
  const rates: (keyof Counters)[] = ['connPerSec', 'feConnPerSec', 'feSessPerSec'];
  return config.maxconnrate === null && config.rateLimitSessions === null ? [...always, ...rates] : always;
}

const COUNTERS = Object.keys(zeroCounters()) as (keyof Counters)[];

const LIFE = { none: 0, live: 1, freed: 2 } as const;
const FD = { none: 0, open: 1, closed: 2 } as const;
const PROCESS = { none: 0, expire: 1, handler: 2 } as const;

/**
 * Returns the tuple of connection `conn` of `s`: its two interned machine snapshot ids and every
 * field of its memory record, as a string. Equal for two connections iff their machines and memory
 * are equal. Pure.
 */
export function connTuple(s: SystemState, conn: number): string {
  const slots = s.world.conns.get(conn)!;
  const m: ConnMemory = s.memory[conn]!;
  const flags =
    FD[m.fd] +
    3 * (m.inFdtab ? 1 : 0) +
    6 * (m.linger === 'rst' ? 1 : 0) +
    12 * (m.closedWith === null ? 0 : m.closedWith === 'fin' ? 1 : 2) +
    36 * LIFE[m.session] +
    108 * LIFE[m.task] +
    324 * PROCESS[m.taskProcess] +
    972 * LIFE[m.bufs.req] +
    2916 * LIFE[m.bufs.rep] +
    8748 * LIFE[m.bufs.txn] +
    26244 * (m.inList ? 1 : 0) +
    52488 * LIFE[m.sslCtx];
  let t = `${slots.connection}.${slots.session}.${flags}.${m.fdCloses}.${m.embryonicEnds}.${m.logged}.${m.deadline ?? '-'}`;
  if (m.sent.length > 0) t += `.s${m.sent.join('')}`;
  if (m.faults.length > 0) t += `.f${m.faults.join('|')}`;
  return t;
}

/** The abstract global: what of the global part a step reads. */
interface Abstract {
  listener: number; //            the listener's snapshot id
  queueGlobal: boolean;
  queueFrontend: boolean;
  keyed: number[]; //             the keyed counters, in `keyed` order
  enabled: Int8Array; //          per global event × (no pending, pending): -1 unknown, 0, 1
  ids: (Int32Array | undefined)[]; // by pending (0, 1): the ids of the global events enabled
  steps: Map<number, CompiledStep>; // the table from here: by (local id + 1) × SLOTS + event kind
}

/** One global part: an abstract global and the write-only counters. */
interface Global {
  abs: number;
  w: number[]; //                 the write-only counters, in `writeOnly` order
  counters: Counters; //          all of them (shared by every view of the global: never mutate)
  listenerValue: string; //       the listener's dotted state
  edges: (Edge | undefined)[][]; // memo: by (local id of the connection stepped + 1, event kind)
  next: (number | undefined)[]; // memo: the global id a step leads to, by the step's `delta`
}

/**
 * One edge class from a global part: an event kind applied to a connection of one local id (or
 * to none), whichever connection that is. Every state with that global part and that local id
 * takes it the same way.
 */
export interface Edge {
  readonly step: CompiledStep;
  readonly gid: number; //        the global id it leads to
  readonly dlive: number; //      what it adds to the number of live sessions
  /**
   * Owned by the one InvariantMemo of the compiled model: what it knows of the 'global' step
   * invariants on this edge, as bits over the live count before it (0 until it knows).
   */
  checked: number;
}

/** One connection's local part. */
interface Local {
  connection: number; //          interned snapshot ids (the model's runners)
  session: number;
  mem: ConnMemory; //             shared by every view of the local: never mutate
  tuple: string;
  pending: boolean; //            the connection is in the backlog (ACCEPT may take it)
  live: boolean; //               its session memory is live
  sslLive: boolean; //            its SSL context is live
  enabled: Int8Array; //          per connection event (index in perConn[c]): -1 unknown, 0, 1
  ids: (Int32Array | undefined)[]; // by connection id: the ids of its events enabled
  views: (ConnView | undefined)[]; // its view at each connection id
}

/** The tables of a CompiledModel as plain data (see CompiledModel.tables). */
export interface CompiledTables {
  writeOnly: (keyof Counters)[]; //  the write-only counters, in the order of `dw`
  abstracts: { listener: string; enabled: number[] }[]; // enabled: per global event × (no pending, pending)
  locals: { tuple: string; pending: boolean; enabled: number[] }[]; // enabled: per connection event kind
  steps: {
    abs: number; //      the abstract global it applies in
    local: number; //    the local id of the connection it applies to, -1 for a step that touches none
    event: number; //    its global event id, or -1 for a connection event
    connKind: number; // its index in perConn[c] for a connection event, or -1
    toAbs: number;
    toLocal: number; //  -1 for none
    dw: number[];
  }[];
  initialW: number[]; // the write-only counters of global id 0 (the initial state, when encoded first)
}

/**
 * One compiled step: what an event does to the abstract global and to the one connection it
 * touches, whichever connection that is (the model treats connection ids as names only).
 */
export interface CompiledStep {
  index: number; //               position in the table, for the explorer's memo of globals
  abs: number; //                 the abstract global after the step
  dw: number[]; //                what the step adds to the write-only counters
  touches: boolean; //            whether the step touches a connection
  local: number; //               that connection's local id after the step (-1 for none)
  delta: number; //               what the step does to a global part (`abs` and `dw`), interned
  records: TransitionRecord[][]; // the machine steps by connection id, as SystemModel.step returns them
  /**
   * Owned by the one InvariantMemo of the compiled model: per connection stepped, whether the
   * 'connStep' step invariants hold on it (0 unknown, 1 hold, 2 one fails).
   */
  checked: Int8Array;
}

const SLOTS = 1024; //      event kinds in a table key: a global event id, or alphabet size + index in perConn
const LOCALS = 1 << 20; //  local ids in a table key (the local id + 1, 0 for a global event)

/**
 * The composed model of `model` compiled into tables, for the events of `alphabet` (which must be
 * built for `model.n` connections). Tables fill lazily from `model.step`; the compiled model owns
 * them and the views it returns, and never changes `model`. A compact state is an Int32Array
 * region of `width` = n + 1 integers: [global id, local id of connection 0, …].
 */
export class CompiledModel {
  readonly n: number;
  readonly width: number;
  private readonly writeOnly: (keyof Counters)[];
  private readonly keyed: (keyof Counters)[];
  private readonly abstracts: Abstract[] = [];
  private readonly absIds = new Map<string, number>();
  private readonly globals: Global[] = [];
  private readonly globalIds = new Map<string, number>();
  private peeked: SystemState | null = null; // the last state `peek` returned, and its compact form
  private readonly peekedAt: Int32Array;
  private readonly locals: Local[] = [];
  private readonly localIds = new Map<string, number>();
  private readonly steps: CompiledStep[] = [];
  private readonly deltaIds = new Map<string, number>(); // CompiledStep.delta by `abs` and `dw`
  private readonly viewLocal = new Map<ConnView, number>(); // each connection view's local id
  private readonly kindOf: Int32Array; //   per event id: its index in perConn[c], or -1 for a global event
  private readonly connOf: Int32Array; //   per event id: its connection, or -1
  private readonly accepts: Int8Array; //   per event id: 1 for an ACCEPT (takes the oldest pending connection)
  private readonly kinds: number; //        event kinds: the alphabet's events, then perConn's indexes
  /** The edge the last `apply` took, and the connection it stepped (-1 for none): read right after it. */
  lastEdge: Edge | null = null;
  lastConn = -1;
  /** Whether an InvariantMemo owns the `checked` masks of the edges. */
  memoised = false;

  constructor(
    readonly model: SystemModel,
    readonly alphabet: Alphabet,
  ) {
    this.n = model.n;
    this.width = model.n + 1;
    this.writeOnly = writeOnlyCounters(model.config);
    this.keyed = COUNTERS.filter((k) => !this.writeOnly.includes(k));
    this.peekedAt = new Int32Array(this.width);
    if (alphabet.perConn.length !== model.n) throw new Error('the alphabet is not for this many connections');
    if (alphabet.events.length * 2 > SLOTS) throw new Error('too many events for the compiled model');
    const count = alphabet.events.length;
    this.kindOf = new Int32Array(count).fill(-1);
    this.connOf = new Int32Array(count).fill(-1);
    this.accepts = new Int8Array(count);
    this.kinds = count + (alphabet.perConn[0]?.length ?? 0);
    alphabet.events.forEach((e, id) => (this.accepts[id] = e.type === 'ACCEPT' ? 1 : 0));
    alphabet.perConn.forEach((ids, c) =>
      ids.forEach((id, k) => {
        this.kindOf[id] = k;
        this.connOf[id] = c;
      }),
    );
  }

  /** The number of compiled steps so far (table entries). */
  get size(): number {
    return this.steps.length;
  }

  /** The compiled steps so far, in the order they were filled. Owned by the compiled model: read only. */
  compiledSteps(): readonly CompiledStep[] {
    return this.steps;
  }

  /** Returns the compact initial state (a new array the caller owns). */
  initial(): Int32Array {
    return this.encode(this.model.initial());
  }

  /** Returns the compact form of `s` (a new array the caller owns). Pure apart from interning. */
  encode(s: SystemState): Int32Array {
    const out = new Int32Array(this.width);
    this.encodeInto(s, out, 0);
    return out;
  }

  private encodeInto(s: SystemState, out: Int32Array, off: number): void {
    out[off] = this.internGlobalOf(s);
    for (let c = 0; c < this.n; c++) out[off + 1 + c] = this.internLocal(s, c);
  }

  /** The global id of the global part of `s`. */
  private internGlobalOf(s: SystemState): number {
    return this.internGlobal(
      this.internAbstract(s.world.listener, s.queueTasks.global, s.queueTasks.frontend, s.counters),
      this.writeOnly.map((k) => s.counters[k]),
    );
  }

  /** True iff connection `c` of `s` is the local part `lid`: the same snapshots and memory. */
  private sameLocal(lid: number, s: SystemState, c: number): boolean {
    const l = this.locals[lid]!;
    const slots = s.world.conns.get(c);
    return (
      slots !== undefined &&
      slots.connection === l.connection &&
      slots.session === l.session &&
      sameData(l.mem, s.memory[c])
    );
  }

  /**
   * Returns the SystemState of the compact state at `buf[off…]`: a deep copy that shares nothing
   * mutable with the tables, as SystemModel.step would return it. The caller owns it.
   */
  decode(buf: Int32Array, off = 0): SystemState {
    return this.decodeParts(buf[off]!, localIds(buf, off, this.n), true);
  }

  /**
   * Returns the SystemState of global `gid` and local ids `lids`. With `copy` false the state shares
   * the tables' memory records and counters: only for SystemModel.step and isEnabled, which never
   * change the state they are given.
   */
  private decodeParts(gid: number, lids: readonly number[], copy: boolean): SystemState {
    const g = this.globals[gid]!;
    const a = this.abstracts[g.abs]!;
    const conns = new Map<number, { connection: number; session: number }>();
    const memory: ConnMemory[] = [];
    for (let c = 0; c < this.n; c++) {
      const l = this.locals[lids[c]!]!;
      conns.set(c, { connection: l.connection, session: l.session });
      memory.push(copy ? cloneMemory(l.mem) : l.mem);
    }
    return {
      world: { listener: a.listener, conns },
      counters: copy ? { ...g.counters } : g.counters,
      memory,
      queueTasks: { global: a.queueGlobal, frontend: a.queueFrontend },
    };
  }

  /**
   * The state at `buf[off…]` sharing the tables' objects: see decodeParts. The last one is kept
   * and returned again for the same compact state: a state's enabled events and its steps are
   * filled one after the other, and SystemModel.step and isEnabled never change the state they
   * are given (decodeParts), so the state stays what it was decoded from.
   */
  private peek(buf: Int32Array, off: number): SystemState {
    const at = this.peekedAt;
    let same = this.peeked !== null;
    for (let c = 0; c <= this.n && same; c++) same = at[c] === buf[off + c];
    if (same) return this.peeked!;
    for (let c = 0; c <= this.n; c++) at[c] = buf[off + c]!;
    return (this.peeked = this.decodeParts(buf[off]!, localIds(buf, off, this.n), false));
  }

  /** Returns the SystemState a view of this model stands for (a deep copy the caller owns). */
  decodeView(gid: number, conns: readonly ConnView[]): SystemState {
    return this.decodeParts(
      gid,
      conns.map((v) => this.viewLocal.get(v)!),
      true,
    );
  }

  /**
   * Writes into `out` (from 0) the ids of the events to try in the compact state at `buf[off…]`,
   * in the order of the reference explorer: the enabled global events, then the enabled events of
   * each connection (with `symmetry`, only of a connection whose local id no earlier connection
   * has). Returns how many were written. `out` must hold alphabet.events.length ids.
   */
  candidates(buf: Int32Array, off: number, symmetry: boolean, out: Int32Array): number {
    let count = 0;
    const a = this.abstracts[this.globals[buf[off]!]!.abs]!;
    let pending = 0;
    for (let c = 0; c < this.n; c++)
      if (this.locals[buf[off + 1 + c]!]!.pending) {
        pending = 1;
        break;
      }
    const global = a.ids[pending] ?? this.globalEventIds(a, pending, buf, off);
    for (let i = 0; i < global.length; i++) out[count++] = global[i]!;
    conns: for (let c = 0; c < this.n; c++) {
      const lid = buf[off + 1 + c]!;
      if (symmetry) for (let d = 0; d < c; d++) if (buf[off + 1 + d] === lid) continue conns;
      const l = this.locals[lid]!;
      const ids = l.ids[c] ?? this.connIds(l, c, buf, off);
      for (let k = 0; k < ids.length; k++) out[count++] = ids[k]!;
    }
    return count;
  }

  /** The ids of the global events enabled in abstract global `a` with (1) or without (0) a pending connection. */
  private globalEventIds(a: Abstract, pending: number, buf: Int32Array, off: number): Int32Array {
    const global = this.alphabet.global;
    const ids: number[] = [];
    for (let i = 0; i < global.length; i++) {
      let e = a.enabled[2 * i + pending]!;
      if (e < 0) {
        e = this.model.isEnabled(this.peek(buf, off), this.alphabet.events[global[i]!]!) ? 1 : 0;
        a.enabled[2 * i + pending] = e;
      }
      if (e === 1) ids.push(global[i]!);
    }
    return (a.ids[pending] = Int32Array.from(ids));
  }

  /** The ids of the events of connection `c` enabled when its local part is `l`. */
  private connIds(l: Local, c: number, buf: Int32Array, off: number): Int32Array {
    const perConn = this.alphabet.perConn[c]!;
    const ids: number[] = [];
    for (let k = 0; k < perConn.length; k++) {
      let e = l.enabled[k]!;
      if (e < 0) {
        e = this.model.isEnabled(this.peek(buf, off), this.alphabet.events[perConn[k]!]!) ? 1 : 0;
        l.enabled[k] = e;
      }
      if (e === 1) ids.push(perConn[k]!);
    }
    return (l.ids[c] = Int32Array.from(ids));
  }

  /**
   * Returns true iff event `id` can happen in the compact state at `buf[off…]` (as
   * SystemModel.isEnabled says).
   */
  isEnabled(buf: Int32Array, off: number, id: number): boolean {
    const all = new Int32Array(this.alphabet.events.length);
    const count = this.candidates(buf, off, false, all);
    for (let i = 0; i < count; i++) if (all[i] === id) return true;
    return false;
  }

  /**
   * Applies event `id`, which must be enabled (see `candidates`), to the compact state at
   * `buf[off…]`, writing the successor to `out[outOff…]` (a region that must not overlap it).
   * Returns the machine steps taken, exactly as SystemModel.step returns them; they are shared by
   * every state that takes the same step: read only. Throws if a step filled from the model
   * touched more than one connection (a broken locality assumption: see the header).
   */
  apply(buf: Int32Array, off: number, id: number, out: Int32Array, outOff: number): TransitionRecord[] {
    const gid = buf[off]!;
    const g = this.globals[gid]!;
    let conn = this.connOf[id]!;
    let kind = id;
    if (conn >= 0) kind = this.alphabet.events.length + this.kindOf[id]!;
    else if (this.accepts[id] === 1)
      for (let c = 0; c < this.n; c++)
        if (this.locals[buf[off + 1 + c]!]!.pending) {
          conn = c;
          break;
        }
    const local = conn < 0 ? 0 : buf[off + 1 + conn]! + 1;
    const row = g.edges[local] ?? this.edgeRow(g, local);
    const edge = row[kind] ?? this.edge(g, row, local, kind, buf, off, id, conn);
    const step = edge.step;
    this.lastEdge = edge;
    this.lastConn = conn;
    out[outOff] = edge.gid;
    for (let c = 1; c <= this.n; c++) out[outOff + c] = buf[off + c]!;
    if (!step.touches) return step.records[0]!;
    out[outOff + 1 + conn] = step.local;
    return step.records[conn] ?? this.renamed(step, conn);
  }

  private edgeRow(g: Global, local: number): (Edge | undefined)[] {
    const row = new Array<Edge | undefined>(this.kinds).fill(undefined);
    g.edges[local] = row;
    return row;
  }

  /** Fills the edge of `kind` from global `g` for a connection of local id `local` - 1 (0: none). */
  private edge(
    g: Global,
    row: (Edge | undefined)[],
    local: number,
    kind: number,
    buf: Int32Array,
    off: number,
    id: number,
    conn: number,
  ): Edge {
    const table = this.abstracts[g.abs]!.steps;
    const key = local * SLOTS + kind;
    let step = table.get(key);
    if (!step) {
      step = this.fill(buf, off, id, conn);
      table.set(key, step);
    }
    // The global part after the step is (step.abs, g.w + step.dw): a function of g and the
    // step's delta, which many steps share (all those that leave the global part as it was, say),
    // so it is interned once per global part and delta rather than once per edge.
    let next = g.next[step.delta];
    if (next === undefined) {
      const dw = step.dw;
      next = this.internGlobal(
        step.abs,
        g.w.map((v, i) => v + dw[i]!),
      );
      g.next[step.delta] = next;
    }
    const dlive = step.touches
      ? (this.locals[step.local]!.live ? 1 : 0) - (this.locals[local - 1]!.live ? 1 : 0)
      : 0;
    const edge: Edge = { step, gid: next, dlive, checked: 0 };
    row[kind] = edge;
    return edge;
  }

  /** The records of `step` for connection `conn`: those of the connection it was filled for, renamed. */
  private renamed(step: CompiledStep, conn: number): TransitionRecord[] {
    const from = step.records.findIndex((r) => r !== undefined);
    const records = step.records[from]!.map((r) => (r.conn === from ? { ...r, conn } : r));
    step.records[conn] = records;
    return records;
  }

  /**
   * The compiled step of `SystemModel.step`: returns the successor of the compact state `state`
   * under event `id` (a new array) with the machine steps taken, or null when the event cannot
   * happen there. For tests and tools; the explorer uses `candidates` and `apply`.
   */
  step(state: Int32Array, id: number): { state: Int32Array; records: TransitionRecord[] } | null {
    if (!this.isEnabled(state, 0, id)) return null;
    const next = new Int32Array(this.width);
    const records = this.apply(state, 0, id, next, 0);
    return { state: next, records };
  }

  private fill(buf: Int32Array, off: number, id: number, conn: number): CompiledStep {
    const r = this.model.step(this.peek(buf, off), this.alphabet.events[id]!);
    if (!r) throw new Error(`compiled model: event ${id} is not enabled where it was tried`);
    // Only the connection stepped is encoded; every other one must have stayed as it was.
    const gid = this.internGlobalOf(r.state);
    let local = -1;
    for (let c = 0; c < this.n; c++)
      if (c === conn) local = this.internLocal(r.state, c);
      else if (!this.sameLocal(buf[off + 1 + c]!, r.state, c))
        throw new Error(`compiled model: event ${id} on connection ${conn} changed connection ${c}`);
    for (const rec of r.records)
      if (rec.conn !== null && rec.conn !== conn)
        throw new Error(`compiled model: event ${id} on connection ${conn} stepped connection ${rec.conn}`);
    const g = this.globals[buf[off]!]!;
    const g2 = this.globals[gid]!;
    const records: TransitionRecord[][] = [];
    records[conn < 0 ? 0 : conn] = r.records;
    const dw = g2.w.map((v, i) => v - g.w[i]!);
    const deltaKey = `${g2.abs}|${dw.join(',')}`;
    let delta = this.deltaIds.get(deltaKey);
    if (delta === undefined) this.deltaIds.set(deltaKey, (delta = this.deltaIds.size));
    const step: CompiledStep = {
      index: this.steps.length,
      abs: g2.abs,
      dw,
      touches: conn >= 0,
      local,
      delta,
      records,
      checked: new Int8Array(this.n),
    };
    this.steps.push(step);
    return step;
  }

  /**
   * Returns the view of the compact state at `buf[off…]` that properties/invariants.ts reads: the
   * same fields viewOf gives, with connection views shared between states (read only). Its
   * `state` is decoded on first read.
   */
  view(buf: Int32Array, off = 0): StateView {
    return this.viewInto(new CompiledView(this), buf, off);
  }

  /**
   * Makes `view` (a view this model returned, or a new one from `reusableView`) the view of the
   * compact state at `buf[off…]` and returns it: the explorer's hot path, which allocates no view
   * per edge. A view reused this way is valid until its next reuse, so it may only be read during
   * one invariant check (invariants are pure and keep nothing).
   */
  viewInto(view: StateView, buf: Int32Array, off: number): StateView {
    const v = view as CompiledView;
    const g = this.globals[buf[off]!]!;
    const conns = v.conns;
    let live = 0;
    let sslLive = 0;
    for (let c = 0; c < this.n; c++) {
      const lid = buf[off + 1 + c]!;
      const l = this.locals[lid]!;
      if (l.live) live++;
      if (l.sslLive) sslLive++;
      conns[c] = l.views[c] ?? this.connView(l, lid, c);
    }
    v.gid = buf[off]!;
    v.counters = g.counters;
    v.listener = g.listenerValue;
    v.live = live;
    v.sslLive = sslLive;
    v.decoded = null;
    return v;
  }

  /** Returns a view to be filled by viewInto. */
  reusableView(): StateView {
    return new CompiledView(this);
  }

  /** Returns how many connections of the compact state at `buf[off…]` hold a live session. Pure. */
  liveOf(buf: Int32Array, off: number): number {
    let live = 0;
    for (let c = 0; c < this.n; c++) if (this.locals[buf[off + 1 + c]!]!.live) live++;
    return live;
  }

  /** Returns the view of connection `c` when its local id is `lid` (shared: read only). */
  connViewOf(lid: number, c: number): ConnView {
    const l = this.locals[lid]!;
    return l.views[c] ?? this.connView(l, lid, c);
  }

  /** Returns the counters of global id `gid` (shared and frozen: read only). */
  countersOf(gid: number): Counters {
    return this.globals[gid]!.counters;
  }

  /** Returns the listener's dotted state in global id `gid`. */
  listenerOf(gid: number): string {
    return this.globals[gid]!.listenerValue;
  }

  private connView(l: Local, lid: number, c: number): ConnView {
    const sessionCtx = this.model.composition.runners.session.snaps[l.session]!.context as {
      ret?: number | null;
    };
    const connCtx = this.model.composition.runners.connection.snaps[l.connection]!.context as {
      errCode?: string | null;
    };
    const v: ConnView = {
      id: c,
      connection: this.model.composition.runners.connection.value(l.connection),
      session: this.model.composition.runners.session.value(l.session),
      errCode: connCtx.errCode ?? null,
      ret: sessionCtx.ret ?? null,
      mem: l.mem,
    };
    l.views[c] = Object.freeze(v);
    this.viewLocal.set(v, lid);
    return v;
  }

  /**
   * Writes into `out[0…width)` the canonical form of the compact state at `buf[off…]`: with
   * `symmetry`, its local ids sorted (equal for two states iff they are equal up to a renaming of
   * the connections); without, the state as it is. Pure apart from writing `out`.
   */
  canonical(buf: Int32Array, off: number, symmetry: boolean, out: Int32Array): void {
    const n = this.n;
    out[0] = buf[off]!;
    for (let c = 1; c <= n; c++) out[c] = buf[off + c]!;
    if (symmetry)
      for (let i = 2; i <= n; i++) {
        const v = out[i]!;
        let j = i - 1;
        while (j >= 1 && out[j]! > v) {
          out[j + 1] = out[j]!;
          j--;
        }
        out[j + 1] = v;
      }
  }

  /**
   * Returns a plain copy of the tables filled so far, for generators (bench/promela/generate.ts):
   * what is enabled where, and every compiled step with where it applies. Entries never filled
   * are -1 in `enabled`. Pure apart from copying; the caller owns the result.
   */
  tables(): CompiledTables {
    const steps: CompiledTables['steps'] = [];
    this.abstracts.forEach((a, abs) => {
      for (const [key, step] of a.steps) {
        const kind = key % SLOTS;
        const perConn = kind >= this.alphabet.events.length;
        steps.push({
          abs,
          local: Math.floor(key / SLOTS) - 1,
          event: perConn ? -1 : kind,
          connKind: perConn ? kind - this.alphabet.events.length : -1,
          toAbs: step.abs,
          toLocal: step.local,
          dw: [...step.dw],
        });
      }
    });
    const g0 = this.globals[0];
    return {
      writeOnly: [...this.writeOnly],
      abstracts: this.abstracts.map((a) => ({
        listener: this.model.composition.runners.listener.value(a.listener),
        enabled: Array.from(a.enabled),
      })),
      locals: this.locals.map((l) => ({
        tuple: l.tuple,
        pending: l.pending,
        enabled: Array.from(l.enabled),
      })),
      steps,
      initialW: g0 ? [...g0.w] : [],
    };
  }

  private internAbstract(listener: number, qg: boolean, qf: boolean, counters: Counters): number {
    const keyed = this.keyed.map((k) => counters[k]);
    const key = `${listener}|${qg ? 1 : 0}${qf ? 1 : 0}|${keyed.join(',')}`;
    const known = this.absIds.get(key);
    if (known !== undefined) return known;
    const id = this.abstracts.length;
    if (id >= 1 << 20) throw new Error('compiled model: too many abstract globals');
    this.abstracts.push({
      listener,
      queueGlobal: qg,
      queueFrontend: qf,
      keyed,
      enabled: new Int8Array(2 * this.alphabet.global.length).fill(-1),
      ids: [undefined, undefined],
      steps: new Map(),
    });
    this.absIds.set(key, id);
    return id;
  }

  private internGlobal(abs: number, w: number[]): number {
    const key = globalKey(abs, w);
    const known = this.globalIds.get(key);
    if (known !== undefined) return known;
    const a = this.abstracts[abs]!;
    const counters = zeroCounters();
    this.keyed.forEach((k, i) => (counters[k] = a.keyed[i]!));
    this.writeOnly.forEach((k, i) => (counters[k] = w[i]!));
    const id = this.globals.length;
    this.globals.push({
      abs,
      w,
      counters: Object.freeze(counters),
      listenerValue: this.model.composition.runners.listener.value(a.listener),
      edges: [],
      next: [],
    });
    this.globalIds.set(key, id);
    if (id > 0x7fffffff) throw new Error('compiled model: too many global parts');
    return id;
  }

  private internLocal(s: SystemState, c: number): number {
    const tuple = connTuple(s, c);
    const known = this.localIds.get(tuple);
    if (known !== undefined) return known;
    const id = this.locals.length;
    if (id >= LOCALS - 1) throw new Error('compiled model: too many local parts');
    const slots = s.world.conns.get(c)!;
    const mem = frozenMemory(s.memory[c]!);
    this.locals.push({
      connection: slots.connection,
      session: slots.session,
      mem,
      tuple,
      pending: this.model.composition.runners.connection.value(slots.connection) === 'pending',
      live: mem.session === 'live',
      sslLive: mem.sslCtx === 'live',
      enabled: new Int8Array(this.alphabet.perConn[0]?.length ?? 0).fill(-1),
      ids: new Array<Int32Array | undefined>(this.n).fill(undefined),
      views: [],
    });
    this.localIds.set(tuple, id);
    return id;
  }
}

/** Thrown by a guarded context when a check reads what its scope does not allow. */
class ScopeError extends Error {}

/** Throws the ScopeError of reading `what`. */
function forbidden(what: string): never {
  throw new ScopeError(what);
}

/** The view a 'global' check reads: the totals of a state; its connections and whole state throw. */
class TotalsView implements StateView {
  constructor(
    public live: number,
    public counters: Counters,
    public listener: string,
  ) {}

  get conns(): ConnView[] {
    return forbidden("the connections' views");
  }

  get sslLive(): number {
    return forbidden('the count of live SSL contexts');
  }

  get state(): SystemState {
    return forbidden('the whole state');
  }
}

/**
 * The view a 'conn' or 'connStep' check reads: connection views, and for 'conn' the live count
 * (null: reading it throws); the counters, the listener and the whole state throw. The views may
 * be read once per check (`reset` starts a check): eachConn and eachConnStep read them once to
 * find the connection, so a second read is the per-connection check looking at the others.
 */
class ConnsView implements StateView {
  private reads = 0;

  constructor(
    private readonly views: ConnView[],
    private readonly liveCount: number | null,
  ) {}

  reset(): void {
    this.reads = 0;
  }

  get conns(): ConnView[] {
    if (this.reads++ > 0) return forbidden("the connections' views again (other connections')");
    return this.views;
  }

  get live(): number {
    return this.liveCount ?? forbidden('the live count');
  }

  get sslLive(): number {
    return forbidden('the count of live SSL contexts');
  }

  get counters(): Counters {
    return forbidden('the counters');
  }

  get listener(): string {
    return forbidden('the listener');
  }

  get state(): SystemState {
    return forbidden('the whole state');
  }
}

/** The context of a state check: the configuration and the state; anything else throws. */
class StateGuard implements InvariantContext {
  constructor(
    readonly config: ModelConfig,
    readonly next: StateView,
  ) {}

  get prev(): StateView | null {
    return forbidden('the state before the step');
  }

  get event(): SystemEvent | null {
    return forbidden('the event');
  }

  get records(): readonly TransitionRecord[] {
    return forbidden('the machine steps');
  }

  get model(): SystemModel {
    return forbidden('the model');
  }
}

/** The context of a step check: the configuration, both states, the event, the records; the model throws. */
class StepGuard implements InvariantContext {
  constructor(
    readonly config: ModelConfig,
    public next: StateView,
    public prev: StateView,
    public event: SystemEvent | null,
    public records: readonly TransitionRecord[],
  ) {}

  get model(): SystemModel {
    return forbidden('the model');
  }
}

/**
 * The context of a 'connStep' check: the configuration, the connection's views before and after,
 * and the records naming it; anything else throws.
 */
class ConnStepGuard implements InvariantContext {
  constructor(
    readonly config: ModelConfig,
    readonly next: StateView,
    readonly prev: StateView,
    readonly records: readonly TransitionRecord[],
  ) {}

  get event(): SystemEvent | null {
    return forbidden('the event');
  }

  get model(): SystemModel {
    return forbidden('the model');
  }
}

/** Edge.checked: bit `live` once the 'global' step invariants hold, bit FAILS_AT + `live` once one fails. */
const FAILS_AT = 13;
/** With more connections, the edge masks cannot key the live count: step invariants are not memoised. */
const MEMO_MAX_CONNECTIONS = 12;

/**
 * The outcomes of the invariants whose checks are scoped (CheckScope, properties/invariants.ts) on
 * the states and edges of one compiled model, memoised on the ids their scope makes them a
 * function of:
 * - a 'conn' state invariant, on (local id, connection id, live count): eachConn's per-connection
 *   check reads the connection's view (a function of its local id and id), the configuration and
 *   the live count only;
 * - a 'global' state invariant, on (global id, live count): the counters and the listener are
 *   the global part's;
 * - a 'global' step invariant, on (edge, live count before): the edge (a global id, a local id
 *   and an event kind) fixes the global id after, the local ids before and after of the connection
 *   stepped (so the live count after), and the event and the machine steps but for the connection
 *   they name, which a 'global' check does not read;
 * - a 'connStep' step invariant, on (compiled step, connection stepped) for that connection (the
 *   step fixes its local ids before and after and its records), and on (local id, connection id)
 *   for every other one, which the step leaves as it was and names in no record.
 * A memo entry is filled by running the checks on a context that gives them exactly what their
 * scope allows and throws on anything else (so a check that reads more than its scope says fails
 * loudly instead of being memoised wrongly). Untagged invariants run on every state or edge, as
 * do the step invariants with more than MEMO_MAX_CONNECTIONS connections. The memo only ever
 * concludes that everything holds: an edge where anything fails is checked again in full by the
 * caller, so the violations reported are those of checkInvariants, in its order.
 */
export class InvariantMemo {
  private readonly n: number;
  private readonly connState: readonly Invariant[];
  private readonly globalState: readonly Invariant[];
  private readonly globalStep: readonly Invariant[];
  private readonly connStep: readonly Invariant[];
  private readonly otherState: readonly Invariant[];
  private readonly otherStep: readonly Invariant[];
  private connOk = new Int8Array(0); //  by (local id × n + connection) × (n + 1) + live: 0 unknown, 1 hold, 2 fail
  private stateOk = new Int8Array(0); // by global id × (n + 1) + live: the same
  private keptOk = new Int8Array(0); //  by local id × n + connection: 'connStep' on a connection the step keeps
  // The state entered (see `enter`).
  private gid = 0;
  private live = 0;
  private keptAll = false; //            'connStep' holds on each of its connections if the step keeps it
  // For the untagged invariants: a context on the views of the edge, filled only when they exist.
  private readonly prevView: StateView;
  private readonly nextView: StateView;
  private readonly ctx: InvariantContext;
  // The guard of the 'global' step invariants, reused (it is filled for each check).
  private readonly stepBefore: TotalsView;
  private readonly stepAfter: TotalsView;
  private readonly stepGuard: StepGuard;
  // The guard of the 'global' state invariants, reused the same way.
  private readonly stateTotals: TotalsView;
  private readonly stateGuard: StateGuard;
  private readonly anonymousEvents: SystemEvent[];
  private readonly anonymousRecords: (readonly TransitionRecord[])[] = []; // by compiled step index
  // The views the 'connStep' guards show, by local id × n + connection: after the step, and before.
  private readonly connStepViews: ConnsView[] = [];
  private readonly connStepBefore: ConnsView[] = [];

  /**
   * Memoises `invariants` (checked under the configuration of the compiled model) on the tables
   * of `compiled`, whose memo slots (Edge.checked, CompiledStep.checked) it then owns; a compiled
   * model has at most one memo (throws otherwise).
   */
  constructor(
    private readonly compiled: CompiledModel,
    invariants: readonly Invariant[],
  ) {
    if (compiled.memoised) throw new Error('this compiled model already has an invariant memo');
    compiled.memoised = true;
    this.n = compiled.n;
    const stepMemo = this.n <= MEMO_MAX_CONNECTIONS;
    const of = (kind: Invariant['kind'], scope: CheckScope, memoised = true): Invariant[] =>
      memoised ? invariants.filter((inv) => inv.kind === kind && scopeOf(inv) === scope) : [];
    this.connState = of('state', 'conn');
    this.globalState = of('state', 'global');
    this.globalStep = of('step', 'global', stepMemo);
    this.connStep = of('step', 'connStep', stepMemo);
    const memoised = new Set([...this.connState, ...this.globalState, ...this.globalStep, ...this.connStep]);
    this.otherState = invariants.filter((inv) => inv.kind === 'state' && !memoised.has(inv));
    this.otherStep = invariants.filter((inv) => inv.kind === 'step' && !memoised.has(inv));
    this.prevView = compiled.reusableView();
    this.nextView = compiled.reusableView();
    const model = compiled.model;
    this.stepBefore = new TotalsView(0, zeroCounters(), '');
    this.stepAfter = new TotalsView(0, zeroCounters(), '');
    this.stepGuard = new StepGuard(model.config, this.stepAfter, this.stepBefore, null, []);
    this.stateTotals = new TotalsView(0, zeroCounters(), '');
    this.stateGuard = new StateGuard(model.config, this.stateTotals);
    this.anonymousEvents = compiled.alphabet.events.map(anonymous);
    this.ctx = {
      model,
      config: model.config,
      prev: this.prevView,
      next: this.nextView,
      event: null,
      records: [],
    };
  }

  /** Enters the compact state at `buf[off…]`, whose edges `edgeHolds` is then asked about. */
  enter(buf: Int32Array, off: number): void {
    this.gid = buf[off]!;
    this.live = this.compiled.liveOf(buf, off);
    if (this.otherState.length > 0 || this.otherStep.length > 0)
      this.compiled.viewInto(this.prevView, buf, off);
    let all = true;
    if (this.connStep.length > 0)
      for (let c = 0; c < this.n && all; c++) all = this.kept(buf[off + 1 + c]!, c);
    this.keptAll = all;
  }

  /**
   * True iff every invariant to check on the edge just taken holds: the step invariants, and the
   * state invariants too when the state reached is `fresh`. Requires that the last `apply` of the
   * compiled model took that edge, by event `id` with `records`, from the state last entered (at
   * `buf[off…]`) to the compact state `next` (at index 0). False means that some invariant fails:
   * the caller checks the edge in full. Pure apart from the memo.
   */
  edgeHolds(
    buf: Int32Array,
    off: number,
    next: Int32Array,
    fresh: boolean,
    id: number,
    records: readonly TransitionRecord[],
  ): boolean {
    const compiled = this.compiled;
    const edge = compiled.lastEdge!;
    const conn = compiled.lastConn;
    const n = this.n;
    const prevLive = this.live;
    const live = prevLive + edge.dlive;
    const bits = edge.checked;
    if (this.globalStep.length > 0 && (bits & (1 << prevLive)) === 0) {
      if ((bits & (1 << (FAILS_AT + prevLive))) !== 0) return false;
      const before = this.stepBefore;
      const then = this.stepAfter;
      const guard = this.stepGuard;
      before.live = prevLive;
      before.counters = compiled.countersOf(this.gid);
      before.listener = compiled.listenerOf(this.gid);
      then.live = live;
      then.counters = compiled.countersOf(edge.gid);
      then.listener = compiled.listenerOf(edge.gid);
      guard.event = this.anonymousEvents[id]!;
      guard.records = this.anonymousRecords[edge.step.index] ??= records.map(anonymous);
      const ok = this.allHold(this.globalStep, guard, 'global');
      edge.checked |= 1 << (ok ? prevLive : FAILS_AT + prevLive);
      if (!ok) return false;
    }
    if (this.connStep.length > 0) {
      if (!this.keptAll)
        for (let c = 0; c < n; c++) if (c !== conn && !this.kept(buf[off + 1 + c]!, c)) return false;
      if (conn >= 0) {
        const checked = edge.step.checked;
        let ok = checked[conn]!;
        if (ok === 0) {
          ok = this.connStepHolds(buf[off + 1 + conn]!, next[1 + conn]!, conn, records) ? 1 : 2;
          checked[conn] = ok;
        }
        if (ok !== 1) return false;
      }
    }
    if (this.otherStep.length > 0 || (fresh && this.otherState.length > 0)) {
      const ctx = this.ctx;
      compiled.viewInto(this.nextView, next, 0);
      ctx.event = compiled.alphabet.events[id]!;
      ctx.records = records;
      for (const inv of this.otherStep) if (inv.check(ctx) !== null) return false;
      if (fresh) for (const inv of this.otherState) if (inv.check(ctx) !== null) return false;
    }
    if (!fresh) return true;
    if (this.globalState.length > 0) {
      const gid = next[0]!;
      const at = gid * (n + 1) + live;
      if (at >= this.stateOk.length) this.stateOk = grown(this.stateOk, at);
      let ok = this.stateOk[at]!;
      if (ok === 0) {
        const view = this.stateTotals;
        view.live = live;
        view.counters = compiled.countersOf(gid);
        view.listener = compiled.listenerOf(gid);
        ok = this.allHold(this.globalState, this.stateGuard, 'global') ? 1 : 2;
        this.stateOk[at] = ok;
      }
      if (ok !== 1) return false;
    }
    if (this.connState.length > 0)
      for (let c = 0; c < n; c++) {
        const lid = next[1 + c]!;
        const at = (lid * n + c) * (n + 1) + live;
        if (at >= this.connOk.length) this.connOk = grown(this.connOk, at);
        let ok = this.connOk[at]!;
        if (ok === 0) {
          const view = new ConnsView([compiled.connViewOf(lid, c)], live);
          const guard = new StateGuard(compiled.model.config, view);
          ok = this.allHold(this.connState, guard, 'conn', view) ? 1 : 2;
          this.connOk[at] = ok;
        }
        if (ok !== 1) return false;
      }
    return true;
  }

  /** True iff the 'connStep' invariants hold on connection `c` of local id `lid` when a step keeps it. */
  private kept(lid: number, c: number): boolean {
    const at = lid * this.n + c;
    if (at >= this.keptOk.length) this.keptOk = grown(this.keptOk, at);
    let ok = this.keptOk[at]!;
    if (ok === 0) {
      ok = this.connStepHolds(lid, lid, c, []) ? 1 : 2;
      this.keptOk[at] = ok;
    }
    return ok === 1;
  }

  /**
   * True iff the 'connStep' invariants hold on connection `c` going from local id `before` to
   * `after` in a step whose records are `records` (those naming another connection show only
   * their `conn`).
   */
  private connStepHolds(
    before: number,
    after: number,
    c: number,
    records: readonly TransitionRecord[],
  ): boolean {
    const compiled = this.compiled;
    const n = this.n;
    const views = this.connStepViews;
    const then = (views[after * n + c] ??= new ConnsView([compiled.connViewOf(after, c)], null));
    const was = (this.connStepBefore[before * n + c] ??= new ConnsView(
      connsAt(c, n, compiled.connViewOf(before, c)),
      null,
    ));
    const shown = records.map((r) => (r.conn === c ? r : foreign(r)));
    const guard = new ConnStepGuard(compiled.model.config, then, was, shown);
    return this.allHold(this.connStep, guard, 'connStep', then, was);
  }

  /**
   * True iff every invariant of `list` holds on `guard`; throws if one reads beyond `scope`.
   * `next` and `prev` are the guard's ConnsViews (null where it has none), reset before each check.
   */
  private allHold(
    list: readonly Invariant[],
    guard: InvariantContext,
    scope: string,
    next: ConnsView | null = null,
    prev: ConnsView | null = null,
  ): boolean {
    let ok = true;
    for (const inv of list)
      try {
        next?.reset();
        prev?.reset();
        if (inv.check(guard) !== null) ok = false;
      } catch (err) {
        if (!(err instanceof ScopeError)) throw err;
        throw new Error(
          `invariant ${inv.name} is tagged '${scope}' but its check read ${err.message} (see CheckScope in properties/invariants.ts)`,
          { cause: err },
        );
      }
    return ok;
  }
}

/**
 * What `anonymous` copies inherit: a `conn` that throws when read. A getter on a prototype they
 * share, so that making a copy is an object and its fields, and reading them a plain load.
 */
const ANONYMOUS: object = Object.freeze(
  Object.defineProperty({}, 'conn', {
    get(): never {
      throw new ScopeError('which connection the event or a machine step names');
    },
  }),
);

/**
 * `x` as seen by a 'global' check: reading which connection it names throws. A frozen copy of
 * `x`'s own fields but `conn`, over a prototype whose `conn` throws (ANONYMOUS), rather than a
 * Proxy: the 'global' step checks read these on every edge class, and a read through a Proxy trap
 * costs far more than a plain one. Like the Proxy, the copy guards `conn` at the top level and
 * shares the values of the other fields; unlike it, it does not list `conn` among its keys, so a
 * check that enumerates the fields learns nothing of the connection either.
 */
function anonymous<T extends object>(x: T): T {
  const out = Object.create(ANONYMOUS) as Record<string, unknown>;
  for (const key of Object.keys(x)) if (key !== 'conn') out[key] = (x as Record<string, unknown>)[key];
  return Object.freeze(out) as T;
}

/** The fields of a machine step that a 'connStep' check may not read of another connection's. */
const FOREIGN_FIELDS: Record<Exclude<keyof TransitionRecord, 'conn'>, true> = {
  machine: true,
  event: true,
  from: true,
  to: true,
  transitions: true,
  effects: true,
};

/** What `foreign` copies inherit: every field of a machine step but `conn`, as a getter that throws. */
const FOREIGN: object = Object.freeze(
  Object.defineProperties(
    {},
    Object.fromEntries(
      Object.keys(FOREIGN_FIELDS).map((key) => [
        key,
        {
          get(): never {
            throw new ScopeError("a machine step of another connection (beyond its 'conn')");
          },
        },
      ]),
    ),
  ),
);

/**
 * A record naming another connection, as a 'connStep' check sees it: its `conn`, over a prototype
 * on which reading any other field of a machine step throws (FOREIGN; a plain object and a shared
 * prototype rather than a Proxy, for the cost of a read).
 */
function foreign(r: TransitionRecord): TransitionRecord {
  const out = Object.create(FOREIGN) as { conn: number | null };
  out.conn = r.conn;
  return Object.freeze(out) as TransitionRecord;
}

/**
 * An array of `n` connection views with `view` at index `c`, where reading another connection's
 * throws: its other indexes are getters that throw (defined once per array, which the memo keeps
 * per local id and connection; a Proxy would run its trap on every read).
 */
function connsAt(c: number, n: number, view: ConnView): ConnView[] {
  const out = new Array<ConnView>(n);
  for (let d = 0; d < n; d++)
    if (d === c) out[d] = view;
    else
      Object.defineProperty(out, d, {
        enumerable: true,
        get(): never {
          throw new ScopeError(`connection ${d}'s view`);
        },
      });
  return Object.freeze(out) as ConnView[];
}

/** A copy of `a` long enough for index `at`, zero-filled. */
function grown(a: Int8Array, at: number): Int8Array<ArrayBuffer> {
  let length = Math.max(64, a.length);
  while (length <= at) length *= 2;
  const b = new Int8Array(length);
  b.set(a);
  return b;
}

/** The local ids of the compact state at `buf[off…]`, as a new array. */
function localIds(buf: Int32Array, off: number, n: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < n; c++) out.push(buf[off + 1 + c]!);
  return out;
}

/** A StateView over a compact state; `state` is decoded on first read. */
class CompiledView implements StateView {
  decoded: SystemState | null = null;
  gid = 0;
  counters: Counters = zeroCounters();
  listener = '';
  readonly conns: ConnView[];
  live = 0;
  sslLive = 0;

  constructor(private readonly compiled: CompiledModel) {
    this.conns = new Array<ConnView>(compiled.n);
  }

  get state(): SystemState {
    return (this.decoded ??= this.compiled.decodeView(this.gid, this.conns));
  }
}

/**
 * The interning key of a global part: one char per value when every value fits in 16 bits (the
 * usual case: the counters count connections), else the decimal values. The two forms never
 * collide: the first has w.length + 1 chars, the second at least 2 × w.length + 1 (and 2 for none).
 */
function globalKey(abs: number, w: readonly number[]): string {
  let small = abs >= 0 && abs < 0x10000;
  for (let i = 0; i < w.length && small; i++) small = w[i]! >= 0 && w[i]! < 0x10000;
  if (!small) return `${abs}|${w.join(',')}`;
  // One call, one flat string: appending a char at a time made a string per value.
  return String.fromCharCode(abs, ...w);
}

/** True iff `a` and `b` are equal plain data (primitives, arrays and records of them, compared deeply). */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka)
    if (!sameData((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

/**
 * A deep copy of `m`, frozen: the tables share it with every state and view, so an invariant or a
 * step that tried to change it would throw instead of corrupting them.
 */
function frozenMemory(m: ConnMemory): ConnMemory {
  const c = cloneMemory(m);
  Object.freeze(c.bufs);
  Object.freeze(c.sent);
  Object.freeze(c.faults);
  return Object.freeze(c);
}

function cloneMemory(m: ConnMemory): ConnMemory {
  return { ...m, bufs: { ...m.bufs }, sent: [...m.sent], faults: [...m.faults] };
}

/**
 * Walks every state reachable in `compiled` breadth first, through its tables alone (no invariant
 * is checked), up to symmetry across connection ids when `symmetry`; the tables are filled on the
 * way. Returns the distinct states reached and the successors computed: those the explorer counts
 * on the same model. Requires a fresh or partly filled model; the caller keeps it, filled.
 */
export function walkCompiled(
  compiled: CompiledModel,
  symmetry = true,
): { distinct: number; generated: number } {
  const seen = new StateSet(compiled.width);
  const canonical = new Int32Array(compiled.width);
  const candidates = new Int32Array(compiled.alphabet.events.length);
  let frontier = [compiled.initial()];
  compiled.canonical(frontier[0]!, 0, symmetry, canonical);
  seen.add(canonical);
  let generated = 0;
  while (frontier.length > 0) {
    const next: Int32Array[] = [];
    for (const s of frontier) {
      const count = compiled.candidates(s, 0, symmetry, candidates);
      for (let i = 0; i < count; i++) {
        const succ = new Int32Array(compiled.width);
        compiled.apply(s, 0, candidates[i]!, succ, 0);
        generated++;
        compiled.canonical(succ, 0, symmetry, canonical);
        if (seen.add(canonical)) next.push(succ);
      }
    }
    frontier = next;
  }
  return { distinct: seen.size, generated };
}

/** 2^32, for splitting a packed key. */
const TWO_32 = 4294967296;
/** The bits a packed key may use: its value + 1 stays an exact double. */
const PACKED_BITS = 52;

/**
 * A set of compact states of one width. While the ids fit, a state is packed into one exact
 * double (the first int in `gBits` bits, each other int in `lBits` bits: injective, so equal keys
 * are equal states) and the set is one open-addressing table of keys (linear probing, at most
 * half full): a lookup reads one slot per probe and never the state itself. When an id outgrows
 * its field the fields are widened and the table rebuilt from its keys; when the state no longer
 * fits in PACKED_BITS (or an id is negative), the set moves for good to a dense Int32Array of the
 * states in insertion order with a table of [hash, position + 1] over them. No object and no
 * string per state. Owns its memory.
 */
export class StateSet {
  size = 0;
  // Packed: the keys (key + 1; 0 for an empty slot) and the fields' widths.
  private keys: Float64Array | null;
  private gBits = 0;
  private lBits = 0;
  private lMul = 1; //              2 ** lBits
  private gLimit = 1; //            2 ** gBits
  // Hashed (once packing is given up): the states, and per slot [hash, position + 1] (0: empty).
  private states: Int32Array | null = null;
  private index: Int32Array | null = null;
  private mask: number;

  constructor(
    readonly width: number,
    capacity = 1 << 12,
  ) {
    let slots = 16;
    while (slots < 2 * capacity) slots *= 2;
    this.mask = slots - 1;
    this.keys = new Float64Array(slots);
    if (!this.setWidths(1, 1)) this.unpack();
  }

  /** Adds the state at `buf[off…off + width)`. Returns true iff it was not in the set. */
  add(buf: Int32Array, off = 0): boolean {
    const keys = this.keys;
    if (keys === null) return this.addHashed(buf, off);
    const key = this.pack(buf, off);
    if (key < 0) {
      this.widen(buf, off);
      return this.add(buf, off);
    }
    const mask = this.mask;
    const stored = key + 1;
    let i = mix(key) & mask;
    for (;;) {
      const k = keys[i]!;
      if (k === 0) break;
      if (k === stored) return false;
      i = (i + 1) & mask;
    }
    keys[i] = stored;
    if (++this.size * 2 > mask + 1) this.rebuild(this.gBits, this.lBits, (mask + 1) * 2);
    return true;
  }

  /** True iff the state at `buf[off…off + width)` is in the set. Pure. */
  has(buf: Int32Array, off = 0): boolean {
    const keys = this.keys;
    if (keys === null) return this.findHashed(buf, off, this.hash(buf, off)) < 0;
    const key = this.pack(buf, off);
    if (key < 0) return false; // an id beyond the fields was never added
    const stored = key + 1;
    for (let i = mix(key) & this.mask; ; i = (i + 1) & this.mask) {
      const k = keys[i]!;
      if (k === 0) return false;
      if (k === stored) return true;
    }
  }

  /** True while the states are packed into keys (false once the set has given packing up). */
  get packed(): boolean {
    return this.keys !== null;
  }

  /** The bytes the set holds. */
  get bytes(): number {
    return (this.keys?.byteLength ?? 0) + (this.states?.byteLength ?? 0) + (this.index?.byteLength ?? 0);
  }

  /** The packed key of the state at `buf[off…]`, or -1 if an id does not fit its field. */
  private pack(buf: Int32Array, off: number): number {
    const g = buf[off]!;
    if (g < 0 || g >= this.gLimit) return -1;
    let key = g;
    const mul = this.lMul;
    for (let c = 1; c < this.width; c++) {
      const v = buf[off + c]!;
      if (v < 0 || v >= mul) return -1;
      key = key * mul + v;
    }
    return key;
  }

  /** Writes the ints of `key`, packed with other ints of `mul` values, into `out[off…]`. */
  private unpackInto(key: number, mul: number, out: Int32Array, off: number): void {
    for (let c = this.width - 1; c >= 1; c--) {
      const v = key % mul;
      out[off + c] = v;
      key = (key - v) / mul;
    }
    out[off] = key;
  }

  /**
   * Sets the fields' widths for ids below 2^gNeed (the first int) and 2^lNeed (the others),
   * leaving the other ints a few bits to grow into. Returns false if they cannot fit.
   */
  private setWidths(gNeed: number, lNeed: number): boolean {
    const others = this.width - 1;
    if (gNeed + others * lNeed > PACKED_BITS) return false;
    let l = lNeed;
    while (l < lNeed + 3 && gNeed + 4 + others * (l + 1) <= PACKED_BITS) l++;
    this.lBits = l;
    this.gBits = PACKED_BITS - others * l;
    this.lMul = 2 ** l;
    this.gLimit = 2 ** this.gBits;
    return true;
  }

  /** Widens the fields for the state at `buf[off…]` (rebuilding the table), or gives packing up. */
  private widen(buf: Int32Array, off: number): void {
    let g = buf[off]!;
    let l = 0;
    let negative = g < 0;
    for (let c = 1; c < this.width; c++) {
      const v = buf[off + c]!;
      if (v < 0) negative = true;
      if (v > l) l = v;
    }
    // The widest ids already in the set.
    const keys = this.keys!;
    const one = new Int32Array(this.width);
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === 0) continue;
      this.unpackInto(keys[i]! - 1, this.lMul, one, 0);
      if (one[0]! > g) g = one[0]!;
      for (let c = 1; c < this.width; c++) if (one[c]! > l) l = one[c]!;
    }
    const bits = (v: number): number => Math.max(1, Math.ceil(Math.log2(v + 1)));
    const [oldG, oldL] = [this.gBits, this.lBits];
    if (negative || !this.setWidths(bits(g), bits(l))) {
      this.unpack();
      return;
    }
    const [newG, newL] = [this.gBits, this.lBits];
    this.gBits = oldG;
    this.lBits = oldL;
    this.rebuild(newG, newL, this.mask + 1);
  }

  /** Re-inserts every key into a table of `slots` slots under new widths. */
  private rebuild(gBits: number, lBits: number, slots: number): void {
    const old = this.keys!;
    const one = new Int32Array(this.width);
    const same = gBits === this.gBits && lBits === this.lBits;
    const oldMul = 2 ** this.lBits;
    this.gBits = gBits;
    this.lBits = lBits;
    this.lMul = 2 ** lBits;
    this.gLimit = 2 ** gBits;
    const mask = slots - 1;
    const keys = new Float64Array(slots);
    for (let j = 0; j < old.length; j++) {
      let stored = old[j]!;
      if (stored === 0) continue;
      if (!same) {
        this.unpackInto(stored - 1, oldMul, one, 0);
        stored = this.pack(one, 0) + 1;
      }
      let i = mix(stored - 1) & mask;
      while (keys[i] !== 0) i = (i + 1) & mask;
      keys[i] = stored;
    }
    this.keys = keys;
    this.mask = mask;
  }

  /** Gives packing up: moves every state into the dense array and the hashed table. */
  private unpack(): void {
    const keys = this.keys!;
    const w = this.width;
    this.states = new Int32Array(Math.max(16, this.size * 2) * w);
    this.index = new Int32Array(2 * (this.mask + 1));
    const size = this.size;
    this.size = 0;
    this.keys = null;
    const one = new Int32Array(w);
    for (let j = 0; j < keys.length; j++) {
      if (keys[j] === 0) continue;
      this.unpackInto(keys[j]! - 1, this.lMul, one, 0);
      this.addHashed(one, 0);
    }
    if (this.size !== size) throw new Error('StateSet: lost a state while unpacking');
  }

  /** The hashed form of `add`. */
  private addHashed(buf: Int32Array, off: number): boolean {
    const w = this.width;
    const h = this.hash(buf, off);
    const i = this.findHashed(buf, off, h);
    if (i < 0) return false;
    let states = this.states!;
    let pos = this.size * w;
    if (pos + w > states.length) {
      const bigger = new Int32Array(states.length * 2);
      bigger.set(states);
      this.states = states = bigger;
    }
    for (let c = 0; c < w; c++) states[pos++] = buf[off + c]!;
    const index = this.index!;
    index[2 * i] = h;
    index[2 * i + 1] = ++this.size;
    if (this.size * 2 > this.mask + 1) this.growHashed();
    return true;
  }

  /** The empty slot where the state at `buf[off…]` (of hash `h`) goes, or -1 if it is in the set. */
  private findHashed(buf: Int32Array, off: number, h: number): number {
    const w = this.width;
    const index = this.index!;
    const states = this.states!;
    const mask = this.mask;
    let i = h & mask;
    for (;;) {
      const at = index[2 * i + 1]!;
      if (at === 0) return i;
      if (index[2 * i] === h) {
        const base = (at - 1) * w;
        let c = 0;
        while (c < w && states[base + c] === buf[off + c]) c++;
        if (c === w) return -1;
      }
      i = (i + 1) & mask;
    }
  }

  /** A 32-bit hash of a state (FNV-1a over its ints, then a finaliser), as a signed int. */
  private hash(buf: Int32Array, off: number): number {
    let h = 0x811c9dc5;
    for (let c = 0; c < this.width; c++) h = Math.imul(h ^ buf[off + c]!, 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return h | 0;
  }

  private growHashed(): void {
    const old = this.index!;
    const slots = (this.mask + 1) * 2;
    const mask = slots - 1;
    const index = new Int32Array(2 * slots);
    for (let j = 0; j < old.length; j += 2) {
      const at = old[j + 1]!;
      if (at === 0) continue;
      const h = old[j]!;
      let i = h & mask;
      while (index[2 * i + 1] !== 0) i = (i + 1) & mask;
      index[2 * i] = h;
      index[2 * i + 1] = at;
    }
    this.index = index;
    this.mask = mask;
  }
}

/** A 32-bit mix of a packed key (an integer below 2^52), for its table slot. */
function mix(key: number): number {
  const lo = key >>> 0;
  const hi = (key / TWO_32) >>> 0;
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
