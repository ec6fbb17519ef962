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
    // One worker per core, and one more. Vitest's default keeps one core for its main process
    // (cores − 1), which on a 2-core machine ran every file on one worker while the main process
    // idled. The extra worker is for the files that wait on sockets and deadlines: the two longest
    // (test/conformance/runner.test.ts, test/impl/stream.test.ts) spend about half their time
    // waiting, and with a worker per core they left a core idle for it: about 25 s of idle core
    // in a run of `npm test`, 7 s with three workers. On 2 cores, runs alternated took 61 and 54 s
    // with three workers, 67 and 61 s with two.
    maxWorkers: availableParallelism() + 1,
    // Test files share their worker's module cache: no test relies on a fresh module state, and
    // re-importing the machines, XState and fast-check for every file was a fifth of the run.
    isolate: false,
  },
});
