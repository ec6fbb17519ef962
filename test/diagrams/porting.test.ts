import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../cli/diagrams.ts';
import { MACHINE_NAMES } from '../../diagrams/generate.ts';
import {
  commitsOf,
  danglingReferences,
  definedNames,
  effectsOf,
  implNamesOf,
  loadPortingSources,
  portingMarkdown,
  portingRows,
  scanTestReferences,
  type PortingSources,
} from '../../diagrams/porting.ts';
import { PROFILES } from '../../conformance/predict.ts';
import { DATA_PHASE_RULES } from '../../impl/stream.ts';
import { MACHINES } from '../../machines/compose.ts';
import { listTransitions } from '../../machines/introspect.ts';

let sources: PortingSources;
const allIds = (): string[] => MACHINE_NAMES.flatMap((n) => listTransitions(MACHINES[n]).map((t) => t.id));

beforeAll(() => {
  sources = loadPortingSources(ROOT);
});

/** Returns the transition ids of the rows of the transitions tables of a PORTING.md text. */
function rowIds(markdown: string): string[] {
  const transitions = markdown.slice(
    markdown.indexOf('\n## Transitions\n'),
    markdown.indexOf('\n## States\n'),
  );
  return [...transitions.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!.replace(/\\\|/g, '|'));
}

