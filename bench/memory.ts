/**
 * Row 1: memory per connection under a flood of held-open connections, embryonic (connected, no
 * PROXY header yet; `timeout client 10m` keeps them) and full (a valid header sent, then idle; the
 * session is connected to the echo backend), for the bundled proxy and for HAProxy 2.6; and the
 * embryonic floods alone for the node:net floor (bench/floor.ts, a bare server that holds and
 * reads each connection), whose cost over a full session's is the lowest embryonic / full ratio a
 * proxy on node:net can reach.
 *
 * One flood is one fresh proxy process (so that no earlier flood's freed memory hides this one's
 * growth; the processes of one repetition start together, then flood one after the other):
 *   1. a warm-up flood of WARMUP connections of the same kind, held until accepted, then closed
 *      (the code paths are compiled and the pools primed, so that one-time costs do not count per
 *      connection);
 *   2. the baseline: RSS (/proc/<pid>/status VmRSS), or for a heap run the JS heap after a full GC;
 *   3. the flood: <n> connections from the load generator, held; the driver waits until the
 *      proxy's CurrConns reaches <n>, then until the RSS stops moving;
 *   4. the same measure again; growth / n is the figure; the load generator checks that the proxy
 *      closed none of them;
 *   5. the connections are closed, the proxy stopped.
 * RSS runs and heap runs are separate processes: a heap snapshot (how the JS heap is read from
 * outside, bench/targets.ts) makes the RSS jump by tens of MB. The bundled proxy's RSS runs also
 * read V8's heap without a GC (a diagnostic report before the baseline and after the second
 * measure, so that the report's own allocations fall outside the growth): how much of the RSS
 * growth is pages V8's heap committed, and how much of that its young generation, which an accept
 * storm grows towards its maximum and which stays grown while the connections are held. The heap
 * runs also give the allocated memory: the JS heap plus V8's external memory (the bytes of every
 * Buffer, the pool's channel buffers included), which is what the seed stopped allocating at
 * accept time; the RSS shows those buffers only as far as their pages were touched. HAProxy has no
 * JS heap: its row is RSS only. RSS counts user-space memory only: the kernel's socket buffers are
 * in neither figure.
 *
 * The flood sizes are capped by the hard fd limit (floodCapacity): HAProxy refuses to start when
 * 2 × maxconn does not fit in it, and a full session holds two fds. The cap applies to both
 * proxies alike; the rows say the size really used.
 */
import {
  FIGURE,
  alternate,
  BENCH_HEADER,
  BENCH_SOURCES,
  benchRow,
  pairRatios,
  sleep,
  startProxies,
  stopAll,
  summarize,
  waitUntil,
  type BenchContext,
  type BenchRow,
  type BenchResult,
  type ProxyKind,
  type ProxyProcess,
  type V8Heap,
} from './targets.ts';

/** How to run row 1. */
export interface MemoryOptions {
  sizes: number[]; //    the flood sizes wanted (1000, 10000); capped by floodCapacity
  repeats: number; //    floods per size, mode and proxy
  heap: boolean; //      also measure the bundled proxy's JS heap (separate runs)
  warmup: number; //     connections of the warm-up flood
  floor: boolean; //     also flood the node:net floor (bench/floor.ts), embryonic only
}

/** The two kinds of held-open connections. */
export type FloodMode = 'embryonic' | 'full';

/** What one flood measured. */
export interface FloodMeasure {
  n: number; //               connections held
  perConn: number | null; //  growth per connection, bytes (RSS, or JS heap for a heap run)
  perConnAllocated: number | null; // heap runs: growth of the JS heap plus external memory (Buffers) per connection
  perConnV8: V8Heap | null; // impl RSS runs: growth of V8's heap without a GC per connection (bytes each)
  acceptMs: number; //        from the first connect until CurrConns reached n
  closedByProxy: number; //   held connections the proxy closed before the measure (should be 0)
  failed: number; //          connections that could not be opened
}

/** The kind of figure a flood measures. */
type Measure = 'rss' | 'heap';

/**
 * Returns the number of connections a flood of <wanted> may use under the hard fd limit <hard>:
 * HAProxy needs 2 × maxconn + about 25 fds (it refuses to start otherwise), maxconn is the flood
 * plus 50, and 100 more are kept for the runtime. The same cap for both modes and both proxies,
 * so that their figures are comparable. Pure.
 */
