/**
 * The benchmarks at a tiny size (bench/run.ts with a plan of a few connections and runs of a few
 * hundred ms): every row runs and its figures have the right shape. A row is skipped only for what
 * the machine lacks (haproxy, spin: bench/run.ts's HAPROXY_MISSING, SPIN_MISSING); a row that
 * crashes, a proxy that does not start, a divergence of the live monitor or an invariant violation
 * in a note fails the test. No timing threshold is asserted: figures this small mean nothing;
 * `npm run bench` measures them.
 * Run by `npm run bench:smoke` (EMBRYONIC_BENCH_SMOKE=1: vitest.config.ts leaves it out of `npm
 * test`); about 7 s on 2 idle cores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spinFigure } from '../../bench/explorer.ts';
import { PROMELA_CONFIG } from '../../bench/promela/generate.ts';
import { spinVersion } from '../../bench/promela/spin.ts';
import {
  brokenModelNotes,
  failedSkips,
  formatReport,
  HAPROXY_MISSING,
  recordInMarkdown,
  runBench,
  SPIN_MISSING,
  type BenchPlan,
  type BenchReport,
} from '../../bench/run.ts';
import { killStartedProcesses, liveProcessCount, type BenchRow, type Summary } from '../../bench/targets.ts';

/**
 * A few connections, runs of a second, one repetition. A run must count something for its row to
 * have a shape, and the three drivers share two cores: a run of 250 ms once counted nothing, the
 * proxy stalled for all of it while other tests ran beside it.
 */
const TINY: BenchPlan = {
  rows: [1, 2, 3, 4, 5],
  memory: { sizes: [8], repeats: 1, heap: true, warmup: 2, floor: true },
  accept: { durationMs: 1000, repeats: 1, concurrency: 2, warmupMs: 0 },
  throughput: { durationMs: 1000, repeats: 1, connections: 1, chunkBytes: 16 * 1024 },
  // bench/explorer.ts's options: N = 2 only, two runs, in this process, getAdjacencyMap within 1 s.
  explorer: {
    repeats: 2,
    connections: [2],
    adjacencyConnections: [2],
    adjacencyBudgetMs: 1000,
    referenceConnections: [],
    inProcess: true,
  },
  npmTest: false,
  mode: 'custom',
};

let report: BenchReport;
let haproxy = false;
let spin = false;

beforeAll(async () => {
  // Row 1, rows 2 to 4 and row 5 in three drivers at once (the first two with their own load
  // generator and echo backend): the figures of a smoke run are not read, only their shape.
  const parts = await Promise.all(
    [[1], [2, 3, 4], [5]].map((rows) => runBench({ ...TINY, rows }, () => {}, 'test/bench/smoke.test.ts')),
  );
  report = { ...parts[0]!, rows: parts.flatMap((p) => p.rows), skipped: parts.flatMap((p) => p.skipped) };
  haproxy = report.machine.haproxy !== null;
  spin = spinVersion() !== null;
}, 60_000);

afterAll(() => {
  killStartedProcesses();
});

function finite(s: Summary | null): void {
  expect(s).not.toBeNull();
  for (const v of [s!.median, s!.min, s!.max, ...s!.runs]) expect(Number.isFinite(v)).toBe(true);
  expect(s!.min).toBeLessThanOrEqual(s!.median);
  expect(s!.median).toBeLessThanOrEqual(s!.max);
}

function rowsOf(row: number, figure: string): BenchRow[] {
  return report.rows.filter((r) => r.row === row && r.figure === figure);
}

