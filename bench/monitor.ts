/**
 * Row 4: the overhead of the live trace monitor (`embryonic proxy --monitor`) on the accept rate.
 * The same accept runs as row 2 (bench/accept.ts), on two bundled proxies started together, one
 * with --monitor and one without, neither of which served rows 2 and 3 (RateProxies.monitored
 * and .unmonitored, bench/targets.ts), in alternating order; each ratio is the rate with the
 * monitor over the rate without it in the same pair; the overhead is 1 − ratio. Goal: ≤ 15%.
 *
 * A divergence the monitor reports, or the monitor stopping on an internal error, during the runs
 * becomes a note of the row (divergenceNote, monitorStoppedNote), which the smoke test fails on.
 */
import { alternateRuns, rateRows, type AcceptOptions } from './accept.ts';
import type { BenchContext, BenchResult } from './targets.ts';

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
 * CPU-second; the monitor's divergences and stop in its notes), or the row skipped with the
 * reason when the bundled proxy is missing or one of the two did not start. Runs on row 4's rate proxies of <ctx> (the
 * bundled proxy with --monitor and the one without beside it); starts no process of its own.
 */
export async function benchMonitor(ctx: BenchContext, opts: AcceptOptions): Promise<BenchResult> {
  const figure = 'live trace monitor overhead on the accept rate';
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
  const runs = await alternateRuns(ctx, [plain, monitored], opts, 'monitor');
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
  for (const row of rows)
    if (row.ratio)
      row.notes.unshift(`overhead ${((1 - row.ratio.median) * 100).toFixed(1)}% (median of pairs)`);
  return { rows, skipped: [] };
}