describe('PORTING.md', () => {
  it('equals what the machines, the tests and the notes generate now', () => {
    const committed = readFileSync(join(ROOT, 'PORTING.md'), 'utf8');
    const current = committed === portingMarkdown(sources);
    expect(current, 'PORTING.md is out of date: run npx embryonic diagrams').toBe(true);
  });

  it('has one row per data phase rule, saying under which profiles it holds', () => {
    const markdown = readFileSync(join(ROOT, 'PORTING.md'), 'utf8');
    const section = markdown.slice(markdown.indexOf("\n## The data phase's rules by profile\n"));
    const rows = [...section.matchAll(/^\| `(\w+)` \|.*\| (yes|no) \| (yes|no) \| (yes|no) \|$/gm)];
    expect(rows.map((m) => [m[1], m.slice(2).map((v) => v === 'yes')])).toEqual(
      Object.entries(DATA_PHASE_RULES).map(([rule, info]) => [rule, PROFILES.map((p) => info.profiles[p])]),
    );
  });

  it('has one row per transition of every machine', () => {
    const ids = rowIds(readFileSync(join(ROOT, 'PORTING.md'), 'utf8'));
    expect(ids).toEqual(allIds());
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('has no dangling reference to an impl function, a test or a conformance case', () => {
    expect(danglingReferences(sources)).toEqual([]);
  });

  it('includes the notes for porters verbatim', () => {
    const notes = readFileSync(join(ROOT, 'docs/porting-notes.md'), 'utf8').trim();
    expect(portingMarkdown(sources)).toContain(`## Notes for porters\n\n${notes}\n`);
    for (const topic of ['2.6', '2.9', 'strict', 'timeout', 'back-pressure', 'backlog'])
      expect(notes).toContain(topic);
  });
});

describe('the dangling-reference check', () => {
  it('reports a transition id that a test names and no machine has', () => {
    const real = allIds()[0]!;
    const [state] = real.split('|');
    const ghost = [state, 'NO_SUCH_EVENT', 0].join('|');
    const testRefs = new Map([...sources.testRefs, [ghost, ['test/some.test.ts']]]);
    const before = danglingReferences(sources);
    const found = danglingReferences({ ...sources, testRefs }).filter((d) => !before.includes(d));
    expect(found).toEqual([`test/some.test.ts names transition ${ghost}, which no machine has`]);
  });

  it('reports a transition id that a conformance case covers and no machine has', () => {
    const ghost = [allIds()[0]!.split('|')[0], 'always', 99].join('|');
    const before = danglingReferences(sources);
    const cases = [...sources.cases, { id: 'case-1', transitions: [allIds()[0]!, ghost] }];
    const found = danglingReferences({ ...sources, cases }).filter((d) => !before.includes(d));
    expect(found).toEqual([`conformance case case-1 covers transition ${ghost}, which no machine has`]);
  });

  it('finds the functions, methods, classes and consts a source defines, and only those', () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-porting-'));
    try {
      writeFileSync(
        join(dir, 'a.ts'),
        [
          'export function listenerAccept(x: number): number { return x; }',
          'export const sessionAccept = (): void => {};',
          'class Proxy {',
          '  private async killEmbryonic(reason: string): Promise<void> {}',
          '}',
          'sessionComplete(1);',
        ].join('\n'),
      );
      const names = definedNames(dir);
      for (const n of ['listenerAccept', 'sessionAccept', 'Proxy', 'killEmbryonic'])
        expect(names.has(n)).toBe(true);
      expect(names.has('sessionComplete')).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the function names of a meta.impl text in its three forms', () => {
    expect(implNamesOf('listenerAccept, impl/proxy/session.ts#sessionAccept, Proxy.killEmbryonic()')).toEqual(
      ['listenerAccept', 'sessionAccept', 'killEmbryonic'],
    );
  });
});

describe('the sources of the table', () => {
  it('finds the test files that name a transition id as a literal, not a built id or a comment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-tests-'));
    try {
      const [first, second] = allIds();
      mkdirSync(join(dir, 'test', 'sub'), { recursive: true });
      writeFileSync(join(dir, 'test', 'sub', 'a.test.ts'), `expect(taken).toContain('${first}');\n`);
      writeFileSync(join(dir, 'test', 'b.test.ts'), `const id = \`${second!.split('|')[0]}|\${event}|0\`;\n`);
      writeFileSync(join(dir, 'test', 'c.test.ts'), `/** e.g. '${second}' */\n// '${second}'\n`);
      const refs = scanTestReferences(join(dir, 'test'), dir);
      expect([...refs]).toEqual([[first, ['test/sub/a.test.ts']]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists the invariants that watch an effect a transition emits, macros expanded', () => {
    const rows = portingRows({
      ...sources,
      invariants: [{ name: 'buffers', doc: '', watches: ['bufAlloc'] }],
    });
    for (const name of MACHINE_NAMES) {
      for (const t of listTransitions(MACHINES[name])) {
        const row = rows.find((r) => r.id === t.id)!;
        const watched = effectsOf(MACHINES[name], t).includes('bufAlloc');
        expect(row.invariants, t.id).toEqual(watched ? ['buffers'] : []);
      }
    }
    expect(rows.some((r) => r.invariants.length === 1 && !r.effects.includes('bufAlloc'))).toBe(true);
  });

  it('reads "—" in the invariants and conformance columns of a transition nothing guards or covers', () => {
    const markdown = portingMarkdown({ ...sources, invariants: [], cases: [] });
    const transitions = markdown.slice(markdown.indexOf('\n## Transitions\n'));
    const row = transitions.split('\n').find((l) => l.startsWith('| `'))!;
    expect(row.endsWith('| — |')).toBe(true);
  });

  it('lists the conformance cases that cover a transition', () => {
    const [first] = allIds();
    const rows = portingRows({ ...sources, cases: [{ id: 'pp-timeout', transitions: [first!] }] });
    expect(rows.filter((r) => r.cases.includes('pp-timeout')).map((r) => r.id)).toEqual([first]);
  });

  it('links the commits a meta.haproxy text names, and no other word', () => {
    expect(commitsOf('conn_session_complete: CO_FL_ERROR → kill_mini_session (22cda21ad)')).toEqual([
      '22cda21ad',
    ]);
    expect(commitsOf('session_accept out_close: 500 (cbaaec475, 05bf5e1c3)')).toEqual([
      'cbaaec475',
      '05bf5e1c3',
    ]);
    expect(commitsOf('listener_accept: accept() ENFILE/EMFILE, deadbeef, 12345678')).toEqual([]);
  });
});
