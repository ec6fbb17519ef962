import { describe, expect, it } from 'vitest';
import { machineCoverage } from '../../properties/machinePaths.ts';

describe('paths generated from the machines with xstate/graph', () => {
  it.each(['connection', 'session', 'listener'] as const)(
    'reach every state and every transition of the %s machine',
    (name) => {
      const c = machineCoverage(name);
      expect(c.states.filter((s) => !c.statesReached.includes(s))).toEqual([]);
      expect(c.transitions.filter((t) => !c.transitionsTaken.includes(t))).toEqual([]);
      expect(c.paths).toBeGreaterThanOrEqual(c.transitions.length);
    },
  );
});
