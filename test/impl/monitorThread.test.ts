/**
 * The live monitor's worker thread: the encoding of the raw trace into the shared ring
 * (TraceEncoder, TraceDecoder) must give the worker exactly the lines the trace file gets, and the
 * worker must check them as the in-thread monitor does. The runs are real compositions of the
 * machines, traced through a Trace (impl/trace.ts) with both a line tap and the encoder.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Composition, NO_FAILURE, type Host, type StepInputs } from '../../machines/compose.ts';
import { makeConfig } from '../../machines/config.ts';
import { applyCounterEffect, listenerGauges, zeroCounters } from '../../machines/counters.ts';
import type { TraceLine } from '../../machines/traceFormat.ts';
import { MONITOR_PREFIX } from '../../impl/monitor.ts';
import { ThreadedMonitor, TraceDecoder, TraceEncoder, TraceRing } from '../../impl/monitorThread.ts';
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
 * the effects the trace sees (to plant a divergence). Returns nothing; `trace` is closed unless
 * `keepOpen`.
 */
function run(trace: Trace, n: number, corrupt: (type: string) => string = (t) => t, keepOpen = false): void {
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
  if (!keepOpen) trace.close();
}

/**
 * An encoder on a ring of <slots> numbers, read by a decoder every <every> calls of the tap. The
 * values the encoder posts reach the decoder late, after it has read once, as a message from
 * another thread may: the lines that name them wait. Returns the tap, the lines decoded, how many
 * reads stopped at a line that waited, the generations of the values posted, and the failures.
 */
function ringed(slots: number, every: number, internLimit: number) {
  const ring = TraceRing.create(slots);
  const decoder = new TraceDecoder(ring);
  const posted: { gen: number; values: unknown[] }[] = [];
  const failures: string[] = [];
  const encoder = new TraceEncoder(
    ring,
    (gen, values) => posted.push({ gen, values: [...values] }),
    (why) => failures.push(why),
    internLimit,
  );
  const decoded: TraceLine[] = [];
  const gens = new Set<number>();
  let waited = 0;
  const read = (): void => {
    decoder.drain((l) => decoded.push(l));
    if (decoder.waiting) waited++;
    for (const m of posted.splice(0)) {
      gens.add(m.gen);
      decoder.values(m.gen, m.values);
    }
    decoder.drain((l) => decoded.push(l));
  };
  let calls = 0;
  const took = (): void => {
    if (++calls % every === 0) read();
  };
  const tap: RawTraceTap = {
    header: (l) => (encoder.header(l), took()),
    input: (...a) => (encoder.input(...a), took()),
    step: (...a) => (encoder.step(...a), took()),
    effect: (...a) => (encoder.effect(...a), took()),
    counters: (...a) => (encoder.counters(...a), took()),
  };
  return { ring, tap, read, decoded, gens, failures, waited: () => waited };
}

