/**
 * The live monitor's worker thread: the encoding of the raw trace (TraceEncoder, decodeBatch) must
 * give the worker exactly the lines the trace file gets, and the worker must check them as the
 * in-thread monitor does. The runs are real compositions of the machines, traced through a Trace
 * (impl/trace.ts) with both a line tap and the encoder.
 */
import { describe, expect, it } from 'vitest';
import { Composition, NO_FAILURE, type Host, type StepInputs } from '../../machines/compose.ts';
import { makeConfig } from '../../machines/config.ts';
import { applyCounterEffect, listenerGauges, zeroCounters } from '../../machines/counters.ts';
import type { TraceLine } from '../../machines/traceFormat.ts';
import { MONITOR_PREFIX } from '../../impl/monitor.ts';
import { decodeBatch, ThreadedMonitor, TraceEncoder, type Batch } from '../../impl/monitorThread.ts';
import { Trace, type RawTraceTap } from '../../impl/trace.ts';

const CONFIG = makeConfig({ feMaxconn: 3, bindMaxconn: 3, globalMaxconn: 3 });

/** The events a run sends to accepted connections, in turn (some are refused in some states). */
const CONN_EVENTS: {
  machine: 'connection' | 'session';
  event: { type: string } & Record<string, unknown>;
}[] = [
  { machine: 'connection', event: { type: 'PROXY_HEADER_OK' } },
  { machine: 'session', event: { type: 'SESSION_END' } },
  { machine: 'connection', event: { type: 'PROXY_HEADER_ERROR', code: 'PRX_NOT_HDR' } },
  { machine: 'connection', event: { type: 'PEER_RESET' } },
  { machine: 'connection', event: { type: 'PEER_CLOSE' } },
];

/**
 * Runs <n> connections through the composed machines, each accepted then sent events until it is
 * closed, with every input, step, effect and counters line written to `trace`. `corrupt` rewrites
 * the effects the trace sees (to plant a divergence). Returns nothing; `trace` is closed.
 */
function run(trace: Trace, n: number, corrupt: (type: string) => string = (t) => t): void {
  const c = new Composition(CONFIG);
  const world = c.initialWorld();
  const counters = zeroCounters();
  const host: Host = {
    gauges: () => listenerGauges(counters, CONFIG),
    record: (r) => trace.step(r),
    execute(effect, origin) {
      trace.effect({ ...effect, type: corrupt(effect.type) as typeof effect.type }, origin);
      applyCounterEffect(counters, effect.type, CONFIG);
    },
  };
  const inputs: StepInputs = { src: 'plain', acceptFail: 'none', completeFail: 'none' };
  for (let conn = 0; conn < n; conn++) {
    c.addConnection(world, conn);
    trace.input('listener', conn, { type: 'ACCEPT_ATTEMPT', acceptError: false }, inputs);
    c.acceptAttempt(world, host, conn, inputs);
    trace.counters(counters);
    for (let k = conn; c.stateOf(world, 'connection', conn) !== 'closed'; k++) {
      const { machine, event } = CONN_EVENTS[k % CONN_EVENTS.length]!;
      if (c.runners[machine].compute(world.conns.get(conn)![machine], event).transitions.length === 0)
        continue;
      trace.input(machine, conn, event, NO_FAILURE);
      c.dispatch(world, host, machine, conn, event, NO_FAILURE);
      trace.counters(counters);
    }
    world.conns.delete(conn);
  }
  trace.close();
}

/** A raw tap that keeps the encoder's batches, taken every <every> calls. */
function batching(encoder: TraceEncoder, every: number): { tap: RawTraceTap; batches: Batch[] } {
  const batches: Batch[] = [];
  let calls = 0;
  const took = (): void => {
    if (++calls % every !== 0) return;
    const b = encoder.take();
    if (b) batches.push(b);
  };
  const tap: RawTraceTap = {
    header: (l) => (encoder.header(l), took()),
    input: (...a) => (encoder.input(...a), took()),
    step: (...a) => (encoder.step(...a), took()),
    effect: (...a) => (encoder.effect(...a), took()),
    counters: (...a) => (encoder.counters(...a), took()),
  };
  return { tap, batches };
}

describe('the encoding of the raw trace', () => {
  for (const [limit, every] of [
    [100_000, 7],
    [12, 3],
  ] as const) {
    it(`gives the worker exactly the lines the trace file gets (intern limit ${limit}, a batch every ${every} calls)`, () => {
      const tapped: TraceLine[] = [];
      const encoder = new TraceEncoder(limit);
      const { tap, batches } = batching(encoder, every);
      run(new Trace(null, CONFIG, 'test', { line: (l) => tapped.push(l) }, tap), 30);
      const last = encoder.take();
      if (last) batches.push(last);
      const table: unknown[] = [];
      const decoded = batches.flatMap((b) => decodeBatch(b, table));
      expect(tapped.length).toBeGreaterThan(300);
      expect(decoded).toEqual(tapped);
      // A small limit makes the tables start again, and the lines still come out right.
      expect(batches.some((b) => b.reset)).toBe(limit < 100);
    });
  }
});

describe('the monitor on its worker thread', () => {
  it('checks a run that follows the machines and says so in its summary', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text));
    run(new Trace(null, CONFIG, 'test', null, monitor), 25);
    const summary = await monitor.finish();
    expect(reports).toEqual([]);
    expect(summary).toMatch(
      new RegExp(`^${MONITOR_PREFIX} \\d+ trace lines checked, 25 connections, 0 divergences$`),
    );
  });

  it('reports a divergence the proxy thread did not see, before its summary', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text));
    // The trace says cumConnInc where the machines emitted cumSessInc.
    run(new Trace(null, CONFIG, 'test', null, monitor), 5, (t) => (t === 'cumSessInc' ? 'cumConnInc' : t));
    const summary = await monitor.finish();
    expect(reports.length).toBeGreaterThan(0);
    expect(reports[0]).toMatch(new RegExp(`^${MONITOR_PREFIX} divergence #1 at trace line \\d+`));
    expect(summary).toMatch(/, [1-9]\d* divergences?$/);
  });

  it('stops monitoring, and says why, when the worker falls too many batches behind', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text), { maxPendingBatches: 1 });
    const trace = new Trace(null, CONFIG, 'test', null, monitor);
    // Two batches posted within one turn of the event loop: the first is not checked yet.
    trace.input('listener', 0, { type: 'ACCEPT_ATTEMPT', acceptError: false });
    monitor.flush();
    trace.input('listener', 1, { type: 'ACCEPT_ATTEMPT', acceptError: false });
    monitor.flush();
    expect(reports).toEqual([
      `${MONITOR_PREFIX} the checker fell 1 batch (about 5 ms of trace) behind the proxy; monitoring stops, the proxy serves on`,
    ]);
    trace.input('listener', 2, { type: 'ACCEPT_ATTEMPT', acceptError: false }); // ignored from now on
    expect(await monitor.finish()).toMatch(/stopped early \(the checker fell 1 batch /);
  });
});
