import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { transitionOf } from '../../conformance/cases.ts';
import {
  markTraces,
  readTraceSince,
  takesPredictedCheck,
  transitionsTaken,
} from '../../conformance/trace.ts';
import { Trace } from '../../impl/trace.ts';
import type { TransitionRecord } from '../../machines/compose.ts';
import { makeConfig } from '../../machines/config.ts';
import { zeroCounters } from '../../machines/counters.ts';
import { INPUTS, type InputName } from '../../machines/traceFormat.ts';

const ATTEMPT = transitionOf('listener.ready', 'ACCEPT_ATTEMPT');
const ACCEPT = transitionOf('connection.pending', 'ACCEPT');
const EMBRYONIC = transitionOf('session.absent', 'SESSION_ACCEPT', 'handshakePending');
const RETURNED = transitionOf('listener.ready', 'ACCEPT_RETURNED');
const CLIENT_CLOSE = transitionOf('connection.handshake.proxyHeader', 'CLIENT_CLOSE');
const KILLED = transitionOf('session.embryonic', 'HANDSHAKE_END', 'connectionHasError');
const LOGGED = transitionOf('session.killed', 'always', 'logsKill');
const TIMEOUT = transitionOf('connection.handshake.proxyHeader', 'TIMEOUT');

/**
 * The step record of transition <id> (machine.state|EVENT|index, introspect.ts) taken by <conn>,
 * with the eventless transitions <then> it led to, as the proxy's Host.record receives it. It
 * stays in its state: these tests read the ids only.
 */
function step(id: string, conn: number | null, ...then: string[]): TransitionRecord {
  const [source, type] = id.split('|') as [string, string];
  const machine = source.slice(0, source.indexOf('.')) as TransitionRecord['machine'];
  const from = source.slice(machine.length + 1);
  return { machine, conn, event: { type }, from, to: from, transitions: [id, ...then], effects: [] };
}

/**
 * Writes one step of the proxy into <trace> as impl/driver.ts does: the line of its input <name>
 * (for <conn>: the listener's ACCEPT_ATTEMPT names the connection it offers), its step lines, then
 * the counters line that ends it.
 */
function writeStep(trace: Trace, conn: number | null, name: InputName, ...records: TransitionRecord[]): void {
  const event = name === 'ACCEPT_ATTEMPT' ? { type: name, acceptError: false } : { type: name };
  trace.input(INPUTS[name].machine, conn, event);
  for (const r of records) trace.step(r);
  trace.counters(zeroCounters());
}

/** Writes the step in which the listener accepts connection <conn> into <trace>. */
function writeAccept(trace: Trace, conn: number): void {
  writeStep(
    trace,
    conn,
    'ACCEPT_ATTEMPT',
    step(ATTEMPT, null),
    step(ACCEPT, conn),
    step(EMBRYONIC, conn),
    step(RETURNED, null),
  );
}

