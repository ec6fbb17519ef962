/**
 * `npm run bench` (tsx bench/run.ts): runs the benchmarks of issue 10 side by side with their
 * anchors on this machine, prints one table, and writes bench/results.json.
 *
 *   row 1  memory per held-open connection, floods of 1k and 10k, embryonic vs full: RSS growth
 *          (anchor: HAProxy 2.6 in the same run) and JS heap growth    bench/memory.ts
 *   row 2  accept + PROXY v1 header + close per second (anchor HAProxy) bench/accept.ts
 *   row 3  forwarding throughput after the handshake (anchor HAProxy)   bench/throughput.ts
 *   row 4  the live trace monitor's overhead on the accept rate         bench/monitor.ts
 *   row 5  explorer throughput (anchors: xstate/graph, SPIN)            bench/explorer.ts
 *   row 6  `npm test` wall time on 2 cores (only with --with-npm-test)
 *
 * Options: --quick (a fast pass: smaller floods, fewer and shorter runs), --rows 1,2,... (only
 * these rows), --no-heap (skip the JS heap runs of row 1), --with-npm-test (row 6), --record
 * (also add the run to bench/history.json and rewrite the generated blocks of BENCHMARKS.md,
 * bench/summary.ts), --out FILE (default bench/results.json),
 * --repeats N (override). A row that cannot run is printed as skipped with the reason: either
 * something the machine lacks (HAPROXY_MISSING, SPIN_MISSING: its anchor is not measured), a row
 * not asked for ("not asked for (...)"), or a failure (a row that threw: "failed: ..."; a proxy
 * that did not start; the bundled proxy that does not load), which test/bench/smoke.test.ts
 * fails on. Exit code: 0 when the benchmarks ran (whatever the goals), 1 when the driver itself
 * failed, 2 on a usage error.
 *
 * The processes (the proxies, the echo backend, the load generator) are children of this driver,
 * on 127.0.0.1 only; each is stopped in a finally, and an exit handler kills what is left
 * (bench/targets.ts).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatTable } from '../cli/table.ts';
import { benchAccept, type AcceptOptions } from './accept.ts';
import type { ExplorerRow } from './explorer.ts';
import { benchMemory, type MemoryOptions } from './memory.ts';
import { benchMonitor } from './monitor.ts';
import { spinVersion } from './promela/spin.ts';
import {
  goalsMarkdown,
  historyEntry,
  historyMarkdown,
  readHistory,
  withEntry,
  type HistoryEntry,
} from './summary.ts';
import {
  benchRow,
  cpuTimes,
  FIGURE,
  fmtNumber,
  fmtStealPercent,
  fmtSummary,
  fdLimits,
  haproxyVersion,
  killStartedProcesses,
  mdCell,
  pairRatios,
  proxyHelp,
  ROOT,
  runCapture,
  startEcho,
  startLoader,
  startRateProxies,
  stealPercent,
  stopAll,
  summarize,
  type BenchContext,
  type BenchResult,
  type BenchRow,
  type ProxyProcess,
  type RateProxies,
  type SkippedRow,
  type Summary,
} from './targets.ts';
import { benchThroughput, type ThroughputOptions } from './throughput.ts';

/** The reason of every row (or anchor) skipped because haproxy is not installed. */
export const HAPROXY_MISSING =
  'haproxy is not installed (no `haproxy` in PATH): `apt-get install -y haproxy`';

/** The reason of row 5's SPIN anchor skipped because spin (or gcc, which compiles pan) is missing. */
export const SPIN_MISSING =
  'spin or gcc is not installed (no `spin -V` or `gcc --version`): `apt-get install -y spin gcc`';

/** Everything one run of the benchmarks is asked to do. */
export interface BenchPlan {
  rows: number[]; //                  which rows run (1..6)
  memory: MemoryOptions;
  accept: AcceptOptions; //           rows 2 and 4
  throughput: ThroughputOptions;
  explorer: Record<string, unknown>; // the options given to benchExplorer
  npmTest: boolean; //                row 6
  mode: 'full' | 'quick' | 'custom';
}

/** The machine the figures were measured on. */
export interface MachineInfo {
  nproc: number;
  cpu: string; //          model name in /proc/cpuinfo
  node: string;
  haproxy: string | null; // first line of `haproxy -v`
  kernel: string;
  memTotalMiB: number;
  fdLimit: { soft: number; hard: number };
}

/** What `npm run bench` writes to bench/results.json. */
export interface BenchReport {
  version: 1;
  startedAt: string; //  ISO date
  seconds: number; //    wall time of the whole run
  command: string; //    how it was run
  code?: string | null; // the commit measured, '+' after it when the work tree had changes (codeVersion)
  machine: MachineInfo;
  plan: BenchPlan;
  load: { start: number[]; end: number[] }; // os.loadavg() (1, 5, 15 min) before and after: other work on the machine
  steal: CpuSteal; //    the CPU time the hypervisor took from this machine while it ran
  rows: BenchRow[];
  skipped: SkippedRow[];
}

