/**
 * What BENCHMARKS.md says of a run beyond its table: each goal of issue 10 with its verdict, and
 * the history of the recorded runs, one line each. Both are derived from the rows of a report
 * (bench/results.json), never written by hand: the verdict of each goal is judged here, apart, on
 * the figures the goal names, not read from a row's combined `goal.met` (a row of row 5 carries
 * up to four goals at once). The history lives in bench/history.json, one headline per run that
 * `npm run bench -- --record` recorded.
 *
 * Everything here is pure but readHistory.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { BenchReport } from './run.ts';
import {
  FIGURE,
  fmtNumber,
  fmtStealPercent,
  fmtSummary,
  mdCell,
  perCpuFigure,
  type BenchRow,
  type Summary,
} from './targets.ts';

// ---------------------------------------------------------------------------------------------
// Finding the rows a goal is judged on
// ---------------------------------------------------------------------------------------------

/** The flood sizes of row 1, as its subjects name them ("impl, embryonic, 10k (9850)"). */
const FLOODS = ['10k', '1k'] as const;
type Flood = (typeof FLOODS)[number];

/** The numbers of connections row 5 explores. */
const NS = [2, 3, 4, 5] as const;

/**
 * Returns the row of <report> in issue row <row> whose figure is <figure> (exactly, or matching
 * it) and whose subject matches <subject>, or undefined.
 */
function findRow(
  report: Pick<BenchReport, 'rows'>,
  row: number,
  figure: string | RegExp,
  subject: RegExp,
): BenchRow | undefined {
  return report.rows.find(
    (r) =>
      r.row === row &&
      (typeof figure === 'string' ? r.figure === figure : figure.test(r.figure)) &&
      subject.test(r.subject),
  );
}

/** Row 1's row of <figure> for the bundled proxy at <flood> ("impl, 10k", "impl, embryonic, 10k (9850)"). */
function memoryRow(report: Pick<BenchReport, 'rows'>, figure: string, flood: Flood): BenchRow | undefined {
  const who = figure.startsWith('node:net floor') ? 'floor / impl full' : 'impl';
  const kind = figure === FIGURE.heap ? ', embryonic' : '';
  return findRow(report, 1, figure, new RegExp(`^${who}${kind}, ${flood}\\b`));
}

/** Row 5's whole-space explorer row at <n> connections, measured in a fresh process. */
function wholeSpaceRow(report: Pick<BenchReport, 'rows'>, n: number): BenchRow | undefined {
  return findRow(report, 5, /^explorer, whole space \(\d+ configurations\)$/, new RegExp(`, N = ${n}$`));
}

/**
 * Row 5's one-configuration explorer row at <n>, if its ratio is to getAdjacencyMap with XState on
 * every machine step (the goal's anchor: a row whose XState run was not made at <n> has another
 * first anchor, the memoised run or the reference engine, which the goal is not judged on).
 */
function oneConfigRow(report: Pick<BenchReport, 'rows'>, n: number): BenchRow | undefined {
  const r = findRow(
    report,
    5,
    /^explorer, one configuration \([^)]+\)$/,
    new RegExp(`^compiled .*, N = ${n}$`),
  );
  return r?.anchor && /XState on every machine step/.test(r.anchor.name) ? r : undefined;
}

/** Row 5's explorer row at <n>, if its ratio is to SPIN (no symmetry reduction on either side). */
function spinRow(report: Pick<BenchReport, 'rows'>, n: number): BenchRow | undefined {
  const r = findRow(report, 5, /^explorer and SPIN, /, new RegExp(`^compiled .*, N = ${n}$`));
  return r?.anchor && /\bspin\b/i.test(r.anchor.name) ? r : undefined;
}

const median = (s: Summary | null | undefined): number | null => s?.median ?? null;

// ---------------------------------------------------------------------------------------------
// The headline of a run, and the history
// ---------------------------------------------------------------------------------------------

