/**
 * The compiled model agrees with XState: its step and SystemModel.step (the machines' transition
 * functions through compose.ts) give the same successor and the same machine steps for every event
 * in every reachable state; the explorer's two engines find the same states, the same transitions
 * and the same counterexamples, mutants included.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MUTANTS } from '../../machines/mutants.ts';
import { SystemModel, type SystemState } from '../../machines/system.ts';
import { CONFIG_SPACE, FULL_CONNECTIONS, QUICK_CONNECTIONS } from '../../properties/bounds.ts';
import { CompiledModel, StateSet, walkCompiled, writeOnlyCounters } from '../../properties/compiled.ts';
import { buildAlphabet, describeEvent, explore, hunt, stateKey } from '../../properties/explore.ts';
import {
  invariantByName,
  INVARIANTS,
  scopeOf,
  viewOf,
  type CheckScope,
  type Invariant,
  type InvariantContext,
  type StateView,
} from '../../properties/invariants.ts';

const TCP_PROXY = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy')!.config;
const LIMITS = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy-limits')!.config;
const HTTP_PROXY = CONFIG_SPACE.find((c) => c.name === 'http-proxy')!.config;

/** What one agreement run compared. */
interface Agreement {
  states: number; //     reachable states visited (no symmetry reduction)
  enabled: number; //    (state, event) pairs where the event can happen
  disagreements: string[];
}

/**
 * Visits every state reachable in `model` by SystemModel.step (breadth first, every state, no
 * symmetry reduction) and compares, for every event of the alphabet, the compiled step with
 * SystemModel.step: enabled in the same states, the same successor once decoded, the same records;
 * and the compiled view with viewOf.
 */
function agreement(model: SystemModel): Agreement {
  const alphabet = buildAlphabet(model.config, model.n);
  const compiled = new CompiledModel(model, alphabet);
  const seen = new Set<string>();
  const out: Agreement = { states: 0, enabled: 0, disagreements: [] };
  const differ = (s: SystemState, what: string): void => {
    if (out.disagreements.length < 5) out.disagreements.push(`${stateKey(model, s, [], false)}: ${what}`);
  };
  let frontier: SystemState[] = [model.initial()];
  seen.add(stateKey(model, frontier[0]!, [], false));
  while (frontier.length > 0) {
    const next: SystemState[] = [];
    for (const s of frontier) {
      out.states++;
      const compact = compiled.encode(s);
      const view = compiled.view(compact);
      const reference = viewOf(model, s);
      const read = (v: StateView): unknown => [v.counters, v.listener, v.conns, v.live, v.state];
      if (!isDeepStrictEqual(read(view), read(reference)))
        differ(s, 'the compiled view (its decoded state included) is not viewOf');
      alphabet.events.forEach((event, id) => {
        const slow = model.step(s, event);
        const fast = compiled.step(compact, id);
        if ((slow === null) !== (fast === null)) {
          differ(
            s,
            `${describeEvent(event)} enabled ${slow !== null} by the model, ${fast !== null} compiled`,
          );
          return;
        }
        if (!slow || !fast) return;
        out.enabled++;
        // stateKey without symmetry encodes every field of a state: equal keys, equal states.
        if (
          stateKey(model, compiled.decode(fast.state), [], false) !== stateKey(model, slow.state, [], false)
        )
          differ(s, `${describeEvent(event)} leads elsewhere`);
        if (!isDeepStrictEqual(fast.records, slow.records))
          differ(s, `${describeEvent(event)} takes other machine steps`);
        const key = stateKey(model, slow.state, [], false);
        if (!seen.has(key)) {
          seen.add(key);
          next.push(slow.state);
        }
      });
    }
    frontier = next;
  }
  return out;
}

