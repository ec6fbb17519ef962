/**
 * fast-check over the composed model: random configurations, 6 to 8 connections, and runs of up to
 * 200 commands, with every invariant checked after every command. Bounded here; EMBRYONIC_DEEP=1
 * (and `npm run check:deep`) runs many more.
 */
import { test as fcTest } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../machines/config.ts';
import { mutantById } from '../../machines/mutants.ts';
import { SystemModel } from '../../machines/system.ts';
import {
  configArb,
  EVENT_TEMPLATES,
  randomCheck,
  SystemCommand,
  type RunState,
} from '../../properties/arbitraries.ts';
import { CONFIG_SPACE, QUICK_CONNECTIONS } from '../../properties/bounds.ts';
import { checkTrace, explore, exploreSpace } from '../../properties/explore.ts';
import { INVARIANTS } from '../../properties/invariants.ts';

const DEEP = process.env.EMBRYONIC_DEEP === '1';

describe('random runs of the composed model', () => {
  it('keep every invariant after every command, over 6 to 8 connections', () => {
    const r = randomCheck({
      numRuns: DEEP ? 3000 : 150,
      maxCommands: DEEP ? 400 : 200,
      minConnections: 6,
      maxConnections: 8,
      seed: DEEP ? undefined : 20240601,
    });
    expect(r.failure).toBeNull();
    expect(r.runs).toBe(DEEP ? 3000 : 150);
    // Deeper than the exhaustive exploration of `npm test` reaches.
    expect(r.maxDepth).toBeGreaterThan(exploreSpace(CONFIG_SPACE, QUICK_CONNECTIONS).depth);
  });

  it('find a mutant and shrink its run to a few events that replay', () => {
    const mutant = mutantById('no-list-del-on-completion-failure');
    const r = randomCheck({
      numRuns: 200,
      maxCommands: 100,
      minConnections: 6,
      maxConnections: 8,
      seed: 7,
      defectFor: (c) => mutant.defect(c),
    });
    const f = r.failure!;
    expect(f.invariant).toBe('sessionsListExact');
    expect(f.events.length).toBeLessThanOrEqual(3);
    const seen = checkTrace(new SystemModel(f.config, f.connections, mutant.defect(f.config)), f.events);
    expect(seen.some((v) => v.invariant === 'sessionsListExact' && v.after === f.events.length)).toBe(true);
  });

  it('apply a command to the pick-th connection that can take its event', () => {
    const model = new SystemModel(makeConfig({ acceptProxy: true }), 3);
    const run: RunState = { model, state: model.initial(), trace: [], invariants: INVARIANTS };
    const ok = new SystemCommand({ type: 'PROXY_HEADER_OK' }, 1);
    expect(ok.check(run)).toBe(false);
    new SystemCommand({ type: 'ACCEPT' }, 0).run(run);
    new SystemCommand({ type: 'ACCEPT' }, 0).run(run);
    expect(ok.resolve(run)).toEqual({ type: 'PROXY_HEADER_OK', conn: 1 });
    expect(new SystemCommand({ type: 'PROXY_HEADER_OK' }, 2).resolve(run)).toEqual({
      type: 'PROXY_HEADER_OK',
      conn: 0,
    });
    ok.run(run);
    expect(run.trace).toEqual([{ type: 'ACCEPT' }, { type: 'ACCEPT' }, { type: 'PROXY_HEADER_OK', conn: 1 }]);
    expect(model.state(run.state, 'session', 1)).toBe('initialized');
  });

  it('offer every event type of the system', () => {
    const types = new Set(EVENT_TEMPLATES.map((t) => t.type));
    for (const t of [
      'ACCEPT',
      'PROXY_HEADER_OK',
      'PROXY_HEADER_ERROR',
      'TLS_OK',
      'TLS_ERROR',
      'CLIENT_CLOSE',
      'CLIENT_RESET',
      'TIMER_EXPIRE',
      'TASK_WAKEUP',
      'SESSION_END',
      'QUEUE_TASK',
      'RATE_PERIOD',
    ])
      expect(types).toContain(t);
  });
});

describe('random configurations, explored exhaustively', () => {
  fcTest.prop([configArb()], { numRuns: DEEP ? 300 : 12, seed: DEEP ? undefined : 11 })(
    'keep every invariant in every reachable state with 2 connections',
    (config) => {
      const r = explore({ config, connections: 2 });
      expect(r.violation).toBeNull();
      expect(r.complete).toBe(true);
    },
  );
});
