/**
 * The bounded model checker: the quick space keeps every invariant, symmetry reduction loses no
 * behaviour, counterexamples are shortest and replay, and the reports are usable as they are.
 */
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { listTransitions } from '../../machines/introspect.ts';
import { mutantById } from '../../machines/mutants.ts';
import { SystemModel, type SystemEvent } from '../../machines/system.ts';
import { CONFIG_SPACE, QUICK_CONNECTIONS } from '../../properties/bounds.ts';
import {
  alphabetOf,
  checkTrace,
  configSource,
  describeEvent,
  eventSource,
  explore,
  exploreSpace,
  hunt,
  regressionTest,
  stateKey,
  type ExploreStats,
  type SpaceResult,
} from '../../properties/explore.ts';
import {
  INVARIANTS,
  invariantByName,
  type Invariant,
  type InvariantContext,
  type StateView,
} from '../../properties/invariants.ts';

const TCP_PROXY = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy')!.config;
const LIMITS = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy-limits')!.config;

describe('the exhaustive exploration', () => {
  let quickSpace: SpaceResult | null = null;
  /** The whole space with N = 2, explored once for the tests that read it. */
  const quick = (): SpaceResult => (quickSpace ??= exploreSpace(CONFIG_SPACE, QUICK_CONNECTIONS));

  it(`keeps every invariant in every reachable state of the whole space with N = ${QUICK_CONNECTIONS}`, () => {
    const r = quick();
    expect(r.violations).toEqual([]);
    expect(r.configs.every((c) => c.complete)).toBe(true);
    expect(r.distinct).toBe(r.configs.reduce((a, c) => a + c.distinct, 0));
    expect(r.generated).toBeGreaterThan(r.distinct);
  });

  it(`takes every transition of the three machines somewhere in the space with N = ${QUICK_CONNECTIONS}`, () => {
    const taken = new Set(quick().configs.flatMap((c) => c.transitionsTaken));
    const all = Object.values(MACHINES).flatMap((m) => listTransitions(m).map((t) => t.id));
    expect(all.filter((t) => !taken.has(t))).toEqual([]);
    expect([...taken].filter((t) => !all.includes(t))).toEqual([]);
  });

  it('reaches the same behaviour with and without symmetry reduction, in fewer states', () => {
    for (const [config, connections] of [
      [TCP_PROXY, 3],
      [LIMITS, 2],
    ] as const) {
      const reduced = explore({ config, connections });
      const full = explore({ config, connections, symmetry: false });
      expect(reduced.violation).toBeNull();
      expect(full.violation).toBeNull();
      expect(reduced.distinct).toBeLessThan(full.distinct);
      expect(reduced.depth).toBe(full.depth);
      expect(reduced.transitionsTaken).toEqual(full.transitionsTaken);
    }
  });

  it('finds the same shortest counterexample length with and without symmetry reduction', () => {
    const defect = mutantById('full-listener-not-resumed').defect(TCP_PROXY);
    const reduced = explore({ config: TCP_PROXY, connections: 3, defect });
    const full = explore({ config: TCP_PROXY, connections: 3, defect, symmetry: false });
    expect(reduced.violation!.events.length).toBe(full.violation!.events.length);
    expect(reduced.violation!.invariant).toBe(full.violation!.invariant);
  });

  it('gives one key to two states that differ only by the ids of their connections', () => {
    const model = new SystemModel(TCP_PROXY, 2);
    let s = model.initial();
    for (const e of [{ type: 'ACCEPT' }, { type: 'ACCEPT' }] as SystemEvent[]) s = model.step(s, e)!.state;
    const first = model.step(s, { type: 'PROXY_HEADER_OK', conn: 0 })!.state;
    const second = model.step(s, { type: 'PROXY_HEADER_OK', conn: 1 })!.state;
    expect(stateKey(model, first)).toBe(stateKey(model, second));
    expect(stateKey(model, first, [], false)).not.toBe(stateKey(model, second, [], false));
    expect(stateKey(model, first)).not.toBe(stateKey(model, s));
  });

  it('returns the shortest counterexample, which replays to the violation on its last event only', () => {
    const defect = mutantById('no-list-del-on-completion-failure').defect(TCP_PROXY);
    const r = explore({ config: TCP_PROXY, connections: 2, defect });
    const cx = r.violation!;
    expect(cx.invariant).toBe('sessionsListExact');
    expect(cx.readable).toEqual(cx.events.map(describeEvent));
    const model = new SystemModel(TCP_PROXY, 2, defect);
    const seen = checkTrace(model, cx.events);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((v) => v.after === cx.events.length)).toBe(true);
    expect(seen[0]!.invariant).toBe(cx.invariant);
    const shorter = explore({ config: TCP_PROXY, connections: 2, defect, maxDepth: cx.events.length - 1 });
    expect(shorter.violation).toBeNull();
    expect(shorter.complete).toBe(false);
  });

  it('checks only the invariants it is given', () => {
    const defect = mutantById('no-list-del-on-completion-failure').defect(TCP_PROXY);
    const r = explore({
      config: TCP_PROXY,
      connections: 1,
      defect,
      invariants: [invariantByName('feconnBalance')],
    });
    expect(r.violation).toBeNull();
    expect(r.complete).toBe(true);
  });

  it.each(['compiled', 'xstate'] as const)(
    'counts the level of a violation found on its last edge, which reaches no new state (%s engine)',
    (engine) => {
      // A step invariant that fails on one edge, named by what its check reads (checks are pure).
      const edgeKey = (ctx: InvariantContext): string => {
        const side = (v: StateView | null) =>
          v && [v.listener, v.counters, v.live, v.conns.map((c) => [c.id, c.connection, c.session, c.mem])];
        return JSON.stringify([side(ctx.prev), ctx.event, side(ctx.next)]);
      };
      const failingOn = (key: string | null): Invariant => ({
        name: 'oneEdge',
        kind: 'step',
        doc: '',
        haproxy: '',
        watches: [],
        check: (ctx) => (edgeKey(ctx) === key ? 'the last edge' : null),
      });
      let last: string | null = null;
      const recorder = {
        ...failingOn(null),
        check: (ctx: InvariantContext) => ((last = edgeKey(ctx)), null),
      };
      const clean = explore({ config: TCP_PROXY, connections: 2, engine, invariants: [recorder] });
      expect(clean.complete).toBe(true);
      // The last edge of an exhaustive search leaves its last level, whose successors were all seen.
      const r = explore({ config: TCP_PROXY, connections: 2, engine, invariants: [failingOn(last)] });
      expect(r.violation?.message).toBe('the last edge');
      expect(r.violation!.events.length).toBe(clean.depth + 1);
      expect(r.depth).toBe(clean.depth + 1);
    },
  );

  it('reports progress during a run and stats that add up', () => {
    const seen: ExploreStats[] = [];
    const r = explore({
      config: LIMITS,
      connections: 2,
      progressEveryMs: 0,
      onProgress: (s) => seen.push(s),
    });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.distinct <= r.distinct && s.generated <= r.generated)).toBe(true);
    expect(r.statesPerSecond).toBe(Math.round(r.distinct / r.seconds));
  });

  it('tries every error code only when the bounds ask for them', () => {
    const types = (config: ModelConfig): string[] => alphabetOf(config, 1).map(describeEvent);
    expect(types(TCP_PROXY)).toContain('PROXY_HEADER_ERROR conn=0 code=PRX_BAD_HDR');
    expect(types(TCP_PROXY)).not.toContain('PROXY_HEADER_ERROR conn=0 code=PRX_TRUNCATED');
    expect(types(TCP_PROXY)).not.toContain('ACCEPT fail=rep');
    expect(types(makeConfig({ mode: 'http', acceptProxy: false }))).toContain('ACCEPT fail=txn');
    expect(types(makeConfig({ mode: 'tcp', acceptProxy: false }))).not.toContain('ACCEPT fail=txn');
  });
});

