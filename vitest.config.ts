import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The benchmarks' smoke run starts both proxies, HAProxy and load generators: it is a script of
    // its own (`npm run bench:smoke`, run by .ci/run), not part of `npm test`.
    exclude: [
      '**/node_modules/**',
      ...(process.env.EMBRYONIC_BENCH_SMOKE === '1' ? [] : ['test/bench/smoke.test.ts']),
    ],
    globalSetup: ['test/globalSetup.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    // One worker per core. Vitest's default keeps one core for its main process (cores − 1), which
    // on a 2-core machine ran every file on one worker while the main process idled: 50 s of
    // tests in a row. Two workers run them in 33 s, and `npm test` (typecheck and lint beside
    // them) went from about 60 s to 41 s.
    maxWorkers: availableParallelism(),
    // Test files share their worker's module cache: no test relies on a fresh module state, and
    // re-importing the machines, XState and fast-check for every file was a fifth of the run.
    isolate: false,
  },
});
