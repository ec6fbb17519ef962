/**
 * The bounded model checker: an exhaustive breadth-first exploration of the composed system
 * (machines/system.ts) for N connections under one configuration, checking every invariant
 * (properties/invariants.ts) in every reachable state and every step invariant on every edge.
 *
 * - States are deduplicated by a canonical key with symmetry across connection ids: the key sorts
 *   the per-connection tuples, so two states that differ only by a renaming of the connections are
 *   one state. This is sound because nothing in the model depends on a connection's id except
 *   ACCEPT, which takes the oldest connection in the backlog, and connections in the backlog are
 *   identical (so which one is taken yields the same state up to renaming). For the same reason the
 *   events of a connection whose tuple equals an earlier connection's are not tried: they lead to
 *   renamings of states the earlier connection's events reach.
 * - Two engines, one result. The compiled engine (the default; properties/compiled.ts) keeps a
 *   state as N + 1 integers, steps it by reading tables that XState's answers fill on first use,
 *   and deduplicates in a flat hash set of integers; the reference engine (`engine: 'xstate'`)
 *   calls SystemModel.step on whole states and keys them by string concatenation. Both try the
 *   same events in the same order, run the same invariants (properties/invariants.ts, unchanged)
 *   on the same states and edges, and so return the same stats, transitions and counterexamples
 *   (test/properties/compiled.test.ts); defects are honoured by both, since the tables are filled
 *   from the defective SystemModel itself.
 * - Only the frontier keeps whole states. Every distinct state keeps its parent and the event that
 *   reached it, so the counterexample is rebuilt by walking back, and is replayable as is: each
 *   state kept is the actual successor of its parent, connection ids included.
 * - At the first violation the exploration finishes the current depth (to report, among the
 *   shortest counterexamples, the one whose invariant comes first in INVARIANTS) and stops.
 *
 * Stats follow TLC: generated (successor states computed), distinct, depth (of the longest
 * shortest path), seconds, distinct states per second.
 */
import type { Defect } from '../machines/compose.ts';
import { DEFAULT_CONFIG, hasHandshake, makeConfig, type ModelConfig } from '../machines/config.ts';
import { countersKey } from '../machines/counters.ts';
import { acceptCanFailAt, sourceClassReachable } from '../machines/session.machine.ts';
import { proxyFailReachable } from '../machines/connection.machine.ts';
import { SystemModel, type SystemEvent, type SystemState } from '../machines/system.ts';
import { DEFAULT_BOUNDS, type Bounds, type NamedConfig } from './bounds.ts';
import { CompiledModel, connTuple, InvariantMemo, StateSet, type Alphabet } from './compiled.ts';
import {
  checkInvariants,
  INVARIANTS,
  viewOf,
  type Invariant,
  type InvariantContext,
  type InvariantViolation,
} from './invariants.ts';

/** What a client may have sent of its TLS handshake when it closes or resets (connection.machine.ts). */
const TLS_READS = ['none', 'partialRecord', 'wholeRecords'] as const;
/** TLC-style statistics of one exploration, or of several summed. */
export interface ExploreStats {
  generated: number; //      successor states computed (one per enabled event tried)
  distinct: number; //       distinct states reached, up to symmetry
  depth: number; //          length of the longest shortest path from the initial state
  seconds: number;
  statesPerSecond: number; // distinct / seconds
}

/** The shortest path to a violation, readable and replayable. */
export interface Counterexample {
  invariant: string; //                 the invariant reported (the first in INVARIANTS order)
  message: string; //                   what it says is wrong
  alsoViolated: InvariantViolation[]; // other invariants violated on the same step
  events: SystemEvent[]; //             from the initial state; replays exactly with SystemModel.step
  readable: string[]; //                one line per event
}

/** What one exploration found. */
export interface ExploreResult extends ExploreStats {
  complete: boolean; //            true iff every reachable state within the bounds was explored
  violation: Counterexample | null;
  transitionsTaken: string[]; //   ids of the machine transitions taken on some edge, sorted
}

