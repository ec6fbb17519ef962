// The CLI's compiled form. Starting `embryonic` through tsx's loader costs about 0.8 s of CPU
// (its hooks thread resolves and transforms each of some hundred modules); a bundle of the same
// sources, made by esbuild (the compiler tsx itself uses), starts in about a quarter of that. The
// proxy is started that way by the tests and by the conformance runner dozens of times a run, so
// bin/embryonic.js runs the bundle, built on the first start after a source changed and kept in
// node_modules/.cache. The bundle is the sources as they are: it is rebuilt whenever the content
// of any file it was built from changes, or what else shapes the build (buildSeed: tsconfig.json,
// package.json, this file, esbuild's version, the root's path), and `import.meta.url` keeps
// meaning the source file's own URL, so every path a module finds from it (the repository root,
// package.json) is the same, as do `import.meta.dirname` and `filename`. Any other `import.meta`
// property but `resolve` fails the build.
import { createHash, randomBytes } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire, SourceMap } from 'node:module';
import { basename, dirname, extname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL, URL } from 'node:url';

/** Changes when the build's options change, so that older builds stop matching. */
const FORMAT = 'embryonic-compile 1';
/** Builds and temporary directories older than this are removed when a new build lands. */
const PRUNE_AGE_MS = 24 * 3600 * 1000;
/** The manifest of the builds of one entry: which build is current, and what it was built from. */
const MANIFEST_PREFIX = 'current-';

/**
 * Returns where the builds of the sources under `root` are kept unless told otherwise: under its
 * node_modules/.cache, which `npm ci` empties. Pure.
 *
 * @param {string} root
 * @returns {string}
 */
export function defaultCacheDir(root) {
  return join(root, 'node_modules', '.cache', 'embryonic-cli');
}

/**
 * Returns the URL to import to run `entry` (relative to `root`) as EMBRYONIC_COMPILE says: its
 * bundle (compiledEntry, in EMBRYONIC_COMPILE_CACHE or defaultCacheDir(root)); or, with
 * EMBRYONIC_COMPILE=0, or when the bundle cannot be built (said on stderr in one line that starts
 * with `fallback`, e.g. 'embryonic: running the TypeScript sources'), the source file itself, with
 * tsx's loader registered on the calling thread (loader hooks are per thread). `compiled` says
 * which. Rejects with the build's error when EMBRYONIC_COMPILE=1. The caller imports the URL.
 *
 * @param {string} root
 * @param {string} entry
 * @param {string} fallback  what the stderr line says is done instead of the bundle
 * @returns {Promise<{ url: string, compiled: boolean }>}
 */
export async function runnableEntry(root, entry, fallback) {
  const mode = process.env.EMBRYONIC_COMPILE;
  if (mode !== '0') {
    try {
      const cacheDir = process.env.EMBRYONIC_COMPILE_CACHE || defaultCacheDir(root);
      return { url: (await compiledEntry({ root, entry, cacheDir })).url, compiled: true };
    } catch (err) {
      if (mode === '1') throw err;
      console.error(`${fallback} through tsx (could not compile them: ${describeBuildError(err)})`);
    }
  }
  (await import('tsx/esm/api')).register();
  return { url: pathToFileURL(join(root, entry)).href, compiled: false };
}

/**
 * @typedef {object} CompileOptions
 * @property {string} root      the directory the sources are under (the repository root)
 * @property {string} entry     the entry module, relative to `root` (`cli/main.ts`)
 * @property {string} cacheDir  where builds and the manifest are kept; created if missing. Inside
 *   `root`, since the build imports packages the way its sources do, from the node_modules
 *   directories above it.
 */

