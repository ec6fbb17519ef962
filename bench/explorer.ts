/**
 * The explorer's throughput (issue 10, row 5): distinct and generated states per second of the
 * bounded model checker (properties/explore.ts) at N = 2…5 connections, with the time to exhaust
 * each and the peak memory, on the whole configuration space and on one configuration; and the
 * anchors on the same model: XState's own `getAdjacencyMap` (xstate/graph) and the explorer's
 * reference engine (SystemModel.step on every edge, the XState transition functions behind it).
 *
 * Each row runs in a fresh Node process (`node --import tsx bench/explorer.ts --row SPEC`), so that
 * its peak RSS is its own: process.memoryUsage().rss is sampled every 100 ms of exploration (and at
 * the end), and the kernel's high-water mark (process.resourceUsage().maxRSS) is kept beside it.
 * Every row checks every invariant of properties/invariants.ts in every state and on every edge,
 * except SPIN's, which checks none; a violation (or an error pan reports) becomes the row's note
 * (violationNote), which the smoke test of the bench fails on.
 *
 * getAdjacencyMap runs on the composed model as XState logic: `fromTransition` over
 * SystemModel.step, the events of each state the enabled ones of the explorer's alphabet, states
 * identified by the explorer's canonical key (symmetry reduction included), so that it finds the
 * same distinct states, and the invariants checked in serializeState. It runs twice: with XState
 * computing every machine step of every edge (the model built with `memoise: false`: XState's own
 * graph walk over XState's own transitions, the anchor the goal is measured against), and over the
 * machine steps the composition memoises (our tables inside XState's walk, shown beside it, up to
 * N = 4). It cannot stop early, and its queue is drained with Array.shift(); each run has a time
 * budget (60 s by default): a run that hits it reports the states reached within it, `complete:
 * false`, and a note, and no larger N is tried. At N = 5 the walk with XState on every step needs
 * about 100 s: it gets a budget it finishes within and runs in 3 of the 5 repetitions
 * (LONG_ADJACENCY).
 *
 * SPIN: when spin and gcc are installed, the compiled explorer without symmetry reduction and SPIN
 * on bench/promela/embryonic.pml (generated from the same tables, regenerated for the run) explore
 * the same states of one configuration; the SPIN rows are pan's own search time and memory.
 *
 * Run alone: `node --import tsx bench/explorer.ts [--quick]` prints the rows as JSON lines.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromTransition } from 'xstate';
import { getAdjacencyMap } from 'xstate/graph';
import type { TransitionRecord } from '../machines/compose.ts';
import { SystemModel, type SystemEvent, type SystemState } from '../machines/system.ts';
import { CONFIG_SPACE, type NamedConfig } from '../properties/bounds.ts';
import { alphabetOf, explore, exploreSpace, stateKey } from '../properties/explore.ts';
import { checkInvariants, INVARIANTS, viewOf } from '../properties/invariants.ts';
import { PROMELA_CONFIG, promelaModel } from './promela/generate.ts';
import { runSpin, spinVersion } from './promela/spin.ts';

/**
 * One measured row. `role` says whether it is measured against the goals (a subject: the compiled
 * explorer), is the anchor of the subjects of the same figure and n (XState, SPIN, the reference
 * engine; an XState anchor's `config` contains "xstate"), or is context, shown and never judged
 * (the whole space explored again in a process that has explored it once).
 */
export interface ExplorerRow {
  figure: string; //          which comparison the row belongs to; an anchor shares its figure and n
  role: 'subject' | 'anchor' | 'context';
  n: number; //               connections
  config: string; //          what was explored, and by what
  generated: number; //       successor states computed
  distinct: number; //        distinct states reached (up to symmetry)
  seconds: number; //         wall time to exhaust them (or to the budget, when not complete)
  cpuSeconds: number; //      its CPU time (user + system, GC threads included): close to `seconds`
  //                           on an idle machine, well below it when other work shared the CPUs
  distinctPerSec: number;
  generatedPerSec: number;
  peakRssMiB: number; //      peak of process.memoryUsage().rss, sampled, in a fresh process
  maxRssMiB: number; //       the kernel's high-water mark of the same process
  complete: boolean; //       every reachable state was explored
  run: number; //             which repetition of its spec (0 first): runs of equal index are pairs
  note?: string;
}