/** How to explore. */
export interface ExploreOptions {
  config: ModelConfig;
  connections: number; //                      N ≥ 1
  bounds?: Bounds; //                          DEFAULT_BOUNDS if not given
  defect?: Defect | null; //                    a mutant switched into the model
  invariants?: readonly Invariant[]; //        INVARIANTS if not given
  maxDepth?: number; //                        do not explore paths longer than this
  symmetry?: boolean; //                       reduce by symmetry across connection ids (default true)
  engine?: 'compiled' | 'xstate'; //            the compiled tables (default) or SystemModel.step on every edge
  onProgress?: (stats: ExploreStats) => void; // called about every progressEveryMs during long runs
  progressEveryMs?: number; //                 2000 if not given
}

/**
 * Returns the alphabet of `config` for `n` connections under `bounds`: every event parameter the
 * bounds allow, minus the parameters the configuration makes equivalent (see bounds.ts). Pure.
 */
export function alphabetOf(config: ModelConfig, n: number, bounds: Bounds = DEFAULT_BOUNDS): SystemEvent[] {
  return buildAlphabet(config, n, bounds).events;
}

/**
 * Returns the alphabet of alphabetOf with its structure: which events name no connection, and the
 * events of each connection, in the order the explorer tries them. Pure.
 */
export function buildAlphabet(config: ModelConfig, n: number, bounds: Bounds = DEFAULT_BOUNDS): Alphabet {
  const events: SystemEvent[] = [];
  const add = (e: SystemEvent): number => events.push(e) - 1;
  const global: number[] = [];
  const handshake = hasHandshake(config);
  const completeFails = bounds.completeFailSites.filter((f) => f !== 'txn' || config.mode === 'http');
  for (const fail of bounds.acceptFailSites)
    if (acceptCanFailAt(config, fail))
      global.push(add(fail === 'none' ? { type: 'ACCEPT' } : { type: 'ACCEPT', fail }));
  for (const src of bounds.acceptSources)
    if (src !== 'plain' && sourceClassReachable(config, src)) global.push(add({ type: 'ACCEPT', src }));
  if (bounds.acceptError) global.push(add({ type: 'ACCEPT', acceptError: true }));
  global.push(add({ type: 'QUEUE_TASK', queue: 'global' }));
  global.push(add({ type: 'QUEUE_TASK', queue: 'frontend' }));
  global.push(add({ type: 'RATE_PERIOD' }));
  const perConn: number[][] = [];
  for (let conn = 0; conn < n; conn++) {
    const mine: number[] = [];
    if (config.acceptProxy) {
      // With ssl, a good header only moves on to TLS: no completion, so no completion failure.
      for (const fail of config.ssl ? (['none'] as const) : completeFails)
        mine.push(
          add(fail === 'none' ? { type: 'PROXY_HEADER_OK', conn } : { type: 'PROXY_HEADER_OK', conn, fail }),
        );
      for (const code of bounds.proxyErrorCodes)
        if (proxyFailReachable(config, code)) mine.push(add({ type: 'PROXY_HEADER_ERROR', conn, code }));
    }
    if (config.ssl) {
      for (const fail of completeFails)
        mine.push(add(fail === 'none' ? { type: 'TLS_OK', conn } : { type: 'TLS_OK', conn, fail }));
      for (const code of bounds.sslErrorCodes) mine.push(add({ type: 'TLS_ERROR', conn, code }));
    }
    if (bounds.clientCloses && handshake) {
      // A close or reset during TLS, with each amount of the handshake the client had sent.
      for (const tlsRead of config.ssl ? TLS_READS : (['none'] as const))
        for (const type of ['CLIENT_CLOSE', 'CLIENT_RESET'] as const)
          mine.push(add(tlsRead === 'none' ? { type, conn } : { type, conn, tlsRead }));
    }
    mine.push(add({ type: 'TIMER_EXPIRE', conn }));
    mine.push(add({ type: 'TASK_WAKEUP', conn }));
    mine.push(add({ type: 'SESSION_END', conn }));
    mine.push(add({ type: 'SESSION_END', conn, writeTimeout: true })); // on the client's write timeout
    perConn.push(mine);
  }
  return { events, global, perConn };
}

