import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { traceCheckCommand } from '../../cli/traceCheck.ts';
import { CASES, profilesOf, selectCases } from '../../conformance/cases.ts';
import { runSuite } from '../../conformance/runner.ts';
import type { TransitionRecord } from '../../machines/compose.ts';
import { makeConfig } from '../../machines/config.ts';
import { zeroCounters } from '../../machines/counters.ts';
import { transitionId } from '../../machines/introspect.ts';
import { validateTraceLine, type TraceLine } from '../../machines/traceFormat.ts';
import { Trace, type RawTraceTap } from '../../impl/trace.ts';

/** A listener step as the composition records it: a sample record, not a test of it. */
const SAMPLE_STEP: TransitionRecord = {
  machine: 'listener',
  conn: null,
  event: { type: 'ACCEPT_ATTEMPT', acceptError: false },
  from: 'ready',
  to: 'ready',
  transitions: [transitionId('listener.ready', 'ACCEPT_ATTEMPT', 5)],
  effects: [{ type: 'actconnInc' }],
};

describe('the --trace file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-trace-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes valid lines of the project’s trace format, starting with a header', () => {
    const path = join(dir, 't.ndjson');
    const trace = new Trace(path, makeConfig(), 'test');
    trace.input(
      'listener',
      1,
      { type: 'ACCEPT_ATTEMPT', acceptError: false },
      { src: 'plain', acceptFail: 'none', completeFail: 'none' },
    );
    trace.step(SAMPLE_STEP);
    trace.effect({ type: 'actconnInc' }, { machine: 'listener', conn: null });
    trace.counters(zeroCounters());
    trace.close();
    trace.close();
    trace.effect({ type: 'jobsInc' }, { machine: 'listener', conn: null }); // dropped after close
    const lines = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; t: number });
    expect(lines.map((l) => l.kind)).toEqual(['header', 'input', 'step', 'effect', 'counters']);
    for (const l of lines) expect(validateTraceLine(l)).toBeNull();
    expect(lines.map((l) => l.t)).toEqual([...lines.map((l) => l.t)].sort((a, b) => a - b));
  });
});

describe('the trace tap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-trace-tap-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('receives every line the file gets, in order, and every line without a file too', () => {
    const write = (trace: Trace): void => {
      trace.input('listener', 1, { type: 'ACCEPT_ATTEMPT', acceptError: false });
      trace.effect({ type: 'actconnInc' }, { machine: 'listener', conn: null });
      trace.counters(zeroCounters());
      trace.close();
      trace.counters(zeroCounters()); // dropped after close, for the tap too
    };
    const path = join(dir, 'tapped.ndjson');
    const withFile: TraceLine[] = [];
    write(new Trace(path, makeConfig(), 'test', { line: (l) => withFile.push(l) }));
    const alone: TraceLine[] = [];
    write(new Trace(null, makeConfig(), 'test', { line: (l) => alone.push(l) }));
    const fromFile = readFileSync(path, 'utf8').trim().split('\n');
    expect(withFile.map((l) => JSON.stringify(l))).toEqual(fromFile);
    expect(alone.map((l) => l.kind)).toEqual(['header', 'input', 'effect', 'counters']);
  });

  it('hands its header to a raw tap given after the file opened, and refuses one once a step is written', () => {
    const calls: string[] = [];
    const raw: RawTraceTap = {
      header: (line) => calls.push(line.kind),
      input: (_t, _m, _c, event) => calls.push(event.type),
      step: () => calls.push('step'),
      effect: (_t, effect) => calls.push(effect.type),
      counters: () => calls.push('counters'),
    };
    const trace = new Trace(null, makeConfig(), 'test');
    trace.takeRawTap(raw);
    expect(() => trace.takeRawTap(raw)).toThrow(/before any line/);
    trace.input('listener', 1, { type: 'ACCEPT_ATTEMPT', acceptError: false });
    trace.step(SAMPLE_STEP);
    trace.effect({ type: 'actconnInc' }, { machine: 'listener', conn: null });
    trace.counters(zeroCounters());
    expect(calls).toEqual(['header', 'ACCEPT_ATTEMPT', 'step', 'actconnInc', 'counters']);
    const late = new Trace(null, makeConfig(), 'test');
    late.effect({ type: 'jobsInc' }, { machine: 'listener', conn: null });
    expect(() => late.takeRawTap(raw)).toThrow(/before any line/);
    expect(calls).toHaveLength(5);
  });

  it('stamps every line of a step with the time of its input, and reads the clock again after it', async () => {
    const lines: TraceLine[] = [];
    const trace = new Trace(null, makeConfig(), 'test', { line: (l) => lines.push(l) });
    const pause = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 5));
    const step = async (): Promise<void> => {
      trace.input('listener', 1, { type: 'ACCEPT_ATTEMPT', acceptError: false });
      await pause(); // time passes within the step
      trace.step(SAMPLE_STEP);
      await pause();
      trace.effect({ type: 'actconnInc' }, { machine: 'listener', conn: null });
      trace.counters(zeroCounters());
    };
    await step();
    await step();
    // RATE_PERIOD is a step of its own: a line after it reads the clock.
    trace.input(null, null, { type: 'RATE_PERIOD' });
    await pause();
    trace.effect({ type: 'jobsInc' }, { machine: 'listener', conn: null });
    trace.close();
    const times = lines.slice(1).map((l) => l.t);
    expect(new Set(times.slice(0, 4)).size).toBe(1);
    expect(new Set(times.slice(4, 8)).size).toBe(1);
    expect(times[4]!).toBeGreaterThan(times[0]!);
    expect(times[8]!).toBeGreaterThan(times[4]!);
    expect(times[9]!).toBeGreaterThan(times[8]!);
  });
});

