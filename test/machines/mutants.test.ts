/**
 * The mutants: every defect is killed by the invariant it is expected to break, with a
 * counterexample of minimal length; every invariant is broken by some mutant (none is a
 * tautology); and docs/MUTANTS.md is the report of this very run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MUTANTS, mutantById } from '../../machines/mutants.ts';
import { SystemModel } from '../../machines/system.ts';
import { huntMutants, mutantsMarkdown, type MutantVerdict } from '../../cli/mutants.ts';
import { CONFIG_SPACE, FULL_CONNECTIONS } from '../../properties/bounds.ts';
import { checkTrace, explore, hunt } from '../../properties/explore.ts';
import { INVARIANTS, invariantByName } from '../../properties/invariants.ts';

let verdicts: MutantVerdict[] = [];

beforeAll(() => {
  verdicts = huntMutants(FULL_CONNECTIONS);
});

const verdictOf = (id: string): MutantVerdict => verdicts.find((v) => v.mutant.id === id)!;

describe('the mutants', () => {
  it('have unique ids, a title, a description, and name invariants that exist', () => {
    expect(new Set(MUTANTS.map((m) => m.id)).size).toBe(MUTANTS.length);
    for (const m of MUTANTS) {
      expect(m.title.length).toBeGreaterThan(0);
      expect(m.description.length).toBeGreaterThan(0);
      expect(m.violates.length).toBeGreaterThan(0);
      for (const name of m.violates) expect(() => invariantByName(name)).not.toThrow();
      expect(m.kind === 'history').toBe(m.commit !== null);
    }
  });

  it("include every historical bug the issue names, with HAProxy's commit", () => {
    const commits = MUTANTS.filter((m) => m.kind === 'history').map((m) => m.commit!);
    for (const c of [
      '2542b53b1',
      '3b24641745',
      '05bf5e1c3',
      'cbaaec475',
      '78eaebed1',
      'f8a49eab4',
      '0ede5a331',
      '65ae1347c',
    ])
      expect(commits.some((x) => x.includes(c))).toBe(true);
  });

  it('are all killed', () => {
    expect(verdicts.filter((v) => !v.kill).map((v) => v.mutant.id)).toEqual([]);
    expect(verdicts).toHaveLength(MUTANTS.length);
  });

  it.each(MUTANTS.map((m) => [m.id, m.violates[0]!] as const))('kill %s with %s first', (id, expected) => {
    expect(verdictOf(id).kill?.counterexample.invariant).toBe(expected);
  });

  it.each(MUTANTS.map((m) => [m.id] as const))(
    'kill %s with a counterexample of minimal length that replays',
    (id) => {
      const { mutant, kill } = verdictOf(id);
      const cx = kill!.counterexample;
      // No configuration of the space shows a violation in fewer events at that N, nor at a smaller N.
      for (const { config } of CONFIG_SPACE)
        for (let n = 1; n <= kill!.connections; n++) {
          const shorter = n === kill!.connections ? { maxDepth: cx.events.length - 1 } : {};
          expect(
            explore({ config, connections: n, defect: mutant.defect(config), ...shorter }).violation,
          ).toBeNull();
        }
      // The counterexample replays on the defective model, breaking the invariant on its last event only.
      const model = new SystemModel(kill!.config, kill!.connections, mutant.defect(kill!.config));
      const seen = checkTrace(model, cx.events);
      expect(seen.map((v) => v.after)).toEqual(seen.map(() => cx.events.length));
      expect(seen[0]!.invariant).toBe(cx.invariant);
      // And the same events keep every invariant on the model without the defect.
      expect(checkTrace(new SystemModel(kill!.config, kill!.connections), cx.events)).toEqual([]);
    },
  );

  it.each(INVARIANTS.map((inv) => [inv.name] as const))('break %s alone (it is no tautology)', (name) => {
    const breakers = MUTANTS.filter((m) => m.violates.includes(name));
    expect(breakers.length).toBeGreaterThan(0);
    for (const m of breakers) {
      const kill = hunt((c) => m.defect(c), CONFIG_SPACE, FULL_CONNECTIONS, {
        invariants: [invariantByName(name)],
      });
      expect(kill?.counterexample.invariant, `${m.id} breaks ${name}`).toBe(name);
    }
  });

  it('move the fd registration of fd-registered-at-completion from accept to completion, not only drop it', () => {
    const config = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy')!.config;
    const mutant = mutantById('fd-registered-at-completion');
    const model = new SystemModel(config, 1, mutant.defect(config));
    const sessionEffects = (r: { records: { machine: string; effects: { type: string }[] }[] } | null) =>
      r!.records.filter((x) => x.machine === 'session').flatMap((x) => x.effects.map((e) => e.type));
    const accepted = model.step(model.initial(), { type: 'ACCEPT' });
    expect(sessionEffects(accepted)).not.toContain('fdInsert');
    const completed = sessionEffects(model.step(accepted!.state, { type: 'PROXY_HEADER_OK', conn: 0 }));
    expect(completed).toContain('fdInsert');
    expect(completed.indexOf('fdInsert')).toBeLessThan(completed.indexOf('listAdd'));
  });

  it('leave the model untouched where their defect does not apply', () => {
    const plain = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy')!.config;
    const leak = mutantById('fd-leak-tracked-xprt');
    expect(leak.defect(plain)).toEqual({});
    expect(explore({ config: plain, connections: 2, defect: leak.defect(plain) }).violation).toBeNull();
  });

  it('are reported in docs/MUTANTS.md as this run finds them', () => {
    const committed = readFileSync(join(import.meta.dirname, '../../docs/MUTANTS.md'), 'utf8');
    expect(committed).toBe(mutantsMarkdown(verdicts));
  });
});
