/**
 * Row 4: the overhead of the live trace monitor (`embryonic proxy --monitor`) on the accept rate.
 * The same accept runs as row 2 (bench/accept.ts), on two bundled proxies started together, one
 * with --monitor and one without, neither of which served rows 2 and 3 (RateProxies.monitored
 * and .unmonitored, bench/targets.ts), in alternating order; each ratio is the rate with the
 * monitor over the rate without it in the same pair; the overhead is 1 − ratio. Goal: ≤ 15%.
 *
 * The option is detected in `embryonic proxy --help`; while the proxy has no --monitor, the row
 * is skipped with that reason.
 */
import { alternateRuns, rateRows, type AcceptOptions } from './accept.ts';
import type { BenchContext, BenchResult } from './targets.ts';

/**
 * True iff the `--help` text <help> of `embryonic proxy` offers a --monitor option. Pure.
 */
export function hasMonitorFlag(help: string | null): boolean {
  return help !== null && /(^|\s)--monitor\b/m.test(help);
}

/**
 * Runs row 4 with <opts> (the accept options of row 2). Resolves with its row (the rate with the
 * monitor, the rate without as the anchor, their ratio, the goal ratio ≥ 0.85; the same per
 * CPU-second), or the row skipped with the reason. Runs on row 4's rate proxies of <ctx> (the
 * bundled proxy with --monitor and the one without beside it); starts no process of its own.
 */
export async function benchMonitor(ctx: BenchContext, opts: AcceptOptions): Promise<BenchResult> {
  const figure = 'live trace monitor overhead on the accept rate';
  if (ctx.implMissing) return { rows: [], skipped: [{ row: 4, figure, reason: ctx.implMissing }] };
  if (!hasMonitorFlag(ctx.proxyHelp))
    return {
      rows: [],
      skipped: [{ row: 4, figure, reason: '`embryonic proxy --help` offers no --monitor option yet' }],
    };
  const { unmonitored: plain, monitored, failures } = await ctx.rateProxies();
  {
    if (!plain || !monitored)
      return {
        rows: [],
        skipped: [
          { row: 4, figure, reason: failures.map((f) => f.reason).join('; ') || 'a proxy did not start' },
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
    const divergences = monitored.output.filter((l) => l.includes('monitor: divergence')).length;
    if (divergences > 0)
      rows[0]!.notes.push(
        `the monitor reported ${divergences} divergence line(s) during the runs (see its stderr)`,
      );
    for (const row of rows)
      if (row.ratio)
        row.notes.unshift(`overhead ${((1 - row.ratio.median) * 100).toFixed(1)}% (median of pairs)`);
    return { rows, skipped: [] };
  }
}