describe('the transitions a stretch of trace took', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-conform-trace-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("are its step lines' transition ids, the listener's (conn null) among them, each once in the order first taken", () => {
    const path = join(dir, 'one.ndjson');
    const trace = new Trace(path, makeConfig(), 'test');
    writeAccept(trace, 7);
    writeStep(trace, 8, 'ACCEPT_ATTEMPT', step(ATTEMPT, null)); // not taken
    trace.close();
    expect(readTraceSince([path], [0])).toEqual({
      transitions: [ATTEMPT, ACCEPT, EMBRYONIC, RETURNED],
      steps: 5,
      connections: 1,
      earlierSteps: 0,
      earlierConnections: 0,
    });
  });

  it('are only those written since the mark, in every file of the target together', () => {
    const paths = [join(dir, 'fe_a.ndjson'), join(dir, 'fe_b.ndjson')];
    const [a, b] = paths.map((p) => new Trace(p, makeConfig(), 'test')) as [Trace, Trace];
    writeAccept(a, 1); // an earlier case
    writeStep(a, 1, 'TASK_WAKEUP', step(TIMEOUT, 1));
    const mark = markTraces(paths);
    writeAccept(a, 2);
    writeStep(a, 2, 'CLIENT_CLOSE', step(CLIENT_CLOSE, 2));
    writeAccept(b, 2);
    writeStep(b, 2, 'PROXY_HEADER_ERROR', step(KILLED, 2, LOGGED));
    a.close();
    b.close();
    // Each process numbers its own connections: connection 2 of fe_a is not connection 2 of fe_b.
    expect(readTraceSince(paths, mark)).toEqual({
      transitions: [ATTEMPT, ACCEPT, EMBRYONIC, RETURNED, CLIENT_CLOSE, KILLED, LOGGED],
      steps: 10,
      connections: 2,
      earlierSteps: 0,
      earlierConnections: 0,
    });
  });

  it("leave out the steps of a connection accepted before the stretch (a previous case's leftovers), counting them apart", () => {
    const path = join(dir, 'leftover.ndjson');
    const trace = new Trace(path, makeConfig(), 'test');
    writeAccept(trace, 1); // the previous case: its settle failed, connection 1 outlives it
    const mark = markTraces([path]);
    writeStep(trace, 1, 'TASK_WAKEUP', step(TIMEOUT, 1)); // its deadline, in this case
    writeStep(trace, 1, 'PROXY_HEADER_ERROR', step(KILLED, 1, LOGGED));
    writeAccept(trace, 2); // this case's own connection
    writeStep(trace, 2, 'CLIENT_CLOSE', step(CLIENT_CLOSE, 2));
    trace.close();
    const taken = readTraceSince([path], mark);
    expect(taken).toEqual({
      transitions: [ATTEMPT, ACCEPT, EMBRYONIC, RETURNED, CLIENT_CLOSE],
      steps: 5,
      connections: 1,
      earlierSteps: 2,
      earlierConnections: 1,
    });
    // A case whose prediction is the deadline kill does not pass on the previous case's leftovers.
    expect(takesPredictedCheck([ACCEPT, TIMEOUT], taken)).toMatchObject({ ok: false });
    expect(takesPredictedCheck([ACCEPT, TIMEOUT], taken).actual).toMatch(
      new RegExp(`^not taken: ${escape(TIMEOUT)}; `),
    );
  });

  it('leave out a line still being written at either end of the window, and count a missing file as empty', () => {
    const path = join(dir, 'partial.ndjson');
    const line = (conn: number, id: string): string =>
      `${JSON.stringify({ v: 1, t: 0, conn, kind: 'step', machine: 'connection', event: { type: 'ACCEPT' }, from: 'pending', to: 'pending', transitions: [id] })}\n`;
    const attempt = (conn: number): string =>
      `${JSON.stringify({ v: 1, t: 0, conn, kind: 'input', machine: 'listener', name: 'ACCEPT_ATTEMPT', params: { acceptError: false } })}\n`;
    expect(markTraces([path])).toEqual([0]);
    writeFileSync(path, line(1, TIMEOUT) + line(2, ACCEPT).slice(0, 20)); // a mark inside conn 2's line
    const mark = markTraces([path]);
    appendFileSync(
      path,
      line(2, ACCEPT).slice(20) +
        attempt(3) +
        line(3, CLIENT_CLOSE) +
        attempt(4) +
        line(4, KILLED).slice(0, 30),
    );
    expect(readTraceSince([path], mark)).toEqual({
      transitions: [CLIENT_CLOSE],
      steps: 1,
      connections: 1,
      earlierSteps: 0,
      earlierConnections: 0,
    });
    expect(() => readTraceSince([join(dir, 'missing.ndjson')], [5])).toThrow(/missing\.ndjson: ENOENT/);
  });

  it('refuse a file shorter than at the mark, truncated or recreated since, with a clear error', () => {
    const path = join(dir, 'recreated.ndjson');
    const first = new Trace(path, makeConfig(), 'test');
    writeAccept(first, 1);
    first.close();
    const mark = markTraces([path]);
    const second = new Trace(path, makeConfig(), 'test'); // the proxy restarted: the file is recreated
    second.close();
    expect(() => readTraceSince([path], mark)).toThrow(
      new RegExp(
        `^trace ${escape(path)}: the file is shorter \\(\\d+ bytes\\) than when the case began \\(${mark[0]} bytes\\): it was truncated or recreated meanwhile$`,
      ),
    );
  });

  it('refuse a line that is not JSON, a line the trace format does not allow and a step line without its transition ids, naming the line', () => {
    const stepLine = (extra: object): string =>
      JSON.stringify({
        v: 1,
        t: 0,
        conn: 1,
        kind: 'step',
        machine: 'connection',
        event: { type: 'ACCEPT' },
        from: 'pending',
        to: 'pending',
        ...extra,
      });
    const valid = stepLine({ transitions: [ACCEPT] });
    expect(() => transitionsTaken(`${valid}\n{oops\n`, 'fe_pp')).toThrow(/^fe_pp line 2: not JSON: /);
    expect(() => transitionsTaken(`${valid}\n${stepLine({ to: 'nowhere' })}\n`, 'fe_pp')).toThrow(
      /^fe_pp line 2: to must be a state of the connection machine: /,
    );
    expect(() => transitionsTaken(`${stepLine({})}\n`, 'fe_pp')).toThrow(
      /^fe_pp line 1: a step line without its list of transition ids$/,
    );
    // Header, input, effect and counters lines carry no transition, whatever they hold.
    const path = join(dir, 'no-steps.ndjson');
    const trace = new Trace(path, makeConfig(), 'test');
    trace.input('connection', 3, { type: 'CLIENT_CLOSE' });
    trace.effect({ type: 'jobsDec' }, { machine: 'session', conn: 3 });
    trace.counters(zeroCounters());
    trace.close();
    expect(readTraceSince([path], [0])).toEqual({
      transitions: [],
      steps: 0,
      connections: 0,
      earlierSteps: 0,
      earlierConnections: 0,
    });
  });
});

