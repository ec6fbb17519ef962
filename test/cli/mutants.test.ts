import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../cli/command.ts';
import { formatVerdicts, huntMutants, mutantsCommand, verdictsJson } from '../../cli/mutants.ts';

const ROOT = join(import.meta.dirname, '../..');

describe('embryonic mutants', () => {
  it('reports a mutant killed, as JSON and as Markdown, and exits 0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-mutants-'));
    try {
      const md = join(dir, 'MUTANTS.md');
      const run = spawnSync(
        process.execPath,
        [
          join(ROOT, 'bin/embryonic.js'),
          'mutants',
          '--only',
          'seed-completes-on-error',
          '--json',
          '--markdown',
          md,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      expect(run.status).toBe(0);
      const out = JSON.parse(run.stdout) as { killed: number; mutants: Record<string, unknown>[] };
      expect(out.killed).toBe(1);
      expect(out.mutants[0]).toMatchObject({
        id: 'seed-completes-on-error',
        verdict: 'killed',
        caughtBy: 'errorKillsInSameStep',
        counterexample: ['ACCEPT', 'PROXY_HEADER_ERROR conn=0 code=PRX_BAD_HDR'],
      });
      expect(readFileSync(md, 'utf8')).toContain('## seed-completes-on-error');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says which mutant survives when a hunt finds nothing', () => {
    const verdicts = huntMutants(1, ['maxconn-off-by-one']);
    expect(verdicts[0]!.kill).toBeNull();
    expect(formatVerdicts(verdicts)).toContain('SURVIVED');
    expect(verdictsJson(verdicts)).toMatchObject({ killed: 0, total: 1 });
  });

  it('refuses an unknown mutant', async () => {
    await expect(mutantsCommand.run(['--only', 'no-such-bug'])).rejects.toThrow(UsageError);
  });
});