/** What to measure. Every field has a default; `quick` shrinks the defaults to a minute or so. */
export interface BenchExplorerOptions {
  quick?: boolean;
  repeats?: number; //                runs of each row, each in a fresh process (default 5, quick 2)
  connections?: number[]; //          explorer rows: N values (default 2..5, quick 2..3)
  config?: string; //                 the single configuration (default 'tcp-proxy', the seed case)
  adjacencyConnections?: number[]; // getAdjacencyMap rows with XState on every step (default 2..5, quick 2)
  memoisedConnections?: number[]; //  getAdjacencyMap rows over the memoised steps (default 2..4, quick 2)
  adjacencyBudgetMs?: number; //      time budget of each getAdjacencyMap run (default LONG_ADJACENCY's
  //                                   beyond its N, else 60 s; quick 10 s)
  referenceConnections?: number[]; // reference-engine rows (default 2..3, quick 2)
  spinConnections?: number[]; //      SPIN rows and the explorer without symmetry reduction beside them
  //                                   (default `connections`, else 2..5, quick 2..4); [] for none
  inProcess?: boolean; //             measure in this process instead of one process per row (tests)
}

/** One row to measure, as passed to a child process. */
export type RowSpec =
  | { kind: 'space'; n: number }
  | { kind: 'warm'; n: number }
  | { kind: 'config'; n: number; config: string }
  | { kind: 'reference'; n: number; config: string }
  | { kind: 'adjacency'; n: number; config: string; budgetMs: number; memoise: boolean; runs?: number }
  | { kind: 'nosym'; n: number; config: string }
  | { kind: 'spin'; n: number; config: string };

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SELF = fileURLToPath(import.meta.url);
const MIB = 1024 * 1024;
/**
 * How often the explorer rows sample the RSS. A sample (process.memoryUsage) took 1.5 to 3 ms in
 * these child processes on the 2-core bench machine: sampled every 1024 states generated, as it
 * was at first, it cost the short rows (N = 2, 3) up to a sixth of their time, none of it the
 * explorer's. Every 100 ms it costs at most a few ms a row; the kernel's high-water mark
 * (maxRssMiB) is exact either way.
 */
const RSS_EVERY_MS = 100;

/**
 * getAdjacencyMap with XState on every step at N = 5 (tcp-proxy) needs about 100 s and 2 GiB for
 * its 73k states (measured: 98 s, 747 distinct/s, where N = 4 runs at 1.4k–2.3k/s). Stopped at a
 * budget it would report the states it expanded, not those it found, and its rate would not be
 * that of the whole search; so from this N on it gets a budget long enough to finish and runs in
 * the first `runs` repetitions only, its ratio the median of that many pairs.
 */
const LONG_ADJACENCY = { fromN: 5, budgetMs: 300_000, runs: 3 };

/** The figure of the whole space, and of one configuration (the explorer and its anchors). */
export const SPACE_FIGURE = `explorer, whole space (${CONFIG_SPACE.length} configurations)`;
export const WARM_FIGURE = `${SPACE_FIGURE}, again in the same process`;
export const configFigure = (config: string): string => `explorer, one configuration (${config})`;
export const spinFigure = (config: string): string =>
  `explorer and SPIN, one configuration (${config}), no symmetry reduction`;

/**
 * The runs benchExplorer makes for `opts` (see BenchExplorerOptions), in the order it makes them:
 * the compiled explorer on the whole space and on one configuration for each N, the reference
 * engine and getAdjacencyMap on that configuration, SPIN and the explorer without symmetry
 * reduction beside it (when spin is installed). The whole list is repeated `repeats` times, one
 * repetition after the other, so that the runs of a subject and of its anchors alternate in time
 * and runs of equal `run` index form the pairs of a ratio; a getAdjacencyMap spec with `runs` is
 * in the first `runs` repetitions only. Pure apart from asking spin its version.
 */
