import { describe, expect, it } from 'vitest';
import type { CloseSeen, WireClient } from '../../conformance/client.ts';
import {
  DEADLINE_WINDOW,
  expectClose,
  expectOpenUntil,
  judgeOffset,
  MAX_CONNECT_LAG_MS,
  type CaseContext,
  type Check,
  type Reference,
} from '../../conformance/expect.ts';

// The client called connect() at 3.9 ms and saw it complete at 29.6 ms: its event loop stalled
// 25.7 ms, and the target may have accepted at any moment in between.
const lagged: Reference = { t: 29.6, since: 3.9, label: 'client#1 connect' };
const prompt: Reference = { t: 29.6, since: 29.4, label: 'client#1 connect' };
// A connect that took 200 ms (a stall of the client, or a SYN sent again).
const long: Reference = { t: 200, since: 0, label: 'client#1 connect' };

describe('judgeOffset', () => {
  it('passes a deadline close that is early from the completed connect but on time from its connect() call', () => {
    // Seen in CI on Debian's haproxy: the FIN came at accept + 300 ms, read as +276.4 ms.
    const offset = judgeOffset(306, lagged, 300, DEADLINE_WINDOW);
    expect(offset).toEqual({
      ok: true,
      measured: 302.1,
      text: '+276.4 ms after client#1 connect (+302.1 ms after its connect() call, 25.7 ms earlier)',
    });
  });

  it('fails a close earlier than the window even from the connect() call, measured from there', () => {
    const offset = judgeOffset(3.9 + 279.9, lagged, 300, DEADLINE_WINDOW);
    expect(offset.ok).toBe(false);
    expect(offset.measured).toBe(279.9);
  });

  it('judges the late edge from the completed connect, which the target cannot have preceded', () => {
    expect(judgeOffset(29.6 + 450, lagged, 300, DEADLINE_WINDOW).ok).toBe(true);
    expect(judgeOffset(29.6 + 450.1, lagged, 300, DEADLINE_WINDOW)).toEqual({
      ok: false,
      measured: 450.1,
      text: '+450.1 ms after client#1 connect',
    });
  });

  it(`judges a connect longer than ${MAX_CONNECT_LAG_MS} ms at both of its ends, so that it cannot hide a deadline of the wrong length`, () => {
    // A target that armed 300 ms where 100 ms was due, its FIN 100 ms after the client saw the
    // connect complete: lenient judging would pass it.
    const wrong = judgeOffset(300, long, 100, [-20, 100]);
    expect(wrong.ok).toBe(false);
    expect(wrong.measured).toBe(300);
    expect(wrong.text).toBe(
      `+100 ms after client#1 connect (+300 ms after its connect() call, 200 ms earlier: a connect longer than ${MAX_CONNECT_LAG_MS} ms is judged at both of its ends)`,
    );
    // The right deadline, struck from a moment the target may have accepted at, still fails where
    // some moment of the connect would put it outside the window: the verdict waits for a rerun.
    expect(judgeOffset(200 + 100, long, 100, [-20, 300]).ok).toBe(true);
    expect(judgeOffset(200 + 70, long, 100, [-20, 300]).ok).toBe(false);
  });

  it('gives the plain window for a reference without a connect() call, or when the client saw it at once', () => {
    const plain: Reference = { t: 100, label: 'the header' };
    expect(judgeOffset(100 + 279.9, plain, 300, DEADLINE_WINDOW).ok).toBe(false);
    expect(judgeOffset(100 + 280, plain, 300, DEADLINE_WINDOW)).toEqual({
      ok: true,
      measured: 280,
      text: '+280 ms after the header',
    });
    expect(judgeOffset(29.6 + 279.7, prompt, 300, DEADLINE_WINDOW).ok).toBe(false);
    expect(judgeOffset(29.6 + 279.8, prompt, 300, DEADLINE_WINDOW).ok).toBe(true);
  });

  it('refuses an event before the connect() call for an at-once window, and takes one during the connect', () => {
    expect(judgeOffset(29, prompt, 0, [0, 100]).ok).toBe(false);
    expect(judgeOffset(29.5, prompt, 0, [0, 100]).ok).toBe(true);
  });
});

describe('the close checks', () => {
  /** A case context that records its checks, on a clock the test sets. */
  function context(now = 0) {
    const checks: Check[] = [];
    const ctx = {
      log: { now: () => now },
      check: (c: Check) => void checks.push(c),
      sleepUntil: () => Promise.resolve(),
    } as unknown as CaseContext;
    return { ctx, checks };
  }
  /** A client the target closed with <seen> (null: still open). */
  const closedWith = (seen: CloseSeen | null): WireClient =>
    ({
      name: 'client#1',
      closedBy: seen,
      waitForClose: () => Promise.resolve(seen),
    }) as unknown as WireClient;
  const accept: Reference = { t: 10, label: 'client#1 connect' };

  it('fails a close of the other kind, even on time', async () => {
    const { ctx, checks } = context();
    await expectClose(ctx, closedWith({ kind: 'rst', at: 310 }), 'fin', accept, 300);
    await expectClose(ctx, closedWith({ kind: 'fin', at: 310 }), 'fin', accept, 300);
    expect(checks.map((c) => c.ok)).toEqual([false, true]);
  });

  it('fails a client still open, and one closed outside the window', async () => {
    const { ctx, checks } = context();
    await expectClose(ctx, closedWith(null), 'fin', accept, 300);
    await expectClose(ctx, closedWith({ kind: 'fin', at: 200 }), 'fin', accept, 300);
    expect(checks.map((c) => [c.ok, c.actual])).toEqual([
      [false, 'still open'],
      [false, expect.stringMatching(/^FIN at \+190/)],
    ]);
  });

  it('holds a client open until the given time, and fails one closed at or before it', async () => {
    const { ctx, checks } = context(500);
    await expectOpenUntil(ctx, closedWith(null), 400, 'before its deadline');
    await expectOpenUntil(ctx, closedWith({ kind: 'fin', at: 450 }), 400, 'before its deadline');
    await expectOpenUntil(ctx, closedWith({ kind: 'fin', at: 400 }), 400, 'before its deadline');
    await expectOpenUntil(ctx, closedWith({ kind: 'rst', at: 100 }), 400, 'before its deadline');
    expect(checks.map((c) => c.ok)).toEqual([true, true, false, false]);
  });
});

describe('judgeOffset at the edge of a lenient connect', () => {
  it(`is lenient for a connect of exactly ${MAX_CONNECT_LAG_MS} ms, strict just past it`, () => {
    const at = (lag: number): Reference => ({ t: 100, since: 100 - lag, label: 'connect' });
    // 270 ms after the completion (before the window's 280), 320 after the call (within it).
    expect(judgeOffset(370, at(MAX_CONNECT_LAG_MS), 300, DEADLINE_WINDOW).ok).toBe(true);
    expect(judgeOffset(370, at(MAX_CONNECT_LAG_MS + 0.1), 300, DEADLINE_WINDOW).ok).toBe(false);
  });
});
