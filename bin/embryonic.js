#!/usr/bin/env node
// Entry point of the `embryonic` CLI. The project ships TypeScript sources, with no build step to
// run: this runs a bundle of them that bin/compile.js makes on the first start after a source
// changed (about 0.3 s) and keeps in node_modules/.cache, because it starts in a quarter of the
// CPU time tsx's loader takes. EMBRYONIC_COMPILE=0 runs the sources through tsx instead;
// EMBRYONIC_COMPILE=1 makes a failed build an error rather than a reason to fall back to tsx.
// EMBRYONIC_COMPILE_CACHE names another directory for the builds, inside the repository.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const mode = process.env.EMBRYONIC_COMPILE;

/** @type {string | null} the compiled CLI's URL, or null to run the sources through tsx */
let compiled = null;
if (mode !== '0') {
  const { compiledEntry, defaultCacheDir, describeBuildError } = await import('./compile.js');
  try {
    const cacheDir = process.env.EMBRYONIC_COMPILE_CACHE || defaultCacheDir(ROOT);
    compiled = (await compiledEntry({ root: ROOT, entry: 'cli/main.ts', cacheDir })).url;
  } catch (err) {
    if (mode === '1') throw err;
    console.error(
      `embryonic: running the TypeScript sources through tsx (could not compile them: ${describeBuildError(err)})`,
    );
  }
}

/** @type {{ main(argv: string[]): Promise<number> }} */
let cli;
if (compiled !== null) {
  process.setSourceMapsEnabled(true); // stack traces name the .ts sources, as under tsx
  cli = await import(compiled);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../cli/main.ts');
}
process.exitCode = await cli.main(process.argv.slice(2));
