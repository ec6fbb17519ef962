/**
 * The live trace monitor behind `embryonic proxy --monitor` (issue 9): every line the proxy's trace
 * writes (impl/trace.ts) is also handed, in memory, to the offline checker's TraceMonitor
 * (properties/traceCheck.ts), which checks it against the composed machines and every invariant as
 * the step happens. The file (--trace FILE) is optional: with --monitor alone the lines are only
 * checked.
 *
 * A divergence never stops the proxy. It is reported on the proxy's stderr as one line that says
 * what diverged, followed by the detail that trace-check prints (the line, the model states that
 * were possible, what the model would have logged next, the last lines), indented. The checker
 * then goes on as if the offending line were absent, so later divergences are reported too: the
 * first MONITOR_DETAIL_LIMIT with their detail, up to MONITOR_REPORT_LIMIT as one line each, then
 * only counted. If the checker itself fails (an internal error), monitoring stops with a message
 * and the proxy serves on.
 *
 * The lines come typed from impl/trace.ts (whose output the tests validate against the schema), so
 * the monitor checks only their shape (an object with a known kind and a numeric t) before the
 * model does; the offline trace-check validates every field of every line.
 *
 * The monitor checks against the reference machines, whatever the proxy runs: a proxy started
 * with a mutant switched in (EMBRYONIC_MONITOR_DEFECT, tests only: cli/proxy.ts) diverges.
 */
import type { ModelConfig } from '../machines/config.ts';
import type { TraceLine } from '../machines/traceFormat.ts';
import { formatDivergence, TraceMonitor, type Divergence } from '../properties/traceCheck.ts';
import type { TraceTap } from './trace.ts';

/** How many divergences are reported with their detail. */
export const MONITOR_DETAIL_LIMIT = 3;
/** How many divergences are reported at all; later ones are only counted. */
export const MONITOR_REPORT_LIMIT = 100;

/** The prefix of every line the monitor writes. */
export const MONITOR_PREFIX = 'embryonic proxy: monitor:';

/**
 * A live monitor for one proxy. Implements TraceTap: give it to the Trace (impl/trace.ts) before
 * the trace writes its header. Reports through `report` (one call per message, possibly several
 * lines); owns nothing else. Never throws from line().
 */
export class Monitor implements TraceTap {
  /** Divergences seen so far. */
  divergences = 0;
  private readonly checker: TraceMonitor;
  private stopped: string | null = null; // why monitoring stopped (an internal error), if it did

  /** Why monitoring stopped (an internal error of the checker, already reported), or null. */
  get stoppedWhy(): string | null {
    return this.stopped;
  }

  constructor(
    config: ModelConfig,
    private readonly report: (text: string) => void,
  ) {
    this.checker = new TraceMonitor(config, { trusted: true });
  }

  /** Checks the next trace line (TraceTap). Reports a divergence; never throws. */
  line(line: TraceLine): void {
    if (this.stopped !== null) return;
    let divergence: Divergence | null;
    try {
      divergence = this.checker.feed(line);
    } catch (err) {
      this.stop(err);
      return;
    }
    if (divergence) this.diverged(divergence, connOf(line));
  }

  /**
   * Ends the check (the proxy stops): checks what the last step still owed, then returns the
   * summary line. Reports a last divergence if there is one; never throws.
   */
  finish(): string {
    if (this.stopped === null) {
      try {
        const divergence = this.checker.finish();
        if (divergence) this.diverged(divergence, null);
      } catch (err) {
        this.stop(err);
      }
    }
    const s = this.checker.stats;
    const state =
      this.stopped !== null
        ? `stopped early (${this.stopped})`
        : `${this.divergences} divergence${this.divergences === 1 ? '' : 's'}`;
    return `${MONITOR_PREFIX} ${s.lines} trace lines checked, ${s.accepted} connections, ${state}`;
  }

  private diverged(d: Divergence, conn: number | null): void {
    this.divergences++;
    const n = this.divergences;
    if (n > MONITOR_REPORT_LIMIT) return;
    const head =
      `${MONITOR_PREFIX} divergence #${n} at trace line ${d.line}` +
      `${conn === null ? '' : ` (connection ${conn})`}: ${d.verdict}: ${d.message}`;
    if (n > MONITOR_DETAIL_LIMIT) {
      this.report(
        n === MONITOR_REPORT_LIMIT
          ? `${head}\n${MONITOR_PREFIX} further divergences are counted, not reported`
          : head,
      );
      return;
    }
    const detail = formatDivergence(d)
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
    this.report(`${head}\n${detail}`);
  }

  private stop(err: unknown): void {
    this.stopped = `internal error: ${err instanceof Error ? err.message : String(err)}`;
    this.report(
      `${MONITOR_PREFIX} ${this.stopped} at trace line ${this.checker.stats.lines}; monitoring stops, the proxy serves on`,
    );
  }
}

/** The connection a line concerns, or null (a line that is not an object included). Pure. */
function connOf(line: unknown): number | null {
  const conn = typeof line === 'object' && line !== null ? (line as { conn?: unknown }).conn : null;
  return typeof conn === 'number' ? conn : null;
}
