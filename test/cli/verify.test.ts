import { describe, expect, it } from 'vitest';
import { UsageError } from '../../cli/command.ts';
import { runVerifications, verifyCommand } from '../../cli/verify.ts';
import type { Verification } from '../../cli/verifications.ts';

/** A verification named `name` whose run resolves with `result` (or rejects with `crash`). */
function verification(name: string, outcome: { ok: boolean; skipped?: string } | Error): Verification {
  return {
    name,
    what: `the ${name} check`,
    run: () =>
      outcome instanceof Error
        ? Promise.reject(outcome)
        : Promise.resolve({ ...outcome, detail: `${name} detail` }),
  };
}

describe('runVerifications', () => {
  it('counts a verification that does not hold, and one that throws, as failures, and runs every one', async () => {
    const log: string[] = [];
    const { rows, failed } = await runVerifications(
      [
        verification('holds', { ok: true }),
        verification('breaks', { ok: false }),
        verification('absent', { ok: true, skipped: 'no such tool here' }),
        verification('throws', new Error('boom')),
        verification('last', { ok: true }),
      ],
      (line) => log.push(line),
    );
    expect(failed).toBe(2);
    expect(rows.map((r) => [r[0], r[1], r[3]])).toEqual([
      ['holds', 'pass', 'holds detail'],
      ['breaks', 'FAIL', 'breaks detail'],
      ['absent', 'skipped', 'no such tool here'],
      ['throws', 'FAIL', 'crashed: boom'],
      ['last', 'pass', 'last detail'],
    ]);
    expect(rows.every((r) => /^\d+\.\ds$/.test(r[2]!))).toBe(true);
    expect(log).toEqual(['holds', 'breaks', 'absent', 'throws', 'last'].map((n) => `verify: ${n}...`));
  });

  it('fails none when every verification holds or is skipped', async () => {
    const { failed } = await runVerifications(
      [verification('holds', { ok: true }), verification('absent', { ok: false, skipped: 'not here' })],
      () => {},
    );
    expect(failed).toBe(0);
  });
});

describe('embryonic verify', () => {
  it('refuses an --only that names no verification, listing their names, rather than pass on none', async () => {
    await expect(verifyCommand.run(['--only', 'nope'])).rejects.toThrow(UsageError);
    await expect(verifyCommand.run(['--only', 'nope'])).rejects.toThrow(
      /names no verification; they are: traceability, /,
    );
  });

  it('refuses an argument it does not take', async () => {
    await expect(verifyCommand.run(['extra'])).rejects.toThrow('unexpected argument "extra"');
  });
});
