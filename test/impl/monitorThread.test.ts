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
import { applyCounterEffect, listenerGauges, zeroCounters, type Counters } from '../../machines/counters.ts';
import { effectLine, inputLine, stepLine, type TraceLine } from '../../machines/traceFormat.ts';
import { MONITOR_PREFIX } from '../../impl/monitor.ts';
import {
  MAX_PARAMS,
  ThreadedMonitor,
  TraceDecoder,
  TraceEncoder,
  TraceRing,
} from '../../impl/monitorThread.ts';
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
  { machine: 'connection', event: { type: 'CLIENT_RESET' } },
  { machine: 'connection', event: { type: 'CLIENT_CLOSE' } },
];

/** What a run plants in what the trace sees (to make a divergence). */
interface Plant {
  effectType?: (type: string) => string; // rewrites the type of each effect the trace sees
  counters?: (c: Counters) => Counters; //  rewrites each counters line the trace sees
}

/**
 * Returns a function that runs <n> more connections through one composition of the machines, each
 * accepted then sent events until it is closed, with every input, step, effect and counters line
 * written to `trace`, as a proxy would: effects are the composition's own objects unless `plant`
 * rewrites them. The trace is left open.
 */
function tracedRun(trace: Trace): (n: number, plant?: Plant) => void {
  const c = new Composition(CONFIG);
  const world = c.initialWorld();
  const counters = zeroCounters();
  let plant: Plant = {};
  let next = 0;
  const host: Host = {
    gauges: () => listenerGauges(counters, CONFIG),
    sslconns: () => counters.sslconns,
    record: (r) => trace.step(r),
    execute(effect, origin) {
      const type = plant.effectType?.(effect.type) ?? effect.type;
      trace.effect(type === effect.type ? effect : { ...effect, type: type as typeof effect.type }, origin);
      applyCounterEffect(counters, effect.type, CONFIG);
    },
  };
  const traceCounters = (): void => trace.counters(plant.counters?.({ ...counters }) ?? counters);
  const inputs: StepInputs = { src: 'plain', acceptFail: 'none', completeFail: 'none' };
  return (n, p = {}) => {
    plant = p;
    for (const end = next + n; next < end; next++) {
      const conn = next;
      c.addConnection(world, conn);
      trace.input('listener', conn, { type: 'ACCEPT_ATTEMPT', acceptError: false }, inputs);
      c.acceptAttempt(world, host, conn, inputs);
      traceCounters();
      for (let k = conn; c.stateOf(world, 'connection', conn) !== 'closed'; k++) {
        const { machine, event } = CONN_EVENTS[k % CONN_EVENTS.length]!;
        if (c.runners[machine].compute(world.conns.get(conn)![machine], event).transitions.length === 0)
          continue;
        trace.input(machine, conn, event, NO_FAILURE);
        c.dispatch(world, host, machine, conn, event, NO_FAILURE);
        traceCounters();
      }
      world.conns.delete(conn);
    }
  };
}

/** Runs <n> connections into `trace` (tracedRun), with `plant`, then closes the trace. */
function run(trace: Trace, n: number, plant: Plant = {}): void {
  tracedRun(trace)(n, plant);
  trace.close();
}

/**
 * An encoder on a ring of <slots> numbers, read by a decoder every <every> calls of the tap. The
 * values the encoder posts reach the decoder late, after it has read once, as a message from
 * another thread may: the lines that name them wait. Returns the tap, the lines decoded, how many
 * reads stopped at a line that waited, the generations of the values posted, and the failures.
 */
function ringed(slots: number, every: number, internLimit: number, start = 0) {
  const ring = TraceRing.create(slots);
  // Both indices start at <start> (control words 0 and 1): positions are int32 and wrap at 2^31.
  ring.ctl[0] = start;
  ring.ctl[1] = start;
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
  return { ring, encoder, decoder, posted, tap, read, decoded, gens, failures, waited: () => waited };
}

