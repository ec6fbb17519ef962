/**
 * The layering rules of .oxlintrc.json, run by `npm run lint`: machines/ imports only its own files
 * and xstate (neither Node nor impl/ nor another library), and properties/ imports machines/ only,
 * besides its own files and the libraries it explores with (xstate, fast-check). Each probe is a
 * file laid out as the project is, in a temporary directory with the project's own configuration,
 * and the linter's verdict is read from its JSON report.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const OXLINT = join(ROOT, 'node_modules', 'oxlint', 'bin', 'oxlint');

/** A probe: the file, the one module it imports, and whether the layering allows that import. */
interface Probe {
  file: string;
  from: string;
  allowed: boolean;
}

const MACHINES: Probe[] = [
  { file: 'machines/own.ts', from: './q.ts', allowed: true },
  { file: 'machines/xstate.ts', from: 'xstate', allowed: true },
  { file: 'machines/node.ts', from: 'node:fs', allowed: false },
  { file: 'machines/bare.ts', from: 'path', allowed: false },
  { file: 'machines/perf.ts', from: 'perf_hooks', allowed: false },
  { file: 'machines/impl.ts', from: '../impl/x.ts', allowed: false },
  { file: 'machines/deep.ts', from: '../impl/proxy/v2.ts', allowed: false },
  { file: 'machines/dotted.ts', from: './../impl/x.ts', allowed: false },
  { file: 'machines/absolute.ts', from: '/work/impl/x.ts', allowed: false },
  { file: 'machines/library.ts', from: 'fast-check', allowed: false },
  { file: 'machines/script.mjs', from: '../impl/x.ts', allowed: false },
];

const PROPERTIES: Probe[] = [
  { file: 'properties/own.ts', from: './p.ts', allowed: true },
  { file: 'properties/machines.ts', from: '../machines/q.ts', allowed: true },
  { file: 'properties/xstate.ts', from: 'xstate/graph', allowed: true },
  { file: 'properties/fastcheck.ts', from: 'fast-check', allowed: true },
  { file: 'properties/impl.ts', from: '../impl/x.ts', allowed: false },
  { file: 'properties/cli.ts', from: '../cli/main.ts', allowed: false },
  { file: 'properties/through.ts', from: '../machines/../impl/x.ts', allowed: false },
  { file: 'properties/dotted.ts', from: './../impl/x.ts', allowed: false },
  { file: 'properties/dotdot.ts', from: '.././impl/x.ts', allowed: false },
  { file: 'properties/root.ts', from: '../main.ts', allowed: false },
  { file: 'properties/node.ts', from: 'os', allowed: false },
  { file: 'properties/perf.ts', from: 'node:perf_hooks', allowed: false },
];

/** A file outside both layers, which the rules leave alone. */
const IMPL: Probe = { file: 'impl/x.ts', from: 'node:fs', allowed: true };

const ALL = [...MACHINES, ...PROPERTIES, IMPL];

let dir = '';
let refused = new Set<string>(); // the probe files the linter refused an import in

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'embryonic-layering-'));
  copyFileSync(join(ROOT, '.oxlintrc.json'), join(dir, '.oxlintrc.json'));
  const files: Record<string, string> = { 'machines/q.ts': '', 'properties/p.ts': '' };
  for (const p of ALL) files[p.file] = `import * as m from '${p.from}';\nexport const r = m;\n`;
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text || 'export const v = 1;\n');
  }
  let out: string;
  try {
    out = execFileSync(process.execPath, [OXLINT, '-f', 'json', '.'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
    });
  } catch (e) {
    const err = e as { status?: number | null; stdout?: string };
    if (err.status !== 1 || !err.stdout) throw e; // 1: errors were found; anything else is a failure to lint
    out = err.stdout;
  }
  const report = JSON.parse(out) as { diagnostics: { code: string; filename: string }[] };
  refused = new Set(
    report.diagnostics.filter((d) => d.code === 'eslint(no-restricted-imports)').map((d) => d.filename),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** How a verdict on probe <p> reads, refused or accepted. Pure. */
function reads(p: Probe, refusedIt: boolean): string {
  return `${p.file} importing ${p.from}: ${refusedIt ? 'refused' : 'accepted'}`;
}

/** The linter's verdict on <p>. */
function verdict(p: Probe): string {
  return reads(p, refused.has(p.file));
}

/** The verdict the layering wants on <p>. Pure. */
function expected(p: Probe): string {
  return reads(p, !p.allowed);
}

describe('the lint of machines/', () => {
  it.each(MACHINES)('$from in $file is accepted only if its own file or xstate', (p) => {
    expect(verdict(p)).toBe(expected(p));
  });
});

describe('the lint of properties/', () => {
  it.each(PROPERTIES)(
    '$from in $file is accepted only if its own file, machines/, xstate or fast-check',
    (p) => {
      expect(verdict(p)).toBe(expected(p));
    },
  );
});

describe('the lint of the other directories', () => {
  it('leaves impl/ free to import Node', () => {
    expect(verdict(IMPL)).toBe(`${IMPL.file} importing ${IMPL.from}: accepted`);
  });

  it('refuses no file the probes do not list as refused', () => {
    expect([...refused].sort()).toEqual(
      ALL.filter((p) => !p.allowed)
        .map((p) => p.file)
        .sort(),
    );
  });
});
