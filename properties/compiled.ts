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
 *   rate counters when a rate limit is set), by connMaxUpdate (feconn, connMax) and by RATE_PERIOD;
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
 * Invariants are not compiled: the explorer runs properties/invariants.ts on views built from the
 * tables (`view`), whose per-connection parts are built once per local id and connection id.
 */
import type { TransitionRecord } from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import { zeroCounters, type Counters } from '../machines/counters.ts';
import type { ConnMemory, SystemEvent, SystemModel, SystemState } from '../machines/system.ts';
import type { ConnView, StateView } from './invariants.ts';

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
    26244 * (m.inList ? 1 : 0);
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
  steps: Map<number, CompiledStep>; // the table from here: by (local id + 1) × SLOTS + event kind
}

/** One global part: an abstract global and the write-only counters. */
interface Global {
  abs: number;
  w: number[]; //                 the write-only counters, in `writeOnly` order
  counters: Counters; //          all of them (shared by every view of the global: never mutate)
  listenerValue: string; //       the listener's dotted state
  next: Map<number, number>; //   memo: compiled step index → the global id it leads to from here
}

/** One connection's local part. */
interface Local {
  connection: number; //          interned snapshot ids (the model's runners)
  session: number;
  mem: ConnMemory; //             shared by every view of the local: never mutate
  tuple: string;
  pending: boolean; //            the connection is in the backlog (ACCEPT may take it)
  live: boolean; //               its session memory is live
  enabled: Int8Array; //          per connection event (index in perConn[c]): -1 unknown, 0, 1
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
  records: TransitionRecord[][]; // the machine steps by connection id, as SystemModel.step returns them
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
  private readonly locals: Local[] = [];
  private readonly localIds = new Map<string, number>();
  private readonly steps: CompiledStep[] = [];
  private readonly viewLocal = new Map<ConnView, number>(); // each connection view's local id
  private readonly kindOf: Int32Array; //   per event id: its index in perConn[c], or -1 for a global event
  private readonly connOf: Int32Array; //   per event id: its connection, or -1
  private readonly accepts: Int8Array; //   per event id: 1 for an ACCEPT (takes the oldest pending connection)

  constructor(
    readonly model: SystemModel,
    readonly alphabet: Alphabet,
  ) {
    this.n = model.n;
    this.width = model.n + 1;
    this.writeOnly = writeOnlyCounters(model.config);
    this.keyed = COUNTERS.filter((k) => !this.writeOnly.includes(k));
    if (alphabet.perConn.length !== model.n) throw new Error('the alphabet is not for this many connections');
    if (alphabet.events.length * 2 > SLOTS) throw new Error('too many events for the compiled model');
    const count = alphabet.events.length;
    this.kindOf = new Int32Array(count).fill(-1);
    this.connOf = new Int32Array(count).fill(-1);
    this.accepts = new Int8Array(count);
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
    out[off] = this.internGlobal(
      this.internAbstract(s.world.listener, s.queueTasks.global, s.queueTasks.frontend, s.counters),
      this.writeOnly.map((k) => s.counters[k]),
    );
    for (let c = 0; c < this.n; c++) out[off + 1 + c] = this.internLocal(s, c);
  }

