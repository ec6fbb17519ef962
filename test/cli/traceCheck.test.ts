import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../cli/command.ts';
import { main } from '../../cli/main.ts';
import {
  checkTraceFile,
  MEASUREMENT_CONFIG,
  traceCheckCommand,
  verifyTraceConformance,
  writeReferenceTrace,
} from '../../cli/traceCheck.ts';
import { makeConfig } from '../../machines/config.ts';
import {
  formatTraceLine,
  headerLine,
  TRANSITION_VALUES,
  traceSchema,
  type TraceLine,
} from '../../machines/traceFormat.ts';
import { scriptedTrace } from '../../properties/traceGen.ts';

const ROOT = join(import.meta.dirname, '../..');
const CONFIG = makeConfig({ mode: 'http', feMaxconn: 4, globalMaxconn: 4 });
const TRACE = scriptedTrace(CONFIG, [
  { type: 'ACCEPT', conn: 1 },
  { type: 'ACCEPT', conn: 2 },
  { type: 'PROXY_HEADER_OK', conn: 1 },
  { type: 'CLIENT_CLOSE', conn: 2 },
  { type: 'SESSION_END', conn: 1 },
]);

let dir = '';
const write = (name: string, lines: (TraceLine | string)[]): string => {
  const path = join(dir, name);
  writeFileSync(path, `${lines.map((l) => (typeof l === 'string' ? l : formatTraceLine(l))).join('\n')}\n`);
  return path;
};