/** The figures of a run that the history keeps: what each goal is judged on, medians only. */
export interface Headline {
  allocated10k: number | null; // embryonic / full, allocated memory, 10k flood
  rss10k: number | null; //       embryonic / full, RSS
  heap10k: number | null; //      embryonic / full, JS heap
  heapBytes10k: number | null; // JS heap per embryonic connection, B
  heapBytes1k: number | null;
  accept: number | null; //       × HAProxy, pairwise
  acceptPerCpu: number | null;
  forwarding: number | null;
  forwardingPerCpu: number | null;
  monitorOverhead: number | null; // 1 − the ratio with / without --monitor
  explorer: (number | null)[]; //  whole space, distinct/s at N = 2, 3, 4, 5
  n3Seconds: number | null; //     whole space, the time to exhaust N = 3, s
  xstate: (number | null)[]; //    × getAdjacencyMap, one configuration, N = 2..5
  spin: (number | null)[]; //      × SPIN, one configuration, N = 2..5
  npmTest: number | null; //       s
}

/** One recorded run in bench/history.json. */
export interface HistoryEntry {
  startedAt: string; //           ISO date, the run's key
  command: string;
  code: string | null; //         the commit measured ('+' when the work tree had changes), if known
  recordedIn?: string; //         entries taken from the git history of bench/results.json: its commit
  steal: number | null; //        CPU steal over the run, %
  headline: Headline;
  note?: string; //               what the figures of that run do not say (added by hand)
}

/** The headline figures of <report>; null for each figure the run did not measure. */
export function headline(report: Pick<BenchReport, 'rows'>): Headline {
  const ratio = (row: number, figure: string): number | null =>
    median(findRow(report, row, figure, /^impl$/)?.ratio);
  const monitor = median(findRow(report, 4, FIGURE.monitor, /^impl --monitor$/)?.ratio);
  return {
    allocated10k: median(memoryRow(report, FIGURE.ratioAllocated, '10k')?.value),
    rss10k: median(memoryRow(report, FIGURE.ratioRss, '10k')?.value),
    heap10k: median(memoryRow(report, FIGURE.ratioHeap, '10k')?.value),
    heapBytes10k: median(memoryRow(report, FIGURE.heap, '10k')?.value),
    heapBytes1k: median(memoryRow(report, FIGURE.heap, '1k')?.value),
    accept: ratio(2, FIGURE.accept),
    acceptPerCpu: ratio(2, perCpuFigure(FIGURE.accept)),
    forwarding: ratio(3, FIGURE.forwarding),
    forwardingPerCpu: ratio(3, perCpuFigure(FIGURE.forwarding)),
    monitorOverhead: monitor === null ? null : 1 - monitor,
    explorer: NS.map((n) => median(wholeSpaceRow(report, n)?.value)),
    n3Seconds: median(wholeSpaceRow(report, 3)?.time),
    xstate: NS.map((n) => median(oneConfigRow(report, n)?.ratio)),
    spin: NS.map((n) => median(spinRow(report, n)?.ratio)),
    npmTest: median(findRow(report, 6, FIGURE.npmTest, /./)?.value),
  };
}

/**
 * The entry of bench/history.json for <report>: its headline, each figure to 5 significant digits
 * (the history is read, not computed on). Pure.
 */
export function historyEntry(report: BenchReport): HistoryEntry {
  const round = (v: number | null): number | null => (v === null ? null : Number(v.toPrecision(5)));
  const h = headline(report);
  const rounded = Object.fromEntries(
    Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.map(round) : round(v as number | null)]),
  ) as unknown as Headline;
  return {
    startedAt: report.startedAt,
    command: report.command,
    code: report.code ?? null,
    steal: report.steal.run,
    headline: rounded,
  };
}

/**
 * Returns <history> with <entry> in it: in place of the entry of the same run (same startedAt),
 * whose note it keeps when it has none of its own, else added; oldest first. Pure: <history> is
 * not modified.
 */
export function withEntry(history: readonly HistoryEntry[], entry: HistoryEntry): HistoryEntry[] {
  const note = history.find((e) => e.startedAt === entry.startedAt)?.note;
  const added = entry.note === undefined && note !== undefined ? { ...entry, note } : entry;
  return [...history.filter((e) => e.startedAt !== entry.startedAt), added].sort((a, b) =>
    a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0,
  );
}

/**
 * Reads the history at <path>: [] when the file does not exist. Throws when it exists and is not
 * an array of entries (a history that cannot be read must not be rewritten from nothing).
 */