/**
 * CPU steal (stealPercent of bench/targets.ts) over the whole run and during each row that ran:
 * of the CPU time the machine wanted, the share in percent the hypervisor gave to other guests.
 * Null where /proc/stat cannot be read.
 */
export interface CpuSteal {
  run: number | null;
  rows: { row: number; percent: number | null }[];
}

/** The full run: the figures BENCHMARKS.md records (about 18 minutes). Pure. */
export function fullPlan(): BenchPlan {
  return {
    rows: [1, 2, 3, 4, 5],
    memory: { sizes: [1000, 10000], repeats: 3, heap: true, warmup: 20, floor: true },
    // Rows 2 and 4 share these runs; 9 pairs, since on 2 cores a 3 s run moves by up to a fifth.
    accept: { durationMs: 3000, repeats: 9, concurrency: 16, warmupMs: 1000 },
    throughput: { durationMs: 3000, repeats: 5, connections: 1, chunkBytes: 64 * 1024 },
    explorer: { quick: false },
    npmTest: false,
    mode: 'full',
  };
}

/** `--quick`: the same rows, smaller and shorter (about a minute). Pure. */
export function quickPlan(): BenchPlan {
  return {
    rows: [1, 2, 3, 4, 5],
    memory: { sizes: [1000], repeats: 1, heap: true, warmup: 20, floor: true },
    accept: { durationMs: 1000, repeats: 3, concurrency: 16, warmupMs: 300 },
    throughput: { durationMs: 1000, repeats: 3, connections: 1, chunkBytes: 64 * 1024 },
    explorer: { quick: true },
    npmTest: false,
    mode: 'quick',
  };
}

/** Returns the machine's description: nproc, CPU model, node, haproxy, kernel, memory, fd limits. */
export async function machineInfo(): Promise<MachineInfo> {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    // not Linux
  }
  return {
    nproc: os.availableParallelism(),
    cpu,
    node: process.version,
    haproxy: await haproxyVersion(),
    kernel: `${os.type()} ${os.release()}`,
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    fdLimit: fdLimits(),
  };
}

/**
 * Returns the commit of the code being measured (git's HEAD, 12 digits), followed by '+' when
 * tracked files other than the benchmarks' own outputs (bench/results.json, bench/history.json,
 * BENCHMARKS.md) differ from it; null outside a git work tree or without git.
 */
export async function codeVersion(): Promise<string | null> {
  const head = await runCapture('git', ['rev-parse', '--short=12', 'HEAD'], 10_000);
  if (head?.code !== 0) return null;
  const status = await runCapture('git', ['status', '--porcelain', '--untracked-files=no'], 10_000);
  const changed = status?.code !== 0 || changesBeyondOutputs(status.stdout);
  return `${head.stdout.trim()}${changed ? '+' : ''}`;
}

/** The files the benchmarks write themselves: a change to them is not a change of the code measured. */
const BENCH_OUTPUTS = new Set(['bench/results.json', 'bench/history.json', 'BENCHMARKS.md']);

/**
 * True iff `git status --porcelain` output <porcelain> lists a tracked file other than the
 * benchmarks' own outputs (a rename counts by its new path). Pure.
 */
export function changesBeyondOutputs(porcelain: string): boolean {
  return porcelain.split('\n').some((line) => {
    if (line.length <= 3) return false;
    const path = line.slice(3).split(' -> ').at(-1)!.trim();
    return !BENCH_OUTPUTS.has(path);
  });
}

/**
 * Runs the benchmarks of <plan>, printing progress with <log>. Starts the echo backend and the
 * load generator, runs each asked row in order (a row that throws becomes a skipped row whose
 * reason is "failed: " and the error), and stops every process it started before it resolves.
 * Resolves with the report; rejects only when the shared processes (echo backend, load generator)
 * cannot start.
 */
