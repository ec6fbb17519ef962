/**
 * The layering rules of .oxlintrc.json, run by `npm run lint`: machines/ imports neither Node nor
 * impl/ (only its own files and xstate), and properties/ imports machines/ only (and the libraries
 * it explores with). Each case lints a small tree, laid out as the project is, in a temporary
 * directory with the project's own configuration, and reads the linter's verdict from its JSON
 * report.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const OXLINT = join(ROOT, 'node_modules', 'oxlint', 'bin', 'oxlint');

/** Each probe file, with the import it makes. */
const PROBES: Record<string, string> = {
  'machines/own.ts':
    "import { q } from './q.ts';\nimport { setup } from 'xstate';\nexport const r = [q, setup];\n",
  'machines/q.ts': 'export const q = 1;\n',
  'machines/node.ts': "import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n",
  'machines/bare.ts': "import { join } from 'path';\nexport const r = join;\n",
  'machines/deep.ts': "import { v2 } from '../impl/proxy/v2.ts';\nexport const r = v2;\n",
  'properties/own.ts':
    "import { q } from '../machines/q.ts';\nimport fc from 'fast-check';\nimport { getAdjacencyMap } from 'xstate/graph';\nimport { p } from './p.ts';\nexport const r = [q, fc, getAdjacencyMap, p];\n",
  'properties/p.ts': 'export const p = 1;\n',
  'properties/impl.ts': "import { x } from '../impl/x.ts';\nexport const r = x;\n",
  'properties/cli.ts': "import { x } from '../cli/main.ts';\nexport const r = x;\n",
  'properties/through.ts': "import { x } from '../machines/../impl/x.ts';\nexport const r = x;\n",
  'properties/node.ts': "import { cpus } from 'os';\nexport const r = cpus;\n",
  'impl/x.ts':
    "import { readFileSync } from 'node:fs';\nimport { q } from '../machines/q.ts';\nexport const x = [readFileSync, q];\n",
};

let dir = '';
let refused = new Map<string, string>(); // file → the help text of the import it was refused

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'embryonic-layering-'));
  copyFileSync(join(ROOT, '.oxlintrc.json'), join(dir, '.oxlintrc.json'));
  for (const [file, text] of Object.entries(PROBES)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  let out: string;
  try {
    out = execFileSync(process.execPath, [OXLINT, '-f', 'json', '.'], { cwd: dir, encoding: 'utf8' });
  } catch (e) {
    out = (e as { stdout: string }).stdout; // exit code 1: errors were found
  }
  const report = JSON.parse(out) as { diagnostics: { code: string; filename: string; help: string }[] };
  refused = new Map(
    report.diagnostics
      .filter((d) => d.code === 'eslint(no-restricted-imports)')
      .map((d) => [d.filename, d.help] as const),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the lint of machines/', () => {
  it('accepts imports of its own files and of xstate', () => {
    expect(refused.has('machines/own.ts')).toBe(false);
  });

  it('refuses Node, by node: name or bare name', () => {
    expect(refused.get('machines/node.ts')).toMatch(/no Node/);
    expect(refused.get('machines/bare.ts')).toMatch(/no Node/);
  });

  it('refuses impl/, however deep the file imported', () => {
    expect(refused.get('machines/deep.ts')).toMatch(/never impl/);
  });
});

describe('the lint of properties/', () => {
  it('accepts machines/, its own files and the libraries it explores with', () => {
    expect(refused.has('properties/own.ts')).toBe(false);
  });

  it('refuses impl/ and cli/, even through machines/', () => {
    for (const file of ['properties/impl.ts', 'properties/cli.ts', 'properties/through.ts'])
      expect(refused.get(file), file).toMatch(/imports machines\/ only/);
  });

  it('refuses Node', () => {
    expect(refused.get('properties/node.ts')).toMatch(/no Node/);
  });
});

describe('the lint of the other directories', () => {
  it('leaves impl/ free to import Node and machines/', () => {
    expect(refused.has('impl/x.ts')).toBe(false);
  });

  it('refuses exactly the probes that break a rule', () => {
    expect([...refused.keys()].sort()).toEqual(
      [
        'machines/bare.ts',
        'machines/deep.ts',
        'machines/node.ts',
        'properties/cli.ts',
        'properties/impl.ts',
        'properties/node.ts',
        'properties/through.ts',
      ].sort(),
    );
  });
});
