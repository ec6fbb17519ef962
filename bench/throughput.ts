/**
 * Row 3: forwarding throughput after the handshake. The load generator opens <connections>
 * connections through the proxy, sends the PROXY v1 header, checks each path with one round trip
 * to the echo backend, then writes as fast as the proxy takes the bytes for the timed window and
 * counts what comes back. The figure is the bytes echoed back per second (MB = 10^6 bytes): each
 * of them crossed the proxy twice (client → server, then server → client).
 *
 * As for row 2 (and on the same rate proxies), both proxies run at once and the runs alternate; each ratio is the bundled proxy's
 * rate over HAProxy's in the same pair, and each proxy's CPU share is kept in the notes (the load
 * generator and the echo backend are node processes too: on a small machine they may set the pace
 * for HAProxy).
 */
import {
  FIGURE,
  alternate,
  BENCH_HEADER,
  BENCH_SOURCES,
  cpuMs,
  type BenchContext,
  type BenchResult,
  type ProxyProcess,
} from './targets.ts';
import { rateRows, share, skippedAnchors, type RateMeasure, type RateRowSpec } from './accept.ts';

/** How to run row 3. */
export interface ThroughputOptions {
  durationMs: number; //   one timed run
  repeats: number; //      pairs of runs
  connections: number; //  streams at once
  chunkBytes: number; //   the size of each write
}

/**
 * Runs one throughput run against <proxy>. Resolves with the rate (NaN and the error when the
 * run failed); never rejects.
 */
export async function throughputOnce(
  ctx: BenchContext,
  proxy: ProxyProcess,
  opts: ThroughputOptions,
): Promise<RateMeasure> {
  const cpu0 = proxy.cpu();
  const others0 = [cpuMs(ctx.loader.pid), cpuMs(ctx.echo.pid)];
  const t0 = performance.now();
  try {
    const r = await ctx.loader.request<{ bytes: number; ms: number }>(
      'throughput',
      {
        host: '127.0.0.1',
        port: proxy.port,
        header: BENCH_HEADER,
        durationMs: opts.durationMs,
        connections: opts.connections,
        chunkBytes: opts.chunkBytes,
        sources: BENCH_SOURCES,
        connTimeoutMs: 5000,
      },
      opts.durationMs + 20_000,
    );
    const wall = performance.now() - t0;
    const cpu1 = proxy.cpu();
    const others1 = [cpuMs(ctx.loader.pid), cpuMs(ctx.echo.pid)];
    return {
      rate: r.bytes / 1e6 / (r.ms / 1000),
      cpuShare: share(cpu0, cpu1, wall),
      loaderShare: share(others0[0]!, others1[0]!, wall),
      echoShare: share(others0[1]!, others1[1]!, wall),
      errors: 0,
      firstError: null,
    };
  } catch (err) {
    return {
      rate: NaN,
      cpuShare: null,
      loaderShare: null,
      echoShare: null,
      errors: 1,
      firstError: (err as Error).message,
    };
  }
}

/**
 * Runs row 3 with <opts>. Resolves with its row (the bundled proxy's MB/s, HAProxy's as the
 * anchor, their ratio pair by pair, the goal ≥ 0.5×; the same per CPU-second), or the row skipped
 * with the reason. Runs on the rate proxies of <ctx>; starts no process of its own.
 */
export async function benchThroughput(ctx: BenchContext, opts: ThroughputOptions): Promise<BenchResult> {
  const figure = FIGURE.forwarding;
  if (ctx.implMissing) return { rows: [], skipped: [{ row: 3, figure, reason: ctx.implMissing }] };
  const { impl, haproxy, failures } = await ctx.rateProxies();
  {
    if (!impl)
      return { rows: [], skipped: [{ row: 3, figure, reason: failures[0]?.reason ?? 'impl did not start' }] };
    const proxies = haproxy ? [impl, haproxy] : [impl];
    const runs = new Map<string, RateMeasure[]>(proxies.map((p) => [p.label, []]));
    // An untimed short run first on each: connections, buffers and code paths warm.
    for (const p of proxies)
      await throughputOnce(ctx, p, { ...opts, durationMs: Math.min(300, opts.durationMs / 2) });
    for (let rep = 0; rep < opts.repeats; rep++) {
      for (const p of alternate(proxies, rep)) {
        ctx.log(`throughput: ${p.label} run ${rep + 1}/${opts.repeats}`);
        runs.get(p.label)!.push(await throughputOnce(ctx, p, opts));
      }
    }
    const spec: RateRowSpec = {
      row: 3,
      figure,
      unit: 'MB/s',
      cpuUnit: 'MB/CPU-s',
      goal: { text: '≥ 0.5× HAProxy', minRatio: 0.5 },
    };
    const notes = [
      `${opts.connections} connection(s), ${opts.chunkBytes / 1024} KiB writes, ${opts.durationMs} ms runs; MB/s echoed back (each byte crossed the proxy twice)`,
    ];
    const rows = rateRows(spec, runs, impl.label, haproxy?.label ?? null, notes);
    return { rows, skipped: skippedAnchors(ctx, failures, 3, figure) };
  }
}
