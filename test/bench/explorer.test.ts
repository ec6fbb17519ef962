/**
 * The explorer's benchmark at a tiny size: each kind of row measures what it says, and XState's
 * getAdjacencyMap runs on the same model (it finds the same states). No timing is asserted.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  adjacencyLabel,
  adjacencyMapRun,
  configFigure,
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
