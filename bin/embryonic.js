#!/usr/bin/env node
// Entry point of the `embryonic` CLI. The project ships TypeScript sources, with no build step to
// run: this runs a bundle of them that bin/compile.js makes on the first start after a source
// changed (about 0.3 s) and keeps in node_modules/.cache, because it starts in a quarter of the
// CPU time tsx's loader takes. EMBRYONIC_COMPILE=0 runs the sources through tsx instead;
// EMBRYONIC_COMPILE=1 makes a failed build an error rather than a reason to fall back to tsx.
// EMBRYONIC_COMPILE_CACHE names another directory for the builds, inside the repository.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mapStackTracesLazily, runnableEntry } from './compile.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const { url, compiled } = await runnableEntry(
  ROOT,
  'cli/main.ts',
  'embryonic: running the TypeScript sources',
);
if (compiled) mapStackTracesLazily(url); // stack traces name the .ts sources, as under tsx
/** @type {{ main(argv: string[]): Promise<number> }} */
const cli = await import(url);
process.exitCode = await cli.main(process.argv.slice(2));
