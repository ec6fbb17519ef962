import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { compiledEntry, describeBuildError } from '../../bin/compile.js';

const ROOT = join(import.meta.dirname, '../..');
const COMPILE = pathToFileURL(join(ROOT, 'bin/compile.js')).href;

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/**
 * A throwaway project: `main.ts` re-exports `lib.ts`, whose `here` is its own import.meta.url.
 * Removed after the test (roots).
 */
function project(value: string): { root: string; cacheDir: string } {
  const root = mkdtempSync(join(tmpdir(), 'embryonic-compile-'));
  roots.push(root);
  mkdirSync(join(root, 'src'));
  writeFileSync(join(root, 'src/main.ts'), "export { here, value } from './lib.ts';\n");
  writeLib(root, value);
  return { root, cacheDir: join(root, 'cache') };
}

function writeLib(root: string, value: string, extra = ''): void {
  writeFileSync(
    join(root, 'src/lib.ts'),
    `export const value: string = ${JSON.stringify(value)};\nexport const here = import.meta.url;\n${extra}`,
  );
}

async function load(url: string): Promise<{ value: string; here: string }> {
  return (await import(url)) as { value: string; here: string };
}

/**
 * Runs, in a child Node, the build's `fail()` after mapStackTracesLazily(url) and the import, with
 * `before` in between; returns its exit status and stderr (where the uncaught error's trace goes).
 */
function failIn(url: string, before: string): { status: number | null; stderr: string } {
  const script = [
    `const { mapStackTracesLazily } = await import(${JSON.stringify(COMPILE)});`,
    `mapStackTracesLazily(${JSON.stringify(url)});`,
    `const m = await import(${JSON.stringify(url)});`,
    before,
    'm.fail();',
  ].join('\n');
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { status: run.status, stderr: run.stderr };
}