/**
 * Returns the canonical key of `s`: equal for two states iff they are equal up to a renaming of
 * the connections (or, with `symmetry` false, iff they are equal). `tuples` receives each
 * connection's tuple by id. Pure apart from filling `tuples`.
 */
export function stateKey(model: SystemModel, s: SystemState, tuples: string[] = [], symmetry = true): string {
  for (let i = 0; i < model.n; i++) tuples[i] = connTuple(s, i);
  const sorted = symmetry && model.n > 1 ? [...tuples].sort() : tuples;
  return (
    `${s.world.listener}|${s.queueTasks.global ? 1 : 0}${s.queueTasks.frontend ? 1 : 0}|` +
    `${countersKey(s.counters)}|${sorted.join('/')}`
  );
}

/**
 * The ids of the events to try in a state whose connections have `tuples`: the system's events,
 * and the events of each connection whose tuple no earlier connection has (a connection identical
 * to an earlier one reaches only renamings of the states the earlier one reaches).
 */
function candidateEvents(alphabet: Alphabet, tuples: readonly string[], symmetry: boolean): number[] {
  const ids = [...alphabet.global];
  for (let conn = 0; conn < tuples.length; conn++)
    if (!symmetry || tuples.indexOf(tuples[conn]!) === conn)
      for (const id of alphabet.perConn[conn]!) ids.push(id);
  return ids;
}

interface FrontierEntry {
  state: SystemState;
  index: number; //    the state's index in parents/via
  tuples: string[]; // its connections' tuples, by id
}

interface Found {
  rank: number; //      position of the reported invariant in the invariant list
  parent: number;
  event: number;
  violations: InvariantViolation[];
}

/** A growable array of int32. */
class IntList {
  data = new Int32Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = new Int32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }

  /** Pushes `v`, then `from[0…count)`. */
  pushRecord(v: number, from: Int32Array, count: number): void {
    if (this.length + count + 1 > this.data.length) {
      const bigger = new Int32Array(Math.max(this.data.length * 2, this.length + count + 1));
      bigger.set(this.data);
      this.data = bigger;
    }
    const data = this.data;
    let at = this.length;
    data[at++] = v;
    for (let c = 0; c < count; c++) data[at++] = from[c]!;
    this.length = at;
  }
}

/**
 * The bookkeeping both engines share: each distinct state's parent and event, the
 * stats, progress, the violation found at the current depth, and the result.
 */
class Search {
  readonly started = performance.now();
  readonly parents = new IntList(); // per distinct state: its parent's index (-1 for the initial state)
  readonly via = new IntList(); //     per distinct state: the event that reached it (-1 for the initial state)
  readonly invariants: readonly Invariant[];
  generated = 0;
  depth = 0;
  found: Found | null = null;
  private readonly rankOf: Map<string, number>;
  private lastProgress: number;
  private readonly progressEvery: number;

  constructor(
    private readonly opts: ExploreOptions,
    private readonly alphabet: Alphabet,
  ) {
    this.invariants = opts.invariants ?? INVARIANTS;
    this.rankOf = new Map(this.invariants.map((inv, i) => [inv.name, i]));
    this.lastProgress = this.started;
    this.progressEvery = opts.progressEveryMs ?? 2000;
  }

  /** Records a new distinct state reached from `parent` by event `event`; returns its index. */
  add(parent: number, event: number): number {
    this.parents.push(parent);
    this.via.push(event);
    return this.parents.length - 1;
  }

  /** Keeps `violations` of the edge (parent, event) if they rank before the ones kept. */
  violated(violations: InvariantViolation[], parent: number, event: number): void {
    // checkInvariants lists violations in the order of `invariants`: the first one ranks.
    const rank = this.rankOf.get(violations[0]!.invariant)!;
    if (!this.found || rank < this.found.rank) this.found = { rank, parent, event, violations };
  }

  /** Calls onProgress when it is due; cheap enough to call on every edge. */
  progress(): void {
    if ((this.generated & 1023) !== 0 || !this.opts.onProgress) return;
    const now = performance.now();
    if (now - this.lastProgress < this.progressEvery) return;
    this.lastProgress = now;
    this.opts.onProgress(this.stats());
  }

