/**
 * The bench driver's judgement of the explorer rows (bench/run.ts, explorerRows): which anchor a
 * row is measured against and when its goal is met. The rows are written out here, as a child
 * process would return them; nothing is measured.
 */
import { describe, expect, it } from 'vitest';
import { adjacencyLabel, configFigure, type ExplorerRow } from '../../bench/explorer.ts';
import { explorerRows } from '../../bench/run.ts';

const FIGURE = configFigure('tcp-proxy');

/** A row of `config` at N = 4 that reached 18,000 states at `perSec` distinct states per second. */
function row(config: string, role: ExplorerRow['role'], perSec: number): ExplorerRow {
  const seconds = 18_000 / perSec;
  return {
    figure: FIGURE,
    role,
    n: 4,
    config,
    generated: 66_000,
    distinct: 18_000,
    seconds,
    cpuSeconds: seconds,
    distinctPerSec: perSec,
    generatedPerSec: Math.round(66_000 / seconds),
    peakRssMiB: 90,
    maxRssMiB: 90,
    complete: true,
  };
}

/** The judged row of the compiled explorer among `rows`. */
function judged(rows: ExplorerRow[]): ReturnType<typeof explorerRows>[number] {
  return explorerRows(rows).find((r) => r.subject.startsWith('compiled explorer'))!;
}

describe('explorerRows', () => {
  it('measures the explorer against getAdjacencyMap with XState on every machine step, not over memoised steps', () => {
    const subject = row('compiled explorer, tcp-proxy', 'subject', 200_000);
    const every = row(adjacencyLabel('tcp-proxy', false), 'anchor', 1_600);
    const memoised = row(adjacencyLabel('tcp-proxy', true), 'anchor', 6_000);
    const r = judged([subject, memoised, every]);
    expect(r.anchor?.name).toBe(every.config);
    expect(r.ratio?.median).toBe(125);
    expect(r.goal).toEqual({ text: '≥ 100k distinct/s, ≥ 100× xstate/graph', met: true });
    expect(r.notes.join(' ')).toContain(`33.3× ${memoised.config}`);
  });

  it('does not meet the goal below 100× the anchor, whatever the memoised run gives', () => {
    const subject = row('compiled explorer, tcp-proxy', 'subject', 200_000);
    const every = row(adjacencyLabel('tcp-proxy', false), 'anchor', 2_500);
    const memoised = row(adjacencyLabel('tcp-proxy', true), 'anchor', 1_000);
    expect(judged([subject, every, memoised]).goal?.met).toBe(false);
  });

  it('does not meet the goal below 100k distinct states/s, whatever the ratio', () => {
    const subject = row('compiled explorer, tcp-proxy', 'subject', 90_000);
    const every = row(adjacencyLabel('tcp-proxy', false), 'anchor', 500);
    expect(judged([subject, every]).goal?.met).toBe(false);
  });
});
