/**
 * The bench driver's judgement of the explorer rows (bench/run.ts, explorerRows): which anchor a
 * row is measured against and when its goal is met. The rows are written out here, as a child
 * process would return them; nothing is measured. Also the CPU steal the report records
 * (bench/targets.ts), from /proc/stat lines written out here, and which skipped rows and notes
 * the driver counts as failures (what the smoke test of the bench fails on).
 */
import { describe, expect, it } from 'vitest';
import { adjacencyLabel, configFigure, violationNote, type ExplorerRow } from '../../bench/explorer.ts';
import { divergenceNote, monitorStoppedNote } from '../../bench/monitor.ts';
import {
  brokenModelNotes,
  failedParts,
  explorerRows,
  failedSkips,
  fmtSteal,
  HAPROXY_MISSING,
  SPIN_MISSING,
} from '../../bench/run.ts';
import { benchRow, cpuTimes, parseCpuTimes, stealPercent, type SkippedRow } from '../../bench/targets.ts';

const FIGURE = configFigure('tcp-proxy');

/** Run `run` of `config` at N = 4, which reached 18,000 states at `perSec` distinct states per second. */
function row(config: string, role: ExplorerRow['role'], perSec: number, run = 0): ExplorerRow {
  const seconds = 18_000 / perSec;
  return {
    figure: FIGURE,
    role,
    n: 4,
    config,
    generated: 66_000,
    distinct: 18_000,
    seconds,
    cpuSeconds: seconds,
    distinctPerSec: perSec,
    generatedPerSec: Math.round(66_000 / seconds),
    peakRssMiB: 90,
    maxRssMiB: 90,
    complete: true,
    run,
  };
}

/** The judged row of the compiled explorer among `rows`. */
function judged(rows: ExplorerRow[]): ReturnType<typeof explorerRows>[number] {
  return explorerRows(rows).find((r) => r.subject.startsWith('compiled explorer'))!;
}

describe('explorerRows', () => {
  it('measures the explorer against getAdjacencyMap with XState on every machine step, not over memoised steps', () => {
    const subject = row('compiled explorer, tcp-proxy', 'subject', 200_000);
    const every = row(adjacencyLabel('tcp-proxy', false), 'anchor', 1_600);
    const memoised = row(adjacencyLabel('tcp-proxy', true), 'anchor', 6_000);
    const r = judged([subject, memoised, every]);
    expect(r.anchor?.name).toBe(every.config);
    expect(r.ratio?.median).toBe(125);
    expect(r.goal).toEqual({ text: '≥ 100k distinct/s, ≥ 100× xstate/graph', met: true });
    expect(r.notes.join(' ')).toContain(`33.3× ${memoised.config}`);
  });

  it('does not meet the goal below 100× the anchor, whatever the memoised run gives', () => {
    const subject = row('compiled explorer, tcp-proxy', 'subject', 200_000);
    const every = row(adjacencyLabel('tcp-proxy', false), 'anchor', 2_500);
    const memoised = row(adjacencyLabel('tcp-proxy', true), 'anchor', 1_000);
    expect(judged([subject, every, memoised]).goal?.met).toBe(false);
  });

  it('does not meet the goal below 100k distinct states/s, whatever the ratio', () => {
    const subject = row('compiled explorer, tcp-proxy', 'subject', 90_000);
    const every = row(adjacencyLabel('tcp-proxy', false), 'anchor', 500);
    expect(judged([subject, every]).goal?.met).toBe(false);
  });

  it('summarises the runs of each row and takes each ratio run by run', () => {
    const subject = 'compiled explorer, tcp-proxy';
    const anchor = adjacencyLabel('tcp-proxy', false);
    // Run 1 of the subject was slow and so was run 1 of the anchor (the machine was busy then):
    // the ratios are 100, 100 and 120, whose median is 100, not 150k / 1.25k = 120.
    const rows = [
      row(subject, 'subject', 200_000, 0),
      row(anchor, 'anchor', 2_000, 0),
      row(subject, 'subject', 100_000, 1),
      row(anchor, 'anchor', 1_000, 1),
      row(subject, 'subject', 150_000, 2),
      row(anchor, 'anchor', 1_250, 2),
    ];
    const out = explorerRows(rows);
    expect(out.map((r) => r.subject)).toEqual([`${subject}, N = 4`, `${anchor}, N = 4`]);
    const r = out[0]!;
    expect(r.value).toMatchObject({ median: 150_000, min: 100_000, max: 200_000 });
    expect(r.ratio).toMatchObject({ median: 100, min: 100, max: 120 });
    expect(r.anchor?.value).toMatchObject({ median: 1_250, min: 1_000, max: 2_000 });
    expect(r.goal?.met).toBe(true);
    expect(r.notes[0]).toMatch(/3 run\(s\)/);
  });

  it('shows a context row without a goal, and never as the anchor of a subject', () => {
    const subject = row('compiled explorer, tcp-proxy', 'subject', 200_000);
    const context = {
      ...row('compiled explorer, tcp-proxy, second search in one process', 'context', 400_000),
    };
    const out = explorerRows([subject, context]);
    expect(out[0]!.anchor).toBeNull();
    expect(out[1]!.goal).toBeNull();
    expect(out[1]!.value?.median).toBe(400_000);
  });

  it('pairs an anchor measured in fewer repetitions with the same repetitions of its subject only', () => {
    const subject = 'compiled explorer, tcp-proxy';
    const anchor = adjacencyLabel('tcp-proxy', false);
    const rows = [0, 1, 2, 3, 4].flatMap((run) => [
      row(subject, 'subject', 200_000 + 10_000 * run, run),
      ...(run < 3 ? [row(anchor, 'anchor', 1_000, run)] : []),
    ]);
    const r = judged(rows);
    expect(r.value?.runs).toHaveLength(5);
    expect(r.ratio?.runs).toEqual([200, 210, 220]);
  });
});