  stats(): ExploreStats {
    const seconds = (performance.now() - this.started) / 1000;
    const distinct = this.parents.length;
    return {
      generated: this.generated,
      distinct,
      depth: this.depth,
      seconds,
      statesPerSecond: seconds > 0 ? Math.round(distinct / seconds) : 0,
    };
  }

  finish(complete: boolean, taken: Iterable<string>): ExploreResult {
    return {
      ...this.stats(),
      complete,
      violation: this.found ? this.counterexample(this.found) : null,
      transitionsTaken: [...new Set(taken)].sort(),
    };
  }

  private counterexample(found: Found): Counterexample {
    const ids: number[] = [found.event];
    for (let i = found.parent; i > 0; i = this.parents.data[i]!) ids.push(this.via.data[i]!);
    const events = ids
      .filter((id) => id >= 0)
      .reverse()
      .map((id) => this.alphabet.events[id]!);
    const [first, ...rest] = found.violations;
    return {
      invariant: first!.invariant,
      message: first!.message,
      alsoViolated: rest,
      events,
      readable: events.map(describeEvent),
    };
  }
}

/**
 * Explores every state reachable under `opts` (see ExploreOptions) breadth first, checking the
 * invariants. Returns the stats and, if an invariant fails, the shortest counterexample (ties
 * broken by invariant order). Both engines visit the same states in the same order and return the
 * same result, the time apart (test/properties/compiled.test.ts). Pure apart from calling
 * `onProgress`; deterministic.
 */
export function explore(opts: ExploreOptions): ExploreResult {
  return (opts.engine ?? 'compiled') === 'compiled' ? exploreCompiled(opts) : exploreXState(opts);
}

/** The reference engine: SystemModel.step on whole states, keys from the connection tuples. */
function exploreXState(opts: ExploreOptions): ExploreResult {
  const model = new SystemModel(opts.config, opts.connections, opts.defect ?? null);
  const symmetry = opts.symmetry ?? true;
  const alphabet = buildAlphabet(opts.config, opts.connections, opts.bounds ?? DEFAULT_BOUNDS);
  const search = new Search(opts, alphabet);
  const { invariants } = search;
  const seen = new Set<string>();
  const taken = new Set<string>();

  const init = model.initial();
  const initTuples: string[] = [];
  seen.add(stateKey(model, init, initTuples, symmetry));
  search.add(-1, -1);
  const initViolations = checkInvariants(
    { model, config: opts.config, next: viewOf(model, init), prev: null, event: null, records: [] },
    invariants,
  );
  if (initViolations.length > 0) {
    search.found = { rank: 0, parent: 0, event: -1, violations: initViolations };
    return search.finish(false, taken);
  }

  let frontier: FrontierEntry[] = [{ state: init, index: 0, tuples: initTuples }];
  while (frontier.length > 0) {
    if (opts.maxDepth !== undefined && search.depth >= opts.maxDepth) return search.finish(false, taken);
    const next: FrontierEntry[] = [];
    for (const entry of frontier) {
      const s = entry.state;
      const prevView = viewOf(model, s);
      for (const id of candidateEvents(alphabet, entry.tuples, symmetry)) {
        const event = alphabet.events[id]!;
        const r = model.step(s, event);
        if (!r) continue;
        search.generated++;
        for (const rec of r.records) for (const t of rec.transitions) taken.add(t);
        const tuples: string[] = [];
        const key = stateKey(model, r.state, tuples, symmetry);
        const fresh = !seen.has(key);
        const ctx: InvariantContext = {
          model,
          config: opts.config,
          next: viewOf(model, r.state),
          prev: prevView,
          event,
          records: r.records,
        };
        const violations = checkInvariants(ctx, invariants, fresh ? 'both' : 'step');
        if (fresh) {
          seen.add(key);
          next.push({ state: r.state, index: search.add(entry.index, id), tuples });
        }
        if (violations.length > 0) search.violated(violations, entry.index, id);
        search.progress();
      }
    }
    if (next.length > 0 || search.found) search.depth++;
    if (search.found) return search.finish(false, taken);
    frontier = next;
  }
  return search.finish(true, taken);
}

