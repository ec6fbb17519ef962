/**
 * Row 2: accept + PROXY v1 header + close per second, on loopback, the same client for both
 * proxies: the load generator runs <concurrency> loops of connect, send the header with a FIN,
 * wait until the proxy closes its side (the session completed, connected to the echo backend,
 * forwarded the FIN and ended). A cycle counts when it ends within the timed window.
 *
 * Both proxies run at once (each idle while the other is measured; they are the rate proxies that
 * rows 3 and 4 use too, bench/targets.ts); the runs alternate, impl then haproxy, then haproxy
 * then impl, and each ratio is the impl's rate over HAProxy's in the same
 * pair. The CPU share of each proxy during its runs (CPU time / wall time, from /proc) is kept in
 * the notes: a share well below 100% for HAProxy means the load generator, not HAProxy, set the
 * pace, and the ratio then flatters the bundled proxy.
 *
 * acceptOnce is also the measure of row 4 (bench/monitor.ts).
 */
import {
  FIGURE,
  perCpuFigure,
  alternate,
  BENCH_HEADER,
  cpuMs,
  BENCH_SOURCES,
  benchRow,
  pairRatios,
  summarize,
  waitUntil,
  type BenchContext,
  type BenchResult,
  type BenchRow,
  type ProxyProcess,
} from './targets.ts';

/** How to run row 2. */
export interface AcceptOptions {
  durationMs: number; //    one timed run
  repeats: number; //       pairs of runs
  concurrency: number; //   client loops at once
  warmupMs: number; //      an untimed run on each proxy first (0: none)
}

/** One timed run of a rate on one proxy (accept, throughput). */
export interface RateMeasure {
  rate: number; //               per second
  cpuShare: number | null; //    the proxy's CPU time / wall time during the run (1 = one core)
  loaderShare: number | null; // the same for the load generator
  echoShare: number | null; //   the same for the echo backend
  errors: number; //             failed cycles (accept) or failed runs (throughput)
  firstError: string | null;
}

/** One timed accept run on one proxy. */
export interface AcceptMeasure extends RateMeasure {
  ops: number; // cycles ended within the window (rate = ops / window)
}

/** CPU time between two readings over <wallMs> of wall time (1 = one core), or null. Pure. */
export function share(cpu0: number | null, cpu1: number | null, wallMs: number): number | null {
  return cpu0 === null || cpu1 === null || wallMs <= 0 ? null : (cpu1 - cpu0) / wallMs;
}

/** How long one cycle may take before it counts as an error. */
const CONN_TIMEOUT_MS = 5000;

/**
 * Runs one accept run of <durationMs> with <concurrency> loops against <proxy>, then waits
 * (bounded) until the proxy counts no connection. Resolves with the rate and the proxy's CPU
 * share; rejects if the load generator fails.
 */
export async function acceptOnce(
  ctx: BenchContext,
  proxy: ProxyProcess,
  durationMs: number,
  concurrency: number,
): Promise<AcceptMeasure> {
  const cpu0 = proxy.cpu();
  const others0 = [cpuMs(ctx.loader.pid), cpuMs(ctx.echo.pid)];
  const t0 = performance.now();
  const r = await ctx.loader.request<{ ops: number; errors: number; ms: number; firstError: string | null }>(
    'accept',
    {
      host: '127.0.0.1',
      port: proxy.port,
      header: BENCH_HEADER,
      durationMs,
      concurrency,
      sources: BENCH_SOURCES,
      connTimeoutMs: CONN_TIMEOUT_MS,
    },
    durationMs + CONN_TIMEOUT_MS + 10_000,
  );
  const wall = performance.now() - t0;
  const cpu1 = proxy.cpu();
  const others1 = [cpuMs(ctx.loader.pid), cpuMs(ctx.echo.pid)];
  await waitUntil(async () => (await proxy.currConns()) === 0, 10_000, 50);
  return {
    rate: r.ops / (r.ms / 1000),
    ops: r.ops,
    cpuShare: share(cpu0, cpu1, wall),
    loaderShare: share(others0[0]!, others1[0]!, wall),
    echoShare: share(others0[1]!, others1[1]!, wall),
    errors: r.errors,
    firstError: r.firstError,
  };
}