export function floodCapacity(wanted: number, hard: number): number {
  return Math.max(1, Math.min(wanted, Math.floor((hard - 200) / 2) - 50));
}

/**
 * Runs row 1 with <opts> on the processes of <ctx>. Resolves with its rows (per size: RSS per
 * connection for each mode with HAProxy as the anchor, the JS heap per connection, the
 * embryonic / full ratios, and with `opts.floor` the floor's rows), or the row skipped with the
 * reason when the bundled proxy cannot run.
 * Every proxy it starts is stopped before it returns; never rejects for a proxy that fails (the
 * reason goes into the rows' notes or the skipped list).
 */
export async function benchMemory(ctx: BenchContext, opts: MemoryOptions): Promise<BenchResult> {
  const figure = 'memory per held-open connection';
  if (ctx.implMissing) return { rows: [], skipped: [{ row: 1, figure, reason: ctx.implMissing }] };
  const kinds: ProxyKind[] = ctx.haproxyMissing ? ['impl'] : ['impl', 'haproxy'];
  const result: BenchResult = { rows: [], skipped: [] };
  if (ctx.haproxyMissing)
    result.skipped.push({ row: 1, figure: 'HAProxy anchor of the memory rows', reason: ctx.haproxyMissing });
  const modes: FloodMode[] = ['embryonic', 'full'];

  for (const wanted of opts.sizes) {
    const n = floodCapacity(wanted, ctx.fdHard);
    const label = sizeLabel(wanted);
    // runs[measure][kind][mode] = one FloodMeasure per repetition
    const runs = new Map<string, FloodMeasure[]>();
    const key = (m: Measure, k: ProxyKind, mode: FloodMode): string => `${m}/${k}/${mode}`;
    const errors: string[] = [];
    const record = (measure: Measure, kind: ProxyKind, mode: FloodMode, m: FloodMeasure): void => {
      const list = runs.get(key(measure, kind, mode)) ?? [];
      list.push(m);
      runs.set(key(measure, kind, mode), list);
    };
    for (let rep = 0; rep < opts.repeats; rep++) {
      // Every flood of this repetition gets its own process; they all start at once (an idle proxy
      // costs nothing to the one being measured), then the floods run one after the other.
      const plan: { measure: Measure; kind: ProxyKind; mode: FloodMode }[] = [];
      for (const mode of modes) {
        for (const kind of alternate(kinds, rep)) plan.push({ measure: 'rss', kind, mode });
        if (opts.heap) plan.push({ measure: 'heap', kind: 'impl', mode });
      }
      // The node:net floor holds connections that send nothing: an embryonic flood only.
      if (opts.floor) {
        plan.push({ measure: 'rss', kind: 'floor', mode: 'embryonic' });
        if (opts.heap) plan.push({ measure: 'heap', kind: 'floor', mode: 'embryonic' });
      }
      const { proxies, bySpec, failures } = await startProxies(
        plan.map((f) => ({
          kind: f.kind,
          backendPort: ctx.echo.port,
          maxconn: n + 50,
          timeoutClient: '10m',
          heapProbe: f.measure === 'heap',
          reportProbe: f.measure === 'rss',
        })),
      );
      try {
        for (const [i, f] of plan.entries()) {
          const proxy = bySpec[i];
          const what = `${f.kind} ${f.mode} ${f.measure}`;
          ctx.log(`memory ${label}: ${what}, flood of ${n} (run ${rep + 1}/${opts.repeats})`);
          try {
            if (!proxy) throw new Error(failures.find((x) => x.kind === f.kind)?.reason ?? 'did not start');
            record(f.measure, f.kind, f.mode, await floodOnce(ctx, proxy, f.mode, n, f.measure, opts.warmup));
          } catch (err) {
            errors.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
            record(f.measure, f.kind, f.mode, {
              n,
              perConn: null,
              perConnAllocated: null,
              perConnV8: null,
              acceptMs: NaN,
              closedByProxy: 0,
              failed: n,
            });
          } finally {
            await proxy?.stop();
          }
        }
      } finally {
        await stopAll(proxies);
      }
    }
    const per = (m: Measure, k: ProxyKind, mode: FloodMode): number[] =>
      (runs.get(key(m, k, mode)) ?? []).map((r) => r.perConn ?? NaN);
    const allocated = (mode: FloodMode): number[] =>
      (runs.get(key('heap', 'impl', mode)) ?? []).map((r) => r.perConnAllocated ?? NaN);
    const notesOf = (m: Measure, k: ProxyKind, mode: FloodMode): string[] => {
      const list = runs.get(key(m, k, mode)) ?? [];
      const notes: string[] = [];
      const accept = summarize(list.map((r) => r.acceptMs / 1000));
      if (accept) notes.push(`${k} accepted the flood in ${fmtRange(accept, 's')}`);
      const closed = list.reduce((s, r) => s + r.closedByProxy, 0);
      if (closed > 0) notes.push(`${k} closed ${closed} held connection(s) before the measure`);
      const failed = list.reduce((s, r) => s + r.failed, 0);
      if (failed > 0) notes.push(`${failed} connection(s) of ${k} could not be opened or measured`);
      return notes;
    };
    const v8Row = (mode: FloodMode): BenchRow | null => {
      const list = (runs.get(key('rss', 'impl', mode)) ?? []).map((r) => r.perConnV8);
      const committed = summarize(list.map((v) => v?.committed ?? NaN));
      if (!committed) return null;
      const young = summarize(list.map((v) => v?.youngCommitted ?? NaN));
      const used = summarize(list.map((v) => v?.used ?? NaN));
      return benchRow({
        row: 1,
        figure: 'V8 heap pages committed per connection (RSS runs, no GC)',
        unit: 'B/conn',
        subject: subject(mode),
        value: committed,
        notes: [
          ...(young ? [`of which the young generation ${fmtRange(young, 'B/conn', 0)}`] : []),
          ...(used ? [`objects in the heap (live or not yet collected) ${fmtRange(used, 'B/conn', 0)}`] : []),
          "from diagnostic reports taken in the RSS runs, outside the measured span; the RSS growth less these pages is the memory outside V8's heap (sockets, malloc)",
        ],
      });
    };
    const subject = (mode: FloodMode, kind: ProxyKind = 'impl'): string =>
      `${kind}, ${mode}, ${label}${n !== wanted ? ` (${n})` : ''}`;
    // The node:net floor's rows: its cost per connection, and that cost over the bundled proxy's
    // full session, the lowest embryonic / full ratio any proxy on node:net can reach here.
    const floorRows = (m: Measure, figure: string, ratioFigure: string): BenchRow[] => {
      const floor = per(m, 'floor', 'embryonic');
      const value = summarize(floor);
      if (!value) return [];
      const ratio = summarize(pairRatios(floor, per(m, 'impl', 'full')));
      return [
        benchRow({
          row: 1,
          figure,
          unit: 'B/conn',
          subject: subject('embryonic', 'floor'),
          value,
          notes: [
            'the node:net floor (bench/floor.ts): a bare node:net server holding and reading each connection, no proxy logic',
            ...notesOf(m, 'floor', 'embryonic'),
          ],
        }),
        benchRow({
          row: 1,
          figure: ratioFigure,
          unit: '×',
          subject: `floor / impl full, ${label}`,
          value: ratio,
          notes: [
            ratio && ratio.median > 0.1
              ? 'above 0.1: node:net alone costs more than a tenth of a full session here, so no embryonic connection on node:net can meet the 1/10 goal on this measure'
              : 'the lowest embryonic / full ratio a proxy on node:net can reach on this measure',
          ],
        }),
      ];
    };
    const haveHaproxy = kinds.includes('haproxy');

    for (const mode of modes) {
      const impl = per('rss', 'impl', mode);
      const ha = haveHaproxy ? per('rss', 'haproxy', mode) : [];
      result.rows.push(
        benchRow({
          row: 1,
          figure: 'RSS growth per connection',
          unit: 'B/conn',
          subject: subject(mode),
          value: summarize(impl),
          anchor: haveHaproxy ? { name: 'haproxy', value: summarize(ha) } : null,
          ratio: haveHaproxy ? summarize(pairRatios(impl, ha)) : null,
          notes: [...notesOf('rss', 'impl', mode), ...(haveHaproxy ? notesOf('rss', 'haproxy', mode) : [])],
        }),
      );
    }
    for (const mode of modes) {
      const row = v8Row(mode);
      if (row) result.rows.push(row);
    }
    const embryonicRss = pairRatios(per('rss', 'impl', 'embryonic'), per('rss', 'impl', 'full'));
    const haRatio = haveHaproxy
      ? summarize(pairRatios(per('rss', 'haproxy', 'embryonic'), per('rss', 'haproxy', 'full')))
      : null;
    const rssRatio = summarize(embryonicRss);
    result.rows.push(
      benchRow({
        row: 1,
        figure: FIGURE.ratioRss,
        unit: '×',
        subject: `impl, ${label}`,
        value: rssRatio,
        anchor: haveHaproxy ? { name: 'haproxy', value: haRatio } : null,
        goal: { text: '≤ 0.1 (1/10 of a full session)', met: rssRatio ? rssRatio.median <= 0.1 : null },
      }),
    );
    result.rows.push(...floorRows('rss', 'RSS growth per connection', FIGURE.floorRss));
    if (opts.heap) {
      for (const mode of modes) {
        const heap = summarize(per('heap', 'impl', mode));
        result.rows.push(
          benchRow({
            row: 1,
            figure: FIGURE.heap,
            unit: 'B/conn',
            subject: subject(mode),
            value: heap,
            goal:
              mode === 'embryonic'
                ? { text: '≤ 2048 B/conn (2 KiB)', met: heap ? heap.median <= 2048 : null }
                : null,
            notes: [
              'after a full GC (heap snapshot), the warm-up excluded',
              ...notesOf('heap', 'impl', mode),
            ],
          }),
        );
      }
      const heapRatio = summarize(pairRatios(per('heap', 'impl', 'embryonic'), per('heap', 'impl', 'full')));
      result.rows.push(
        benchRow({
          row: 1,
          figure: FIGURE.ratioHeap,
          unit: '×',
          subject: `impl, ${label}`,
          value: heapRatio,
          goal: { text: '≤ 0.1 (1/10 of a full session)', met: heapRatio ? heapRatio.median <= 0.1 : null },
        }),
      );
      result.rows.push(...floorRows('heap', FIGURE.heap, FIGURE.floorHeap));
      for (const mode of modes) {
        result.rows.push(
          benchRow({
            row: 1,
            figure: 'allocated memory per connection (JS heap + Buffers)',
            unit: 'B/conn',
            subject: subject(mode),
            value: summarize(allocated(mode)),
            notes: [
              "the JS heap after a full GC plus V8's external memory (every Buffer's bytes: the pool's channel buffers, read chunks), from the same runs",
            ],
          }),
        );
      }
      const allocatedRatio = summarize(pairRatios(allocated('embryonic'), allocated('full')));
      result.rows.push(
        benchRow({
          row: 1,
          figure: FIGURE.ratioAllocated,
          unit: '×',
          subject: `impl, ${label}`,
          value: allocatedRatio,
          goal: {
            text: '≤ 0.1 (1/10 of a full session)',
            met: allocatedRatio ? allocatedRatio.median <= 0.1 : null,
          },
        }),
      );
    } else {
      result.skipped.push({
        row: 1,
        figure: `JS heap per connection, ${label}`,
        reason: 'not asked for (--no-heap)',
      });
    }
    if (errors.length > 0) {
      const first = result.rows.find((r) => r.subject.includes(label));
      first?.notes.push(...errors.slice(0, 5));
    }
  }
  return result;
}

