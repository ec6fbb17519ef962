/**
 * `embryonic diagrams`: writes the diagrams, PORTING.md and the README's diagrams section from the
 * machines, checks that the committed ones are in sync (--check), or draws the coverage picture
 * (--coverage).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  COVERAGE_DIR,
  coverageFiles,
  MACHINE_PATHS_FILE,
  modelCheckerCoverage,
  readCoverageDir,
  tallyCoverage,
  totalOf,
} from '../diagrams/coverage.ts';
import { diagramFiles, readmeSection, spliceReadme, type GeneratedFile } from '../diagrams/generate.ts';
import { loadPortingSources, portingMarkdown } from '../diagrams/porting.ts';
import { MACHINES } from '../machines/compose.ts';
import { listTransitions } from '../machines/introspect.ts';
import { has, parseArgs, UsageError, type Command } from './command.ts';
import type { VerifyResult } from './verifications.ts';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Returns `path` relative to `root` when it is inside it, else as it is. */
function shown(root: string, path: string): string {
  const r = relative(root, path);
  return r.startsWith('..') ? path : r;
}

/** How the README section is named in the lists of files that differ. */
const README_ENTRY = 'README.md (diagrams section)';

/**
 * Returns every file `embryonic diagrams` writes under `root`, with its exact content: the
 * diagrams of diagrams/generate.ts, PORTING.md, and README.md with its diagrams section
 * regenerated (the rest of the README as it is on disk). Reads `root`; writes nothing.
 * Throws if the README has no diagrams markers or a source of PORTING.md does not load.
 */
export async function expectedFiles(root: string): Promise<GeneratedFile[]> {
  const files = await diagramFiles();
  files.push({ path: 'PORTING.md', content: portingMarkdown(loadPortingSources(root)) });
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  files.push({ path: 'README.md', content: spliceReadme(readme, readmeSection()) });
  return files;
}

/**
 * Returns what differs between `root` and what `embryonic diagrams` would write: each generated
 * file that is missing or different, and each .mmd/.dot/.svg in diagrams/ that is no longer
 * generated. Empty when everything is in sync. Reads `root`; writes nothing.
 */
export async function checkDiagrams(root: string): Promise<string[]> {
  return (await compareDiagrams(root)).differing;
}

async function compareDiagrams(root: string): Promise<{ differing: string[]; checked: number }> {
  const files = await expectedFiles(root);
  const out: string[] = [];
  for (const f of files) {
    const path = join(root, f.path);
    const now = existsSync(path) ? readFileSync(path, 'utf8') : null;
    if (now === f.content) continue;
    out.push(f.path === 'README.md' ? README_ENTRY : `${f.path}${now === null ? ' (missing)' : ''}`);
  }
  const dir = join(root, 'diagrams');
  for (const name of existsSync(dir) ? readdirSync(dir).sort() : []) {
    const path = `diagrams/${name}`;
    if (/\.(mmd|dot|svg)$/.test(name) && !files.some((f) => f.path === path))
      out.push(`${path} (no longer generated)`);
  }
  return { differing: out, checked: files.length };
}

/**
 * Writes every file of expectedFiles() under `root` whose content differs. Returns the paths
 * written. Creates diagrams/ if needed; never deletes a file.
 */
export async function writeDiagrams(root: string): Promise<string[]> {
  const written: string[] = [];
  for (const f of await expectedFiles(root)) written.push(...writeIfChanged(root, f));
  return written;
}

/** Writes `file` under `root` unless it already has that content. Returns [path] if written, else []. */
function writeIfChanged(root: string, file: GeneratedFile): string[] {
  const path = join(root, file.path);
  if (existsSync(path) && readFileSync(path, 'utf8') === file.content) return [];
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, file.content);
  return [file.path];
}

/**
 * Draws the coverage picture from the coverage files in `dir`: when none of them comes from the
 * model checker, first writes `dir`/machine-paths.json from the generated machine paths; then
 * writes diagrams/coverage/<machine>.{mmd,dot,svg} under `root`. Returns the lines to print.
 * Throws on a malformed coverage file.
 */