describe('CPU steal', () => {
  // user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks.
  const before = parseCpuTimes('cpu  1000 0 200 5000 10 0 0 100 0 0\ncpu0 500 0 100 2500 5 0 0 50 0 0\n');
  const after = parseCpuTimes('cpu  1600 0 400 5100 10 0 0 300 0 0\ncpu0 800 0 200 2550 5 0 0 150 0 0\n');

  it('reads the busy, idle and stolen ticks of the aggregate cpu line of /proc/stat', () => {
    expect(before).toEqual({ busy: 1200, idle: 5010, steal: 100 });
    expect(parseCpuTimes('intr 12 0 0\n')).toBeNull();
    expect(parseCpuTimes('cpu  1 2 3\n')).toBeNull();
  });

  it('is the share of the CPU time the machine wanted that went to other guests', () => {
    // 800 ticks busy and 200 stolen: a fifth of the 1000 it wanted.
    expect(stealPercent(before, after)).toBe(20);
    expect(stealPercent(before, before)).toBeNull();
    expect(stealPercent(null, after)).toBeNull();
  });

  it('reads this machine, whose counters only grow', () => {
    const now = cpuTimes();
    if (now === null) return; // not Linux
    expect(now.busy + now.idle).toBeGreaterThan(0);
    const later = cpuTimes()!;
    expect(later.busy).toBeGreaterThanOrEqual(now.busy);
    expect(later.steal).toBeGreaterThanOrEqual(now.steal);
  });

  it('is printed over the run and by row', () => {
    expect(
      fmtSteal({
        run: 12.4,
        rows: [
          { row: 1, percent: 8.25 },
          { row: 5, percent: null },
        ],
      }),
    ).toBe('12% over the run (row 1: 8.3%, row 5: unknown)');
    expect(fmtSteal({ run: null, rows: [] })).toBe('unknown over the run');
  });
});