describe('npm run bench at a tiny size', () => {
  it('describes the machine it ran on', () => {
    expect(report.machine.nproc).toBeGreaterThan(0);
    expect(report.machine.cpu.length).toBeGreaterThan(0);
    expect(report.machine.node).toBe(process.version);
    expect(report.load.start).toHaveLength(3);
  });

  it('records the CPU steal over the run and during each row', () => {
    // report is row 1's driver's, with the rows of the other two merged in.
    expect(report.steal.rows.map((r) => r.row)).toEqual([1]);
    for (const v of [report.steal.run, ...report.steal.rows.map((r) => r.percent)])
      if (v !== null) expect(v >= 0 && v <= 100).toBe(true);
    expect(formatReport(report)).toMatch(/CPU steal .* over the run \(row 1: /);
  });

  it('fails no row: none crashes, every proxy starts', () => {
    expect(failedSkips(report)).toEqual([]);
  });

  it('skips nothing but the anchors of the tools this machine lacks', () => {
    const lacks = [...(haproxy ? [] : [HAPROXY_MISSING]), ...(spin ? [] : [SPIN_MISSING])];
    // With haproxy and spin installed (as on the bench machine), nothing at all is skipped.
    expect(report.skipped.filter((s) => !lacks.includes(s.reason))).toEqual([]);
    for (const reason of lacks) expect(report.skipped.map((s) => s.reason)).toContain(reason);
  });

  it('reports no divergence of the live monitor and no broken invariant in any note', () => {
    expect(brokenModelNotes(report.rows)).toEqual([]);
  });

  it('measures the RSS growth per connection of an embryonic and a full flood', () => {
    const rows = rowsOf(1, 'RSS growth per connection').filter((r) => r.subject.startsWith('impl'));
    expect(rows.map((r) => r.subject)).toEqual(['impl, embryonic, 8', 'impl, full, 8']);
    for (const r of rows) {
      finite(r.value);
      expect(r.unit).toBe('B/conn');
      expect(r.notes.join(' ')).not.toMatch(/could not be opened|closed \d+ held/);
    }
  });

  it('anchors the RSS rows on HAProxy, with finite ratios pair by pair', (ctx) => {
    ctx.skip(!haproxy, 'haproxy is not installed: the HAProxy side of the benchmarks is skipped');
    for (const r of rowsOf(1, 'RSS growth per connection').filter((x) => x.subject.startsWith('impl'))) {
      expect(r.anchor?.name).toBe('haproxy');
      finite(r.anchor!.value);
      finite(r.ratio);
    }
    const ratio = rowsOf(1, 'embryonic / full, RSS per connection')[0]!;
    finite(ratio.value);
    finite(ratio.anchor!.value);
    expect(ratio.goal?.met).toBeTypeOf('boolean');
  });

  it("splits the bundled proxy's RSS growth into V8 heap pages, the young generation's apart, and the rest", () => {
    const rows = rowsOf(1, 'V8 heap pages committed per connection (RSS runs, no GC)');
    expect(rows.map((r) => r.subject)).toEqual(['impl, embryonic, 8', 'impl, full, 8']);
    for (const r of rows) {
      finite(r.value);
      expect(r.notes.join(' ')).toMatch(/young generation -?\d+ B\/conn .*objects in the heap/);
    }
  });

  it('measures the JS heap per connection of the bundled proxy from outside', () => {
    const rows = rowsOf(1, 'JS heap growth per connection').filter((r) => r.subject.startsWith('impl'));
    expect(rows.map((r) => r.subject)).toEqual(['impl, embryonic, 8', 'impl, full, 8']);
    for (const r of rows) finite(r.value);
    expect(rows[0]!.goal?.text).toMatch(/2 KiB/);
  });

  it("measures the node:net floor's RSS and JS heap per connection, and their share of a full session", () => {
    for (const [figure, ratioFigure] of [
      ['RSS growth per connection', 'node:net floor / full session, RSS per connection'],
      ['JS heap growth per connection', 'node:net floor / full session, JS heap per connection'],
    ] as const) {
      const floor = rowsOf(1, figure).filter((r) => r.subject.startsWith('floor'));
      expect(floor.map((r) => r.subject)).toEqual(['floor, embryonic, 8']);
      finite(floor[0]!.value);
      expect(floor[0]!.notes.join(' ')).not.toMatch(/could not be opened|closed \d+ held/);
      const ratio = rowsOf(1, ratioFigure);
      expect(ratio.map((r) => r.subject)).toEqual(['floor / impl full, 8']);
      finite(ratio[0]!.value);
      expect(ratio[0]!.notes.join(' ')).toMatch(/node:net/);
    }
  });

  it('counts the Buffers a full session holds in its allocated memory, and none for an embryonic one', () => {
    const [embryonic, full] = rowsOf(1, 'allocated memory per connection (JS heap + Buffers)');
    const [heapEmbryonic, heapFull] = rowsOf(1, 'JS heap growth per connection');
    finite(embryonic!.value);
    finite(full!.value);
    // A full session holds its two channel buffers (2 x tune.bufsize) outside the JS heap; at this
    // size the warm-up's buffers, back in the pool's free list, serve 4 of the flood's 16.
    expect(full!.value!.median - heapFull!.value!.median).toBeGreaterThanOrEqual(16384);
    expect(embryonic!.value!.median - heapEmbryonic!.value!.median).toBeLessThan(16384);
    const ratio = rowsOf(1, 'embryonic / full, allocated memory per connection')[0]!;
    finite(ratio.value);
    expect(ratio.goal?.met).toBeTypeOf('boolean');
  });

  it('measures the accept rate of both proxies and its ratio', (ctx) => {
    const [rate, perCpu] = rowsOf(2, 'accept + PROXY v1 header + close').concat(
      rowsOf(2, 'accept + PROXY v1 header + close, per CPU-second of the proxy'),
    );
    finite(rate!.value);
    expect(rate!.value!.median).toBeGreaterThan(0);
    expect(perCpu!.unit).toBe('conn/CPU-s');
    ctx.skip(!haproxy, 'haproxy is not installed: the HAProxy side of the benchmarks is skipped');
    finite(rate!.ratio);
    expect(rate!.goal?.text).toBe('≥ 0.5× HAProxy');
  });

  it('measures the forwarding throughput of both proxies and its ratio', (ctx) => {
    const [rate] = rowsOf(3, 'forwarding throughput after the handshake');
    finite(rate!.value);
    expect(rate!.value!.median).toBeGreaterThan(0);
    ctx.skip(!haproxy, 'haproxy is not installed: the HAProxy side of the benchmarks is skipped');
    finite(rate!.ratio);
  });

  it('measures the live monitor overhead against the bundled proxy without it', () => {
    const [rate] = rowsOf(4, 'live trace monitor overhead on the accept rate');
    expect(rate?.subject).toBe('impl --monitor');
    expect(rate!.anchor?.name).toBe('impl');
    finite(rate!.value);
    finite(rate!.ratio);
    // The monitored proxy answered `show monitor` after its runs, and its checker caught up.
    expect(rate!.notes).toContainEqual(
      expect.stringMatching(
        /^at the end of each monitored run the checker was at most \d+ ms .*before the next run began$/,
      ),
    );
  });

  it('shows the explorer rows, with the SPIN anchor when spin is installed', () => {
    const rows = report.rows.filter((r) => r.row === 5);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) finite(r.value);
    const spinRows = rows.filter((r) => r.figure === spinFigure(PROMELA_CONFIG));
    if (spin) expect(spinRows.map((r) => r.subject).some((s) => /\bpan\b/.test(s))).toBe(true);
    else expect(spinRows).toEqual([]);
  });

  it('prints every row and every skipped row in the table', () => {
    const text = formatReport(report);
    for (const r of report.rows) expect(text).toContain(r.subject);
    for (const s of report.skipped) expect(text).toContain(s.reason);
  });

  it('records the figures in the generated block of BENCHMARKS.md and nowhere else', () => {
    const md = 'intro\n<!-- BEGIN GENERATED: bench -->\nold\n<!-- END GENERATED: bench -->\noutro\n';
    const out = recordInMarkdown(md, report);
    expect(out.startsWith('intro\n<!-- BEGIN GENERATED: bench -->\n')).toBe(true);
    expect(out.endsWith('<!-- END GENERATED: bench -->\noutro\n')).toBe(true);
    expect(out).not.toContain('\nold\n');
    expect(out).toContain(report.machine.cpu);
  });

  it('stops every process it started', () => {
    expect(liveProcessCount()).toBe(0);
  });
});
