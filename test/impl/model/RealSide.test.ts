/**
 * The beginning and the end of a real-proxy run (test/impl/model/RealSide.ts beginRun, finishRun),
 * on a real proxy: a run begins with the backend in echo mode whatever the last run left; at the
 * end, a client still in the backlog is reset like the others, and where its stream would start at
 * accept against a refusing backend, the backend accepts again first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIGS } from './configs.ts';
import { ProxyUnderTest } from './RealSide.ts';
import { observe } from './observe.ts';
import { runScript, type Action } from './script.ts';

let put: ProxyUnderTest;

beforeAll(async () => {
  put = await ProxyUnderTest.start(CONFIGS.http26);
}, 20_000);

afterAll(async () => {
  await put.stop();
});

describe('the beginning of a run', () => {
  it('puts the backend in echo mode, as the model starts, even if the last run left it refusing', async () => {
    await put.backend.setMode('refuse'); // as a run that failed before its end leaves it
    const { model, real } = await runScript(put, [{ do: 'connect', src: 'plain' }]);
    expect(put.backend.mode).toBe('echo');
    expect(model.clients[0]!.stream).toEqual({ mode: 'echo' });
    expect(real.baseline.be.econ).toBe((await observe(put)).be.econ);
  });
});

describe('the end of a run', () => {
  it('lets the backend accept again before it resets a client in the backlog whose stream would meet a refusal', async () => {
    // The failed session allocation leaves the listener waiting for its queue task: c1 is still in
    // the backlog when the run ends, and is accepted only once time passes, after its reset.
    const actions: Action[] = [
      { do: 'fault', site: 'session' },
      { do: 'backend', mode: 'refuse' },
      { do: 'connect', src: 'plain' },
      { do: 'connect', src: 'plain' },
    ];
    const { model, real } = await runScript(put, actions);
    expect(real.script).toContain(
      'the backend echoes (end of the run, before a client in the backlog resets)',
    );
    expect(real.script.indexOf('c1 resets (end of the run)')).toBeGreaterThan(
      real.script.indexOf('the backend echoes (end of the run, before a client in the backlog resets)'),
    );
    expect(model.clients[1]!.stream).toEqual({ mode: 'echo' });
    expect(model.tally.refused).toBe(0);
  });

  it('keeps a refusing backend to the end when no client waits in the backlog', async () => {
    const actions: Action[] = [
      { do: 'connect', src: 'plain' },
      { do: 'backend', mode: 'refuse' },
      { do: 'connect', src: 'plain' },
    ];
    const { model, real } = await runScript(put, actions);
    expect(real.script.filter((l) => l.startsWith('the backend echoes'))).toEqual([]);
    expect(model.clients[1]!.stream).toEqual({ mode: 'refuse' });
    expect(model.tally.refused).toBe(1);
  });
});