export function readHistory(path: string): HistoryEntry[] {
  if (!existsSync(path)) return [];
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (
    !Array.isArray(parsed) ||
    !parsed.every(
      (e) =>
        typeof e === 'object' &&
        e !== null &&
        typeof (e as HistoryEntry).startedAt === 'string' &&
        typeof (e as HistoryEntry).headline === 'object' &&
        (e as HistoryEntry).headline !== null,
    )
  )
    throw new Error(`${path}: not a list of recorded runs`);
  return parsed as HistoryEntry[];
}

// ---------------------------------------------------------------------------------------------
// The goals of issue 10, judged
// ---------------------------------------------------------------------------------------------

/** One figure a goal is judged on: where ("10k", "N = 3", "RSS"), as shown, and whether it meets it. */
export interface GoalPart {
  label: string;
  shown: string;
  met: boolean | null; // null: measured, but not judged (a figure the goal cannot be read from)
}

/** A goal of issue 10 in one run: its figures and its verdict. */
export interface GoalVerdict {
  goal: string;
  row: number; //      the row the goal is measured in
  verdict: string; //  'met', 'not met', 'met at N = 4, 5; not met at N = 2, 3', 'not measured in this run'
  figures: string; //  the parts as shown, then what the goal's anchors measured
}

/**
 * The verdict of a goal from its <parts>, whose labels follow <prep> ("at N =", "on", "at"):
 * 'met' when every judged part meets the goal, 'not met' when none does, else which do and which
 * do not. Pure.
 */
export function verdictOf(parts: readonly GoalPart[], prep: string): string {
  const judged = parts.filter((p) => p.met !== null);
  if (judged.length === 0) return parts.length === 0 ? 'not measured in this run' : 'not judged';
  const met = judged.filter((p) => p.met).map((p) => p.label);
  const not = judged.filter((p) => !p.met).map((p) => p.label);
  if (not.length === 0) return 'met';
  if (met.length === 0) return 'not met';
  return `met ${prep} ${met.join(', ')}; not met ${prep} ${not.join(', ')}`;
}

/** "0.59 [0.49–0.63]×": a summary of ratios. */
const times = (s: Summary | null | undefined): string => `${fmtSummary(s ?? null)}×`;

/** "11.1% [7.2%–33.8%]": an overhead 1 − ratio, from the summary of the ratios (its max is the least). */
function overhead(s: Summary): string {
  const pc = (v: number): string => `${((1 - v) * 100).toFixed(1)}%`;
  return s.runs.length === 1 ? pc(s.median) : `${pc(s.median)} [${pc(s.max)}–${pc(s.min)}]`;
}

/** A rate row's figures: "0.59 [0.49–0.63]× (3406 against 5654 conn/s)". */
function againstAnchor(r: BenchRow): string {
  return `${times(r.ratio)} (${fmtNumber(r.value?.median ?? NaN)} against ${fmtNumber(r.anchor?.value?.median ?? NaN)} ${r.unit})`;
}