describe('the encoding of the raw trace', () => {
  for (const [limit, slots, every] of [
    [100_000, 1 << 16, 7],
    [12, 256, 3],
  ] as const) {
    it(`gives the worker exactly the lines the trace file gets (intern limit ${limit}, a ring of ${slots} numbers read every ${every} calls)`, () => {
      const tapped: TraceLine[] = [];
      const r = ringed(slots, every, limit);
      run(new Trace(null, CONFIG, 'test', { line: (l) => tapped.push(l) }, r.tap), 30);
      r.read();
      expect(r.failures).toEqual([]);
      expect(tapped.length).toBeGreaterThan(300);
      expect(r.decoded).toEqual(tapped);
      // Lines waited for values posted after them, and came out right once the values arrived.
      expect(r.waited()).toBeGreaterThan(0);
      // A small limit makes the tables start again (values of later generations), and a small
      // ring is written round many times (the write index, control word 0, passes its size).
      expect(r.gens.size > 1).toBe(limit < 100);
      expect(r.ring.ctl[0]! > 4 * slots).toBe(slots < 1000);
    });
  }

  it('stops, saying how far behind the checker is, at the first line that would overwrite one not yet read', () => {
    const r = ringed(256, Number.POSITIVE_INFINITY, 100_000);
    const event = { type: 'ACCEPT_ATTEMPT', acceptError: false };
    let t = 0;
    for (; r.failures.length === 0; t += 10) r.tap.input(t, 'listener', t / 10, event, {});
    const failedAt = t - 10;
    expect(failedAt).toBeGreaterThan(0);
    expect(r.failures).toEqual([
      `the checker fell ${failedAt} ms of trace behind the proxy (the ring holds 256 numbers)`,
    ]);
    // Nothing is written afterwards, and the lines that fitted are intact.
    const written = r.ring.ctl[0];
    r.tap.input(t, 'listener', 99, event, {});
    expect(r.ring.ctl[0]).toBe(written);
    expect(r.failures).toHaveLength(1);
    r.read();
    expect(r.decoded.map((l) => l.t)).toEqual(Array.from({ length: failedAt / 10 }, (_, i) => i * 10));
  });

  it('refuses a ring whose size is not a power of two', () => {
    expect(() => TraceRing.create(1000)).toThrow(/power of two/);
  });
});

/** Resolves once <done> holds, checking every 10 ms for at most 5 s; rejects past that. */
async function eventually(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (done()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('not within 5 s');
}

/** The nice value of every thread of this process, read from the OS (/proc/self/task). */
function threadNices(): number[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      // Field 19 of stat, the 17th after the command's closing parenthesis.
      return [Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16])];
    } catch {
      return []; // the thread ended meanwhile
    }
  });
}

describe('the monitor on its worker thread', () => {
  it.runIf(process.platform === 'linux')(
    'checks on a thread of the lowest priority, and leaves the calling thread as it was',
    async () => {
      const before = getPriority();
      expect(threadNices()).not.toContain(19);
      const monitor = new ThreadedMonitor(CONFIG, () => {});
      const trace = new Trace(null, CONFIG, 'test', null, monitor);
      run(trace, 1, (t) => t, true);
      await eventually(() => threadNices().includes(19));
      expect(getPriority()).toBe(before);
      trace.close();
      expect(await monitor.finish()).toMatch(/1 connections, 0 divergences$/);
    },
  );

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

  it('reports a divergence while the proxy runs, before finish, after the worker slept', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text));
    const trace = new Trace(null, CONFIG, 'test', null, monitor);
    run(trace, 3, (t) => t, true);
    // Long enough for the worker to start, read those lines, and sleep on the ring.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(reports).toEqual([]);
    // The trace says cumConnInc where the machines emitted cumSessInc.
    run(trace, 2, (t) => (t === 'cumSessInc' ? 'cumConnInc' : t), true);
    await eventually(() => reports.length > 0);
    expect(reports[0]).toMatch(new RegExp(`^${MONITOR_PREFIX} divergence #1 at trace line \\d+`));
    trace.close();
    expect(await monitor.finish()).toMatch(/, [1-9]\d* divergences?$/);
  });

  it('stops monitoring, and says why, when the worker falls a whole ring behind', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text), { ringSlots: 256 });
    const trace = new Trace(null, CONFIG, 'test', null, monitor);
    // Written in one turn of the event loop, while the worker is still loading: nothing is read.
    for (let conn = 0; conn < 30; conn++)
      trace.input('listener', conn, { type: 'ACCEPT_ATTEMPT', acceptError: false });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatch(
      new RegExp(
        `^${MONITOR_PREFIX} the checker fell \\d+ ms of trace behind the proxy \\(the ring holds 256 numbers\\); monitoring stops, the proxy serves on$`,
      ),
    );
    trace.input('listener', 30, { type: 'ACCEPT_ATTEMPT', acceptError: false }); // ignored from now on
    expect(await monitor.finish()).toMatch(/stopped early \(the checker fell \d+ ms of trace behind/);
    expect(reports).toHaveLength(1);
  });
});
