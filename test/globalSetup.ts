/**
 * Before any test file runs: builds the bundles of the CLI and of the monitor's worker
 * (bin/compile.js) once, as their first start would, so that the test files that start them at
 * the same moment do not each build them. Sets EMBRYONIC_COMPILE=1 for the test processes and what they
 * start: a bundle that does not build fails the run instead of falling back to tsx unseen.
 */
import { join } from 'node:path';
import { compiledEntry, defaultCacheDir } from '../bin/compile.js';

/**
 * Builds both bundles, or reuses them while their sources are unchanged, then sets
 * EMBRYONIC_COMPILE=1 in this process's environment, which vitest's workers inherit. Rejects with
 * esbuild's error when a source does not compile: the run then stops before any test.
 */
export default async function setup(): Promise<void> {
  const root = join(import.meta.dirname, '..');
  for (const entry of ['cli/main.ts', 'impl/monitorWorker.ts'])
    await compiledEntry({ root, entry, cacheDir: defaultCacheDir(root) });
  process.env.EMBRYONIC_COMPILE = '1';
}
