/**
 * The explorer's benchmark at a tiny size: each kind of row measures what it says, and XState's
 * getAdjacencyMap runs on the same model (it finds the same states). No timing is asserted.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  adjacencyLabel,
  adjacencyMapRun,
  configFigure,
  explorerPlan,
  measureRow,
  type ExplorerRow,
  WARM_FIGURE,
} from '../../bench/explorer.ts';
import { MachineRunner } from '../../machines/compose.ts';
import { CONFIG_SPACE } from '../../properties/bounds.ts';
import { explore } from '../../properties/explore.ts';

const TCP_PROXY = CONFIG_SPACE.find((c) => c.name === 'tcp-proxy')!.config;

function wellFormed(r: ExplorerRow): void {
  for (const v of [r.generated, r.distinct, r.seconds, r.distinctPerSec, r.generatedPerSec, r.peakRssMiB])
    expect(Number.isFinite(v) && v > 0).toBe(true);
  expect(r.distinctPerSec).toBe(Math.round(r.distinct / r.seconds));
}

describe('benchExplorer rows', () => {
  it('measure the compiled explorer on one configuration', () => {
    const one = measureRow({ kind: 'config', n: 2, config: 'tcp-proxy' });
    wellFormed(one);
    expect(one).toMatchObject({ figure: configFigure('tcp-proxy'), role: 'subject', n: 2, complete: true });
    expect(one.distinct).toBe(explore({ config: TCP_PROXY, connections: 2 }).distinct);
  });

  it('measure the whole space again in a process that explored it once, as context', () => {
    const warm = measureRow({ kind: 'warm', n: 2 });
    wellFormed(warm);
    expect(warm).toMatchObject({ figure: WARM_FIGURE, role: 'context', n: 2, complete: true });
    expect(warm.distinct).toBe(measureRow({ kind: 'space', n: 2 }).distinct);
  });

  it.each([false, true])(
    "run XState's getAdjacencyMap on the same model (memoised steps: %s): it finds the explorer's states",
    (memoise) => {
      const r = measureRow({ kind: 'adjacency', n: 2, config: 'tcp-proxy', budgetMs: 60_000, memoise });
      wellFormed(r);
      expect(r).toMatchObject({ role: 'anchor', complete: true, figure: configFigure('tcp-proxy') });
      expect(r.config).toBe(adjacencyLabel('tcp-proxy', memoise));
      expect(r.distinct).toBe(explore({ config: TCP_PROXY, connections: 2 }).distinct);
    },
  );

  it('computes every machine step with XState when the steps are not memoised', () => {
    // Counted through the runners' compute(): the unmemoised walk asks XState on every edge, the
    // memoised one once per (snapshot, event) of each machine.
    const calls = (memoise: boolean): number => {
      const spy = vi.spyOn(MachineRunner.prototype, 'compute');
      try {
        adjacencyMapRun(
          CONFIG_SPACE.find((c) => c.name === 'tcp-proxy')!,
          2,
          60_000,
          { memoise },
        );
        return spy.mock.calls.length;
      } finally {
        spy.mockRestore();
      }
    };
    const memoised = calls(true);
    const every = calls(false);
    expect(every).toBeGreaterThan(3 * memoised);
  });

  it('stop getAdjacencyMap at its budget and say so', () => {
    const r = measureRow({ kind: 'adjacency', n: 3, config: 'tcp-proxy', budgetMs: 0, memoise: true });
    expect(r.complete).toBe(false);
    expect(r.note).toMatch(/budget/);
  });
});

describe('explorerPlan', () => {
  const adjacencyRuns = (plan: ReturnType<typeof explorerPlan>, n: number, memoise: boolean): number[] =>
    plan.flatMap(({ run, spec }) =>
      spec.kind === 'adjacency' && spec.n === n && spec.memoise === memoise ? [run] : [],
    );

  it('runs getAdjacencyMap with XState on every step at N = 5 in 3 of the 5 repetitions, with a budget it finishes within', () => {
    const plan = explorerPlan({ spinConnections: [] });
    expect(adjacencyRuns(plan, 5, false)).toEqual([0, 1, 2]);
    expect(adjacencyRuns(plan, 4, false)).toEqual([0, 1, 2, 3, 4]);
    const long = plan.find(({ spec }) => spec.kind === 'adjacency' && spec.n === 5)!.spec;
    expect(long.kind === 'adjacency' && long.budgetMs).toBeGreaterThanOrEqual(200_000);
  });

  it('runs getAdjacencyMap over the memoised steps up to N = 4 only', () => {
    const plan = explorerPlan({ spinConnections: [] });
    expect(adjacencyRuns(plan, 4, true)).toEqual([0, 1, 2, 3, 4]);
    expect(adjacencyRuns(plan, 5, true)).toEqual([]);
  });

  it('pairs each repetition of a subject with the same repetition of its anchors', () => {
    const plan = explorerPlan({ quick: true, spinConnections: [] });
    const runs = (kind: string, n: number): number[] =>
      plan.flatMap(({ run, spec }) => (spec.kind === kind && spec.n === n ? [run] : []));
    expect(runs('config', 2)).toEqual([0, 1]);
    expect(runs('adjacency', 2)).toEqual([0, 0, 1, 1]);
    // In time order: every run of repetition 0 comes before any of repetition 1.
    const order = plan.map(({ run }) => run);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });
});