describe('compiledEntry', () => {
  it('builds the entry on the first call and reuses the build while no input changes', async () => {
    const p = project('one');
    const first = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(first.built).toBe(true);
    expect((await load(first.url)).value).toBe('one');
    const second = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(second).toEqual({ url: first.url, built: false });
    const manifest = JSON.parse(readFileSync(join(p.cacheDir, 'current-src-main-ts.json'), 'utf8')) as {
      inputs: string[];
    };
    expect(manifest.inputs).toEqual(['src/lib.ts', 'src/main.ts']);
  });

  it('keeps the builds of two entries side by side, each reused while its inputs stay the same', async () => {
    const p = project('one');
    const main = await compiledEntry({ ...p, entry: 'src/main.ts' });
    const lib = await compiledEntry({ ...p, entry: 'src/lib.ts' });
    expect([main.built, lib.built]).toEqual([true, true]);
    expect(await compiledEntry({ ...p, entry: 'src/main.ts' })).toEqual({ url: main.url, built: false });
    expect(await compiledEntry({ ...p, entry: 'src/lib.ts' })).toEqual({ url: lib.url, built: false });
    expect((await load(lib.url)).value).toBe('one');
  });

  it("keeps import.meta.url the source file's own URL, not the bundle's", async () => {
    const p = project('one');
    const { url } = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(url.startsWith(pathToFileURL(p.cacheDir).href)).toBe(true);
    expect((await load(url)).here).toBe(pathToFileURL(join(p.root, 'src/lib.ts')).href);
  });

  it('rebuilds when the content of an input changes, and the new build runs the new content', async () => {
    const p = project('one');
    const first = await compiledEntry({ ...p, entry: 'src/main.ts' });
    writeLib(p.root, 'two');
    const second = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(second.built).toBe(true);
    expect(second.url).not.toBe(first.url);
    expect((await load(second.url)).value).toBe('two');
    // Back to the first content: its build is still there, and is the one named.
    writeLib(p.root, 'one');
    const third = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(third.url).toBe(first.url);
  });

  it('refuses a cache directory outside the root, whose build could not import its packages', async () => {
    const p = project('one');
    await expect(compiledEntry({ ...p, cacheDir: tmpdir(), entry: 'src/main.ts' })).rejects.toThrow(
      /is not inside/,
    );
  });

  it('rebuilds when tsconfig.json changes, which shapes the build without being one of its inputs', async () => {
    const p = project('one');
    writeFileSync(join(p.root, 'tsconfig.json'), '{ "compilerOptions": { "target": "ES2022" } }\n');
    const first = await compiledEntry({ ...p, entry: 'src/main.ts' });
    writeFileSync(join(p.root, 'tsconfig.json'), '{ "compilerOptions": { "target": "ES2020" } }\n');
    const second = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(second.built).toBe(true);
    expect(second.url).not.toBe(first.url);
  });

  it("does not share a build between two checkouts whose caches are one directory: each keeps its own sources' URLs", async () => {
    const a = project('one');
    const b = project('one');
    mkdirSync(a.cacheDir);
    symlinkSync(a.cacheDir, b.cacheDir);
    const fromA = await compiledEntry({ ...a, entry: 'src/main.ts' });
    const fromB = await compiledEntry({ ...b, entry: 'src/main.ts' });
    expect(fromB.built).toBe(true);
    expect((await load(fromB.url)).here).toBe(pathToFileURL(join(b.root, 'src/lib.ts')).href);
    expect((await load(fromA.url)).here).toBe(pathToFileURL(join(a.root, 'src/lib.ts')).href);
  });

  it("gives import.meta.dirname and filename the source's own values, and fails the build on any other property but resolve", async () => {
    const p = project('one');
    writeLib(p.root, 'one', 'export const dir = import.meta.dirname, file = import.meta.filename;\n');
    writeFileSync(join(p.root, 'src/main.ts'), "export { dir, file } from './lib.ts';\n");
    const { url } = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(await import(url)).toMatchObject({ dir: join(p.root, 'src'), file: join(p.root, 'src/lib.ts') });
    writeLib(p.root, 'one', 'export const main = import.meta.main;\n');
    await expect(compiledEntry({ ...p, entry: 'src/main.ts' })).rejects.toThrow(
      /import\.meta\.main would name the bundle, not src\/lib\.ts/,
    );
  });

  it('prunes an old build no manifest names, and keeps an old one that another entry still uses', async () => {
    const p = project('one');
    const main = await compiledEntry({ ...p, entry: 'src/main.ts' });
    const mainDir = main.url.split('/').at(-2)!;
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    mkdirSync(join(p.cacheDir, 'orphan'));
    utimesSync(join(p.cacheDir, 'orphan'), twoDaysAgo, twoDaysAgo);
    utimesSync(join(p.cacheDir, mainDir), twoDaysAgo, twoDaysAgo);
    await compiledEntry({ ...p, entry: 'src/lib.ts' }); // a build lands: it prunes
    expect(existsSync(join(p.cacheDir, 'orphan'))).toBe(false);
    expect(existsSync(join(p.cacheDir, mainDir))).toBe(true);
    // Found current again, the build is marked used.
    await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(statSync(join(p.cacheDir, mainDir)).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
  });

  it('rebuilds when the build the manifest names is gone', async () => {
    const p = project('one');
    const first = await compiledEntry({ ...p, entry: 'src/main.ts' });
    for (const name of readdirSync(p.cacheDir))
      if (name !== 'current-src-main-ts.json') rmSync(join(p.cacheDir, name), { recursive: true });
    const second = await compiledEntry({ ...p, entry: 'src/main.ts' });
    expect(second).toEqual({ url: first.url, built: true });
    expect(existsSync(new URL(second.url))).toBe(true);
  });

  it("rejects with esbuild's message when a source does not compile, and leaves no partial build", async () => {
    const p = project('one');
    writeLib(p.root, 'one', 'export const broken = ;\n');
    await expect(compiledEntry({ ...p, entry: 'src/main.ts' })).rejects.toThrow(/src\/lib\.ts:3/);
    expect(readdirSync(p.cacheDir)).toEqual([]);
  });

  it("says in one line why a build failed: esbuild's first error with its file and line", async () => {
    const p = project('one');
    writeLib(p.root, 'one', 'export const broken = ;\n');
    const err: unknown = await compiledEntry({ ...p, entry: 'src/main.ts' }).catch((e: unknown) => e);
    expect(describeBuildError(err)).toMatch(/^src\/lib\.ts:3: Unexpected ";"$/);
    expect(describeBuildError(new Error('first line\nsecond line'))).toBe('first line');
  });

  it("maps a stack trace's frames in the build to the TypeScript source, line and column", async () => {
    const p = project('one');
    writeLib(p.root, 'one', '\n\nexport function fail(): never {\n  throw new Error("here");\n}\n');
    writeFileSync(join(p.root, 'src/main.ts'), "export { fail } from './lib.ts';\n");
    const { url } = await compiledEntry({ ...p, entry: 'src/main.ts' });
    const run = failIn(url, '');
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('Error: here\n');
    expect(run.stderr).toContain(`at Module.fail (${join(p.root, 'src/lib.ts')}:6:9)`);
    // A frame outside the build stays as V8 writes it.
    expect(run.stderr).toMatch(/at file:\/\/\/.*\[eval1\]:\d+:\d+/);
  });

  it("reads a chunk's source map only when a trace first has a frame in it", async () => {
    const p = project('one');
    writeLib(p.root, 'one', '\n\nexport function fail(): never {\n  throw new Error("here");\n}\n');
    writeFileSync(join(p.root, 'src/main.ts'), "export { fail } from './lib.ts';\n");
    const { url } = await compiledEntry({ ...p, entry: 'src/main.ts' });
    // The map is gone once the module is loaded and the hook set: the frame stays the bundle's.
    const run = failIn(url, `(await import('node:fs')).rmSync(new URL(${JSON.stringify(url)} + '.map'));`);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`at Module.fail (${url}:`);
    expect(run.stderr).not.toContain('src/lib.ts');
  });

  it('lands one build when four processes build the same sources at the same time', async () => {
    const p = project('one');
    const script = [
      `const { compiledEntry } = await import(${JSON.stringify(COMPILE)});`,
      `const r = await compiledEntry(${JSON.stringify({ ...p, entry: 'src/main.ts' })});`,
      'const m = await import(r.url);',
      'process.stdout.write(JSON.stringify({ url: r.url, value: m.value }));',
    ].join('\n');
    const outputs = await Promise.all(
      [0, 1, 2, 3].map(
        () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
              stdio: ['ignore', 'pipe', 'inherit'],
            });
            let out = '';
            child.stdout.setEncoding('utf8').on('data', function childOnData(c: string) {
              out += c;
            });
            child.on('error', reject);
            child.on('close', function childOnClose(code) {
              if (code === 0) resolve(out);
              else reject(new Error(`exit ${code}`));
            });
          }),
      ),
    );
    const results = outputs.map((o) => JSON.parse(o) as { url: string; value: string });
    expect(new Set(results.map((r) => r.url)).size).toBe(1);
    expect(results.every((r) => r.value === 'one')).toBe(true);
    // One build directory and the manifest: no temporary directory or manifest is left behind.
    expect(readdirSync(p.cacheDir).sort()).toEqual(
      [results[0]!.url.split('/').at(-2)!, 'current-src-main-ts.json'].sort(),
    );
  });
});