/** '1k', '10k', '500': the label of a wanted flood size. Pure. */
export function sizeLabel(n: number): string {
  return n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}

/** '1.2 s (0.3–1.2)': a summary's median with its unit, then its range, to `digits` decimals. Pure. */
function fmtRange(s: { median: number; min: number; max: number }, unit: string, digits = 1): string {
  return `${s.median.toFixed(digits)} ${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** How long a flood of <n> may take to be opened and accepted (the bundled proxy takes ~2 ms each). */
function floodTimeoutMs(n: number): number {
  return 30_000 + n * 10;
}

/**
 * Runs one flood (see the header comment) on <proxy>, fresh and used for nothing else: <n>
 * connections in <mode>, measuring <measure>. Resolves with the measure; rejects if the
 * connections cannot be opened or the proxy does not accept them in time. Every held connection is
 * closed before it settles; the caller stops the proxy.
 */
async function floodOnce(
  ctx: BenchContext,
  proxy: ProxyProcess,
  mode: FloodMode,
  n: number,
  measure: Measure,
  warmup: number,
): Promise<FloodMeasure> {
  try {
    if (warmup > 0) {
      await hold(ctx, proxy, mode, Math.min(warmup, n));
      await release(ctx, proxy, warmup);
    }
    await sleep(pollMs(n));
    // V8's heap without a GC, read outside the span the RSS growth covers (null but in impl RSS runs).
    const v8Before = measure === 'rss' ? await proxy.v8Heap() : null;
    const before = await read(proxy, measure);
    const t0 = performance.now();
    const opened = await hold(ctx, proxy, mode, n);
    const acceptMs = performance.now() - t0;
    await settle(proxy, n);
    const after = await read(proxy, measure);
    const v8After = v8Before ? await proxy.v8Heap() : null;
    const held = await ctx.loader.request<{ open: number; closedByProxy: number }>('held', {}, 10_000);
    await release(ctx, proxy, n);
    const growth = (f: (r: Reading) => number): number | null =>
      before === null || after === null || opened === 0 ? null : (f(after) - f(before)) / opened;
    return {
      n,
      perConn: growth((r) => r.value),
      perConnAllocated: measure === 'heap' ? growth((r) => r.value + r.external) : null,
      perConnV8:
        v8Before && v8After && opened > 0
          ? {
              committed: (v8After.committed - v8Before.committed) / opened,
              youngCommitted: (v8After.youngCommitted - v8Before.youngCommitted) / opened,
              used: (v8After.used - v8Before.used) / opened,
            }
          : null,
      acceptMs,
      closedByProxy: held.closedByProxy,
      failed: n - opened,
    };
  } finally {
    await ctx.loader.request('release', {}, 10_000).catch(() => undefined);
  }
}

/**
 * Opens <n> connections in <mode> to <proxy> through the load generator and waits until the
 * proxy's CurrConns counts them. Resolves with how many were opened; rejects if none could be, or
 * the proxy did not accept them within the flood's time bound.
 */
async function hold(ctx: BenchContext, proxy: ProxyProcess, mode: FloodMode, n: number): Promise<number> {
  const timeoutMs = floodTimeoutMs(n);
  const t0 = performance.now();
  const f = await ctx.loader.request<{ opened: number; failed: number; errors: string[] }>(
    'flood',
    {
      host: '127.0.0.1',
      port: proxy.port,
      count: n,
      header: mode === 'full' ? BENCH_HEADER : null,
      sources: BENCH_SOURCES,
      concurrency: 256,
      timeoutMs,
    },
    timeoutMs + 10_000,
  );
  if (f.opened === 0) throw new Error(`no connection could be opened: ${f.errors.join('; ')}`);
  const left = Math.max(5000, timeoutMs - (performance.now() - t0));
  const accepted = await waitUntil(async () => (await proxy.currConns()) >= f.opened, left, pollMs(n));
  if (!accepted)
    throw new Error(`${proxy.label} did not accept ${f.opened} connections within ${Math.round(left)} ms`);
  return f.opened;
}

/** Closes the <n> held connections and waits (bounded) until <proxy> counts none. */
async function release(ctx: BenchContext, proxy: ProxyProcess, n: number): Promise<void> {
  await ctx.loader.request('release', {}, 10_000);
  await waitUntil(async () => (await proxy.currConns()) === 0, 30_000, pollMs(n));
}

/** How often to poll a proxy during a flood of <n>: often for a small one (tests), less for a big one. Pure. */
function pollMs(n: number): number {
  return n < 200 ? 20 : 100;
}

/**
 * Waits until the RSS of <proxy> stops moving after a flood of <n> (two samples 200 ms apart, 50
 * ms for a small flood, within 64 KiB or 0.5%), at most 10 s: the backend connections of a full
 * flood, and the allocations they cause, are done.
 */
async function settle(proxy: ProxyProcess, n: number): Promise<void> {
  const interval = n < 200 ? 50 : 200;
  let last = proxy.rss() ?? 0;
  await sleep(interval);
  await waitUntil(
    () => {
      const now = proxy.rss() ?? 0;
      const still = Math.abs(now - last) <= Math.max(64 * 1024, last * 0.005);
      last = now;
      return still;
    },
    10_000,
    interval,
  );
}

/** One reading of a proxy's memory: the measure's value, and for a heap run its external memory. */
interface Reading {
  value: number; //    RSS, or the JS heap after a full GC, in bytes
  external: number; // heap runs: V8's external memory (Buffers) in bytes; 0 for RSS
}

/** The RSS, or the JS heap after a full GC with its external memory, of <proxy>; null if it cannot be read. */
async function read(proxy: ProxyProcess, measure: Measure): Promise<Reading | null> {
  if (measure === 'rss') {
    const rss = proxy.rss();
    return rss === null ? null : { value: rss, external: 0 };
  }
  const heap = await proxy.jsHeap();
  return heap === null ? null : { value: heap.used, external: heap.external };
}
