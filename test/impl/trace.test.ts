import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../../machines/config.ts';
import { zeroCounters } from '../../machines/counters.ts';
import { transitionId } from '../../machines/introspect.ts';
import { validateTraceLine } from '../../machines/traceFormat.ts';
import { Trace } from '../../impl/trace.ts';

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
    trace.step({
      machine: 'listener',
      conn: null,
      event: { type: 'ACCEPT_ATTEMPT', acceptError: false },
      from: 'ready',
      to: 'ready',
      transitions: [transitionId('listener.ready', 'ACCEPT_ATTEMPT', 5)], // a sample record, not a test of it
      effects: [{ type: 'actconnInc' }],
    });
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