/**
 * Conformance cases whose traces are checked in `npm test`: one frontend (fe_pp, one process) and
 * every kind of ending of an embryonic session. TLS, maxconn and the listen backlog are in the
 * random run of test/impl/monitor.test.ts. EMBRYONIC_DEEP=1 runs every runnable case on every
 * frontend instead (about 15 s).
 */
const TRACED_CASES = [
  'pp1/2.1/header-and-data-in-one-write',
  'pp1/2.1/not-a-header-gets-rst',
  'pp1/2.1/split-header-gets-rst-on-first-fragment',
  'pp2/2.2/crc32c-mismatch-gets-rst',
  'hs/client-close/fin-before-header-gets-fin',
  'hs/client-reset/rst-before-header-releases-slot',
  'hs/proxy-timeout/silent-client-gets-fin-at-deadline',
];
const DEEP = process.env.EMBRYONIC_DEEP === '1';

/** How late after its deadline a timer may fire in these traces (trace-check --deadline-slack). */
const DEADLINE_SLACK_MS = 100;

describe('the traces of conformance runs of the proxy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-trace-conform-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    `pass trace-check, one trace per frontend (${DEEP ? 'every case' : 'a handful of cases'})`,
    async () => {
      // The bundled proxy runs as dev12 here: every case whose frontend a dev12 target serves.
      const cases = DEEP
        ? CASES.filter((c) => profilesOf(c).includes('dev12'))
        : selectCases(CASES, TRACED_CASES);
      if (!DEEP) expect(cases).toHaveLength(TRACED_CASES.length);
      const frontends = [...new Set(cases.map((c) => c.frontend))];
      const report = await runSuite(
        [{ kind: 'impl', frontends, args: (fe) => ['--trace', join(dir, `${fe}.ndjson`)] }],
        cases,
      );
      expect(report.results.map((r) => [r.caseId, r.verdict])).toEqual(cases.map((c) => [c.id, 'pass']));
      for (const fe of frontends) {
        const file = join(dir, `${fe}.ndjson`);
        const printed: string[] = [];
        const log = vi.spyOn(console, 'log').mockImplementation((text: string) => printed.push(text));
        let code: number;
        try {
          code = await traceCheckCommand.run([file, '--json', '--deadline-slack', String(DEADLINE_SLACK_MS)]);
        } finally {
          log.mockRestore();
        }
        const out = JSON.parse(printed.join('\n')) as {
          verdict: string;
          stats: { accepted: number; ended: number };
          divergence: { line: number; message: string } | null;
        };
        expect([fe, code, out.verdict, out.divergence]).toEqual([fe, 0, 'conforms', null]);
        // Every case of the frontend accepted at least one connection, and every one ended.
        expect(out.stats.accepted, fe).toBeGreaterThanOrEqual(cases.filter((c) => c.frontend === fe).length);
        expect(out.stats.ended, fe).toBe(out.stats.accepted);
      }
      // Every case in a row takes about 20 s: more than the default timeout, which the handful fits.
    },
    DEEP ? 180_000 : 20_000,
  );
});
