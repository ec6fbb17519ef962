import { describe, expect, it } from 'vitest';
import { DEADLINE_WINDOW, judgeOffset, type Reference } from '../../conformance/expect.ts';

// The client called connect() at 3.9 ms and saw it complete at 29.6 ms: its event loop stalled
// 25.7 ms, and the target may have accepted at any moment in between.
const lagged: Reference = { t: 29.6, since: 3.9, label: 'client#1 connect' };
const prompt: Reference = { t: 29.6, since: 29.4, label: 'client#1 connect' };

describe('judgeOffset', () => {
  it('passes a deadline close that is early from the completed connect but on time from its start', () => {
    // Seen in CI on Debian's haproxy: the FIN came at accept + 300 ms, read as +276.4 ms.
    const offset = judgeOffset(306, lagged, 300, DEADLINE_WINDOW);
    expect(offset.ok).toBe(true);
    expect(offset.measured).toBe(302.1);
    expect(offset.text).toBe('+276.4 ms after client#1 connect (+302.1 ms after it began, 25.7 ms earlier)');
  });

  it('fails a close earlier than the window even from the start of the connect', () => {
    const offset = judgeOffset(3.9 + 279.9, lagged, 300, DEADLINE_WINDOW);
    expect(offset.ok).toBe(false);
    expect(offset.measured).toBe(254.2);
  });

  it('judges the late edge from the completed connect, which the target cannot have preceded by much', () => {
    expect(judgeOffset(29.6 + 450, lagged, 300, DEADLINE_WINDOW).ok).toBe(true);
    expect(judgeOffset(29.6 + 450.1, lagged, 300, DEADLINE_WINDOW)).toEqual({
      ok: false,
      measured: 450.1,
      text: '+450.1 ms after client#1 connect',
    });
  });

  it('gives the plain window for a reference without a start, or when the client saw it at once', () => {
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

  it('refuses an event before the reference for an at-once window', () => {
    expect(judgeOffset(29, prompt, 0, [0, 100]).ok).toBe(false);
    expect(judgeOffset(29.5, prompt, 0, [0, 100]).ok).toBe(true);
  });
});
