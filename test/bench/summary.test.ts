/**
 * What BENCHMARKS.md says of a run beyond its table (bench/summary.ts): each goal of issue 10
 * judged apart on the figures it names, and the history of the recorded runs. Rows are built by
 * the driver's own row builders where it has them (explorerRows), so that the figures and
 * subjects the summary looks for are those the benchmarks write; nothing is measured. The
 * committed bench/results.json, bench/history.json and BENCHMARKS.md are checked to agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFigure, SPACE_FIGURE, spinFigure, type ExplorerRow } from '../../bench/explorer.ts';
import { PROMELA_CONFIG } from '../../bench/promela/generate.ts';
import {
  changesBeyondOutputs,
  codeVersion,
  explorerRows,
  recordInMarkdown,
  type BenchReport,
} from '../../bench/run.ts';
import {
  headline,
  historyEntry,
  historyMarkdown,
  judgeGoals,
  readHistory,
  verdictOf,
  withEntry,
  type HistoryEntry,
} from '../../bench/summary.ts';
import { benchRow, FIGURE, ROOT, summarize, type BenchRow } from '../../bench/targets.ts';

/** One run of the compiled explorer (or of an anchor) at <n> connections, at <perSec> distinct/s. */
function explorerRun(
  figure: string,
  config: string,
  role: ExplorerRow['role'],
  n: number,
  perSec: number,
  complete = true,
): ExplorerRow {
  const distinct = 10_000;
  const seconds = distinct / perSec;
  return {
    figure,
    role,
    n,
    config,
    generated: 3 * distinct,
    distinct,
    seconds,
    cpuSeconds: seconds,
    distinctPerSec: perSec,
    generatedPerSec: 3 * perSec,
    peakRssMiB: 90,
    maxRssMiB: 90,
    complete,
    run: 0,
  };
}

/** A ratio row of rows 2 to 4: <ratios> of the subject to its anchor, a pair each. */
function ratioRow(row: number, figure: string, subject: string, ...ratios: number[]): BenchRow {
  return benchRow({
    row,
    figure,
    unit: 'conn/s',
    subject,
    value: summarize(ratios.map((r) => r * 1000)),
    anchor: { name: 'haproxy', value: summarize(ratios.map(() => 1000)) },
    ratio: summarize(ratios),
  });
}

const byGoal = (rows: BenchRow[]): Map<string, string> =>
  new Map(judgeGoals({ rows }).map((g) => [g.goal.split(' (')[0]!, g.verdict]));

describe('verdictOf', () => {
  const part = (label: string, met: boolean | null) => ({ label, shown: label, met });

  it('is met when every judged figure meets the goal, and not met when none does', () => {
    expect(verdictOf([part('4', true), part('5', true)], 'at N =')).toBe('met');
    expect(verdictOf([part('2', false), part('3', false)], 'at N =')).toBe('not met');
  });

  it('names the figures that meet the goal and those that do not', () => {
    const parts = [part('2', false), part('3', false), part('4', true), part('5', true)];
    expect(verdictOf(parts, 'at N =')).toBe('met at N = 4, 5; not met at N = 2, 3');
  });

  it('says a goal was not measured when the run has none of its figures', () => {
    expect(verdictOf([], 'at')).toBe('not measured in this run');
    expect(verdictOf([part('x', null)], 'at')).toBe('not judged');
  });
});