/**
 * Runs row 2 with <opts> on the rate proxies of <ctx>. Resolves with its rows (the bundled
 * proxy's rate, HAProxy's as the anchor, their ratio pair by pair, the goal ≥ 0.5×; the same per
 * CPU-second), or the row skipped with the reason. Starts no process of its own.
 */
export async function benchAccept(ctx: BenchContext, opts: AcceptOptions): Promise<BenchResult> {
  const figure = FIGURE.accept;
  if (ctx.implMissing) return { rows: [], skipped: [{ row: 2, figure, reason: ctx.implMissing }] };
  const { impl, haproxy, failures } = await ctx.rateProxies();
  if (!impl)
    return { rows: [], skipped: [{ row: 2, figure, reason: failures[0]?.reason ?? 'impl did not start' }] };
  const runs = await alternateRuns(ctx, haproxy ? [impl, haproxy] : [impl], opts, 'accept');
  const spec: RateRowSpec = {
    row: 2,
    figure,
    unit: 'conn/s',
    cpuUnit: 'conn/CPU-s',
    goal: { text: '≥ 0.5× HAProxy', minRatio: 0.5 },
  };
  const notes = [`${opts.concurrency} client loops, ${opts.durationMs} ms runs`];
  return {
    rows: rateRows(spec, runs, impl.label, haproxy?.label ?? null, notes),
    skipped: skippedAnchors(ctx, failures, 2, figure),
  };
}

/**
 * Runs <opts.repeats> pairs of accept runs on <proxies> (a warm-up first on each when asked), in
 * alternating order, awaiting <afterRun> (if given) after each run, before the next begins.
 * Resolves with the measures per proxy label, one per repetition (a failed run is NaN, its error
 * kept).
 */
export async function alternateRuns(
  ctx: BenchContext,
  proxies: readonly ProxyProcess[],
  opts: AcceptOptions,
  what: string,
  afterRun: ((p: ProxyProcess) => Promise<void>) | null = null,
): Promise<Map<string, AcceptMeasure[]>> {
  const runs = new Map<string, AcceptMeasure[]>(proxies.map((p) => [p.label, []]));
  if (opts.warmupMs > 0)
    for (const p of proxies) await acceptOnce(ctx, p, opts.warmupMs, opts.concurrency).catch(() => undefined);
  for (let rep = 0; rep < opts.repeats; rep++) {
    for (const p of alternate(proxies, rep)) {
      ctx.log(`${what}: ${p.label} run ${rep + 1}/${opts.repeats}`);
      const m = await acceptOnce(ctx, p, opts.durationMs, opts.concurrency).catch(
        (err: Error): AcceptMeasure => ({
          rate: NaN,
          ops: 0,
          cpuShare: null,
          loaderShare: null,
          echoShare: null,
          errors: 1,
          firstError: err.message,
        }),
      );
      runs.get(p.label)!.push(m);
      if (afterRun) await afterRun(p);
    }
  }
  return runs;
}

/** How a rate row is labelled and judged (acceptRows, and rows 3 and 4). */
export interface RateRowSpec {
  row: number;
  figure: string;
  unit: string; //          of the rate: 'conn/s', 'MB/s'
  cpuUnit: string; //       of the rate per CPU-second of the proxy: 'conn/CPU-s', 'MB/CPU-s'
  goal: { text: string; minRatio: number } | null; // met when the median ratio ≥ minRatio
}