/**
 * checkInvariants on an edge (a step, so `ctx.prev` is set) with the invariants to check already
 * chosen: `list` is every invariant for an edge to a new state, the step invariants otherwise.
 * Returns the violations in the order of `list`, or null (not an empty list) when all hold.
 */
function checkEdge(ctx: InvariantContext, list: readonly Invariant[]): InvariantViolation[] | null {
  let out: InvariantViolation[] | null = null;
  for (const inv of list) {
    const message = inv.check(ctx);
    if (message !== null) (out ??= []).push({ invariant: inv.name, message });
  }
  return out;
}

/**
 * The compiled engine (properties/compiled.ts): states are N + 1 integers, a step is a table read,
 * and the invariants run on the tables: what holds of the checks that say what they read
 * (CheckScope) is memoised on the ids they read (InvariantMemo), and any edge where an invariant
 * fails is checked in full on views built from the tables, as checkInvariants would. The frontier
 * is one flat Int32Array of records [index, global id, local ids…]; a state kept is the actual
 * successor of its parent, connection ids included, as in the reference engine.
 */
function exploreCompiled(opts: ExploreOptions): ExploreResult {
  const model = new SystemModel(opts.config, opts.connections, opts.defect ?? null);
  const symmetry = opts.symmetry ?? true;
  const alphabet = buildAlphabet(opts.config, opts.connections, opts.bounds ?? DEFAULT_BOUNDS);
  const search = new Search(opts, alphabet);
  const { invariants } = search;
  const compiled = new CompiledModel(model, alphabet);
  const taken = (): string[] =>
    compiled
      .compiledSteps()
      .flatMap((s) => s.records.find((r) => r !== undefined)!.flatMap((r) => r.transitions));
  const width = compiled.width;
  const stride = width + 1;
  const canonical = new Int32Array(width);
  const seen = new StateSet(width);
  const candidates = new Int32Array(alphabet.events.length);
  const successor = new Int32Array(width);
  const config = opts.config;
  const stepInvariants = invariants.filter((inv) => inv.kind === 'step');
  // One context and two views serve every edge: an invariant reads them during its check only.
  const prevView = compiled.reusableView();
  const nextView = compiled.reusableView();
  const ctx: InvariantContext = { model, config, next: nextView, prev: prevView, event: null, records: [] };
  // What holds is memoised on the tables; an edge where anything fails is checked in full below.
  const memo = new InvariantMemo(compiled, invariants);

  const init = compiled.initial();
  compiled.canonical(init, 0, symmetry, canonical);
  seen.add(canonical);
  search.add(-1, -1);
  const initViolations = checkInvariants(
    { model, config, next: compiled.view(init), prev: null, event: null, records: [] },
    invariants,
  );
  if (initViolations.length > 0) {
    search.found = { rank: 0, parent: 0, event: -1, violations: initViolations };
    return search.finish(false, taken());
  }

  let frontier = new IntList();
  frontier.push(0);
  for (const v of init) frontier.push(v);
  while (frontier.length > 0) {
    if (opts.maxDepth !== undefined && search.depth >= opts.maxDepth) return search.finish(false, taken());
    const next = new IntList();
    const buf = frontier.data;
    for (let off = 0; off < frontier.length; off += stride) {
      const index = buf[off]!;
      memo.enter(buf, off + 1);
      const count = compiled.candidates(buf, off + 1, symmetry, candidates);
      for (let i = 0; i < count; i++) {
        const id = candidates[i]!;
        const records = compiled.apply(buf, off + 1, id, successor, 0);
        search.generated++;
        compiled.canonical(successor, 0, symmetry, canonical);
        const fresh = seen.add(canonical);
        let violations: InvariantViolation[] | null = null;
        if (!memo.edgeHolds(buf, off + 1, successor, fresh, id, records)) {
          ctx.prev = compiled.viewInto(prevView, buf, off + 1);
          ctx.next = compiled.viewInto(nextView, successor, 0);
          ctx.event = alphabet.events[id]!;
          ctx.records = records;
          violations = checkEdge(ctx, fresh ? invariants : stepInvariants);
        }
        if (fresh) next.pushRecord(search.add(index, id), successor, width);
        if (violations !== null) search.violated(violations, index, id);
        search.progress();
      }
    }
    if (next.length > 0 || search.found) search.depth++;
    if (search.found) return search.finish(false, taken());
    frontier = next;
  }
  return search.finish(true, taken());
}