describe('the compiled model', () => {
  it.each(CONFIG_SPACE.map((c) => [c.name, c.config] as const))(
    `agrees with SystemModel.step on every event in every reachable state of %s with N = ${QUICK_CONNECTIONS}`,
    (_name, config) => {
      const r = agreement(new SystemModel(config, QUICK_CONNECTIONS));
      expect(r.disagreements).toEqual([]);
      expect(r.states).toBeGreaterThan(100);
      expect(r.enabled).toBeGreaterThan(r.states);
    },
  );

  it('agrees with SystemModel.step under a defect that replaces a machine and one that rewrites effects', () => {
    for (const id of ['kill-stamps-timeout-code', 'global-queue-kept-on-kill']) {
      const mutant = MUTANTS.find((m) => m.id === id)!;
      const r = agreement(new SystemModel(TCP_PROXY, QUICK_CONNECTIONS, mutant.defect(TCP_PROXY)));
      expect(r.disagreements).toEqual([]);
      expect(r.states).toBeGreaterThan(100);
    }
  });

  it('keys its steps on the rate counters only when a rate limit is set', () => {
    expect(writeOnlyCounters(TCP_PROXY)).toContain('feSessPerSec');
    expect(writeOnlyCounters(LIMITS)).not.toContain('feSessPerSec');
    expect(writeOnlyCounters(LIMITS)).not.toContain('connPerSec');
    for (const config of [TCP_PROXY, LIMITS]) {
      expect(writeOnlyCounters(config)).not.toContain('feconn');
      expect(writeOnlyCounters(config)).not.toContain('connMax');
      expect(writeOnlyCounters(config)).not.toContain('nbconn');
      expect(writeOnlyCounters(config)).not.toContain('actconn');
    }
  });

  it('walks the states the reference engine finds with three connections, from far fewer table entries', () => {
    const model = new SystemModel(HTTP_PROXY, 3);
    const alphabet = buildAlphabet(HTTP_PROXY, 3);
    const compiled = new CompiledModel(model, alphabet);
    const r = explore({ config: HTTP_PROXY, connections: 3, engine: 'xstate' });
    // Re-walk the reachable graph through the compiled model alone.
    const walked = walkCompiled(compiled);
    expect(walked.distinct).toBe(r.distinct);
    expect(walked.generated).toBe(r.generated);
    expect(compiled.size * 20).toBeLessThan(walked.generated);
  });
});

describe('the state set', () => {
  it('adds a state once, keeps every state across growth, and tells new from known', () => {
    const set = new StateSet(3, 4);
    const state = (i: number): Int32Array => Int32Array.of(i, i * 7, i % 5);
    for (let i = 0; i < 1000; i++) expect(set.add(state(i))).toBe(true);
    for (let i = 0; i < 1000; i++) expect(set.add(state(i))).toBe(false);
    expect(set.size).toBe(1000);
    expect(set.add(Int32Array.of(1, 7, 2))).toBe(true);
    const buf = Int32Array.of(9, 9, 5, 35, 0);
    expect(set.add(buf, 2)).toBe(false);
  });

  /** Adds `states` to a StateSet and to a Set of their keys; returns what each add said, both ways. */
  const replay = (
    width: number,
    states: number[][],
  ): { set: boolean[]; keys: boolean[]; has: boolean; packed: boolean } => {
    const set = new StateSet(width, 4);
    const keys = new Set<string>();
    const out = { set: [] as boolean[], keys: [] as boolean[], has: true, packed: true };
    for (const s of states) {
      out.set.push(set.add(Int32Array.from(s)));
      const key = s.join(',');
      out.keys.push(!keys.has(key));
      keys.add(key);
    }
    for (const s of states) out.has &&= set.has(Int32Array.from(s));
    out.has &&= set.size === keys.size;
    out.packed = set.packed;
    return out;
  };

  it('tells new from known exactly as a Set of keys does, on random states', () => {
    // Small ids (many repeats and probe collisions), ids that outgrow their packed fields, ids that
    // do not pack at all (2^30, negative), and widths up to 40 ints.
    const id = fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 0, max: 5 }) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 5000 }) },
      { weight: 1, arbitrary: fc.constantFrom(1 << 30, 0x7fffffff, -1, -(1 << 30)) },
    );
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 40 })
          .chain((w) =>
            fc.tuple(
              fc.constant(w),
              fc.array(fc.array(id, { minLength: w, maxLength: w }), { maxLength: 400 }),
            ),
          ),
        ([width, states]) => {
          const r = replay(width, states);
          expect(r.set).toEqual(r.keys);
          expect(r.has).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps every state when its ids outgrow the packed fields, and when it gives packing up', () => {
    const states: number[][] = [];
    for (let i = 0; i < 3000; i++) states.push([i, i % 7, (i * 13) % 11]);
    for (let i = 0; i < 3000; i++) states.push([i % 5, i, 3]); //   local ids beyond the first fields
    for (let i = 0; i < 300; i++) states.push([2 ** 29 + i, 2 ** 28, i]); // beyond 52 bits: hashed
    states.push(...states.slice(0, 500)); //                        known again
    const r = replay(3, states.slice(0, 6000));
    expect(r.set).toEqual(r.keys);
    expect(r.set.filter((fresh) => fresh)).toHaveLength(6000);
    expect(r.has).toBe(true);
    expect(r.packed).toBe(true);
    const all = replay(3, states);
    expect(all.set).toEqual(all.keys);
    expect(all.set.filter((fresh) => fresh)).toHaveLength(6300);
    expect(all.has).toBe(true);
    expect(all.packed).toBe(false);
  });

  it('does not know a state it was never given', () => {
    const set = new StateSet(2);
    for (let i = 0; i < 100; i++) set.add(Int32Array.of(i, i + 1));
    expect(set.has(Int32Array.of(5, 6))).toBe(true);
    expect(set.has(Int32Array.of(6, 5))).toBe(false);
    expect(set.has(Int32Array.of(5, 1 << 20))).toBe(false);
    expect(set.has(Int32Array.of(-1, 0))).toBe(false);
  });
});