export async function runBench(
  plan: BenchPlan,
  log: (line: string) => void,
  command = 'npm run bench',
): Promise<BenchReport> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const loadStart = os.loadavg();
  const cpuStart = cpuTimes();
  const steal: CpuSteal = { run: null, rows: [] };
  // Runs row <row> with <run>, recording the CPU steal while it runs.
  const timed = async <T>(row: number, run: () => Promise<T>): Promise<T> => {
    const before = cpuTimes();
    try {
      return await run();
    } finally {
      steal.rows.push({ row, percent: stealPercent(before, cpuTimes()) });
    }
  };
  const wants = (row: number): boolean => plan.rows.includes(row);
  const needsProxies = [1, 2, 3, 4].some(wants);
  // The facts and the shared processes, all at once.
  const [machine, code, help, echo, loader] = await Promise.all([
    machineInfo(),
    codeVersion(),
    proxyHelp(),
    needsProxies ? startEcho().catch((err: Error) => err) : null,
    needsProxies ? startLoader().catch((err: Error) => err) : null,
  ]);
  const implMissing =
    help === null ? 'the bundled proxy is missing (cli/proxy.ts does not exist or does not load)' : null;
  const haproxyMissing = machine.haproxy === null ? HAPROXY_MISSING : null;
  const rows: BenchRow[] = [];
  const skipped: SkippedRow[] = [];
  const add = (r: BenchResult): void => {
    rows.push(...r.rows);
    skipped.push(...r.skipped);
  };
  // Runs row <row> if asked; a row that throws is skipped with "failed: " and the error's first line.
  const guarded = async (row: number, figure: string, run: () => Promise<BenchResult>): Promise<void> => {
    if (!wants(row)) return;
    try {
      add(await timed(row, run));
    } catch (err) {
      skipped.push({ row, figure, reason: `failed: ${(err as Error).message.split('\n')[0]}` });
    }
  };
  let rate: Promise<RateProxies> | null = null;
  try {
    if (echo instanceof Error || loader instanceof Error)
      throw new Error(
        `the shared processes did not start: ${[echo, loader]
          .filter((e) => e instanceof Error)
          .map((e) => (e as Error).message)
          .join('; ')}`,
      );
    if (echo && loader) {
      const ctx: BenchContext = {
        loader,
        echo,
        implMissing,
        haproxyMissing,
        fdHard: machine.fdLimit.hard,
        log,
        rateProxies: () => (rate ??= startRateProxies(ctx, wants(4))),
      };
      // The rate proxies start now, beside the memory row's own (an idle proxy disturbs no flood).
      if ([2, 3, 4].some(wants)) void ctx.rateProxies();
      await guarded(1, 'memory per held-open connection', () => benchMemory(ctx, plan.memory));
      await guarded(2, FIGURE.accept, () => benchAccept(ctx, plan.accept));
      await guarded(3, FIGURE.forwarding, () => benchThroughput(ctx, plan.throughput));
      await guarded(4, FIGURE.monitor, () => benchMonitor(ctx, plan.accept));
    }
  } finally {
    if (rate) {
      const r: RateProxies = await rate;
      await stopAll(
        [r.impl, r.haproxy, r.monitored, r.unmonitored].filter((p): p is ProxyProcess => p !== null),
      );
    }
    if (loader && !(loader instanceof Error)) await loader.stop();
    if (echo && !(echo instanceof Error)) await echo.stop();
  }
  if (wants(5)) log('explorer: bench/explorer.ts');
  await guarded(5, 'explorer throughput', () => benchExplorerRows(plan.explorer));
  if (wants(6)) {
    if (plan.npmTest) add(await timed(6, () => benchNpmTest(machine, log)));
    else
      skipped.push({
        row: 6,
        figure: FIGURE.npmTest,
        reason: 'not asked for (--with-npm-test)',
      });
  }
  return {
    version: 1,
    startedAt,
    seconds: (performance.now() - t0) / 1000,
    command,
    code,
    machine,
    plan,
    load: { start: loadStart, end: os.loadavg() },
    steal: { ...steal, run: stealPercent(cpuStart, cpuTimes()) },
    rows,
    skipped,
  };
}

/**
 * Returns the skipped rows of <report> that are failures: every one but HAPROXY_MISSING while the
 * machine has no haproxy, SPIN_MISSING, and the rows "not asked for (...)" by the plan. A row that
 * threw ("failed: ..."), a proxy that did not start, a bundled proxy that does not load are
 * failures. Pure.
 */
export function failedSkips(report: {
  machine: Pick<MachineInfo, 'haproxy'>;
  skipped: readonly SkippedRow[];
}): SkippedRow[] {
  return report.skipped.filter(
    (s) =>
      !(
        (s.reason === HAPROXY_MISSING && report.machine.haproxy === null) ||
        s.reason === SPIN_MISSING ||
        /^not asked for \(--[a-z-]+\)$/.test(s.reason)
      ),
  );
}

/**
 * The notes that say a model is broken, as bench/monitor.ts and bench/explorer.ts word them: a
 * divergence the live monitor reported (divergenceNote), the monitor stopped on an internal error
 * (monitorStoppedNote), an invariant the explorer found violated (violationNote), an edge of
 * getAdjacencyMap that broke an invariant, an error pan found.
 */
export const BROKEN_MODEL_NOTES: readonly RegExp[] = [
  /^the monitor reported \d+ divergence line\(s\) during the runs/,
  /^the monitor stopped during the runs: /,
  /^\d+ violation\(s\) found, the first: /,
  /\b\d+ edge\(s\) broke an invariant\./,
  /^pan found \d+ error\(s\): the model and the tables disagree\./,
];

/**
 * Returns the notes of <rows> that say a model is broken (BROKEN_MODEL_NOTES), each as "row N,
 * figure, subject: note". Pure.
 */