/**
 * Returns the file URL of the compiled `entry` (an ES module, `<name>.mjs`, with its chunks and a
 * source map beside it), building it first unless the manifest in `cacheDir` names a build whose
 * inputs all still have the content it was built from. `built` says whether this call built it.
 * Packages are not bundled: the build imports them from `root`'s node_modules at run time.
 * Requires esbuild only when it builds. Rejects if the sources do not compile (esbuild's message),
 * if the cache directory is not inside `root` or cannot be written; the caller may then run the
 * sources another way.
 * Safe to call from concurrent processes: each builds into a directory of its own, and a build
 * lands by one rename (the same inputs give the same directory name, and the first one stays).
 * The caller owns nothing afterwards: builds stay in `cacheDir`, for the next start.
 *
 * @param {CompileOptions} options
 * @returns {Promise<{ url: string, built: boolean }>}
 */
export async function compiledEntry(options) {
  const { root, entry, cacheDir } = options;
  const within = relative(root, cacheDir);
  if (within === '' || within.startsWith('..') || isAbsolute(within))
    throw new Error(`the cache directory ${cacheDir} is not inside ${root}`);
  const out = `${basename(entry, extname(entry))}.mjs`;
  const seed = buildSeed(root, entry);
  const current = readManifest(join(cacheDir, manifestName(entry)));
  if (current !== null && current.entry === entry) {
    const hash = hashFiles(seed, current.inputs, (p) => readFileSync(join(root, p)));
    if (hash === current.hash && isFile(join(cacheDir, current.dir, out))) {
      touch(join(cacheDir, current.dir)); // in use: prune() keeps what was used lately
      return { url: pathToFileURL(join(cacheDir, current.dir, out)).href, built: false };
    }
  }
  return { url: await build(root, entry, out, cacheDir, seed), built: true };
}

/**
 * Builds `entry` into a fresh directory of `cacheDir`, moves it to its final name (the hash of
 * `seed` and of every input's content, as read by the build itself) and points the manifest at it.
 * Returns the URL of the output module.
 *
 * @param {string} root
 * @param {string} entry
 * @param {string} out
 * @param {string} cacheDir
 * @param {string} seed  buildSeed(root, entry)
 * @returns {Promise<string>}
 */