describe('the check that a case takes the transitions the model predicts', () => {
  const taken = {
    transitions: [ATTEMPT, ACCEPT, EMBRYONIC, RETURNED, CLIENT_CLOSE],
    steps: 6,
    connections: 1,
    earlierSteps: 0,
    earlierConnections: 0,
  };

  it('holds when exactly the predicted transitions were taken, each at least once', () => {
    expect(takesPredictedCheck([ACCEPT, CLIENT_CLOSE, ATTEMPT, EMBRYONIC, RETURNED, ACCEPT], taken)).toEqual({
      what: 'the case takes the transitions the model predicts',
      expected:
        "the 5 predicted transition(s), and no other, in the steps of the proxy's trace during the case",
      actual: 'all taken, no other (6 step(s) on 1 connection(s))',
      ok: true,
    });
  });

  it('fails naming every predicted transition that was not taken, and every one taken but not predicted', () => {
    const check = takesPredictedCheck([ATTEMPT, ACCEPT, EMBRYONIC, RETURNED, TIMEOUT, LOGGED], taken);
    expect(check.ok).toBe(false);
    expect(check.actual).toBe(
      `not taken: ${TIMEOUT}, ${LOGGED}; taken, not predicted: ${CLIENT_CLOSE} (6 step(s) on 1 connection(s))`,
    );
    // A scenario that leaves out what the case's body made the proxy do fails as well.
    expect(takesPredictedCheck([ATTEMPT, ACCEPT, EMBRYONIC, RETURNED], taken)).toMatchObject({
      actual: `taken, not predicted: ${CLIENT_CLOSE} (6 step(s) on 1 connection(s))`,
      ok: false,
    });
  });

  it('fails when the trace could not be read, with the reason', () => {
    expect(takesPredictedCheck([ACCEPT], new Error('trace /x: ENOENT'))).toMatchObject({
      actual: 'no trace: trace /x: ENOENT',
      ok: false,
    });
  });
});

/** Returns <text> as a regular expression that matches it literally. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