  /**
   * Returns the SystemState of the compact state at `buf[off…]`: a deep copy that shares nothing
   * mutable with the tables, as SystemModel.step would return it. The caller owns it.
   */
  decode(buf: Int32Array, off = 0): SystemState {
    return this.decodeParts(buf[off]!, Array.from(buf.subarray(off + 1, off + this.width)), true);
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

  /** The state at `buf[off…]` sharing the tables' objects: see decodeParts. */
  private peek(buf: Int32Array, off: number): SystemState {
    return this.decodeParts(buf[off]!, Array.from(buf.subarray(off + 1, off + this.width)), false);
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
    const g = this.globals[buf[off]!]!;
    const a = this.abstracts[g.abs]!;
    let pending = 0;
    for (let c = 0; c < this.n; c++)
      if (this.locals[buf[off + 1 + c]!]!.pending) {
        pending = 1;
        break;
      }
    const global = this.alphabet.global;
    for (let i = 0; i < global.length; i++) {
      let e = a.enabled[2 * i + pending]!;
      if (e < 0) {
        e = this.model.isEnabled(this.peek(buf, off), this.alphabet.events[global[i]!]!) ? 1 : 0;
        a.enabled[2 * i + pending] = e;
      }
      if (e === 1) out[count++] = global[i]!;
    }
    conns: for (let c = 0; c < this.n; c++) {
      const lid = buf[off + 1 + c]!;
      if (symmetry) for (let d = 0; d < c; d++) if (buf[off + 1 + d] === lid) continue conns;
      const l = this.locals[lid]!;
      const ids = this.alphabet.perConn[c]!;
      for (let k = 0; k < ids.length; k++) {
        let e = l.enabled[k]!;
        if (e < 0) {
          e = this.model.isEnabled(this.peek(buf, off), this.alphabet.events[ids[k]!]!) ? 1 : 0;
          l.enabled[k] = e;
        }
        if (e === 1) out[count++] = ids[k]!;
      }
    }
    return count;
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
    const table = this.abstracts[g.abs]!.steps;
    const key = local * SLOTS + kind;
    let step = table.get(key);
    if (!step) {
      step = this.fill(buf, off, id, conn);
      table.set(key, step);
    }
    let next = g.next.get(step.index);
    if (next === undefined) {
      const dw = step.dw;
      next = this.internGlobal(
        step.abs,
        g.w.map((v, i) => v + dw[i]!),
      );
      g.next.set(step.index, next);
    }
    out[outOff] = next;
    for (let c = 1; c <= this.n; c++) out[outOff + c] = buf[off + c]!;
    if (!step.touches) return step.records[0]!;
    out[outOff + 1 + conn] = step.local;
    return step.records[conn] ?? this.renamed(step, conn);
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
    const after = new Int32Array(this.width);
    this.encodeInto(r.state, after, 0);
    for (let c = 0; c < this.n; c++)
      if (c !== conn && after[1 + c] !== buf[off + 1 + c])
        throw new Error(`compiled model: event ${id} on connection ${conn} changed connection ${c}`);
    for (const rec of r.records)
      if (rec.conn !== null && rec.conn !== conn)
        throw new Error(`compiled model: event ${id} on connection ${conn} stepped connection ${rec.conn}`);
    const g = this.globals[buf[off]!]!;
    const g2 = this.globals[after[0]!]!;
    const records: TransitionRecord[][] = [];
    records[conn < 0 ? 0 : conn] = r.records;
    const step: CompiledStep = {
      index: this.steps.length,
      abs: g2.abs,
      dw: g2.w.map((v, i) => v - g.w[i]!),
      touches: conn >= 0,
      local: conn < 0 ? -1 : after[1 + conn]!,
      records,
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
    for (let c = 0; c < this.n; c++) {
      const lid = buf[off + 1 + c]!;
      const l = this.locals[lid]!;
      if (l.live) live++;
      conns[c] = l.views[c] ?? this.connView(l, lid, c);
    }
    v.gid = buf[off]!;
    v.counters = g.counters;
    v.listener = g.listenerValue;
    v.live = live;
    v.decoded = null;
    return v;
  }

  /** Returns a view to be filled by viewInto. */
  reusableView(): StateView {
    return new CompiledView(this);
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
      next: new Map(),
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
      enabled: new Int8Array(this.alphabet.perConn[0]?.length ?? 0).fill(-1),
      views: [],
    });
    this.localIds.set(tuple, id);
    return id;
  }
}

/** A StateView over a compact state; `state` is decoded on first read. */
class CompiledView implements StateView {
  decoded: SystemState | null = null;
  gid = 0;
  counters: Counters = zeroCounters();
  listener = '';
  readonly conns: ConnView[];
  live = 0;

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
  let k = String.fromCharCode(abs);
  for (let i = 0; i < w.length; i++) k += String.fromCharCode(w[i]!);
  return k;
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
 * A set of compact states of one width, in one flat Int32Array with open addressing (linear
 * probing, at most half full): no object and no string per state. Owns its memory.
 */
export class StateSet {
  size = 0;
  private slots: Int32Array;
  private mask: number;

  constructor(
    readonly width: number,
    capacity = 1 << 12,
  ) {
    let slots = 16;
    while (slots < 2 * capacity) slots *= 2;
    this.mask = slots - 1;
    this.slots = new Int32Array(slots * width).fill(-1);
  }

  /** Adds the state at `buf[off…off + width)` (ids ≥ 0). Returns true iff it was not in the set. */
  add(buf: Int32Array, off = 0): boolean {
    const w = this.width;
    let i = this.hash(buf, off) & this.mask;
    const slots = this.slots;
    for (;;) {
      const at = i * w;
      if (slots[at] === -1) break;
      let same = true;
      for (let c = 0; c < w; c++)
        if (slots[at + c] !== buf[off + c]) {
          same = false;
          break;
        }
      if (same) return false;
      i = (i + 1) & this.mask;
    }
    for (let c = 0; c < w; c++) slots[i * w + c] = buf[off + c]!;
    if (++this.size * 2 > this.mask + 1) this.grow();
    return true;
  }

  /** The bytes the set holds. */
  get bytes(): number {
    return this.slots.byteLength;
  }

  private hash(buf: Int32Array, off: number): number {
    let h = 0x811c9dc5;
    for (let c = 0; c < this.width; c++) h = Math.imul(h ^ buf[off + c]!, 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return h >>> 0;
  }

  private grow(): void {
    const old = this.slots;
    const w = this.width;
    const count = (this.mask + 1) * 2;
    this.mask = count - 1;
    this.slots = new Int32Array(count * w).fill(-1);
    this.size = 0;
    for (let at = 0; at < old.length; at += w) if (old[at] !== -1) this.add(old, at);
  }
}