export function brokenModelNotes(rows: readonly BenchRow[]): string[] {
  return rows.flatMap((r) =>
    r.notes
      .filter((n) => BROKEN_MODEL_NOTES.some((p) => p.test(n)))
      .map((n) => `row ${r.row}, ${r.figure}, ${r.subject}: ${n}`),
  );
}

// ---------------------------------------------------------------------------------------------
// Row 5: the explorer (bench/explorer.ts, run in a child process)
// ---------------------------------------------------------------------------------------------

/**
 * Runs bench/explorer.ts's benchExplorer(<opts>) and turns its rows into BenchRows (explorerRows),
 * in a child process (`node --import tsx -e`) bounded by EXPLORER_TIMEOUT_MS. The driver runs it
 * after every proxy is stopped. Resolves with the rows, plus the SPIN anchor skipped with
 * SPIN_MISSING when spin or gcc is missing (and <opts> does not turn SPIN off with spinConnections:
 * []); or with row 5 skipped with a reason starting "failed: " when the child fails or answers
 * anything but rows. Never rejects.
 */
export async function benchExplorerRows(opts: Record<string, unknown>): Promise<BenchResult> {
  const figure = 'explorer throughput';
  const file = join(ROOT, 'bench/explorer.ts');
  const failed = (why: string): BenchResult => ({
    rows: [],
    skipped: [{ row: 5, figure, reason: `failed: ${why}` }],
  });
  // benchExplorer is synchronous (it waits for its own children with spawnSync): it runs in a
  // child process, so that this driver's event loop, and a driver running beside it, never stall.
  const script = [
    `const mod = await import(${JSON.stringify(pathToFileURL(file).href)});`,
    `const rows = await mod.benchExplorer(${JSON.stringify(opts)});`,
    `process.stdout.write('\\n${EXPLORER_MARK}' + JSON.stringify(rows) + '\\n');`,
  ].join(' ');
  const out = await runCapture(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    EXPLORER_TIMEOUT_MS,
  );
  const line = out?.stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(EXPLORER_MARK));
  if (!out || out.code !== 0 || !line)
    return failed(
      `benchExplorer ${out ? `exited ${out.code}: ${out.stderr.trim().split('\n').slice(-3).join(' / ')}` : 'did not start (node did not start)'}`,
    );
  const rows = JSON.parse(line.slice(EXPLORER_MARK.length)) as unknown;
  if (!Array.isArray(rows)) return failed('benchExplorer did not return an array of rows');
  const spinWanted = !Array.isArray(opts['spinConnections']) || opts['spinConnections'].length > 0;
  return {
    rows: explorerRows(rows as ExplorerRow[]),
    skipped:
      spinWanted && spinVersion() === null
        ? [{ row: 5, figure: `${figure}: SPIN anchor`, reason: SPIN_MISSING }]
        : [],
  };
}

/** The prefix of the line the explorer's child process answers with. */
const EXPLORER_MARK = 'BENCH_EXPLORER_RESULT ';
/** How long the explorer's rows may take (the full plan takes minutes). */
const EXPLORER_TIMEOUT_MS = 30 * 60_000;

/**
 * Turns benchExplorer's rows into BenchRows: one per measured thing (figure, config, N), its runs
 * summarised (median [min–max] of the distinct states/s), in the order first measured. An anchor
 * (XState, SPIN) is the anchor of the subjects with the same n and figure (or a figure extending
 * it); a context row is shown and never judged; each ratio is taken run by run (runs of equal `run` index are
 * pairs) and summarised. Goals, judged on the medians: ≥ 100k distinct/s, ≥ 100× getAdjacencyMap
 * with XState on every machine step (the run over memoised steps is shown in the notes, not
 * judged), ≥ 0.2× SPIN (one fifth), N = 3 exhausted in < 5 s, each where it applies. Pure.
 */