describe('judgeGoals', () => {
  it('judges the xstate/graph goal on the ratio alone, where the row combines it with the rate', () => {
    const figure = configFigure('tcp-proxy');
    const rows = explorerRows([
      explorerRun(figure, 'compiled explorer, tcp-proxy', 'subject', 4, 50_000),
      explorerRun(figure, 'xstate/graph getAdjacencyMap, XState on every machine step', 'anchor', 4, 400),
    ]);
    // The row's own goal is met only if the rate is ≥ 100k/s too.
    expect(rows.find((r) => r.goal)?.goal?.met).toBe(false);
    const verdicts = byGoal(rows);
    expect(verdicts.get('explorer ≥ 100× xstate/graph')).toBe('met');
  });

  it('does not judge the xstate/graph goal on another anchor, where XState on every step did not run', () => {
    const figure = configFigure('tcp-proxy');
    const rows = explorerRows([
      explorerRun(figure, 'compiled explorer, tcp-proxy', 'subject', 4, 200_000),
      explorerRun(figure, 'xstate/graph getAdjacencyMap over the memoised machine steps', 'anchor', 4, 1000),
    ]);
    expect(rows.find((r) => r.ratio)?.ratio?.median).toBe(200);
    expect(byGoal(rows).get('explorer ≥ 100× xstate/graph')).toBe('not measured in this run');
  });

  it('does not meet the N = 3 goal with a run that stopped before the end', () => {
    const rows = explorerRows([
      explorerRun(SPACE_FIGURE, 'compiled explorer, CONFIG_SPACE', 'subject', 3, 70_000, false),
    ]);
    expect(byGoal(rows).get('N = 3 exhausted in < 5 s')).toBe('not met');
  });

  it('judges the rate goal on the whole space at each N, and N = 3 on its time', () => {
    const rows = explorerRows([
      explorerRun(SPACE_FIGURE, 'compiled explorer, CONFIG_SPACE', 'subject', 2, 20_000),
      explorerRun(SPACE_FIGURE, 'compiled explorer, CONFIG_SPACE', 'subject', 3, 70_000),
      explorerRun(SPACE_FIGURE, 'compiled explorer, CONFIG_SPACE', 'subject', 4, 220_000),
    ]);
    const verdicts = byGoal(rows);
    expect(verdicts.get('explorer ≥ 100k distinct states/s')).toBe('met at N = 4; not met at N = 2, 3');
    // 10,000 states at 70k/s: 0.14 s.
    expect(verdicts.get('N = 3 exhausted in < 5 s')).toBe('met');
    expect(judgeGoals({ rows }).find((g) => g.goal.startsWith('N = 3'))?.figures).toBe('0.14 s');
  });

  it('judges the SPIN goal at one fifth of its rate', () => {
    const figure = spinFigure(PROMELA_CONFIG);
    const rows = explorerRows([
      explorerRun(figure, 'compiled explorer, tcp-proxy, no symmetry reduction', 'subject', 5, 400_000),
      explorerRun(figure, 'Spin Version 6.5.2 pan -DSAFETY', 'anchor', 5, 1_600_000),
      explorerRun(figure, 'compiled explorer, tcp-proxy, no symmetry reduction', 'subject', 3, 100_000),
      explorerRun(figure, 'Spin Version 6.5.2 pan -DSAFETY', 'anchor', 3, 2_000_000),
    ]);
    expect(byGoal(rows).get('explorer ≥ 1/5 of SPIN')).toBe('met at N = 5; not met at N = 3');
  });

  it('judges the monitor on its overhead, one minus the ratio', () => {
    const at = (ratio: number): string | undefined =>
      byGoal([ratioRow(4, FIGURE.monitor, 'impl --monitor', ratio)]).get(
        'live trace monitor overhead ≤ 15% of the accept rate',
      );
    expect(at(0.86)).toBe('met');
    expect(at(0.84)).toBe('not met');
    const shown = judgeGoals({ rows: [ratioRow(4, FIGURE.monitor, 'impl --monitor', 0.8)] }).find((g) =>
      g.goal.startsWith('live'),
    )?.figures;
    expect(shown).toBe('20.0% (800 against 1000 conn/s)');
  });

  it("shows the range of the overhead from the least to the most, from the ratios' max to their min", () => {
    const row = ratioRow(4, FIGURE.monitor, 'impl --monitor', 0.66, 0.89, 0.93);
    const shown = judgeGoals({ rows: [row] }).find((g) => g.goal.startsWith('live'))?.figures;
    expect(shown).toBe('11.0% [7.0%–34.0%] (890 against 1000 conn/s)');
  });

  it('judges the rates against HAProxy at one half', () => {
    const verdicts = byGoal([
      ratioRow(2, FIGURE.accept, 'impl', 0.51),
      ratioRow(3, FIGURE.forwarding, 'impl', 0.49),
    ]);
    expect(verdicts.get('accept + PROXY v1 header + close ≥ 0.5× HAProxy')).toBe('met');
    expect(verdicts.get('forwarding throughput ≥ 0.5× HAProxy')).toBe('not met');
  });

  it('judges the tenth on each of its three measures, at every flood', () => {
    const ratio = (figure: string, flood: string, v: number): BenchRow =>
      benchRow({ row: 1, figure, unit: '×', subject: `impl, ${flood}`, value: summarize([v]) });
    const verdicts = byGoal([
      ratio(FIGURE.ratioAllocated, '10k', 0.05),
      ratio(FIGURE.ratioAllocated, '1k', 0.06),
      ratio(FIGURE.ratioRss, '10k', 0.09),
      ratio(FIGURE.ratioRss, '1k', 0.3),
      ratio(FIGURE.ratioHeap, '10k', 0.36),
    ]);
    expect(verdicts.get('an embryonic connection costs ≤ 1/10 of a full session')).toBe(
      'met on allocated memory; not met on RSS, JS heap',
    );
  });

  it('holds the JS heap of an embryonic connection to 2 KiB, 2048 B included', () => {
    const heap = (bytes: number): BenchRow =>
      benchRow({
        row: 1,
        figure: FIGURE.heap,
        unit: 'B/conn',
        subject: 'impl, embryonic, 10k (9850)',
        value: summarize([bytes]),
      });
    const goal = '≤ 2 KiB of JS heap per embryonic connection';
    expect(byGoal([heap(2048)]).get(goal)).toBe('met');
    expect(byGoal([heap(2049)]).get(goal)).toBe('not met');
  });

  it('says every goal was not measured in a run without rows', () => {
    const goals = judgeGoals({ rows: [] });
    expect(goals).toHaveLength(10);
    for (const g of goals) expect(g.verdict).toBe('not measured in this run');
  });
});