/** Runs `embryonic trace-check ARGS` in-process; returns its exit code and what it printed. */
async function traceCheck(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi
    .spyOn(console, 'error')
    .mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await main(['trace-check', ...args]);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'embryonic-trace-check-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('embryonic trace-check', () => {
  it('exits 0 on a conforming trace and says what it checked', async () => {
    const r = await traceCheck(write('ok.ndjson', TRACE));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/conforms: \d+ lines, 5 inputs, 2 connections \(2 ended, at most 2 live\)/);
  });

  it('prints one JSON object with --json', async () => {
    const r = await traceCheck(write('ok.ndjson', TRACE), '--json');
    const report = JSON.parse(r.out) as {
      verdict: string;
      stats: { inputs: number };
      config: { mode: string };
    };
    expect(report).toMatchObject({ verdict: 'conforms', stats: { inputs: 5 }, config: { mode: 'http' } });
  });

  it('exits 1 at a divergence, with its line, the possible states and the last lines', async () => {
    const at = TRACE.findIndex((l) => l.kind === 'effect' && l.name === 'listAdd');
    const mutated = TRACE.filter((_, i) => i !== at);
    const r = await traceCheck(write('bad.ndjson', mutated));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`line ${at + 1} diverges`));
    expect(r.out).toMatch(/possible model states before this step: 1/);
    expect(r.out).toMatch(/the model would log next:\n {2}effect listAdd \(session 1\)/);
    expect(r.out).toMatch(/last lines:/);
  });

  it("takes the header's configuration, and lets the flags override it", async () => {
    const path = write('ok.ndjson', TRACE);
    expect((await traceCheck(path, '--mode', 'tcp')).code).toBe(1);
    const headless = write('headless.ndjson', TRACE.slice(1));
    const defaults = await traceCheck(headless);
    expect(defaults.code).toBe(1);
    expect(defaults.err).toMatch(/has no header line .*checked against the default configuration/);
    expect((await traceCheck(headless, '--mode', 'http', '--maxconn', '4')).code).toBe(0);
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ mode: 'http', feMaxconn: 4, globalMaxconn: 4 }));
    expect((await traceCheck(headless, '--config', cfg)).code).toBe(0);
  });

  it('exits 2 with the line number of an invalid line, and on a file it cannot read', async () => {
    const broken = [
      ...TRACE.slice(0, 3),
      '{"v":1,"t":1,"conn":null,"kind":"counters","counters":{"feconn":"x"}}',
    ];
    const r = await traceCheck(write('broken.ndjson', broken));
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/line 4 is invalid: counters\.feconn must be an integer/);
    const padded = await traceCheck(write('padded.ndjson', ['', '  ', ...broken]));
    expect(padded.out).toMatch(/line 6 is invalid/);
    const missing = await traceCheck(join(dir, 'no-such-file.ndjson'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read/);
  });

  it('exits 2 on a file with no trace line, which shows nothing, blank lines or none', async () => {
    const r = await traceCheck(write('blank.ndjson', ['', '  ']));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/holds no trace line: nothing to check/);
    const path = join(dir, 'zero.ndjson');
    writeFileSync(path, '');
    const zero = await traceCheck(path);
    expect([zero.code, zero.err]).toEqual([2, expect.stringMatching(/holds no trace line/)]);
  });

  it('says nothing of the configuration when the trace has a header or a flag gives one', async () => {
    const withHeader = await traceCheck(write('ok.ndjson', TRACE), '--json');
    expect([withHeader.err, (JSON.parse(withHeader.out) as { header: boolean }).header]).toEqual(['', true]);
    const headless = await traceCheck(
      write('headless.ndjson', TRACE.slice(1)),
      '--mode',
      'http',
      '--maxconn',
      '4',
    );
    expect([headless.code, headless.err]).toEqual([0, '']);
  });

  it.each([
    ['a transition of another machine', (ids: string[]) => [TRANSITION_VALUES.listener[0]!, ...ids.slice(1)]],
    [
      'an unknown id after a known one',
      (ids: string[]) => [ids[0]!, `${ids[0]!.split('|')[0]}|NO_SUCH_EVENT|0`],
    ],
  ])('exits 2 on a step of the connection machine naming %s', async (_what, ids) => {
    const at = TRACE.findIndex(
      (l) => l.kind === 'step' && l.machine === 'connection' && (l.transitions?.length ?? 0) > 0,
    );
    const step = TRACE[at] as Extract<TraceLine, { kind: 'step' }>;
    const renamed = { ...step, transitions: ids(step.transitions!) };
    const r = await traceCheck(
      write('bad-ids.ndjson', [...TRACE.slice(0, at), renamed, ...TRACE.slice(at + 1)]),
    );
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      new RegExp(`line ${at + 1} is invalid: transitions: the connection machine has no transition`),
    );
  });

  it('exits 2 on a step naming a transition its machine does not have', async () => {
    const at = TRACE.findIndex((l) => l.kind === 'step' && (l.transitions?.length ?? 0) > 0);
    const step = TRACE[at] as Extract<TraceLine, { kind: 'step' }>;
    const renamed = { ...step, transitions: [step.transitions![0]!.replace(/\|\d+$/, '|99')] };
    const r = await traceCheck(
      write('bad-id.ndjson', [...TRACE.slice(0, at), renamed, ...TRACE.slice(at + 1)]),
    );
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      new RegExp(`line ${at + 1} is invalid: transitions: the \\w+ machine has no transition ".*\\|99"`),
    );
  });

  it('exits 2 on a usage error', async () => {
    expect((await traceCheck()).code).toBe(2);
    expect((await traceCheck('x.ndjson', '--mode', 'udp')).code).toBe(2);
    expect((await traceCheck('x.ndjson', '--complete', 'input')).code).toBe(2);
    await expect(traceCheckCommand.run(['a', 'b'])).rejects.toThrow(UsageError);
  });

  it('exits 3 when the trace is too ambiguous for --max-states', async () => {
    const bare = TRACE.filter((l) => l.kind === 'input').map((l) => {
      const { params: _p, inputs: _i, ...rest } = l as Extract<TraceLine, { kind: 'input' }>;
      return rest as TraceLine;
    });
    const path = write('bare.ndjson', [headerLine(0, CONFIG, []), ...bare]);
    expect((await traceCheck(path)).code).toBe(0);
    expect((await traceCheck(path, '--max-states', '2')).code).toBe(3);
  });

  it('prints the JSON Schema published in docs/trace.schema.json', async () => {
    const r = await traceCheck('--schema');
    expect(JSON.parse(r.out)).toEqual(traceSchema());
    expect(JSON.parse(readFileSync(join(ROOT, 'docs/trace.schema.json'), 'utf8'))).toEqual(JSON.parse(r.out));
  });

  it('checks a reference trace file line by line, as the 10k measurement does', async () => {
    const path = join(dir, 'reference.ndjson');
    const lines = writeReferenceTrace(path, 300, 1);
    const r = await checkTraceFile(path);
    expect(r).toMatchObject({ verdict: 'conforms', config: MEASUREMENT_CONFIG });
    expect(r.stats).toMatchObject({ lines, accepted: 300, ended: 300 });
  });

  it('passes the example of docs/TRACE.md, and fails it once a logged counter is changed', async () => {
    const doc = readFileSync(join(ROOT, 'docs/TRACE.md'), 'utf8');
    const block = /```ndjson\n([\s\S]*?)```/.exec(doc)![1]!.trim().split('\n');
    expect(block.length).toBeGreaterThan(10);
    expect((await traceCheck(write('example.ndjson', block))).code).toBe(0);
    const last = block.length - 1;
    const changed = block.map((l, i) => (i === last ? l.replace('"feconn":0', '"feconn":1') : l));
    const r = await traceCheck(write('example-changed.ndjson', changed));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`line ${last + 1} diverges`));
  });

  it.runIf(process.env.EMBRYONIC_DEEP === '1')(
    'checks the 10,000-connection reference trace in seconds',
    async () => {
      const r = await verifyTraceConformance();
      expect(r.ok, r.detail).toBe(true);
      console.log(`trace-check 10k: ${r.detail}`);
    },
    120_000,
  );
});
