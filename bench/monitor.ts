/**
 * Row 4: the overhead of the live trace monitor (`embryonic proxy --monitor`) on the accept rate.
 * The same accept runs as row 2 (bench/accept.ts), on two bundled proxies started together, one
 * with --monitor and one without, neither of which served rows 2 and 3 (RateProxies.monitored
 * and .unmonitored, bench/targets.ts), in alternating order; each ratio is the rate with the
 * monitor over the rate without it in the same pair; the overhead is 1 − ratio. Goal: ≤ 15%.
 *
 * A divergence the monitor reports, or the monitor stopping on an internal error, during the runs
 * becomes a note of the row (divergenceNote, monitorStoppedNote), which the smoke test fails on.
 *
 * After each run of the monitored proxy, the row asks its stats socket how far behind its checker
 * is (`show monitor`) and waits until it has caught up (at most CATCH_UP_MS) before the next run
 * begins: the checker runs at the lowest priority, and what it still owes must not be paid during
 * the next run of the pair. A note says how far behind it was and how long it took (lagNote).
 */
import { statsQuery } from '../conformance/stats.ts';
import type { MonitorStatus } from '../impl/monitorThread.ts';
import { alternateRuns, rateRows, type AcceptOptions } from './accept.ts';
import { FIGURE, type BenchContext, type BenchResult, type ProxyProcess } from './targets.ts';

/** How long the row waits, after a monitored run, for the checker to catch up. */
export const CATCH_UP_MS = 10_000;

/** One monitored run's end: how far behind the checker was, and how long it took to catch up. */
export interface MonitorLag {
  behindMs: number; //     trace ms between the oldest unchecked line and the newest, at the run's end
  caughtUpMs: number | null; // wall ms until nothing was left to check; null: not within CATCH_UP_MS
}

/**
 * The note of row 4 on the checker's lag after the monitored runs <lags>: the largest and the
 * median, and the longest catch-up (or how many runs it did not catch up within CATCH_UP_MS). Pure.
 */
export function lagNote(lags: readonly MonitorLag[]): string {
  if (lags.length === 0) return 'the monitor was not asked how far behind it was (no stats answer)';
  const behind = lags.map((l) => l.behindMs).sort((a, b) => a - b);
  const median = behind[Math.floor((behind.length - 1) / 2)]!;
  const late = lags.filter((l) => l.caughtUpMs === null).length;
  const longest = Math.max(...lags.map((l) => l.caughtUpMs ?? 0));
  return (
    `at the end of each monitored run the checker was at most ${behind[behind.length - 1]!.toFixed(0)} ms of trace behind (median ${median.toFixed(0)} ms)` +
    (late > 0
      ? `; ${late} of ${lags.length} runs did not catch up within ${CATCH_UP_MS} ms before the next run`
      : `; it caught up within ${longest.toFixed(0)} ms, before the next run began`)
  );
}

/** Asks <proxy>'s stats socket how its monitor does; null when it does not answer. */
async function monitorStatus(proxy: ProxyProcess): Promise<MonitorStatus | null> {
  try {
    return (JSON.parse(await statsQuery(proxy.statsPath, 'show monitor', 2000)) as { monitor: MonitorStatus })
      .monitor;
  } catch {
    return null;
  }
}

/** After a run of <proxy>: records its checker's lag in <lags>, and waits until it caught up. */
async function catchUp(proxy: ProxyProcess, lags: MonitorLag[]): Promise<void> {
  const first = await monitorStatus(proxy);
  if (first === null) return;
  const start = performance.now();
  let status: MonitorStatus | null = first;
  while (status !== null && status.behind.numbers > 0 && performance.now() - start < CATCH_UP_MS) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    status = await monitorStatus(proxy);
  }
  const done = status !== null && status.behind.numbers === 0;
  lags.push({ behindMs: first.behind.ms, caughtUpMs: done ? performance.now() - start : null });
}

/** The note of a row during whose runs the monitor reported <count> divergence line(s). Pure. */
export function divergenceNote(count: number): string {
  return `the monitor reported ${count} divergence line(s) during the runs (see its stderr)`;
}

/** The note of a row during whose runs the monitor stopped, with its <line> saying why. Pure. */
export function monitorStoppedNote(line: string): string {
  return `the monitor stopped during the runs: ${line.trim()}`;
}

/**
 * Runs row 4 with <opts> (the accept options of row 2). Resolves with its row (the rate with the
 * monitor, the rate without as the anchor, their ratio, the goal ratio ≥ 0.85; the same per
 * CPU-second; the monitor's divergences, its stop and its lag in its notes), or the row skipped
 * with the reason when the bundled proxy is missing or one of the two did not start. Runs on row
 * 4's rate proxies of <ctx> (the bundled proxy with --monitor and the one without beside it);
 * starts no process of its own.
 */
export async function benchMonitor(ctx: BenchContext, opts: AcceptOptions): Promise<BenchResult> {
  const figure = FIGURE.monitor;
  if (ctx.implMissing) return { rows: [], skipped: [{ row: 4, figure, reason: ctx.implMissing }] };
  const { unmonitored: plain, monitored, failures } = await ctx.rateProxies();
  if (!plain || !monitored)
    return {
      rows: [],
      skipped: [
        {
          row: 4,
          figure,
          reason: `the bundled proxy ${monitored ? 'without' : 'with'} --monitor did not start: ${failures.map((f) => f.reason).join('; ') || 'no reason given'}`,
        },
      ],
    };
  const lags: MonitorLag[] = [];
  const runs = await alternateRuns(ctx, [plain, monitored], opts, 'monitor', (p) =>
    p === monitored ? catchUp(p, lags) : Promise.resolve(),
  );
  const rows = rateRows(
    {
      row: 4,
      figure,
      unit: 'conn/s',
      cpuUnit: 'conn/CPU-s',
      goal: { text: 'overhead ≤ 15% (ratio ≥ 0.85)', minRatio: 0.85 },
    },
    runs,
    monitored.label,
    plain.label,
    [`${opts.concurrency} client loops, ${opts.durationMs} ms runs`],
  );
  // impl/monitor.ts: "embryonic proxy: monitor: divergence #N at trace line L ..." per divergence
  // reported, "...; monitoring stops, the proxy serves on" when the checker fails.
  const divergences = monitored.output.filter((l) => l.includes('monitor: divergence')).length;
  if (divergences > 0) rows[0]!.notes.push(divergenceNote(divergences));
  const stopped = monitored.output.find((l) => l.includes('monitoring stops'));
  if (stopped !== undefined) rows[0]!.notes.push(monitorStoppedNote(stopped));
  rows[0]!.notes.push(lagNote(lags));
  for (const row of rows)
    if (row.ratio)
      row.notes.unshift(`overhead ${((1 - row.ratio.median) * 100).toFixed(1)}% (median of pairs)`);
  return { rows, skipped: [] };
}