describe('the reports of a violation', () => {
  it('writes events as object literals that evaluate to the same events', () => {
    const events: SystemEvent[] = [
      { type: 'ACCEPT', src: 'monitor' },
      { type: 'PROXY_HEADER_OK', conn: 1, fail: 'req' },
      { type: 'ACCEPT', acceptError: true },
    ];
    for (const e of events) expect(new Function(`return ${eventSource(e)};`)()).toEqual(e);
    expect(eventSource({ type: 'ACCEPT' })).toBe("{ type: 'ACCEPT' }");
  });

  it('describes events in one line each', () => {
    expect(describeEvent({ type: 'ACCEPT' })).toBe('ACCEPT');
    expect(describeEvent({ type: 'ACCEPT', acceptError: true })).toBe('ACCEPT acceptError');
    expect(describeEvent({ type: 'TLS_ERROR', conn: 2, code: 'SSL_HANDSHAKE' })).toBe(
      'TLS_ERROR conn=2 code=SSL_HANDSHAKE',
    );
  });

  it.each(CONFIG_SPACE.map((c) => [c.name, c.config] as const))(
    'writes a makeConfig call that rebuilds %s',
    (_name, config) => {
      const rebuilt = new Function('makeConfig', `return ${configSource(config)};`)(
        makeConfig,
      ) as ModelConfig;
      expect(rebuilt).toEqual(config);
    },
  );

  it('writes a regression test that replays the counterexample and expects every invariant to hold', () => {
    const defect = mutantById('deadline-not-armed').defect(TCP_PROXY);
    const cx = explore({ config: TCP_PROXY, connections: 1, defect }).violation!;
    const test = regressionTest(cx, TCP_PROXY, 1);
    expect(test).toContain(`new SystemModel(${configSource(TCP_PROXY)}, 1)`);
    const listed = test.slice(
      test.indexOf('checkTrace(model, [') + 'checkTrace(model, '.length,
      test.indexOf(']),') + 1,
    );
    expect(new Function(`return ${listed};`)()).toEqual(cx.events);
    expect(test).toContain('.toEqual([]);');
    expect(test).toContain(`it('keeps deadlineBounded after ACCEPT'`);
  });
});

describe('hunting a defect', () => {
  it('returns null for the model without a defect', () => {
    expect(hunt(() => null, CONFIG_SPACE.slice(0, 3), 1)).toBeNull();
  });

  it('finds a defect at the smallest N that shows it', () => {
    const mutant = mutantById('maxconn-off-by-one');
    const kill = hunt((c) => mutant.defect(c), CONFIG_SPACE, 3)!;
    expect(kill.connections).toBe(2);
    expect(hunt((c) => mutant.defect(c), CONFIG_SPACE, 1)).toBeNull();
  });

  it('keeps INVARIANTS in report order, the specific before the catch-all', () => {
    expect(INVARIANTS.at(-1)!.name).toBe('noMemoryFaults');
  });
});