export function explorerPlan(opts: BenchExplorerOptions = {}): { run: number; spec: RowSpec }[] {
  const quick = opts.quick ?? false;
  const repeats = opts.repeats ?? (quick ? 2 : 5);
  const ns = opts.connections ?? (quick ? [2, 3] : [2, 3, 4, 5]);
  const config = opts.config ?? 'tcp-proxy';
  if (!CONFIG_SPACE.some((c) => c.name === config)) throw new Error(`no configuration named ${config}`);
  const adjacency = opts.adjacencyConnections ?? (quick ? [2] : [2, 3, 4, 5]);
  const memoised = opts.memoisedConnections ?? (quick ? [2] : [2, 3, 4]);
  const adjacencySpec = (n: number, memoise: boolean): RowSpec => {
    const long = !quick && n >= LONG_ADJACENCY.fromN;
    const budgetMs = opts.adjacencyBudgetMs ?? (quick ? 10_000 : long ? LONG_ADJACENCY.budgetMs : 60_000);
    return {
      kind: 'adjacency',
      n,
      config,
      budgetMs,
      memoise,
      ...(long ? { runs: LONG_ADJACENCY.runs } : {}),
    };
  };
  const reference = opts.referenceConnections ?? (quick ? [2] : [2, 3]);
  const spinNs = opts.spinConnections ?? opts.connections ?? (quick ? [2, 3, 4] : [2, 3, 4, 5]);
  const specs: RowSpec[] = [
    ...ns.map((n): RowSpec => ({ kind: 'space', n })),
    ...ns.map((n): RowSpec => ({ kind: 'warm', n })),
    ...ns.map((n): RowSpec => ({ kind: 'config', n, config })),
    ...reference.map((n): RowSpec => ({ kind: 'reference', n, config })),
    ...adjacency.map((n) => adjacencySpec(n, false)),
    ...memoised.map((n) => adjacencySpec(n, true)),
    ...(spinNs.length > 0 && spinVersion() !== null
      ? spinNs.flatMap((n): RowSpec[] => [
          { kind: 'nosym', n, config: PROMELA_CONFIG },
          { kind: 'spin', n, config: PROMELA_CONFIG },
        ])
      : []),
  ];
  const plan: { run: number; spec: RowSpec }[] = [];
  for (let run = 0; run < repeats; run++)
    for (const spec of specs)
      if (spec.kind !== 'adjacency' || run < (spec.runs ?? Infinity)) plan.push({ run, spec });
  return plan;
}

/**
 * Measures the explorer's throughput as `opts` asks: the runs of explorerPlan, in its order, one
 * row per run. A getAdjacencyMap run that hits its budget stops that kind of run at its N: larger
 * N are not tried, in this repetition or the next. Runs each row in a child process it waits for,
 * unless `inProcess`; a child that fails throws. Returns the rows; the caller owns them.
 */
export function benchExplorer(opts: BenchExplorerOptions = {}): ExplorerRow[] {
  const measure = (spec: RowSpec): ExplorerRow => (opts.inProcess ? measureRow(spec) : measureInChild(spec));
  // The largest N still tried by each kind of getAdjacencyMap run (lowered when one hits its budget).
  const adjacencyLimit = new Map<boolean, number>();
  const rows: ExplorerRow[] = [];
  for (const { run, spec } of explorerPlan(opts)) {
    if (spec.kind === 'adjacency' && spec.n > (adjacencyLimit.get(spec.memoise) ?? Infinity)) continue;
    const row = { ...measure(spec), run };
    rows.push(row);
    if (spec.kind === 'adjacency' && !row.complete) {
      row.note = `${row.note ?? ''} Larger N not tried.`.trim();
      adjacencyLimit.set(spec.memoise, spec.n);
    }
  }
  return rows;
}

/**
 * Measures `spec` in a fresh `node --import tsx` process running this file, and returns its row.
 * Waits for the child (at most the row's budget plus 10 minutes, then kills it) and throws if it
 * fails or prints no row.
 */
