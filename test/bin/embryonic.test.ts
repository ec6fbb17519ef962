import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

function run(
  args: string[],
  env: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  const { status, stdout, stderr } = spawnSync(process.execPath, [join(ROOT, 'bin/embryonic.js'), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, ...env },
  });
  return { status, stdout, stderr };
}

describe('bin/embryonic.js', () => {
  it('builds a bundle of every command and runs the CLI from it', () => {
    mkdirSync(join(ROOT, 'node_modules/.cache'), { recursive: true });
    const cache = mkdtempSync(join(ROOT, 'node_modules/.cache/embryonic-bin-test-'));
    try {
      const compiled = run(['proxy', '--help'], { EMBRYONIC_COMPILE: '1', EMBRYONIC_COMPILE_CACHE: cache });
      expect(compiled.status).toBe(0);
      expect(compiled.stderr).toBe('');
      expect(compiled.stdout).toContain('Usage: embryonic proxy -f FILE');
      // Every command's module loads from the bundle (--help loads them all to list them).
      const help = run(['--help'], { EMBRYONIC_COMPILE: '1', EMBRYONIC_COMPILE_CACHE: cache });
      expect(help.status).toBe(0);
      expect(help.stdout.match(/^ {2}[a-z-]+ +\S/gm)).toHaveLength(10);
      const usage = run(['proxy', '--bogus'], { EMBRYONIC_COMPILE: '1', EMBRYONIC_COMPILE_CACHE: cache });
      expect(usage.status).toBe(2);
      expect(usage.stderr).toMatch(/^embryonic proxy: .*--bogus/);
      // The bundle was built from the CLI's sources, the proxy's and the machines' among them.
      const manifest = JSON.parse(readFileSync(join(cache, 'current-cli-main-ts.json'), 'utf8')) as {
        entry: string;
        inputs: string[];
      };
      expect(manifest.entry).toBe('cli/main.ts');
      expect(manifest.inputs).toEqual(
        expect.arrayContaining([
          'cli/main.ts',
          'cli/proxy.ts',
          'impl/proxy.ts',
          'machines/session.machine.ts',
        ]),
      );
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('runs the sources through tsx, as the bundle runs them, and says why, when it cannot build the bundle', () => {
    const result = run(['proxy', '--help'], {
      EMBRYONIC_COMPILE: '',
      EMBRYONIC_COMPILE_CACHE: join(ROOT, 'package.json', 'cache'),
    });
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(
      /^embryonic: running the TypeScript sources through tsx \(could not compile them: [^\n]*ENOTDIR[^\n]*\)\n$/,
    );
    expect(result.stdout).toContain('Usage: embryonic proxy -f FILE');
    // The same command from the bundle (the one globalSetup built): the same output, and no line more.
    expect(run(['proxy', '--help'], { EMBRYONIC_COMPILE: '1' })).toEqual({ ...result, stderr: '' });
  });

  it('fails on a build it cannot make when EMBRYONIC_COMPILE=1', () => {
    const result = run(['proxy', '--help'], {
      EMBRYONIC_COMPILE: '1',
      EMBRYONIC_COMPILE_CACHE: join(ROOT, 'package.json', 'cache'),
    });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('ENOTDIR');
  });
});