describe('failedSkips', () => {
  const skip = (reason: string): SkippedRow => ({
    row: 2,
    figure: 'accept + PROXY v1 header + close',
    reason,
  });
  const machine = (haproxy: string | null): { haproxy: string | null } => ({ haproxy });

  it('counts a row that threw and a proxy that did not start as failures', () => {
    const skipped = [
      skip('failed: connect ECONNREFUSED 127.0.0.1:20001'),
      skip('the bundled proxy with --monitor did not start: exited 1'),
      skip('the bundled proxy is missing (cli/proxy.ts does not exist or does not load)'),
    ];
    expect(failedSkips({ machine: machine('HAProxy version 2.6.12'), skipped })).toEqual(skipped);
  });

  it('lets pass what the machine lacks and what the plan did not ask for', () => {
    const skipped = [
      skip(HAPROXY_MISSING),
      skip(SPIN_MISSING),
      skip('not asked for (--no-heap)'),
      skip('not asked for (--with-npm-test)'),
    ];
    expect(failedSkips({ machine: machine(null), skipped })).toEqual([]);
  });

  it('counts HAProxy as missing a failure on a machine that has it', () => {
    const skipped = [skip(HAPROXY_MISSING)];
    expect(failedSkips({ machine: machine('HAProxy version 2.6.12'), skipped })).toEqual(skipped);
  });
});

describe('brokenModelNotes', () => {
  const row = (notes: string[]): ReturnType<typeof benchRow> =>
    benchRow({
      row: 5,
      figure: FIGURE,
      unit: 'distinct/s',
      subject: 'compiled explorer, tcp-proxy, N = 2',
      notes,
    });

  it('finds each note that says a model is broken, as the rows word it', () => {
    const broken = [
      divergenceNote(3),
      monitorStoppedNote(
        "embryonic proxy: monitor: internal error in the monitor's worker: boom; monitoring stops, the proxy serves on",
      ),
      violationNote(2, { invariant: 'I7', message: 'a session outlives its connection' }),
      'Stopped at the 10 s budget; rates are over the states reached. 4 edge(s) broke an invariant.',
      "pan found 1 error(s): the model and the tables disagree. pan's own search time",
    ];
    expect(brokenModelNotes([row(broken)])).toEqual(
      broken.map((n) => `row 5, ${FIGURE}, compiled explorer, tcp-proxy, N = 2: ${n}`),
    );
  });

  it('passes the notes of a healthy run', () => {
    const healthy = [
      '1.2k distinct, 4.1k generated (90k/s) in 0.01 s, 2 run(s)',
      'not exhausted: the rates are over the states reached',
      'overhead 4.1% (median of pairs)',
      "pan's own search time (0.01 s resolution) and total memory (hash table included); no invariant is checked.",
    ];
    expect(brokenModelNotes([row(healthy)])).toEqual([]);
  });
});

describe("the failures of a timed npm test, as row 6's note names them", () => {
  it('names each failed part and each failed test once, in order, colours removed', () => {
    const output = [
      '',
      '=== typecheck + lint: ok',
      '',
      '=== tests: FAILED (exit 1)',
      ' \u001b[32m✓\u001b[39m test/a.test.ts (3 tests) 12ms',
      '\u001b[41m\u001b[1m FAIL \u001b[22m\u001b[49m test/conformance/runner.test.ts\u001b[2m > \u001b[22ma run of the suite\u001b[2m > \u001b[22mpasses a handful of fast cases',
      ' FAIL  test/conformance/runner.test.ts > a run of the suite > passes a handful of fast cases',
      ' FAIL  test/impl/stream.test.ts > keeps every byte in order',
    ].join('\n');
    expect(failedParts(output)).toEqual([
      'tests failed',
      'test/conformance/runner.test.ts > a run of the suite > passes a handful of fast cases',
      'test/impl/stream.test.ts > keeps every byte in order',
    ]);
    expect(failedParts('=== typecheck + lint: ok\n=== tests: ok\n')).toEqual([]);
  });
});
