/**
 * Runs SPIN (Debian's `spin`, 6.5) on a Promela model: `spin -a` generates the verifier pan.c,
 * gcc compiles it (safety only, no never claim), and pan explores every state depth first, without
 * partial-order reduction mattering (one process). Everything happens in a temporary directory the
 * run removes; each child process is waited for, with a timeout.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What pan reported. */
export interface SpinResult {
  stored: number; //       "states, stored": the distinct states
  transitions: number; //  "transitions (= stored+matched)"
  depth: number; //        "depth reached"
  errors: number; //       assertion violations and invalid end states found
  seconds: number; //      pan's "elapsed time" (0.01 s resolution), the search alone
  memoryMiB: number; //    pan's "total actual memory usage", hash table included
  version: string;
  output: string; //       pan's whole report
}

/** Returns SPIN's version line, or null when spin or gcc is not installed. */
export function spinVersion(): string | null {
  const spin = spawnSync('spin', ['-V'], { encoding: 'utf8', timeout: 10_000 });
  const gcc = spawnSync('gcc', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (spin.status !== 0 || gcc.status !== 0) return null;
  return spin.stdout.trim();
}

/**
 * Verifies the Promela model `source` with `-DN=<n>`: generates, compiles (gcc `optimize`, -O2 by
 * default) and runs pan with a search depth of `maxDepth` and, when given, a hash table of
 * 2^`hashBits` slots (pan's -w; its default, 2^24 slots, takes pan about 0.8 s to allocate, far
 * more than a small model takes to explore; the counts are exact whatever the size, since pan
 * chains what collides). Returns pan's figures. Throws when a step fails or pan's report cannot be
 * read. Removes its temporary directory.
 */
export function runSpin(
  source: string,
  n: number,
  opts: { optimize?: string; maxDepth?: number; hashBits?: number; timeoutMs?: number } = {},
): SpinResult {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-spin-'));
  const timeout = opts.timeoutMs ?? 600_000;
  const run = (cmd: string, args: string[]): string => {
    const r = spawnSync(cmd, args, {
      cwd: dir,
      encoding: 'utf8',
      timeout,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0)
      throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  try {
    writeFileSync(join(dir, 'model.pml'), source);
    run('spin', [`-DN=${n}`, '-a', 'model.pml']);
    run('gcc', [opts.optimize ?? '-O2', '-DSAFETY', '-DNOFAIR', '-o', 'pan', 'pan.c']);
    const output = run('./pan', [
      `-m${opts.maxDepth ?? 1_000_000}`,
      ...(opts.hashBits === undefined ? [] : [`-w${opts.hashBits}`]),
    ]);
    const num = (re: RegExp): number => {
      const m = re.exec(output);
      if (!m) throw new Error(`pan's report has no ${re.source}:\n${output}`);
      return Number(m[1]);
    };
    if (/max search depth too small/.test(output))
      throw new Error(`pan's search depth was too small:\n${output}`);
    return {
      stored: num(/([\d.e+]+) states, stored/),
      transitions: num(/([\d.e+]+) transitions \(= stored\+matched\)/),
      depth: num(/depth reached (\d+)/),
      errors: num(/errors: (\d+)/),
      seconds: num(/pan: elapsed time ([\d.e+]+) seconds/),
      memoryMiB: num(/([\d.]+)\s+total actual memory usage/),
      version: spawnSync('spin', ['-V'], { encoding: 'utf8' }).stdout.trim(),
      output,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