/** Each goal of issue 10, judged on <report>'s figures, in the issue's order. Pure. */
export function judgeGoals(report: Pick<BenchReport, 'rows'>): GoalVerdict[] {
  const out: GoalVerdict[] = [];
  const goal = (name: string, row: number, prep: string, parts: GoalPart[], extra: string[] = []): void => {
    const shown = parts.map((p) =>
      p.label ? `${prep.replace(/^(at|on) ?/, '')} ${p.label}: ${p.shown}` : p.shown,
    );
    out.push({
      goal: name,
      row,
      verdict: verdictOf(parts, prep),
      figures: [...shown.map((s) => s.trim()), ...extra].join('; '),
    });
  };

  // Row 1: the three measures of the 1/10 goal, each at every flood measured.
  const measures: [string, string][] = [
    ['allocated memory', FIGURE.ratioAllocated],
    ['RSS', FIGURE.ratioRss],
    ['JS heap', FIGURE.ratioHeap],
  ];
  const tenth: GoalPart[] = [];
  for (const [label, figure] of measures) {
    const at = FLOODS.flatMap((f) => {
      const r = memoryRow(report, figure, f);
      return r?.value ? [{ f, v: r.value }] : [];
    });
    if (at.length === 0) continue;
    tenth.push({
      label,
      shown: at.map(({ f, v }) => `${fmtNumber(v.median)} at ${f}`).join(', '),
      met: at.every(({ v }) => v.median <= 0.1),
    });
  }
  // What no proxy on node:net can go below, and HAProxy's own ratio, each at every flood.
  const atFloods = (label: string, value: (f: Flood) => Summary | null | undefined): string[] => {
    const at = FLOODS.flatMap((f) => {
      const v = value(f);
      return v ? [`${fmtSummary(v)} at ${f}`] : [];
    });
    return at.length > 0 ? [`${label} ${at.join(', ')}`] : [];
  };
  const context = [
    ...atFloods('the node:net floor on RSS', (f) => memoryRow(report, FIGURE.floorRss, f)?.value),
    ...atFloods('on the JS heap', (f) => memoryRow(report, FIGURE.floorHeap, f)?.value),
    ...atFloods("HAProxy's own RSS ratio", (f) => memoryRow(report, FIGURE.ratioRss, f)?.anchor?.value),
  ];
  goal('an embryonic connection costs ≤ 1/10 of a full session', 1, 'on', tenth, context);

  goal(
    '≤ 2 KiB of JS heap per embryonic connection',
    1,
    'at',
    FLOODS.flatMap((f) => {
      const v = memoryRow(report, FIGURE.heap, f)?.value;
      return v ? [{ label: f, shown: `${fmtSummary(v)} B`, met: v.median <= 2048 }] : [];
    }),
  );

  // Rows 2 to 4: a ratio each, and the same per CPU-second of the proxy.
  const rate = (name: string, row: number, figure: string, perCpu: string): void => {
    const r = findRow(report, row, figure, /^impl$/);
    const cpu = findRow(report, row, perCpu, /^impl$/);
    goal(
      name,
      row,
      'at',
      r?.ratio ? [{ label: '', shown: againstAnchor(r), met: r.ratio.median >= 0.5 }] : [],
      cpu?.ratio ? [`per CPU-second of the proxy ${times(cpu.ratio)}`] : [],
    );
  };
  rate('accept + PROXY v1 header + close ≥ 0.5× HAProxy', 2, FIGURE.accept, perCpuFigure(FIGURE.accept));
  rate('forwarding throughput ≥ 0.5× HAProxy', 3, FIGURE.forwarding, perCpuFigure(FIGURE.forwarding));
  const mon = findRow(report, 4, FIGURE.monitor, /^impl --monitor$/);
  const monCpu = findRow(report, 4, perCpuFigure(FIGURE.monitor), /^impl --monitor$/);
  goal(
    'live trace monitor overhead ≤ 15% of the accept rate',
    4,
    'at',
    mon?.ratio
      ? [
          {
            label: '',
            shown: `${overhead(mon.ratio)} (${fmtNumber(mon.value?.median ?? NaN)} against ${fmtNumber(mon.anchor?.value?.median ?? NaN)} ${mon.unit})`,
            met: mon.ratio.median >= 0.85,
          },
        ]
      : [],
    monCpu?.ratio ? [`per CPU-second of the proxy ${overhead(monCpu.ratio)}`] : [],
  );

  // Row 5, each goal at every N measured.
  const atN = (pick: (n: number) => GoalPart | null): GoalPart[] =>
    NS.flatMap((n) => {
      const p = pick(n);
      return p ? [p] : [];
    });
  goal(
    'explorer ≥ 100k distinct states/s (the whole space, each run in a fresh process)',
    5,
    'at N =',
    atN((n) => {
      const v = wholeSpaceRow(report, n)?.value;
      return v ? { label: String(n), shown: `${fmtSummary(v)}/s`, met: v.median >= 100_000 } : null;
    }),
  );
  // The two ratios of row 5, each to its own anchor, at every N that anchor was measured.
  const ratioAtN = (name: string, rowAt: (n: number) => BenchRow | undefined, least: number): void =>
    goal(
      name,
      5,
      'at N =',
      atN((n) => {
        const r = rowAt(n);
        return r?.ratio ? { label: String(n), shown: times(r.ratio), met: r.ratio.median >= least } : null;
      }),
    );
  ratioAtN(
    'explorer ≥ 100× xstate/graph (getAdjacencyMap with XState on every machine step, one configuration)',
    (n) => oneConfigRow(report, n),
    100,
  );
  ratioAtN(
    'explorer ≥ 1/5 of SPIN (one configuration, no symmetry reduction on either side)',
    (n) => spinRow(report, n),
    0.2,
  );
  // time is null when a run stopped before the end (its budget): the goal is then not met; a
  // report from before time was kept has none (undefined).
  const n3 = wholeSpaceRow(report, 3);
  goal(
    'N = 3 exhausted in < 5 s (the whole space)',
    5,
    'at',
    n3?.time === undefined
      ? []
      : n3.time
        ? [{ label: '', shown: `${fmtSummary(n3.time)} s`, met: n3.time.median < 5 }]
        : [{ label: '', shown: 'not exhausted', met: false }],
  );
  const npm = findRow(report, 6, FIGURE.npmTest, /./)?.value;
  goal(
    '`npm test` ≤ 60 s on 2 cores',
    6,
    'at',
    npm ? [{ label: '', shown: `${fmtSummary(npm)} s`, met: npm.median <= 60 }] : [],
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------------------------

/** "2026-11-28 05:04" of an ISO date. */
const when = (iso: string): string => `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;

/** The goals of <report> as a Markdown table, after a line naming the run. Pure. */
export function goalsMarkdown(report: BenchReport): string[] {
  return [
    `Run of ${when(report.startedAt)} UTC (\`${report.command}\`, ${report.plan.mode} plan), CPU steal ${fmtStealPercent(report.steal.run)} over the run; judged here on the medians, each ratio pair by pair.`,
    '',
    '| goal | verdict | figures in this run: median [min–max] |',
    '|---|---|---|',
    ...judgeGoals(report).map((g) => {
      const verdict = g.verdict.replace(/\b(not met|met)\b/g, '**$1**');
      return `| ${mdCell(g.goal)} | ${verdict} | ${mdCell(g.figures)} |`;
    }),
  ];
}

/** "a · b · c · d" of figures, "—" for each missing. */
function dotted(values: readonly (number | null)[], fmt: (v: number) => string = fmtNumber): string {
  return values.every((v) => v === null) ? '—' : values.map((v) => (v === null ? '—' : fmt(v))).join(' · ');
}

/** <history> as a Markdown table, newest run first. Pure. */
export function historyMarkdown(history: readonly HistoryEntry[]): string[] {
  const pc = (v: number): string => `${(v * 100).toFixed(1)}%`;
  const one = (v: number | null, fmt: (v: number) => string = fmtNumber): string =>
    v === null ? '—' : fmt(v);
  const withCpu = (v: number | null, cpu: number | null): string =>
    v === null ? '—' : cpu === null ? fmtNumber(v) : `${fmtNumber(v)} (${fmtNumber(cpu)})`;
  return [
    '| run (UTC) | code | steal | embryonic / full at 10k: allocated · JS heap · RSS | JS heap per embryonic conn., 10k · 1k (B) | accept × HAProxy (per CPU-s) | forwarding × HAProxy (per CPU-s) | monitor overhead | explorer distinct/s, N = 2 · 3 · 4 · 5 | × xstate/graph, N = 2 · 3 · 4 · 5 | × SPIN, N = 2 · 3 · 4 · 5 | N = 3 exhausted (s) | `npm test` (s) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...[...history].reverse().map((e) => {
      const h = e.headline;
      const code = e.code ?? (e.recordedIn ? `recorded in ${e.recordedIn}` : '—');
      return `| ${[
        when(e.startedAt),
        code,
        one(e.steal, fmtStealPercent),
        dotted([h.allocated10k, h.heap10k, h.rss10k]),
        dotted([h.heapBytes10k, h.heapBytes1k], (v) => v.toFixed(0)),
        withCpu(h.accept, h.acceptPerCpu),
        withCpu(h.forwarding, h.forwardingPerCpu),
        one(h.monitorOverhead, pc),
        dotted(h.explorer),
        dotted(h.xstate),
        dotted(h.spin),
        one(h.n3Seconds ?? null, (v) => v.toFixed(2)),
        one(h.npmTest, (v) => v.toFixed(1)),
      ]
        .map(mdCell)
        .join(' | ')} |`;
    }),
    ...(history.some((e) => e.note) ? [''] : []),
    ...[...history].reverse().flatMap((e) => (e.note ? [`- ${when(e.startedAt)}: ${e.note}`] : [])),
  ];
}