/**
 * Replays `events` on `model` from its initial state, checking `invariants` on the initial state
 * and on every step. Returns every violation with the number of events replayed when it was seen
 * (0 = the initial state); an empty list means the trace keeps every invariant. Throws if an event
 * cannot happen where it is replayed. Pure.
 */
export function checkTrace(
  model: SystemModel,
  events: readonly SystemEvent[],
  invariants: readonly Invariant[] = INVARIANTS,
): (InvariantViolation & { after: number })[] {
  let state = model.initial();
  let view = viewOf(model, state);
  const out = checkInvariants(
    { model, config: model.config, next: view, prev: null, event: null, records: [] },
    invariants,
  ).map((v) => ({ ...v, after: 0 }));
  events.forEach((event, i) => {
    const r = model.step(state, event);
    if (!r) throw new Error(`event ${i} (${describeEvent(event)}) cannot happen here`);
    const next = viewOf(model, r.state);
    const ctx = { model, config: model.config, next, prev: view, event, records: r.records };
    out.push(...checkInvariants(ctx, invariants).map((v) => ({ ...v, after: i + 1 })));
    state = r.state;
    view = next;
  });
  return out;
}

/** Returns one system event as a short line: 'PROXY_HEADER_ERROR conn=0 code=PRX_BAD_HDR'. Pure. */
export function describeEvent(e: SystemEvent): string {
  const parts: string[] = [e.type];
  for (const [k, v] of Object.entries(e)) {
    if (k === 'type' || v === undefined) continue;
    parts.push(v === true ? k : `${k}=${String(v)}`);
  }
  return parts.join(' ');
}

/** Returns the source of an object literal for `e`: "{ type: 'ACCEPT', fail: 'req' }". Pure. */
export function eventSource(e: SystemEvent): string {
  const fields = Object.entries(e)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? `'${v}'` : String(v)}`);
  return `{ ${fields.join(', ')} }`;
}

/** Returns the source of a makeConfig(...) call that rebuilds `config`. Pure. */
export function configSource(config: ModelConfig): string {
  const diff: Partial<ModelConfig> = {};
  for (const k of Object.keys(config) as (keyof ModelConfig)[])
    if (config[k] !== DEFAULT_CONFIG[k]) (diff as Record<string, unknown>)[k] = config[k];
  if (makeConfig(diff).bindMaxconn !== config.bindMaxconn) diff.bindMaxconn = config.bindMaxconn;
  const body = Object.entries(diff)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? `'${v}'` : String(v)}`)
    .join(', ');
  return body === '' ? 'makeConfig({})' : `makeConfig({ ${body} })`;
}

/**
 * Returns a vitest regression test, ready to paste under test/, that replays `cx` on a model of
 * `connections` connections under `config` and expects every invariant to hold. It fails until the
 * defect the counterexample shows is fixed. Pure.
 */
export function regressionTest(cx: Counterexample, config: ModelConfig, connections: number): string {
  const events = cx.events.map((e) => `      ${eventSource(e)},`);
  return [
    "import { expect, it } from 'vitest';",
    "import { makeConfig } from '../../machines/config.ts';",
    "import { SystemModel } from '../../machines/system.ts';",
    "import { checkTrace } from '../../properties/explore.ts';",
    '',
    `it('keeps ${cx.invariant} after ${cx.readable.join(', ').replace(/'/g, '')}', () => {`,
    `  const model = new SystemModel(${configSource(config)}, ${connections});`,
    '  expect(',
    '    checkTrace(model, [',
    ...events,
    '    ]),',
    '  ).toEqual([]);',
    '});',
    '',
  ].join('\n');
}