export function measureInChild(spec: RowSpec): ExplorerRow {
  const budget = spec.kind === 'adjacency' ? spec.budgetMs : 0;
  const r = spawnSync(process.execPath, ['--import', 'tsx', SELF, '--row', JSON.stringify(spec)], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: budget + 600_000,
    killSignal: 'SIGKILL',
    maxBuffer: 16 * MIB,
  });
  const line = r.stdout?.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{'))
    throw new Error(`explorer row ${JSON.stringify(spec)} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(line) as ExplorerRow;
}

/** Samples the RSS: call it often, read `peak` at the end. */
class RssSampler {
  peak = process.memoryUsage().rss;

  sample(): void {
    const rss = process.memoryUsage().rss;
    if (rss > this.peak) this.peak = rss;
  }
}

/** Measures `spec` in this process and returns its row, as run 0 (benchExplorer numbers the repetitions). Throws on an unknown configuration. */
export function measureRow(spec: RowSpec): ExplorerRow {
  // A warm row explores the whole space once, untimed, then measures the same search again: the
  // code is compiled by then, while the tables are filled afresh (each search builds its models).
  if (spec.kind === 'warm') exploreSpace(CONFIG_SPACE, spec.n);
  const rss = new RssSampler();
  const started = performance.now();
  const cpu = process.cpuUsage();
  let figure: string;
  let label: string;
  let generated: number;
  let distinct: number;
  let complete: boolean;
  let note: string | undefined;
  let role: ExplorerRow['role'] = 'subject';
  let seconds: number | null = null; // when the tool reports its own search time
  let peak: number | null = null; //    when the tool reports its own memory
  switch (spec.kind) {
    case 'space':
    case 'warm': {
      const r = exploreSpace(CONFIG_SPACE, spec.n, {
        onProgress: () => rss.sample(),
        progressEveryMs: RSS_EVERY_MS,
      });
      figure = spec.kind === 'space' ? SPACE_FIGURE : WARM_FIGURE;
      label =
        spec.kind === 'space'
          ? 'compiled explorer, CONFIG_SPACE'
          : 'compiled explorer, CONFIG_SPACE, second search in one process';
      if (spec.kind === 'warm') {
        role = 'context';
        note =
          'not judged: the same search was run once before in this process (untimed), so its code is compiled; its tables are filled afresh';
      }
      ({ generated, distinct } = r);
      complete = r.configs.every((c) => c.complete);
      const first = r.violations[0];
      if (first) note = violationNote(r.violations.length, first);
      break;
    }
    case 'config':
    case 'reference': {
      const config = namedConfig(spec.config).config;
      const r = explore({
        config,
        connections: spec.n,
        engine: spec.kind === 'config' ? 'compiled' : 'xstate',
        onProgress: () => rss.sample(),
        progressEveryMs: RSS_EVERY_MS,
      });
      figure = configFigure(spec.config);
      label =
        spec.kind === 'config'
          ? `compiled explorer, ${spec.config}`
          : `reference engine (SystemModel.step over xstate), ${spec.config}`;
      ({ generated, distinct, complete } = r);
      if (r.violation) note = violationNote(1, r.violation);
      if (spec.kind === 'reference') {
        figure = `${figure}, reference engine`;
        role = 'anchor';
      }
      break;
    }
    case 'nosym': {
      const r = explore({
        config: namedConfig(spec.config).config,
        connections: spec.n,
        symmetry: false,
        onProgress: () => rss.sample(),
        progressEveryMs: RSS_EVERY_MS,
      });
      figure = spinFigure(spec.config);
      label = `compiled explorer, ${spec.config}, no symmetry reduction`;
      ({ generated, distinct, complete } = r);
      if (r.violation) note = violationNote(1, r.violation);
      break;
    }
    case 'spin': {
      const r = runSpin(promelaModel(namedConfig(spec.config)), spec.n);
      figure = spinFigure(spec.config);
      label = `${r.version.replace(/ --.*/, '')} pan -DSAFETY, bench/promela/embryonic.pml (${spec.config})`;
      role = 'anchor';
      generated = r.transitions;
      distinct = r.stored;
      complete = r.errors === 0;
      seconds = Math.max(r.seconds, 0.01);
      peak = r.memoryMiB * MIB;
      note =
        "pan's own search time (0.01 s resolution) and total memory (hash table included); no invariant is checked.";
      if (r.errors > 0) note = `pan found ${r.errors} error(s): the model and the tables disagree. ${note}`;
      break;
    }
    case 'adjacency': {
      const r = adjacencyMapRun(namedConfig(spec.config), spec.n, spec.budgetMs, {
        rss,
        memoise: spec.memoise,
      });
      figure = configFigure(spec.config);
      label = adjacencyLabel(spec.config, spec.memoise);
      role = 'anchor';
      ({ generated, distinct, complete } = r);
      if (!complete)
        note = `Stopped at the ${(spec.budgetMs / 1000).toFixed(0)} s budget; rates are over the states reached.`;
      if (r.violations > 0) note = `${note ?? ''} ${r.violations} edge(s) broke an invariant.`.trim();
      break;
    }
  }
  const spent = process.cpuUsage(cpu);
  const cpuSeconds = spec.kind === 'spin' ? (seconds ?? 0) : (spent.user + spent.system) / 1e6;
  seconds ??= (performance.now() - started) / 1000;
  rss.sample();
  peak ??= rss.peak;
  return {
    figure,
    role,
    n: spec.n,
    config: label,
    generated,
    distinct,
    seconds,
    cpuSeconds,
    distinctPerSec: Math.round(distinct / seconds),
    generatedPerSec: Math.round(generated / seconds),
    peakRssMiB: Math.round((10 * peak) / MIB) / 10,
    maxRssMiB:
      spec.kind === 'spin'
        ? Math.round(10 * (peak / MIB)) / 10
        : Math.round((10 * process.resourceUsage().maxRSS) / 1024) / 10,
    complete,
    run: 0,
    ...(note ? { note } : {}),
  };
}

/**
 * The note of an explorer row whose search found <count> invariant violation(s), <first> the
 * first (an explorer's search stops at the depth of its first violation). Pure.
 */
export function violationNote(count: number, first: { invariant: string; message: string }): string {
  return `${count} violation(s) found, the first: ${first.invariant}: ${first.message}`;
}

/**
 * Returns the config label of a getAdjacencyMap row: with XState computing every machine step (the
 * goal's anchor), or over the memoised machine steps. Pure.
 */
export function adjacencyLabel(config: string, memoise: boolean): string {
  return memoise
    ? `xstate/graph getAdjacencyMap over the memoised machine steps, ${config}`
    : `xstate/graph getAdjacencyMap, XState on every machine step, ${config}`;
}

function namedConfig(name: string): NamedConfig {
  const found = CONFIG_SPACE.find((c) => c.name === name);
  if (!found) throw new Error(`no configuration named ${name}`);
  return found;
}

/** Thrown from inside getAdjacencyMap when the budget is spent: it has no other way to stop. */
class BudgetSpent extends Error {}

/** The context of the XState logic wrapping the model: a state and the machine steps that reached it. */
interface Reached {
  state: SystemState;
  records: TransitionRecord[];
}

/**
 * Runs xstate/graph's getAdjacencyMap on the composed model of `named` with `n` connections (see
 * the header) for at most `budgetMs`, its machine steps memoised (`opts.memoise`, the default) or
 * each computed by XState, sampling `opts.rss` as it goes, checking every invariant as the
 * explorer does: the state
 * invariants on each new state, the step invariants on every edge (getAdjacencyMap hands each
 * serialised successor its event and predecessor). Returns the states it expanded (distinct), the
 * transitions it computed (generated), whether it finished, and how many edges broke an invariant.
 */
export function adjacencyMapRun(
  named: NamedConfig,
  n: number,
  budgetMs: number,
  opts: { memoise?: boolean; rss?: { sample(): void } } = {},
): { distinct: number; generated: number; complete: boolean; violations: number } {
  const memoise = opts.memoise ?? true;
  const rss = opts.rss ?? { sample: () => {} };
  const model = new SystemModel(named.config, n, null, memoise);
  const alphabet = alphabetOf(named.config, n);
  const deadline = performance.now() + budgetMs;
  const seen = new Set<string>();
  let distinct = 0;
  let generated = 0;
  let violations = 0;
  const logic = fromTransition(
    (reached: Reached, event: SystemEvent): Reached => {
      generated++;
      const r = model.step(reached.state, event);
      return r ? { state: r.state, records: r.records } : reached;
    },
    { state: model.initial(), records: [] },
  );
  try {
    getAdjacencyMap(logic, {
      serializeState: (snapshot, event, prev) => {
        const key = stateKey(model, snapshot.context.state);
        const fresh = !seen.has(key);
        seen.add(key);
        const ctx = {
          model,
          config: named.config,
          next: viewOf(model, snapshot.context.state),
          prev: prev ? viewOf(model, prev.context.state) : null,
          event: (event as SystemEvent | undefined) ?? null,
          records: snapshot.context.records,
        };
        if (checkInvariants(ctx, INVARIANTS, fresh ? 'both' : 'step').length > 0) violations++;
        return key;
      },
      events: (snapshot) => {
        distinct++;
        if ((distinct & 1023) === 0) {
          rss.sample();
          if (performance.now() > deadline) throw new BudgetSpent();
        }
        return alphabet.filter((e) => model.isEnabled(snapshot.context.state, e));
      },
    });
  } catch (err) {
    if (err instanceof BudgetSpent) return { distinct, generated, complete: false, violations };
    throw err;
  }
  return { distinct, generated, complete: true, violations };
}

/** `node --import tsx bench/explorer.ts --row SPEC` (one row, for benchExplorer) or `[--quick]`. */
function main(argv: string[]): void {
  const at = argv.indexOf('--row');
  if (at >= 0) {
    console.log(JSON.stringify(measureRow(JSON.parse(argv[at + 1]!) as RowSpec)));
    return;
  }
  for (const row of benchExplorer({ quick: argv.includes('--quick') })) console.log(JSON.stringify(row));
}

if (process.argv[1] === SELF) main(process.argv.slice(2));