export function explorerRows(list: readonly ExplorerRow[]): BenchRow[] {
  const isGraph = (r: ExplorerRow): boolean =>
    /getAdjacencyMap|xstate\/graph/i.test(r.config) && !/memoised/i.test(r.config);
  const isSpin = (r: ExplorerRow): boolean => /\bspin\b/i.test(r.config);
  const isAnchor = (r: ExplorerRow): boolean => r.role === 'anchor';
  const rank = (r: ExplorerRow): number => (isGraph(r) ? 0 : isSpin(r) ? 1 : 2);
  const groups = new Map<string, ExplorerRow[]>();
  for (const r of list) {
    const key = `${r.figure}\u0000${r.config}\u0000${r.n}`;
    const runs = groups.get(key);
    if (runs) runs.push(r);
    else groups.set(key, [r]);
  }
  const things = [...groups.values()].map((runs) => [...runs].sort((a, b) => a.run - b.run));
  return things.map((runs) => {
    const r = runs[0]!;
    // The anchors of an explorer row: the anchor rows (XState, SPIN) with its N whose figure is
    // its own or extends it ("..., reference engine"); getAdjacencyMap first, then SPIN.
    const anchors =
      r.role !== 'subject'
        ? []
        : things
            .filter(
              ([a]) =>
                isAnchor(a!) &&
                a!.n === r.n &&
                (a!.figure === r.figure || a!.figure.startsWith(`${r.figure},`)),
            )
            .sort(([a], [b]) => rank(a!) - rank(b!));
    const rates = (of: readonly ExplorerRow[]): number[] => of.map((x) => x.distinctPerSec);
    const ratioTo = (of: readonly ExplorerRow[]): Summary | null =>
      summarize(pairRatios(rates(runs), rates(of)));
    const anchor = anchors[0];
    const ratio = anchor ? ratioTo(anchor) : null;
    const seconds = summarize(runs.map((x) => x.seconds))!;
    const notes = [
      `${fmtNumber(r.distinct)} distinct, ${fmtNumber(r.generated)} generated (${fmtSummary(summarize(runs.map((x) => x.generatedPerSec)))}/s) in ${fmtSummary(seconds)} s, ${runs.length} run(s)`,
      `peak RSS ${Math.max(...runs.map((x) => x.peakRssMiB)).toFixed(0)} MiB`,
    ];
    for (const other of anchors.slice(1))
      notes.push(
        `${fmtSummary(ratioTo(other))}× ${other[0]!.config} (${fmtSummary(summarize(rates(other)))}/s)`,
      );
    if (runs.some((x) => x.complete === false))
      notes.push('not exhausted: the rates are over the states reached');
    for (const note of new Set(runs.flatMap((x) => (x.note ? [x.note] : [])))) notes.push(note);
    const value = summarize(rates(runs))!;
    const goalParts: string[] = [];
    let met: boolean | null = null;
    if (r.role === 'subject') {
      goalParts.push('≥ 100k distinct/s');
      met = value.median >= 100_000;
      const graph = anchors.find(([a]) => isGraph(a!));
      if (graph) {
        goalParts.push('≥ 100× xstate/graph');
        met = met && (ratioTo(graph)?.median ?? 0) >= 100;
      }
      const spin = anchors.find(([a]) => isSpin(a!));
      if (spin) {
        goalParts.push('≥ 0.2× SPIN');
        met = met && (ratioTo(spin)?.median ?? 0) >= 0.2;
      }
      if (r.n === 3) {
        goalParts.push('N = 3 exhausted in < 5 s');
        met = met && seconds.median < 5 && runs.every((x) => x.complete !== false);
      }
    }
    return benchRow({
      row: 5,
      figure: r.figure,
      unit: 'distinct/s',
      subject: `${r.config}, N = ${r.n}`,
      value,
      anchor: anchor ? { name: anchor[0]!.config, value: summarize(rates(anchor)) } : null,
      ratio,
      goal: goalParts.length > 0 ? { text: goalParts.join(', '), met } : null,
      notes,
      time: runs.every((x) => x.complete !== false) ? seconds : null,
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Row 6: npm test
// ---------------------------------------------------------------------------------------------

/** How long `npm test` may run before it is stopped. */
const NPM_TEST_TIMEOUT_MS = 15 * 60_000;

/** How many times `--with-npm-test` runs `npm test` (its figure is their median [min–max]). */
const NPM_TEST_RUNS = 3;

/**
 * What a fresh clone does not have, cleared before each timed run: the bundles of the CLI and of
 * the monitor's worker (bin/compile.js), which the tests' global setup then builds. (The lint
 * keeps no cache: oxlint and oxfmt check every file each time.)
 */
const FRESH_CLONE_CACHES = ['node_modules/.cache/embryonic-cli'];

/**
 * Runs `npm test` NPM_TEST_RUNS times, one after the other, as a child process on 2 cores (taskset
 * -c 0,1 when the machine has more) and resolves with row 6: the median [min–max] of their wall
 * times (goal: median ≤ 60 s), with the runs that failed noted. Each run starts with the caches a
 * fresh clone lacks removed (FRESH_CLONE_CACHES), so that it costs what it costs there. Never rejects.
 */
export async function benchNpmTest(machine: MachineInfo, log: (line: string) => void): Promise<BenchResult> {
  const figure = FIGURE.npmTest;
  const pinned = machine.nproc > 2;
  const [file, args] = pinned ? ['taskset', ['-c', '0,1', 'npm', 'test']] : ['npm', ['test']];
  const times: number[] = [];
  const failed: string[] = [];
  const stolen: string[] = [];
  for (let run = 1; run <= NPM_TEST_RUNS; run++) {
    log(`npm test: run ${run} of ${NPM_TEST_RUNS} (this takes a while)`);
    for (const cache of FRESH_CLONE_CACHES) rmSync(join(ROOT, cache), { recursive: true, force: true });
    const t0 = performance.now();
    const cpu0 = cpuTimes();
    const output = join(os.tmpdir(), `embryonic-bench-npm-test-${run}.log`);
    const code = await runNpmTest(file, args, output);
    const seconds = (performance.now() - t0) / 1000;
    const steal = stealPercent(cpu0, cpuTimes());
    stolen.push(`${seconds.toFixed(1)} s${steal === null ? '' : ` (CPU steal ${fmtStealPercent(steal)})`}`);
    if (typeof code === 'string' && !/^SIG/.test(code))
      return { rows: [], skipped: [{ row: 6, figure, reason: `npm test could not start: ${code}` }] };
    times.push(seconds);
    if (code !== 0) {
      const failing = failedParts(readFileSync(output, 'utf8'));
      failed.push(
        `run ${run} failed (exit ${code}${failing.length > 0 ? `: ${failing.join('; ')}` : ''}; its output: ${output}): its time is not that of a green run`,
      );
    }
  }
  const value = summarize(times)!;
  return {
    rows: [
      benchRow({
        row: 6,
        figure,
        unit: 's',
        subject: pinned ? 'npm test (taskset -c 0,1)' : `npm test (${machine.nproc} cores)`,
        value,
        goal: { text: '≤ 60 s', met: value.median <= 60 },
        notes: [
          ...(failed.length === 0 ? [`${times.length} runs; the suite passed each time`] : failed),
          'each run without the bundles of the CLI, as on a fresh clone (the lint keeps no cache)',
          `by run: ${stolen.join(', ')}`,
        ],
      }),
    ],
    skipped: [],
  };
}

/**
 * What failed in the output of `npm test` (scripts/test.mjs and vitest, colours included): each
 * part that failed and each failed test, as vitest names them, once each, in order. Pure.
 */
export function failedParts(output: string): string[] {
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\u001b\[[0-9;]*m/g, '');
  const found: string[] = [];
  for (const line of plain.split('\n')) {
    const part = /^=== (.+): FAILED/.exec(line);
    const test = /^\s*FAIL\s+(\S.*?)\s*$/.exec(line);
    const what = part ? `${part[1]} failed` : test ? test[1]! : null;
    if (what !== null && !found.includes(what)) found.push(what);
  }
  return found;
}

/**
 * Runs `file args` (npm test) in ROOT with its output (stdout and stderr) written to the file
 * `output`, which it leaves for the reader, killed after NPM_TEST_TIMEOUT_MS. Resolves with its
 * exit code, the signal that ended it, or the message of the error that kept it from starting.
 * Never rejects.
 */
function runNpmTest(file: string, args: string[], output: string): Promise<number | string> {
  return new Promise<number | string>((resolve) => {
    const fd = openSync(output, 'w');
    const child = spawn(file, args, { cwd: ROOT, stdio: ['ignore', fd, fd] });
    closeSync(fd); // the child has its own copy
    const timer = setTimeout(function npmTestOnTimeout() {
      child.kill('SIGKILL');
    }, NPM_TEST_TIMEOUT_MS);
    child.once('error', function npmTestOnError(err) {
      clearTimeout(timer);
      resolve(err.message);
    });
    child.once('exit', function npmTestOnExit(c, signal) {
      clearTimeout(timer);
      resolve(c ?? String(signal));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/** The table of <report>'s rows, then its skipped rows and their reasons, as text lines. Pure. */
export function formatReport(report: BenchReport): string {
  const table = formatTable(
    ['#', 'figure', 'subject', 'unit', 'median [min–max]', 'anchor', 'ratio', 'goal', 'met'],
    report.rows.map((r) => [
      r.row,
      r.figure,
      r.subject,
      r.unit,
      fmtSummary(r.value),
      r.anchor ? `${r.anchor.name} ${fmtSummary(r.anchor.value)}` : '—',
      r.ratio ? `${fmtSummary(r.ratio)}×` : '—',
      r.goal?.text ?? '—',
      r.goal ? (r.goal.met === null ? '?' : r.goal.met ? 'yes' : 'NO') : '',
    ]),
  );
  const notes = report.rows.flatMap((r, i) =>
    r.notes.length ? [`  [${i + 1}] ${r.figure}, ${r.subject}: ${r.notes.join('; ')}`] : [],
  );
  const skipped = report.skipped.map((s) => `  row ${s.row}, ${s.figure}: skipped: ${s.reason}`);
  const m = report.machine;
  return [
    `embryonic benchmarks (${report.plan.mode}), ${report.startedAt}, ${report.seconds.toFixed(0)} s`,
    `machine: ${m.nproc} × ${m.cpu}, ${m.memTotalMiB} MiB, ${m.kernel}, node ${m.node}, ${m.haproxy ?? 'no haproxy'}, ulimit -n ${m.fdLimit.soft}/${m.fdLimit.hard}`,
    `load average before ${fmtLoad(report.load.start)}, after ${fmtLoad(report.load.end)} (other work on the machine competes with the benchmarks)`,
    `CPU steal ${fmtSteal(report.steal)} (of the CPU time this machine wanted, the share its hypervisor gave to other guests: rates measured meanwhile are lowered by about as much)`,
    '',
    table,
    ...(notes.length ? ['', 'notes (by row of the table):', ...notes] : []),
    ...(skipped.length ? ['', 'skipped:', ...skipped] : []),
  ].join('\n');
}

function fmtLoad(l: readonly number[]): string {
  return l.map((v) => v.toFixed(2)).join(' ');
}

/** '12% over the run (row 1: 8.3%, row 5: 15%)': a run's CPU steal, by row. Pure. */
export function fmtSteal(steal: CpuSteal): string {
  const rows = steal.rows.map((r) => `row ${r.row}: ${fmtStealPercent(r.percent)}`).join(', ');
  return `${fmtStealPercent(steal.run)} over the run${rows ? ` (${rows})` : ''}`;
}

/** The generated blocks of BENCHMARKS.md that --record rewrites. */
export const GENERATED_BLOCKS = ['bench', 'bench-goals', 'bench-history'] as const;

/**
 * Returns <markdown> with the generated block <name> (between `<!-- BEGIN GENERATED: name -->`
 * and its END marker) replaced by <lines>, or null when the block is missing. Pure.
 */
function replaceBlock(markdown: string, name: string, lines: readonly string[]): string | null {
  const begin = `<!-- BEGIN GENERATED: ${name} -->`;
  const end = `<!-- END GENERATED: ${name} -->`;
  const a = markdown.indexOf(begin);
  const b = markdown.indexOf(end);
  if (a < 0 || b < a) return null;
  return markdown.slice(0, a) + [begin, ...lines, end].join('\n') + markdown.slice(b + end.length);
}

/**
 * Returns <markdown> with its generated blocks rewritten from <report> and <history>: `bench`
 * (the machine line, the table of every row, the notes), `bench-goals` (each goal of issue 10
 * judged, bench/summary.ts) and `bench-history` (the recorded runs, newest first). A block whose
 * markers are missing is left out; <markdown> comes back unchanged when all three are. Pure.
 */
export function recordInMarkdown(
  markdown: string,
  report: BenchReport,
  history: readonly HistoryEntry[] = [],
): string {
  const m = report.machine;
  const table = [
    `Run of ${report.startedAt.slice(0, 10)} (\`${report.command}\`, ${report.plan.mode} plan, ${report.seconds.toFixed(0)} s) on: ${m.nproc} × ${m.cpu}, ${m.memTotalMiB} MiB, ${m.kernel}; node ${m.node}; ${m.haproxy ?? 'no haproxy'}; \`ulimit -n\` ${m.fdLimit.soft}/${m.fdLimit.hard}; load average ${fmtLoad(report.load.start)} before, ${fmtLoad(report.load.end)} after; CPU steal ${fmtSteal(report.steal)}.`,
    '',
    '| # | figure | subject | median [min–max] | unit | anchor | ratio (pairwise) | goal | met |',
    '|---|---|---|---|---|---|---|---|---|',
    ...report.rows.map(
      (r) =>
        `| ${r.row} | ${mdCell(r.figure)} | ${mdCell(r.subject)} | ${fmtSummary(r.value)} | ${r.unit} | ${r.anchor ? `${mdCell(r.anchor.name)} ${fmtSummary(r.anchor.value)}` : '—'} | ${r.ratio ? `${fmtSummary(r.ratio)}×` : '—'} | ${r.goal ? mdCell(r.goal.text) : '—'} | ${r.goal ? (r.goal.met === null ? '?' : r.goal.met ? 'yes' : '**no**') : ''} |`,
    ),
    '',
    ...report.rows.flatMap((r) =>
      r.notes.length ? [`- ${mdCell(r.figure)}, ${mdCell(r.subject)}: ${r.notes.join('; ')}`] : [],
    ),
    ...report.skipped.map((s) => `- row ${s.row}, ${s.figure}: **skipped**: ${s.reason}`),
  ];
  const blocks: Record<(typeof GENERATED_BLOCKS)[number], readonly string[]> = {
    bench: table,
    'bench-goals': goalsMarkdown(report),
    'bench-history': historyMarkdown(history),
  };
  let out = markdown;
  for (const name of GENERATED_BLOCKS) out = replaceBlock(out, name, blocks[name]) ?? out;
  return out;
}

/**
 * Returns <report> as the text of bench/results.json, or a history as that of bench/history.json:
 * JSON laid out by the project's formatter (oxfmt, with .oxfmtrc.json's options) when it loads and
 * accepts it, which keeps short arrays on one line; else JSON.stringify with 2 spaces.
 */
export async function reportJson(report: BenchReport | readonly HistoryEntry[]): Promise<string> {
  const raw = `${JSON.stringify(report, null, 2)}\n`;
  try {
    const { format } = await import('oxfmt');
    const options = JSON.parse(readFileSync(join(ROOT, '.oxfmtrc.json'), 'utf8')) as Record<string, unknown>;
    delete options.$schema;
    delete options.ignorePatterns;
    const out = await format('results.json', raw, options);
    return out.errors.length === 0 ? out.code : raw;
  } catch {
    return raw;
  }
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const USAGE = [
  'Usage: npm run bench -- [--quick] [--rows 1,2,...] [--no-heap] [--with-npm-test] [--record]',
  '                        [--repeats N] [--out FILE]',
  '',
  'Runs the benchmarks (BENCHMARKS.md), prints the table and writes bench/results.json.',
  '  --quick          a fast pass: one 1k flood, 1 s runs (about a minute)',
  '  --rows LIST      only these rows: 1 memory, 2 accept, 3 throughput, 4 monitor, 5 explorer, 6 npm test',
  '  --no-heap        row 1 without the JS heap runs (heap snapshots are slow at 10k)',
  '  --with-npm-test  row 6: run `npm test` 3 times and time it (slow)',
  '  --record         also add the run to bench/history.json and rewrite the generated blocks of',
  '                   BENCHMARKS.md (the goals judged, every figure, the history of recorded runs)',
  '  --repeats N      repetitions of every figure (default: 3 floods, 5 pairs of runs; quick: 1, 3)',
  '  --out FILE       where to write the results (default bench/results.json)',
].join('\n');

/**
 * Parses the command line <argv> into a plan and the output options. Returns them, or a string
 * saying what is wrong. Pure.
 */
export function parseBenchArgs(
  argv: readonly string[],
): { plan: BenchPlan; record: boolean; out: string } | string {
  let plan = fullPlan();
  let record = false;
  let out = join(ROOT, 'bench/results.json');
  let rows: number[] | null = null;
  let repeats: number | null = null;
  let heap = true;
  let npmTest = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string | undefined => argv[++i];
    if (a === '--quick') plan = quickPlan();
    else if (a === '--record') record = true;
    else if (a === '--no-heap') heap = false;
    else if (a === '--with-npm-test') npmTest = true;
    else if (a === '--rows') {
      const v = value();
      const list = (v ?? '').split(',').map(Number);
      if (!v || list.some((n) => !Number.isInteger(n) || n < 1 || n > 6))
        return `--rows needs a list of 1..6, not "${v ?? ''}"`;
      rows = list;
    } else if (a === '--repeats') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) return '--repeats needs an integer ≥ 1';
      repeats = n;
    } else if (a === '--out') {
      const v = value();
      if (!v) return '--out needs a file';
      out = v;
    } else return `unknown option "${a}"`;
  }
  plan.memory.heap = heap;
  plan.npmTest = npmTest;
  if (npmTest && !plan.rows.includes(6)) plan.rows.push(6);
  if (rows) {
    plan.rows = rows;
    if (rows.includes(6)) plan.npmTest = npmTest;
  }
  if (repeats !== null) {
    plan.memory.repeats = repeats;
    plan.accept.repeats = repeats;
    plan.throughput.repeats = repeats;
    plan.mode = 'custom';
  }
  return { plan, record, out };
}

/** The entry point of `npm run bench`. Returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  const parsed = parseBenchArgs(argv);
  if (typeof parsed === 'string') {
    console.error(`bench: ${parsed}\n\n${USAGE}`);
    return 2;
  }
  const stopOnSignal = (signal: NodeJS.Signals): void => {
    console.error(`bench: ${signal}: stopping every process started`);
    killStartedProcesses();
    process.exit(130);
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  const log = (line: string): void => console.error(`bench: ${line}`);
  const report = await runBench(
    parsed.plan,
    log,
    ['npm run bench', ...(argv.length ? ['--', ...argv] : [])].join(' '),
  );
  console.log(formatReport(report));
  for (const s of failedSkips(report)) log(`row ${s.row} FAILED, ${s.figure}: ${s.reason}`);
  for (const note of brokenModelNotes(report.rows)) log(`BROKEN MODEL: ${note}`);
  writeFileSync(parsed.out, await reportJson(report));
  console.log(`\nwrote ${parsed.out}`);
  if (parsed.record) {
    const historyFile = join(ROOT, 'bench/history.json');
    const history = withEntry(readHistory(historyFile), historyEntry(report));
    writeFileSync(historyFile, await reportJson(history));
    console.log(`recorded the run in ${historyFile}`);
    const md = join(ROOT, 'BENCHMARKS.md');
    const before = existsSync(md) ? readFileSync(md, 'utf8') : '';
    for (const name of GENERATED_BLOCKS)
      if (!before.includes(`<!-- BEGIN GENERATED: ${name} -->`))
        console.error(`bench: --record: BENCHMARKS.md has no generated block "${name}"; left out`);
    const after = recordInMarkdown(before, report, history);
    if (after !== before) {
      writeFileSync(md, after);
      console.log(`recorded the figures in ${md}`);
    }
  }
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`bench: ${(err as Error).stack ?? String(err)}`);
      killStartedProcesses();
      process.exitCode = 1;
    },
  );
}
