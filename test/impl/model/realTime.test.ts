import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkTraceFile } from '../../../cli/traceCheck.ts';
import { parseTraceLine, type TraceLine } from '../../../machines/traceFormat.ts';
import { REAL_TIME_SCENARIOS } from './realTime.ts';

const dir = mkdtempSync(join(tmpdir(), 'embryonic-realtime-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The parsed lines of the trace file `path`. */
function traceOf(path: string): TraceLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((text) => parseTraceLine(text))
    .flatMap((p) => (p.error === undefined ? [p.line] : []));
}

describe('the real-time scenario client-write-timeout', () => {
  const scenario = REAL_TIME_SCENARIOS.find((s) => s.name === 'client-write-timeout')!;

  it.each([
    ['dev12', 'setNoLinger'],
    ['2.6', 'shutwSilent'],
  ] as const)(
    "makes the proxy under %s end the stream on the client's write timeout, its machine closing the client after %s, in a trace that trace-check passes",
    async (profile, shutw) => {
      const trace = join(dir, `${profile}.ndjson`);
      await scenario.run(profile, trace);
      const lines = traceOf(trace);
      const end = lines.filter((l) => l.kind === 'step' && l.transitions?.includes(scenario.transitions[0]!));
      expect(end).toHaveLength(1);
      const conn = end[0]!.conn;
      const effects = lines.flatMap((l) => (l.kind === 'effect' && l.conn === conn ? [l.name] : []));
      expect(effects.slice(effects.indexOf(shutw), effects.indexOf(shutw) + 3)).toEqual([
        shutw,
        'connClose',
        'fdClose',
      ]);
      expect(effects).not.toContain(shutw === 'setNoLinger' ? 'shutwSilent' : 'setNoLinger');
      // The whole trace replays through the machines: trace-check, the live monitor's checker.
      const checked = await checkTraceFile(trace, {}, { deadlineSlackMs: 100 });
      expect([checked.verdict, checked.divergence?.message]).toEqual(['conforms', undefined]);
    },
  );
});