describe('the invariant memo', () => {
  /** `inv` with its check untagged: the explorer runs it on every state or edge. */
  const untagged = (inv: Invariant): Invariant => ({ ...inv, check: (ctx) => inv.check(ctx) });

  it('reads what each check reads from its tag, and nothing from an untagged check', () => {
    const scopes = new Map(INVARIANTS.map((inv) => [inv.name, scopeOf(inv)]));
    expect(scopes.get('fdClosedOnce')).toBe('conn');
    expect(scopes.get('feconnBalance')).toBe('global');
    expect(scopes.get('rateLimitCountsCompletedOnly')).toBe('global');
    expect(scopes.get('errCodeFirstWins')).toBe('connStep');
    expect(scopeOf(untagged(invariantByName('fdClosedOnce')))).toBeNull();
  });

  it.each([
    'nbconn-kept-on-kill',
    'kill-stamps-timeout-code',
    'conn-max-before-feconn',
    'fd-closed-twice-on-unwind',
  ])('finds the counterexample to %s that checking every invariant on every edge finds', (id) => {
    const mutant = MUTANTS.find((m) => m.id === id)!;
    let killed = 0;
    for (const { config } of CONFIG_SPACE.slice(0, 3)) {
      const run = (invariants: readonly Invariant[]): unknown[] => {
        const r = explore({ config, connections: 2, defect: mutant.defect(config), invariants });
        return [r.distinct, r.generated, r.depth, r.complete, r.violation];
      };
      const memoised = run(INVARIANTS);
      expect(memoised).toEqual(run(INVARIANTS.map(untagged)));
      if (memoised[4] !== null) killed++;
    }
    expect(killed).toBeGreaterThan(0);
  });

  it('finds the same states and steps with every invariant memoised as with none, without symmetry too', () => {
    for (const symmetry of [true, false]) {
      const memoised = explore({ config: LIMITS, connections: 2, symmetry });
      const direct = explore({
        config: LIMITS,
        connections: 2,
        symmetry,
        invariants: INVARIANTS.map(untagged),
      });
      expect([memoised.distinct, memoised.generated, memoised.violation]).toEqual([
        direct.distinct,
        direct.generated,
        direct.violation,
      ]);
    }
  });

  it('refuses a check that reads more than its tag says', () => {
    const tagged = (reads: CheckScope, check: (ctx: InvariantContext) => string | null): Invariant => ({
      ...invariantByName(reads === 'connStep' ? 'errCodeFirstWins' : 'feconnBalance'),
      name: `reads-beyond-${reads}`,
      check: Object.assign(check, { reads }),
    });
    const run = (inv: Invariant): unknown =>
      explore({ config: TCP_PROXY, connections: 2, invariants: [inv] });
    expect(() => run(tagged('global', (ctx) => (ctx.next.conns.length > 9 ? 'x' : null)))).toThrow(
      /reads-beyond-global is tagged 'global' but its check read the connections' views/,
    );
    expect(() => run(tagged('conn', (ctx) => (ctx.next.counters.feconn > 9 ? 'x' : null)))).toThrow(
      /tagged 'conn' but its check read the counters/,
    );
    const step = tagged('connStep', (ctx) => (ctx.prev?.conns[1]?.errCode === 'x' ? 'x' : null));
    expect(() => run(step)).toThrow(/tagged 'connStep' but its check read connection 1's view/);
    // A per-connection check that looks at the other connections, or at their machine steps.
    const others = tagged('conn', (ctx) =>
      ctx.next.conns.length > 0 && ctx.next.conns.length > 5 ? 'x' : null,
    );
    expect(() => run(others)).toThrow(/tagged 'conn' but its check read the connections' views again/);
    const steps = tagged('connStep', (ctx) =>
      ctx.records.some((r) => r.conn !== 0 && r.to === 'x') ? 'x' : null,
    );
    expect(() => run(steps)).toThrow(
      /tagged 'connStep' but its check read a machine step of another connection/,
    );
    // A step check on the totals that asks which connection the event or a machine step names.
    const named = (name: string, check: (ctx: InvariantContext) => string | null): Invariant => ({
      ...invariantByName('connMaxBounds'),
      name,
      check: Object.assign(check, { reads: 'global' as const }),
    });
    const event = named('event-conn', (ctx) =>
      (ctx.event as { conn?: number } | null)?.conn === 7 ? 'x' : null,
    );
    expect(() => run(event)).toThrow(/tagged 'global' but its check read which connection the event/);
    const record = named('record-conn', (ctx) => (ctx.records.some((r) => r.conn === 7) ? 'x' : null));
    expect(() => run(record)).toThrow(/tagged 'global' but its check read which connection the event/);
  });
});

describe('the two engines of the explorer', () => {
  it(`find the same states, steps, depth and transitions in every configuration with N = ${QUICK_CONNECTIONS}`, () => {
    for (const { name, config } of CONFIG_SPACE) {
      const fast = explore({ config, connections: QUICK_CONNECTIONS });
      const slow = explore({ config, connections: QUICK_CONNECTIONS, engine: 'xstate' });
      const summary = (r: typeof fast): unknown => [
        name,
        r.distinct,
        r.generated,
        r.depth,
        r.complete,
        r.violation,
        r.transitionsTaken,
      ];
      expect(summary(fast)).toEqual(summary(slow));
      expect(fast.violation).toBeNull();
    }
  });

  it('find the same states without symmetry reduction', () => {
    const fast = explore({ config: TCP_PROXY, connections: 2, symmetry: false });
    const slow = explore({ config: TCP_PROXY, connections: 2, symmetry: false, engine: 'xstate' });
    expect([fast.distinct, fast.generated, fast.depth]).toEqual([slow.distinct, slow.generated, slow.depth]);
    expect(fast.transitionsTaken).toEqual(slow.transitionsTaken);
    expect(fast.distinct).toBeGreaterThan(explore({ config: TCP_PROXY, connections: 2 }).distinct);
  });

  // Every mutant under EMBRYONIC_DEEP; in npm test, the historical bugs (the reference engine's hunt
  // is the slow part of this file).
  const compared = process.env.EMBRYONIC_DEEP === '1' ? MUTANTS : MUTANTS.filter((m) => m.commit !== null);
  it.each(compared.map((m) => [m.id] as const))(
    'kill mutant %s with the same minimal counterexample',
    (id) => {
      const mutant = MUTANTS.find((m) => m.id === id)!;
      const fast = hunt((c) => mutant.defect(c), CONFIG_SPACE, FULL_CONNECTIONS);
      const slow = hunt((c) => mutant.defect(c), CONFIG_SPACE, FULL_CONNECTIONS, { engine: 'xstate' });
      expect(fast).not.toBeNull();
      expect(fast).toEqual(slow);
      // The search that found it, on the counterexample's configuration: the same states, steps and
      // depth, the depth counting the level of the violation even when it adds no new state.
      const where = {
        config: fast!.config,
        connections: fast!.connections,
        defect: mutant.defect(fast!.config),
      };
      const [a, b] = [explore(where), explore({ ...where, engine: 'xstate' })];
      expect([a.distinct, a.generated, a.depth]).toEqual([b.distinct, b.generated, b.depth]);
    },
  );
});