describe('the history of the recorded runs', () => {
  const entry = (startedAt: string, accept: number | null): HistoryEntry => ({
    startedAt,
    command: 'npm run bench -- --record',
    code: 'abc',
    steal: 0,
    headline: { ...headline({ rows: [] }), accept },
  });

  it('puts a run in place of the entry of the same run, oldest first', () => {
    const a = entry('2026-11-27T10:00:00.000Z', 0.5);
    const b = entry('2026-11-28T10:00:00.000Z', 0.6);
    const history = withEntry(withEntry([], b), a);
    expect(history.map((e) => e.startedAt)).toEqual([a.startedAt, b.startedAt]);
    const again = withEntry(history, { ...a, headline: { ...a.headline, accept: 0.7 } });
    expect(again).toHaveLength(2);
    expect(again[0]!.headline.accept).toBe(0.7);
    expect(history[0]!.headline.accept).toBe(0.5);
  });

  it('keeps the note of a run recorded again', () => {
    const a = { ...entry('2026-11-27T10:00:00.000Z', 0.5), note: 'a partial run' };
    expect(withEntry([a], entry(a.startedAt, 0.6))[0]).toMatchObject({ note: 'a partial run' });
    expect(withEntry([a], { ...a, note: 'b' })[0]!.note).toBe('b');
  });

  it('shows the newest run first, a dash for each figure a run did not measure, and the notes', () => {
    const old = { ...entry('2026-11-27T10:00:00.000Z', null), note: 'a partial run' };
    const lines = historyMarkdown([old, entry('2026-11-28T10:00:00.000Z', 0.59)]);
    expect(lines[2]).toMatch(/^\| 2026-11-28 10:00 \| abc \| 0\.0% \| — \| — \| 0\.59 \|/);
    expect(lines[3]).toMatch(/^\| 2026-11-27 10:00 \| abc \| 0\.0% \| — \| — \| — \|/);
    expect(lines.at(-1)).toBe('- 2026-11-27 10:00: a partial run');
  });

  it('refuses a history file it cannot read, and starts one that does not exist', () => {
    expect(readHistory(join(ROOT, 'no-such-history.json'))).toEqual([]);
    expect(() => readHistory(join(ROOT, 'package.json'))).toThrow(/not a list of recorded runs/);
  });

  it('names the commit it measures, with a + when the work tree has changes', async () => {
    expect(await codeVersion()).toMatch(/^[0-9a-f]{12}\+?$/);
  });

  it("counts a change to the code as a change, and one to the benchmarks' own outputs as none", () => {
    expect(changesBeyondOutputs('')).toBe(false);
    expect(changesBeyondOutputs(' M bench/results.json\n M BENCHMARKS.md\n M bench/history.json\n')).toBe(
      false,
    );
    expect(changesBeyondOutputs(' M bench/results.json\n M impl/stream.ts\n')).toBe(true);
    expect(changesBeyondOutputs('R  impl/a.ts -> impl/b.ts\n')).toBe(true);
  });

  it('rewrites each of the three generated blocks, and nothing around them', () => {
    const results = JSON.parse(readFileSync(join(ROOT, 'bench/results.json'), 'utf8')) as BenchReport;
    const block = (name: string): string =>
      `<!-- BEGIN GENERATED: ${name} -->\nstale ${name}\n<!-- END GENERATED: ${name} -->`;
    const md = `intro\n${block('bench-goals')}\nmiddle\n${block('bench')}\nend\n${block('bench-history')}\noutro\n`;
    const out = recordInMarkdown(md, results, [historyEntry(results)]);
    expect(out).not.toMatch(/stale/);
    for (const text of ['intro\n', '\nmiddle\n', '\nend\n', '\noutro\n']) expect(out).toContain(text);
    expect(out).toContain('| goal | verdict |');
    expect(out).toContain('| # | figure | subject |');
    expect(out).toContain('| run (UTC) | code |');
    expect(out.indexOf('| goal | verdict |')).toBeLessThan(out.indexOf('\nmiddle\n'));
    expect(out.indexOf('| run (UTC) | code |')).toBeGreaterThan(out.indexOf('\nend\n'));
  });
});

