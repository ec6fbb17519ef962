/**
 * The Promela rendering of the composed model: the committed file is what the machines generate,
 * and SPIN explores exactly the states the explorer explores without symmetry reduction, or stops
 * at an assertion where the tables it was generated from have no entry.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_SPACE } from '../../../properties/bounds.ts';
import { explore } from '../../../properties/explore.ts';
import { PML_FILE, PROMELA_CONFIG, promelaModel } from '../../../bench/promela/generate.ts';
import { runSpin, spinVersion } from '../../../bench/promela/spin.ts';

const named = CONFIG_SPACE.find((c) => c.name === PROMELA_CONFIG)!;
const spin = spinVersion();
const generated = promelaModel(named);

describe('bench/promela/embryonic.pml', () => {
  it('is what bench/promela/generate.ts writes from the machines today', () => {
    expect(readFileSync(PML_FILE, 'utf8')).toBe(generated);
  });

  it.skipIf(spin === null)(
    'makes SPIN find the states and transitions the explorer finds without symmetry reduction, N = 3',
    () => {
      const ours = explore({ config: named.config, connections: 3, symmetry: false });
      const theirs = runSpin(generated, 3, { optimize: '-O0', hashBits: 18 });
      expect(theirs.errors).toBe(0);
      expect(theirs.stored).toBe(ours.distinct);
      // pan counts the initial state's arrival as a transition too.
      expect(theirs.transitions).toBe(ours.generated + 1);
    },
  );

  it.skipIf(spin === null)('stops SPIN at an assertion where its tables have no entry', () => {
    const partial = promelaModel(named, 2); // tables of 2 connections, explored with 3
    const r = runSpin(partial, 3, { optimize: '-O0', hashBits: 18 });
    expect(r.errors).toBeGreaterThan(0);
    expect(r.output).toContain('assertion violated');
  });
});