describe('the encoding of the raw trace', () => {
  for (const [limit, slots, every, start] of [
    [100_000, 1 << 16, 7, 0],
    [12, 256, 3, 0x7fffff00 | 0], // the positions pass 2^31 - 1 and go on from -2^31
  ] as const) {
    it(`gives the worker exactly the lines the trace file gets (intern limit ${limit}, a ring of ${slots} numbers read every ${every} calls, from position ${start})`, () => {
      const tapped: TraceLine[] = [];
      const r = ringed(slots, every, limit, start);
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
      expect((r.ring.ctl[0]! - start) >>> 0 > 4 * slots).toBe(slots < 1000);
      expect(r.ring.ctl[0]! < start).toBe(start > 0); // wrapped past 2^31 - 1
    });
  }

  it('stops, saying how far behind the checker is, at the first line that would overwrite one not yet read', () => {
    const r = ringed(256, Number.POSITIVE_INFINITY, 100_000, -100); // crossing position 0 too
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

  it('refuses a ring whose size is not a power of two, or too small for two of the longest lines', () => {
    expect(() => TraceRing.create(1000)).toThrow(/power of two/);
    expect(() => TraceRing.create(128)).toThrow(/at least 220/);
    expect(() => TraceRing.create(256)).not.toThrow();
  });

  it('gives back every kind of param value and of step inputs as the line builders see them', () => {
    const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
    const event = {
      type: 'PROXY_HEADER_ERROR',
      n: 1.5,
      inf: Number.POSITIVE_INFINITY,
      yes: true,
      no: false,
      none: null,
      text: 'PRX_NOT_HDR',
      object: { a: 1 },
      missing: undefined,
    };
    const inputs = { src: 'plain', acceptFail: undefined } as unknown as Partial<StepInputs>;
    r.encoder.input(1, 'connection', 7, event, inputs);
    r.encoder.step(2, {
      machine: 'connection',
      conn: 7,
      event: { ...event },
      from: 'handshake.proxyHeader',
      to: 'error',
      transitions: ['t'],
      effects: [],
    });
    r.read();
    expect(r.failures).toEqual([]);
    expect(r.decoded).toStrictEqual([
      inputLine(1, 'connection', 7, event, inputs),
      stepLine(2, {
        machine: 'connection',
        conn: 7,
        event,
        from: 'handshake.proxyHeader',
        to: 'error',
        transitions: ['t'],
        effects: [],
      }),
    ]);
  });

  it('gives back an event a step line repeats from the step line before it, not from an older line', () => {
    const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
    const first = { type: 'ACCEPT_ATTEMPT', acceptError: false };
    const second = { type: 'SESSION_ACCEPT', src: 'plain' };
    const record = (event: { type: string }) => ({
      machine: 'session' as const,
      conn: 1,
      event,
      from: 'absent',
      to: 'embryonic',
      transitions: ['t'],
      effects: [],
    });
    r.encoder.input(1, 'listener', 1, first, {});
    r.encoder.step(2, record(second));
    r.encoder.step(3, record(second)); // the same event object: written as "the same as before"
    r.read();
    expect(r.failures).toEqual([]);
    expect(r.decoded.map((l) => (l.kind === 'step' ? l.event.type : l.kind))).toEqual([
      'input',
      'SESSION_ACCEPT',
      'SESSION_ACCEPT',
    ]);
  });

  it(`fails, and publishes nothing, for an event of more than ${MAX_PARAMS} params`, () => {
    const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
    const event: { type: string } & Record<string, unknown> = { type: 'PROXY_HEADER_OK' };
    for (let i = 0; i <= MAX_PARAMS; i++) event[`p${i}`] = i;
    r.encoder.input(1, 'connection', 1, event);
    expect(r.failures).toEqual([`event PROXY_HEADER_OK has more than ${MAX_PARAMS} params`]);
    expect(r.ring.ctl[0]).toBe(0);
    r.encoder.counters(2, zeroCounters()); // nothing after a failure
    expect(r.ring.ctl[0]).toBe(0);
  });

  it('gives back the machine and the connection of every line, from no connection to the largest id a place holds', () => {
    const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
    const effect = { type: 'fdClose', params: { site: 'kill_mini_session' } } as const;
    const places = (['listener', 'connection', 'session'] as const).flatMap((machine) =>
      [null, 0, 1, 7, 2 ** 51 - 1].map((conn) => ({ machine, conn })),
    );
    places.forEach((origin, i) => r.encoder.effect(i, effect as never, origin));
    r.read();
    expect(r.failures).toEqual([]);
    expect(r.decoded).toStrictEqual(places.map((origin, i) => effectLine(i, effect as never, origin)));
  });

  it.each([-1, 1.5, 2 ** 51])(
    'fails, and publishes nothing, for the connection id %d, which no place holds',
    (conn) => {
      const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
      r.encoder.effect(
        1,
        { type: 'fdClose', params: { site: 'kill_mini_session' } } as never,
        {
          machine: 'session',
          conn,
        } as never,
      );
      expect(r.failures).toEqual([
        `connection id ${conn} cannot be written in the ring (an integer from 0 to 2^51 - 1)`,
      ]);
      expect(r.ring.ctl[0]).toBe(0);
    },
  );

  it('frees room as a long read goes, so that a backlog of most of the ring is read while lines keep coming', () => {
    const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
    // A backlog of 60% of the ring (counters lines are 16 numbers), then one more line written for
    // every line read: the encoder must see the room the read frees before the read ends.
    for (let t = 0; t < 153; t++) r.encoder.counters(t, zeroCounters());
    let t = 153;
    expect(r.decoder.drain(() => r.encoder.counters(t++, zeroCounters()))).toBe(153);
    expect(r.failures).toEqual([]);
    r.read();
    expect(r.decoded.map((l) => l.t)).toEqual(Array.from({ length: 153 }, (_, i) => 153 + i));
  });

  it('keeps a line that names a value not received yet, and gives it once the value comes', () => {
    const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
    r.encoder.effect(1, { type: 'feconnInc' }, { machine: 'session', conn: 3 });
    const lines: TraceLine[] = [];
    expect(r.decoder.drain((l) => lines.push(l))).toBe(0);
    expect(r.decoder.waiting).toBe(true);
    const m = r.posted.shift()!;
    r.decoder.values(m.gen, m.values);
    expect(r.decoder.waiting).toBe(false);
    expect(r.decoder.drain((l) => lines.push(l))).toBe(1);
    expect(lines).toEqual([effectLine(1, { type: 'feconnInc' }, { machine: 'session', conn: 3 })]);
  });

  it('wakes a sleeping decoder when a line is published, and does not sleep past lines already there', async () => {
    const r = ringed(1 << 12, Number.POSITIVE_INFINITY, 100_000);
    const woken = r.decoder.sleep();
    expect(woken).not.toBeNull();
    expect(r.ring.ctl[2]).toBe(1); // the sleeping flag
    r.encoder.counters(1, zeroCounters()); // interns nothing: no message would wake a worker
    expect(r.ring.ctl[2]).toBe(0);
    expect(await woken).toBe('ok'); // notified, not timed out
    expect(r.decoder.sleep()).toBeNull(); // a line is waiting to be read
    expect(r.ring.ctl[2]).toBe(0);
  });
});

/** Resolves once <done> holds, checking every 10 ms for at most 15 s; rejects past that. */
async function eventually(done: () => boolean): Promise<void> {
  // 15 s: the worker runs at nice 19, and gets little of a core while the suite keeps both busy.
  for (let i = 0; i < 1500; i++) {
    if (done()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('not within 15 s');
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
      tracedRun(trace)(1);
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

  it('reports a divergence while the proxy runs, woken from its sleep by a line that posts no value', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text));
    const trace = new Trace(null, CONFIG, 'test', null, monitor);
    const more = tracedRun(trace);
    more(5);
    // Long enough for the worker to start, check those lines, and sleep on the ring.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(reports).toEqual([]);
    // One more connection whose counters lines lie: numbers only, nothing new to intern, so no
    // message wakes the worker; the ring's notify must.
    more(1, { counters: (c) => ({ ...c, cumConn: c.cumConn + 100 }) });
    await eventually(() => reports.length > 0);
    expect(reports[0]).toMatch(new RegExp(`^${MONITOR_PREFIX} divergence #1 at trace line \\d+`));
    trace.close();
    expect(await monitor.finish()).toMatch(/, [1-9]\d* divergences?$/);
  });

  it('says in its status how many lines it was handed and that its checker caught up with them', async () => {
    const tapped: TraceLine[] = [];
    const monitor = new ThreadedMonitor(CONFIG, () => {});
    const trace = new Trace(null, CONFIG, 'test', { line: (l) => tapped.push(l) }, monitor);
    tracedRun(trace)(5);
    expect(monitor.status()).toMatchObject({ state: 'checking', lines: tapped.length, why: null });
    await eventually(() => monitor.status().behind.numbers === 0);
    expect(monitor.status()).toEqual({
      state: 'checking',
      lines: tapped.length,
      behind: { numbers: 0, ms: 0 },
      why: null,
    });
    trace.close();
    const done = monitor.finish();
    expect(monitor.status().state).toBe('finishing');
    expect(await done).toMatch(/5 connections, 0 divergences$/);
  });

  it('reports an effect the machines did not emit, before its summary', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text));
    // The trace says cumConnInc where the machines emitted cumSessInc.
    run(new Trace(null, CONFIG, 'test', null, monitor), 3, {
      effectType: (t) => (t === 'cumSessInc' ? 'cumConnInc' : t),
    });
    const summary = await monitor.finish();
    expect(reports[0]).toMatch(new RegExp(`^${MONITOR_PREFIX} divergence #1 at trace line \\d+`));
    expect(summary).toMatch(/, [1-9]\d* divergences?$/);
  });

  it('stops taking lines, and says so in its status, when its checker stops on an internal error', async () => {
    const reports: string[] = [];
    const monitor = new ThreadedMonitor(CONFIG, (text) => reports.push(text));
    const trace = new Trace(null, CONFIG, 'test', null, monitor);
    // An input the checker knows no params of: it throws, reports, and stops (impl/monitor.ts).
    trace.input('connection', 0, { type: 'NOT_AN_INPUT' });
    await eventually(() => monitor.status().state === 'stopped');
    expect(reports).toEqual([
      expect.stringMatching(
        new RegExp(`^${MONITOR_PREFIX} internal error: .+; monitoring stops, the proxy serves on$`),
      ),
    ]);
    expect(monitor.status().why).toMatch(/^internal error: /);
    const handed = monitor.status().lines;
    tracedRun(trace)(2); // no longer encoded
    expect(monitor.status().lines).toBe(handed);
    trace.close();
    expect(await monitor.finish()).toMatch(/stopped early \(internal error: /);
  });

  it('stops monitoring, and says why, when its worker fails as it starts', async () => {
    const reports: string[] = [];
    // A configuration the trace format rejects: the worker throws as it starts.
    const bad = { ...CONFIG, feMaxconn: 'many' } as unknown as typeof CONFIG;
    const monitor = new ThreadedMonitor(bad, (text) => reports.push(text));
    const trace = new Trace(null, CONFIG, 'test', null, monitor);
    await eventually(() => reports.length > 0);
    expect(reports).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${MONITOR_PREFIX} internal error in the monitor's worker: .+; monitoring stops, the proxy serves on$`,
        ),
      ),
    ]);
    tracedRun(trace)(2); // not checked: the worker is gone
    trace.close();
    expect(await monitor.finish()).toMatch(/stopped early \(internal error in the monitor's worker/);
    expect(reports).toHaveLength(1);
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
    const status = monitor.status();
    expect(status).toMatchObject({ state: 'stopped', why: expect.stringMatching(/^the checker fell /) });
    expect(status.behind.numbers).toBeGreaterThan(0); // nothing was read
    trace.input('listener', 30, { type: 'ACCEPT_ATTEMPT', acceptError: false }); // ignored from now on
    expect(monitor.status().lines).toBe(status.lines);
    expect(await monitor.finish()).toMatch(/stopped early \(the checker fell \d+ ms of trace behind/);
    expect(reports).toHaveLength(1);
  });
});