describe('the committed figures', () => {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench/results.json'), 'utf8')) as BenchReport;
  const history = readHistory(join(ROOT, 'bench/history.json'));

  it('finds every headline figure of the rows bench/results.json measured', () => {
    const h = headline(results);
    const rows = new Set(results.rows.map((r) => r.row));
    const byRow: Record<number, unknown[]> = {
      1: [h.allocated10k, h.rss10k, h.heap10k, h.heapBytes10k, h.heapBytes1k],
      2: [h.accept, h.acceptPerCpu],
      3: [h.forwarding, h.forwardingPerCpu],
      4: [h.monitorOverhead],
      5: [...h.explorer, h.n3Seconds, ...h.xstate, ...h.spin],
      6: [h.npmTest],
    };
    for (const [row, figures] of Object.entries(byRow))
      if (rows.has(Number(row))) for (const f of figures) expect(f, `row ${row}`).toEqual(expect.any(Number));
  });

  // The committed bench/results.json is always a recorded run: a run without --record rewrites it
  // too, and is then restored (git checkout bench/results.json) or recorded.
  const NOT_RECORDED =
    'bench/results.json is not a recorded run: record one (npm run bench -- --record) or restore it (git checkout bench/results.json)';

  it('judges every goal whose row bench/results.json measured', () => {
    const rows = new Set(results.rows.map((r) => r.row));
    for (const g of judgeGoals(results))
      if (rows.has(g.row)) expect(g.verdict, g.goal).not.toBe('not measured in this run');
  });

  it('keeps a recorded run in bench/history.json with the headline of bench/results.json', () => {
    expect(results.command, NOT_RECORDED).toContain('--record');
    const recorded = history.find((e) => e.startedAt === results.startedAt);
    expect(recorded?.headline).toEqual(historyEntry(results).headline);
  });

  it('keeps the generated blocks of BENCHMARKS.md as the recorded run and the history render them', () => {
    expect(results.command, NOT_RECORDED).toContain('--record');
    const md = readFileSync(join(ROOT, 'BENCHMARKS.md'), 'utf8');
    for (const block of ['bench', 'bench-goals', 'bench-history'])
      expect(md, block).toContain(`<!-- BEGIN GENERATED: ${block} -->`);
    expect(recordInMarkdown(md, results, history)).toBe(md);
  });
});