/** One configuration's exploration within a space. */
export interface ConfigResult extends ExploreResult {
  name: string;
  config: ModelConfig;
}

/** A violation found in a space, with where it was found and its regression test. */
export interface SpaceViolation extends Counterexample {
  configName: string;
  config: ModelConfig;
  connections: number;
  test: string;
}

/** What exploring a whole configuration space found. */
export interface SpaceResult extends ExploreStats {
  connections: number;
  configs: ConfigResult[];
  violations: SpaceViolation[];
}

/** How to explore a space: the options of `explore` that apply to every configuration. */
export interface SpaceOptions {
  bounds?: Bounds;
  engine?: ExploreOptions['engine'];
  defectFor?: (config: ModelConfig) => Defect | null;
  invariants?: readonly Invariant[];
  maxDepth?: number;
  onProgress?: (config: string, stats: ExploreStats) => void;
  progressEveryMs?: number;
}

/**
 * Explores each configuration of `space` with `connections` connections. Returns the per-config
 * results, their sums (depth is the largest) and the violations, at most one per configuration.
 * Pure apart from calling `onProgress`.
 */
export function exploreSpace(
  space: readonly NamedConfig[],
  connections: number,
  opts: SpaceOptions = {},
): SpaceResult {
  const configs: ConfigResult[] = [];
  const violations: SpaceViolation[] = [];
  for (const { name, config } of space) {
    const onProgress = opts.onProgress;
    const r = explore({
      config,
      connections,
      bounds: opts.bounds,
      defect: opts.defectFor?.(config) ?? null,
      invariants: opts.invariants,
      engine: opts.engine,
      maxDepth: opts.maxDepth,
      progressEveryMs: opts.progressEveryMs,
      ...(onProgress ? { onProgress: (s: ExploreStats) => onProgress(name, s) } : {}),
    });
    configs.push({ name, config, ...r });
    if (r.violation)
      violations.push({
        ...r.violation,
        configName: name,
        config,
        connections,
        test: regressionTest(r.violation, config, connections),
      });
  }
  const seconds = configs.reduce((a, c) => a + c.seconds, 0);
  const distinct = configs.reduce((a, c) => a + c.distinct, 0);
  return {
    connections,
    configs,
    violations,
    generated: configs.reduce((a, c) => a + c.generated, 0),
    distinct,
    depth: Math.max(0, ...configs.map((c) => c.depth)),
    seconds,
    statesPerSecond: seconds > 0 ? Math.round(distinct / seconds) : 0,
  };
}

/** The shortest counterexample found for a defect, and where. */
export interface Kill {
  connections: number; //  the smallest N at which some configuration violates an invariant
  configName: string; //   the configuration of the shortest counterexample at that N
  config: ModelConfig;
  counterexample: Counterexample;
}

/**
 * Hunts a defect: explores `space` with the defect switched in, for N = 1, 2, … up to
 * `maxConnections`, and returns the shortest counterexample at the smallest N that has one (ties
 * broken by the order of `space`), or null if the defect survives every configuration at every N.
 * Pure.
 */
export function hunt(
  defectFor: (config: ModelConfig) => Defect | null,
  space: readonly NamedConfig[],
  maxConnections: number,
  opts: { bounds?: Bounds; invariants?: readonly Invariant[]; engine?: ExploreOptions['engine'] } = {},
): Kill | null {
  for (let n = 1; n <= maxConnections; n++) {
    let best: Kill | null = null;
    for (const { name, config } of space) {
      const r = explore({
        config,
        connections: n,
        bounds: opts.bounds,
        defect: defectFor(config),
        invariants: opts.invariants,
        engine: opts.engine,
        ...(best ? { maxDepth: best.counterexample.events.length - 1 } : {}),
      });
      if (r.violation && (!best || r.violation.events.length < best.counterexample.events.length))
        best = { connections: n, configName: name, config, counterexample: r.violation };
    }
    if (best) return best;
  }
  return null;
}