async function build(root, entry, out, cacheDir, seed) {
  const esbuild = await import('esbuild');
  mkdirSync(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  /** @type {Map<string, Buffer>} the content of each input, relative path → bytes, as compiled */
  const inputs = new Map();
  try {
    await esbuild.build({
      entryPoints: [join(root, entry)],
      absWorkingDir: root,
      bundle: true,
      splitting: true, // the commands' modules stay lazily loaded, as cli/commands.ts wants
      packages: 'external',
      platform: 'node',
      format: 'esm',
      target: 'node20',
      keepNames: true, // as tsx compiles: a function's name stays its source name
      sourcemap: 'linked',
      sourcesContent: false,
      outdir: tmp,
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
      plugins: [sourceFilesAsRead(root, inputs)],
    });
    const hash = /** @type {string} */ (
      hashFiles(seed, [...inputs.keys()], (p) => /** @type {Buffer} */ (inputs.get(p)))
    );
    const dir = hash.slice(0, 20);
    const final = join(cacheDir, dir);
    try {
      renameSync(tmp, final);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // the same build has landed already
      touch(final);
    }
    if (!isFile(join(final, out))) throw new Error(`the build of ${entry} did not land in ${final}`);
    const manifest = { format: FORMAT, entry, dir, hash, inputs: [...inputs.keys()].sort() };
    const manifestTmp = `${tmp}.json`;
    writeFileSync(manifestTmp, JSON.stringify(manifest));
    renameSync(manifestTmp, join(cacheDir, manifestName(entry)));
    prune(cacheDir, dir);
    return pathToFileURL(join(final, out)).href;
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * An esbuild plugin that loads every source file under `root` itself: it records the bytes it
 * compiled in `inputs` and gives `import.meta.url`, `dirname` and `filename` the source file's own
 * values (a bundle's would be the chunk's, in the cache directory); it fails a file that reads
 * any other property of import.meta but `resolve`.
 *
 * @param {string} root
 * @param {Map<string, Buffer>} inputs
 * @returns {import('esbuild').Plugin}
 */
function sourceFilesAsRead(root, inputs) {
  return {
    name: 'embryonic-sources',
    setup(pluginBuild) {
      pluginBuild.onLoad({ filter: /\.(ts|js|mjs|json)$/ }, (args) => {
        const rel = relative(root, args.path).split(sep).join('/');
        if (rel.startsWith('..') || rel.split('/').includes('node_modules')) return undefined;
        const bytes = readFileSync(args.path);
        inputs.set(rel, bytes);
        const ext = extname(args.path);
        const loader = ext === '.ts' ? 'ts' : ext === '.json' ? 'json' : 'js';
        const text = bytes.toString('utf8');
        if (loader === 'json') return { contents: text, loader };
        /** @type {Record<string, string>} what the source's own import.meta says */
        const own = {
          url: pathToFileURL(args.path).href,
          dirname: dirname(args.path),
          filename: args.path,
        };
        const contents = text.replace(/\bimport\.meta\.(url|dirname|filename)\b/g, (_, p) =>
          JSON.stringify(own[p]),
        );
        // import.meta.resolve of a package works from the cache (Node looks for node_modules
        // upwards, as from the source); any other property would name the bundle, not the source.
        const other = /\bimport\.meta\.(?!resolve\b)([A-Za-z_$][\w$]*)/.exec(contents);
        if (other !== null)
          return {
            errors: [{ text: `import.meta.${other[1]} would name the bundle, not ${rel}` }],
          };
        return { contents, loader };
      });
    },
  };
}

/**
 * The hash of a build: `seed`, then its input files' relative paths, sorted, each with its content.
 *
 * @param {string} seed
 * @param {string[]} paths
 * @param {(path: string) => Buffer} read
 * @returns {string | null} null if a file cannot be read
 */
function hashFiles(seed, paths, read) {
  const h = createHash('sha256').update(seed);
  for (const p of [...paths].sort()) {
    let bytes;
    try {
      bytes = read(p);
    } catch {
      return null;
    }
    h.update(`\0${p}\0${bytes.length}\0`).update(bytes);
  }
  return h.digest('hex');
}

/**
 * What shapes a build of `entry` under `root` besides its input files: this file's options
 * (FORMAT and the file itself), esbuild's version, the tsconfig.json and package.json of `root`
 * (esbuild reads the first; a missing one counts as empty), the entry, and `root`'s path (the
 * bundle holds the sources' absolute URLs, so two checkouts sharing node_modules do not share
 * builds). Reads files only.
 *
 * @param {string} root
 * @param {string} entry
 * @returns {string}
 */
function buildSeed(root, entry) {
  const read = (/** @type {string} */ path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  const esbuildPackage = read(createRequire(import.meta.url).resolve('esbuild/package.json'));
  return JSON.stringify([
    FORMAT,
    read(fileURLToPath(import.meta.url)),
    /"version"\s*:\s*"([^"]*)"/.exec(esbuildPackage)?.[1] ?? '',
    read(join(root, 'tsconfig.json')),
    read(join(root, 'package.json')),
    entry,
    root,
  ]);
}

/**
 * Returns one line that says why a build failed: esbuild's first error with its file and line, or
 * the error's first line. For the message of a caller that falls back to running the sources.
 *
 * @param {unknown} err
 * @returns {string}
 */
export function describeBuildError(err) {
  const first =
    /** @type {{ errors?: { text: string, location?: { file: string, line: number } | null }[] }} */ (err)
      ?.errors?.[0];
  if (first)
    return first.location ? `${first.location.file}:${first.location.line}: ${first.text}` : first.text;
  return String(err instanceof Error ? err.message : err).split('\n')[0] ?? '';
}

/**
 * Makes this thread's stack traces name the TypeScript sources of the build that `url` (a module
 * of it, as runnableEntry returns) belongs to, line and column, as Node's source maps do, but
 * without their cost at start: once enabled, Node reads and parses the map of every module it
 * loads (about 45 ms of CPU for the CLI's chunks, an eighth of a proxy's start), where this reads
 * a chunk's map the first time a trace has a frame in that chunk. Sets Error.prepareStackTrace,
 * keeping V8's format (the error as a string, then one "    at" line per frame). A frame outside
 * the build, of a chunk whose map cannot be read, or at a position its map does not cover stays as
 * V8 writes it. The hook stays for the life of the thread; nothing is owned by the caller.
 *
 * @param {string} url
 */
export function mapStackTracesLazily(url) {
  const build = new URL('.', url).href;
  /** @type {Map<string, SourceMap | null>} each chunk's map by the chunk's URL, null if unreadable */
  const maps = new Map();
  /** @param {string} chunk */
  const mapOf = (chunk) => {
    let map = maps.get(chunk);
    if (map === undefined) {
      try {
        map = new SourceMap(JSON.parse(readFileSync(fileURLToPath(`${chunk}.map`), 'utf8')));
      } catch {
        map = null;
      }
      maps.set(chunk, map);
    }
    return map;
  };
  /** @param {NodeJS.CallSite} frame */
  const mapped = (frame) => {
    const text = frame.toString();
    const chunk = frame.getFileName();
    const line = frame.getLineNumber();
    const column = frame.getColumnNumber();
    if (!chunk?.startsWith(build) || line === null || column === null) return text;
    const entry = mapOf(chunk)?.findEntry(line - 1, column - 1);
    if (!entry || !('originalSource' in entry)) return text;
    const source = fileURLToPath(new URL(entry.originalSource, chunk));
    return text.replace(
      `${chunk}:${line}:${column}`,
      `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`,
    );
  };
  Error.prepareStackTrace = function prepareMappedStackTrace(error, frames) {
    let head;
    try {
      head = Error.prototype.toString.call(error);
    } catch {
      head = '<error>';
    }
    return head + frames.map((frame) => `\n    at ${mapped(frame)}`).join('');
  };
}

/**
 * Marks the build directory `dir` as used now, so that prune() keeps it. Ignores a failure.
 *
 * @param {string} dir
 */
function touch(dir) {
  try {
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    // pruned or unwritable: the next build replaces it
  }
}

/**
 * The name of the manifest of `entry`'s builds: `current-cli-main-ts.json` for `cli/main.ts`.
 *
 * @param {string} entry
 */
function manifestName(entry) {
  return `${MANIFEST_PREFIX}${entry.replace(/[^A-Za-z0-9]+/g, '-')}.json`;
}

/**
 * The manifest at `path`, or null if there is none or it is not this format's.
 *
 * @param {string} path
 * @returns {{ entry: string, dir: string, hash: string, inputs: string[] } | null}
 */
function readManifest(path) {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8'));
    return m.format === FORMAT && Array.isArray(m.inputs) ? m : null;
  } catch {
    return null;
  }
}

/** @param {string} path */
function isFile(path) {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Removes the builds and temporary files of `cacheDir` not used for PRUNE_AGE_MS (a build's
 * directory is touched each time it is found current), but never `keep`, a manifest, nor a build a
 * manifest names. A process started from an older build may still load its chunks, hence the age.
 *
 * @param {string} cacheDir
 * @param {string} keep
 */
function prune(cacheDir, keep) {
  const now = Date.now();
  const names = readdirSync(cacheDir);
  const manifests = names.filter((n) => n.startsWith(MANIFEST_PREFIX) && n.endsWith('.json'));
  const named = new Set([keep, ...manifests.map((m) => readManifest(join(cacheDir, m))?.dir)]);
  for (const name of names) {
    if (named.has(name) || manifests.includes(name)) continue;
    try {
      if (now - statSync(join(cacheDir, name)).mtimeMs > PRUNE_AGE_MS)
        rmSync(join(cacheDir, name), { recursive: true, force: true });
    } catch {
      // gone already: another process pruned it
    }
  }
}