/**
 * Returns the two rows of a rate figure measured on <subject> and <anchor> (proxy labels; anchor
 * null: none) in <runs>: the rate with the anchor's, their ratio pair by pair and the goal; then
 * the rate per CPU-second of the proxy (rate / CPU share: what the proxy does with one core's
 * worth of CPU, the estimate of the ratio if both were CPU-bound; no goal). The notes say each
 * process's CPU share and the errors. Pure.
 */
export function rateRows(
  spec: RateRowSpec,
  runs: ReadonlyMap<string, readonly RateMeasure[]>,
  subject: string,
  anchor: string | null,
  notes: readonly string[] = [],
): BenchRow[] {
  const rates = (label: string): number[] => (runs.get(label) ?? []).map((m) => m.rate);
  const perCpu = (label: string): number[] =>
    (runs.get(label) ?? []).map((m) => (m.cpuShare && m.cpuShare > 0 ? m.rate / m.cpuShare : NaN));
  const ratio = anchor ? summarize(pairRatios(rates(subject), rates(anchor))) : null;
  const cpuRatio = anchor ? summarize(pairRatios(perCpu(subject), perCpu(anchor))) : null;
  const labels = [subject, ...(anchor ? [anchor] : [])];
  return [
    benchRow({
      row: spec.row,
      figure: spec.figure,
      unit: spec.unit,
      subject,
      value: summarize(rates(subject)),
      anchor: anchor ? { name: anchor, value: summarize(rates(anchor)) } : null,
      ratio,
      goal:
        spec.goal && anchor
          ? { text: spec.goal.text, met: ratio ? ratio.median >= spec.goal.minRatio : null }
          : null,
      notes: [...notes, ...labels.flatMap((l) => measureNotes(l, runs.get(l) ?? []))],
    }),
    benchRow({
      row: spec.row,
      figure: perCpuFigure(spec.figure),
      unit: spec.cpuUnit,
      subject,
      value: summarize(perCpu(subject)),
      anchor: anchor ? { name: anchor, value: summarize(perCpu(anchor)) } : null,
      ratio: cpuRatio,
      notes: ['rate / CPU share of the proxy: the ratio if both proxies were CPU-bound'],
    }),
  ];
}

/** The notes of a proxy's runs: its CPU share, the load generator's and the echo's, its errors. Pure. */
export function measureNotes(label: string, list: readonly RateMeasure[]): string[] {
  const notes: string[] = [];
  const pct = (pick: (m: RateMeasure) => number | null): string | null => {
    const s = summarize(list.map((m) => (pick(m) === null ? NaN : pick(m)! * 100)));
    return s ? `${s.median.toFixed(0)}% (${s.min.toFixed(0)}–${s.max.toFixed(0)})` : null;
  };
  const own = pct((m) => m.cpuShare);
  const loader = pct((m) => m.loaderShare);
  const echo = pct((m) => m.echoShare);
  if (own)
    notes.push(
      `during the ${label} runs, CPU of a core: ${label} ${own}${loader ? `, load generator ${loader}` : ''}${echo ? `, echo ${echo}` : ''}`,
    );
  const errors = list.reduce((s, m) => s + m.errors, 0);
  const first = list.find((m) => m.firstError)?.firstError;
  if (errors > 0)
    notes.push(`${label}: ${errors} failed cycle(s) or run(s)${first ? `, first: ${first}` : ''}`);
  return notes;
}

/**
 * The skipped entries for the anchors that could not run: HAProxy missing, or a proxy that did not
 * start. Pure.
 */
export function skippedAnchors(
  ctx: BenchContext,
  failures: readonly { kind: string; reason: string }[],
  row: number,
  figure: string,
): BenchResult['skipped'] {
  const skipped: BenchResult['skipped'] = [];
  if (ctx.haproxyMissing)
    skipped.push({ row, figure: `${figure}: HAProxy anchor`, reason: ctx.haproxyMissing });
  for (const f of failures) skipped.push({ row, figure: `${figure}: ${f.kind}`, reason: f.reason });
  return skipped;
}
