import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../machines/config.ts';
import { validateTraceLine, type TraceLine } from '../../machines/traceFormat.ts';
import { randomTrace, scriptedTrace, TraceGenerator } from '../../properties/traceGen.ts';

const CONFIG = makeConfig({ feMaxconn: 3, globalMaxconn: 3 });

describe('the reference trace generator', () => {
  it('accepts every connection of a random run under arbitrary ids and drives each to its end', () => {
    const lines: TraceLine[] = [];
    const run = randomTrace(CONFIG, { connections: 40, seed: 4, firstId: 500, idStride: 13 }, (l) =>
      lines.push(l),
    );
    expect(run).toMatchObject({ accepted: 40, stuck: false });
    const accepted = new Set(
      lines
        .filter((l) => l.kind === 'step' && l.machine === 'connection' && l.from === 'pending')
        .map((l) => l.conn),
    );
    expect(accepted.size).toBe(40);
    expect([...accepted].every((id) => id !== null && id >= 500 && (id - 500) % 13 === 0)).toBe(true);
    const last = lines.findLast((l) => l.kind === 'counters')!;
    expect(last).toMatchObject({
      counters: { feconn: 0, nbconn: 0, actconn: 0, jobs: 0, cumConn: expect.any(Number) },
    });
    expect(lines.every((l) => validateTraceLine(l) === null)).toBe(true);
  });

  it('writes the same trace for the same seed, and another for another seed', () => {
    const run = (seed: number): TraceLine[] => {
      const lines: TraceLine[] = [];
      randomTrace(CONFIG, { connections: 10, seed }, (l) => lines.push(l));
      return lines;
    };
    expect(run(9)).toEqual(run(9));
    expect(run(9)).not.toEqual(run(10));
  });

  it('moves time to the deadline when the deadline strikes, and refuses what cannot happen', () => {
    const lines = scriptedTrace(CONFIG, [
      { type: 'ACCEPT', conn: 1 },
      { type: 'TIMER_EXPIRE', conn: 1 },
    ]);
    const wakeup = lines.find((l) => l.kind === 'input' && l.name === 'TASK_WAKEUP')!;
    expect(wakeup).toMatchObject({ t: 1 + 300, params: { timer: true } });
    expect(() => scriptedTrace(CONFIG, [{ type: 'SESSION_END', conn: 1 }])).toThrow(/cannot happen/);
    const gen = new TraceGenerator(CONFIG, () => {});
    expect(gen.apply({ type: 'QUEUE_TASK', queue: 'global' })).toBe(false);
    expect(gen.apply({ type: 'ACCEPT', conn: 7 })).toBe(true);
    expect(gen.apply({ type: 'ACCEPT', conn: 7 })).toBe(false);
  });

  it('leaves params and StepInputs out of its inputs when asked, and logs only what it is told to', () => {
    const script = [
      { type: 'ACCEPT', conn: 2, src: 'denied' },
      { type: 'ACCEPT', conn: 3 },
      { type: 'PROXY_HEADER_ERROR', conn: 3, code: 'PRX_TRUNCATED' },
    ] as const;
    const bare = scriptedTrace(CONFIG, script, {
      inputs: 'none',
      steps: false,
      effects: false,
      counters: false,
      header: false,
    });
    expect(bare.map((l) => l.kind)).toEqual(['input', 'input', 'input']);
    expect(bare.every((l) => l.kind === 'input' && l.params === undefined && l.inputs === undefined)).toBe(
      true,
    );
    const full = scriptedTrace(CONFIG, script);
    expect(full[0]).toMatchObject({ kind: 'header', complete: ['step', 'effect'] });
    expect(full[1]).toMatchObject({
      kind: 'input',
      inputs: { src: 'denied', acceptFail: 'none', completeFail: 'none' },
    });
  });
});
