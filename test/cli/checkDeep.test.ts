import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

describe('embryonic check-deep', () => {
  it('runs the three long checks (here cut small) and reports each as JSON', () => {
    const run = spawnSync(
      process.execPath,
      [
        join(ROOT, 'bin/embryonic.js'),
        'check-deep',
        '--connections',
        '1',
        '--codes-connections',
        '1',
        '--runs',
        '5',
        '--seed',
        '3',
        '--json',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout) as {
      deep: { connections: number; violations: unknown[] };
      allCodes: { distinct: number; violations: unknown[] };
      random: { runs: number; seed: number; failure: unknown };
    };
    expect(out.deep).toMatchObject({ connections: 1, violations: [] });
    expect(out.allCodes.violations).toEqual([]);
    expect(out.random).toMatchObject({ runs: 5, seed: 3, failure: null });
    expect(run.stderr).toContain('check-deep: 5 random runs');
  });
});
