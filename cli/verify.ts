/**
 * `embryonic verify`: runs every verification that exists and prints one summary table.
 */
import { parseArgs, UsageError, type Command } from './command.ts';
import { formatTable } from './table.ts';
import { VERIFICATIONS, type Verification } from './verifications.ts';

/**
 * Runs `chosen` in order, each once, and returns one summary row per verification (name, verdict
 * 'pass' / 'skipped' / 'FAIL', seconds, detail) and how many failed. A verification that is not ok
 * and not skipped fails; one that throws fails with "crashed: MESSAGE" and the next ones still
 * run. `log` gets one progress line per verification. Never rejects.
 */
export async function runVerifications(
  chosen: readonly Verification[],
  log: (line: string) => void,
): Promise<{ rows: string[][]; failed: number }> {
  const rows: string[][] = [];
  let failed = 0;
  for (const v of chosen) {
    log(`verify: ${v.name}...`);
    const started = performance.now();
    let verdict: string;
    let detail: string;
    try {
      const r = await v.run();
      verdict = r.skipped ? 'skipped' : r.ok ? 'pass' : 'FAIL';
      detail = r.skipped ? `${r.skipped}` : r.detail;
      if (!r.ok && !r.skipped) failed++;
    } catch (err) {
      verdict = 'FAIL';
      detail = `crashed: ${(err as Error).message}`;
      failed++;
    }
    rows.push([v.name, verdict, `${((performance.now() - started) / 1000).toFixed(1)}s`, detail]);
  }
  return { rows, failed };
}

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'run every verification and print one summary table',
  usage: [
    'Usage: embryonic verify [--only NAME]',
    '',
    'Runs every verification of the specification, in order, and prints one table:',
    ...VERIFICATIONS.map((v) => `  ${v.name.padEnd(16)} ${v.what}`),
    '',
    'Options:',
    '  --only NAME   run only the verifications whose name contains NAME (repeatable)',
    '',
    'Exit code: 0 if every verification holds or was skipped, 1 otherwise.',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, { values: ['only'] });
    const only = parsed.flags.get('only');
    const chosen = VERIFICATIONS.filter((v) => !only || only.some((o) => v.name.includes(o)));
    if (chosen.length === 0)
      throw new UsageError(
        `--only ${only!.join(', ')} names no verification; they are: ${VERIFICATIONS.map((v) => v.name).join(', ')}`,
      );
    const { rows, failed } = await runVerifications(chosen, verifyOnProgress);
    console.log(formatTable(['verification', 'verdict', 'time', 'detail'], rows));
    console.log(`\n${chosen.length - failed} passed, ${failed} failed`);
    return failed === 0 ? 0 : 1;
  },
};

/** Writes one progress line of `verify` on stderr. */
function verifyOnProgress(line: string): void {
  process.stderr.write(`${line}\n`);
}