export async function writeCoverage(root: string, dir: string): Promise<string[]> {
  const lines: string[] = [];
  if (!readCoverageDir(dir).some((f) => f.data.source === 'model-checker')) {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, MACHINE_PATHS_FILE);
    writeFileSync(path, JSON.stringify(modelCheckerCoverage(), null, 2) + '\n');
    lines.push(
      `${relative(root, dir) || dir} had no file from the model checker: wrote ${relative(root, path)}, the transitions the machine paths take`,
    );
  }
  const loaded = readCoverageDir(dir);
  const tally = tallyCoverage(loaded);
  lines.push(`read ${loaded.map((f) => shown(root, f.path)).join(', ')}`);
  for (const [name, machine] of Object.entries(MACHINES)) {
    const ids = listTransitions(machine).map((t) => t.id);
    const never = ids.filter((id) => totalOf(tally, id) === 0);
    lines.push(
      `${name}: ${ids.length - never.length}/${ids.length} transitions run${never.length > 0 ? `; never: ${never.join(', ')}` : ''}`,
    );
  }
  for (const id of tally.unknown) lines.push(`warning: the coverage files name ${id}, which no machine has`);
  for (const f of await coverageFiles(tally)) writeIfChanged(root, f);
  lines.push('wrote diagrams/coverage/{listener,connection,session}.{mmd,dot,svg}');
  return lines;
}

export const diagramsCommand: Command = {
  name: 'diagrams',
  summary: 'write the diagrams, PORTING.md and the README diagrams from the machines',
  usage: [
    'Usage: embryonic diagrams [--check | --coverage [DIR]]',
    '',
    'Writes, from the machines: diagrams/<machine>.{mmd,dot,svg} for listener, connection and session,',
    'diagrams/overview.{mmd,dot,svg} for the composed system, PORTING.md (with docs/porting-notes.md),',
    'and the section of README.md between the "diagrams" markers. Only files that change are written.',
    '',
    'Options:',
    '  --check           write nothing; list every file that differs from what would be written',
    `  --coverage [DIR]  draw diagrams/coverage/<machine>.{mmd,dot,svg} from the coverage files in DIR`,
    `                    (default ${COVERAGE_DIR}); see diagrams/coverage.ts for their format`,
    '',
    'Exit code: 0 on success (with --check: everything in sync), 1 if --check found differences.',
  ].join('\n'),
  async run(args) {
    // --coverage=DIR is --coverage DIR: the directory is the one positional, and only there.
    const words = args.flatMap((a) => (a.startsWith('--coverage=') ? ['--coverage', a.slice(11)] : [a]));
    const parsed = parseArgs(words, { switches: ['check', 'coverage'], positionals: 1 });
    const check = has(parsed, 'check');
    const coverage = has(parsed, 'coverage');
    if (check && coverage) throw new UsageError('--check and --coverage do not go together');
    if (!coverage && parsed.positionals.length > 0)
      throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    if (coverage) {
      const dirArg = parsed.positionals[0];
      const dir = dirArg ? resolve(process.cwd(), dirArg) : join(ROOT, COVERAGE_DIR);
      for (const line of await writeCoverage(ROOT, dir)) console.log(line);
      return 0;
    }
    if (check) {
      const differing = await checkDiagrams(ROOT);
      if (differing.length === 0) {
        console.log('diagrams: in sync with the machines');
        return 0;
      }
      console.log(
        `diagrams: ${differing.length} file(s) differ from the machines; run npx embryonic diagrams`,
      );
      for (const f of differing) console.log(`  ${f}`);
      return 1;
    }
    const written = await writeDiagrams(ROOT);
    console.log(
      written.length === 0 ? 'diagrams: nothing to write, all in sync' : `wrote ${written.join(', ')}`,
    );
    return 0;
  },
};

/** The `diagrams in sync` verification: the committed diagrams, PORTING.md and README section are current. */
export async function verifyDiagrams(): Promise<VerifyResult> {
  const { differing, checked } = await compareDiagrams(ROOT);
  return {
    ok: differing.length === 0,
    detail:
      differing.length === 0
        ? `${checked} files in sync`
        : `run npx embryonic diagrams: ${differing.join(', ')} differ`,
  };
}
