/**
 * `embryonic trace-check`: replays a lifecycle trace (docs/TRACE.md) through the composed machines
 * and checks every invariant; and the `verify` entry that measures it on a 10k-connection trace.
 */
import { closeSync, createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig, type ModelConfig, type Profile } from '../machines/config.ts';
import {
  formatTraceLine,
  traceSchema,
  validateTraceLine,
  type CompleteKind,
  type HeaderLine,
  type TraceLine,
} from '../machines/traceFormat.ts';
import {
  formatDivergence,
  TraceMonitor,
  type Divergence,
  type TraceCheckResult,
  type TraceMonitorOptions,
} from '../properties/traceCheck.ts';
import { randomTrace } from '../properties/traceGen.ts';
import { flag, has, intFlag, parseArgs, UsageError, type Command } from './command.ts';
import type { VerifyResult } from './verifications.ts';

/** Exit codes of trace-check, as its usage documents them. */
export const TRACE_CHECK_EXIT = {
  conforms: 0,
  diverges: 1,
  violates: 1,
  invalid: 2,
  ambiguous: 3,
} as const;

const SWITCHES = ['json', 'accept-proxy', 'ssl', 'schema'];

export const traceCheckCommand: Command = {
  name: 'trace-check',
  summary: "check a proxy's lifecycle trace (NDJSON) against the machines and the invariants",
  usage: [
    'Usage: embryonic trace-check FILE [--profile P] [--config FILE.json] [--mode tcp|http]',
    '                             [--accept-proxy[=false]] [--ssl[=false]] [--timeout-client MS|none]',
    '                             [--maxconn N] [--complete step,effect] [--deadline-slack MS]',
    '                             [--max-states N] [--json]',
    '       embryonic trace-check --schema',
    '',
    'Replays the trace FILE (one JSON object per line, docs/TRACE.md, docs/trace.schema.json) through',
    'the composed machines, keeping every model state consistent with it, and checks every invariant.',
    'Inputs whose params are not logged are tried with every value; logged steps, effects and',
    'counters must match the model, in order; unlogged ones are tolerated, except for the kinds the',
    "trace's header (or --complete) declares complete. FILE - reads standard input.",
    '',
    "The configuration is the header's (its `config`), then --config, then the flags, over the",
    'defaults of machines/config.ts. It must be the configuration the traced proxy ran.',
    '',
    'Options:',
    '  --profile P           dev12, 2.6 or 2.9',
    '  --config FILE.json    a JSON object of ModelConfig fields (machines/config.ts)',
    '  --mode tcp|http       `mode`',
    '  --accept-proxy[=B]    `bind ... accept-proxy` (B: true or false)',
    '  --ssl[=B]             `bind ... ssl`',
    '  --timeout-client MS   `timeout client` in ms, or none',
    '  --maxconn N           frontend, bind and global maxconn',
    '  --complete KINDS      kinds the trace logs exhaustively (step, effect), overriding the header;',
    '                        --complete none tolerates every unlogged line',
    '  --deadline-slack MS   an input that comes later than a handshake deadline plus MS diverges',
    '                        (default: unchecked; a timer firing early always diverges)',
    '  --max-states N        give up (exit 3) when more model states than N fit the trace (4096)',
    '  --json                print one JSON object instead of text',
    '  --schema              print the JSON Schema of a trace line (docs/trace.schema.json) and exit',
    '',
    'On the first divergence it prints the line number, the line, why, the model states possible just',
    'before its step, what the model would have logged next, and the last 10 lines.',
    '',
    'Exit code: 0 the trace conforms; 1 it diverges from the machines or violates an invariant;',
    '2 usage error, unreadable file or invalid line (its line number is printed);',
    '3 the trace is too ambiguous to decide (log more).',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, {
      switches: SWITCHES,
      values: [
        'profile',
        'config',
        'mode',
        'timeout-client',
        'maxconn',
        'complete',
        'deadline-slack',
        'max-states',
      ],
      positionals: 1,
    });
    if (has(parsed, 'schema')) {
      console.log(JSON.stringify(traceSchema(), null, 2));
      return 0;
    }
    if (parsed.positionals.length !== 1) throw new UsageError('give exactly one trace FILE');
    const file = parsed.positionals[0]!;
    const overrides = configOverrides(parsed);
    const options: TraceMonitorOptions = { maxStates: intFlag(parsed, 'max-states', 4096, 1) };
    const complete = flag(parsed, 'complete');
    if (complete !== undefined) options.complete = parseComplete(complete);
    const slack = flag(parsed, 'deadline-slack');
    if (slack !== undefined) options.deadlineSlackMs = intFlag(parsed, 'deadline-slack', 0, 0);
    const json = has(parsed, 'json');

    // A file that cannot be checked at all: said as the output asked, exit 2.
    const unchecked = (message: string): number => {
      if (json) console.log(JSON.stringify({ file, verdict: 'error', error: message }));
      else console.error(`embryonic trace-check: ${message}`);
      return 2;
    };
    let result: TraceFileResult;
    try {
      result = await checkTraceFile(file, overrides, options);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      return unchecked(`cannot read ${file}: ${(err as Error).message}`);
    }
    if (result.empty) return unchecked(`${file} holds no trace line: nothing to check`);
    if (!result.header && Object.keys(overrides).length === 0)
      console.error(
        `embryonic trace-check: ${file} has no header line and no configuration flag was given: ` +
          'it is checked against the default configuration (--config FILE, or the flags, give another)',
      );
    if (json) {
      console.log(
        JSON.stringify({
          file,
          verdict: result.verdict,
          header: result.header,
          seconds: result.seconds,
          stats: result.stats,
          config: result.config,
          divergence: result.divergence,
        }),
      );
    } else if (result.divergence) {
      console.log(`trace-check: ${file}`);
      console.log(formatDivergence(result.divergence));
    } else {
      const s = result.stats;
      console.log(
        `trace-check: ${file} conforms: ${plural(s.lines, 'line')}, ${plural(s.inputs, 'input')}, ` +
          `${plural(s.accepted, 'connection')} ` +
          `(${s.ended} ended, at most ${s.maxLive} live), at most ${s.maxStates} possible states, ` +
          `${result.seconds.toFixed(2)} s`,
      );
    }
    return TRACE_CHECK_EXIT[result.verdict];
  },
};

/** The ModelConfig fields the flags set. Throws a UsageError on a bad value. */
function configOverrides(parsed: ReturnType<typeof parseArgs>): Partial<ModelConfig> {
  const out: Partial<ModelConfig> = {};
  const file = flag(parsed, 'config');
  if (file !== undefined) {
    let obj: unknown;
    try {
      obj = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UsageError(`--config ${file}: ${(err as Error).message}`);
    }
    Object.assign(out, checkedConfig(obj, `--config ${file}`));
  }
  const profile = flag(parsed, 'profile');
  if (profile !== undefined) {
    if (!['dev12', '2.6', '2.9'].includes(profile))
      throw new UsageError('--profile must be dev12, 2.6 or 2.9');
    out.profile = profile as Profile;
  }
  const mode = flag(parsed, 'mode');
  if (mode !== undefined) {
    if (mode !== 'tcp' && mode !== 'http') throw new UsageError('--mode must be tcp or http');
    out.mode = mode;
  }
  for (const [name, key] of [
    ['accept-proxy', 'acceptProxy'],
    ['ssl', 'ssl'],
  ] as const) {
    const v = flag(parsed, name);
    if (v === undefined) continue;
    if (v !== 'true' && v !== 'false') throw new UsageError(`--${name} takes true or false, not "${v}"`);
    out[key] = v === 'true';
  }
  const timeout = flag(parsed, 'timeout-client');
  if (timeout !== undefined)
    out.timeoutClient = timeout === 'none' ? null : intFlag(parsed, 'timeout-client', 0, 0);
  if (flag(parsed, 'maxconn') !== undefined) {
    const n = intFlag(parsed, 'maxconn', 0, 1);
    out.feMaxconn = n;
    out.bindMaxconn = n;
    out.globalMaxconn = n;
  }
  return out;
}

/** Checks a JSON object of ModelConfig fields as a header's config is checked. Throws a UsageError. */
function checkedConfig(obj: unknown, where: string): Partial<ModelConfig> {
  const error = validateTraceLine({ v: 1, t: 0, conn: null, kind: 'header', config: obj });
  if (error !== null) throw new UsageError(`${where}: ${error}`);
  return obj as Partial<ModelConfig>;
}

function parseComplete(text: string): CompleteKind[] {
  if (text === 'none') return [];
  const kinds = text.split(',').map((k) => k.trim());
  for (const k of kinds)
    if (k !== 'step' && k !== 'effect') throw new UsageError(`--complete lists step and effect, not "${k}"`);
  return [...new Set(kinds)] as CompleteKind[];
}

/** What checkTraceFile found: the check's result, the configuration used, and what the file held. */
export interface TraceFileResult extends TraceCheckResult {
  config: ModelConfig;
  empty: boolean; //  the file holds no line but blank ones
  header: boolean; // its first line is a header
}

/**
 * Checks trace `file` (or standard input for "-") line by line, stopping at the first divergence.
 * The configuration is the header's, then `overrides`, over the defaults. Returns the result, the
 * configuration used, and whether the file had a line and a header. Rejects if the file cannot be
 * read. Closes the file.
 */
export async function checkTraceFile(
  file: string,
  overrides: Partial<ModelConfig> = {},
  options: TraceMonitorOptions = {},
): Promise<TraceFileResult> {
  const started = performance.now();
  const stream =
    file === '-' ? process.stdin : createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  stream.setEncoding('utf8');
  let monitor: TraceMonitor | null = null;
  let header = false;
  let config = makeConfig(overrides);
  let divergence: Divergence | null = null;
  let rest = '';
  let blanks = 0;
  // Feeds the complete lines of `text`; returns what is left after the last newline.
  const feedLines = (text: string): string => {
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1 && !divergence; nl = text.indexOf('\n', start)) {
      const line = text.charCodeAt(nl - 1) === 13 ? text.slice(start, nl - 1) : text.slice(start, nl);
      start = nl + 1;
      if (!monitor) {
        if (line.trim() === '') {
          blanks++;
          continue;
        }
        const fromHeader = headerConfig(line);
        header = fromHeader !== null;
        config = makeConfig({ ...fromHeader, ...overrides });
        monitor = new TraceMonitor(config, options);
        for (; blanks > 0; blanks--) monitor.feed(''); // counted, so that line numbers stay the file's
      }
      divergence = monitor.feed(line);
    }
    return text.slice(start);
  };
  try {
    for await (const chunk of stream) {
      rest = feedLines(rest + (chunk as string));
      if (divergence) break;
    }
    if (!divergence && rest !== '') feedLines(`${rest}\n`);
  } finally {
    if (stream !== process.stdin) (stream as ReturnType<typeof createReadStream>).destroy();
  }
  const empty = monitor === null;
  monitor ??= new TraceMonitor(config, options);
  divergence ??= monitor.finish();
  return {
    empty,
    header,
    verdict: divergence ? divergence.verdict : 'conforms',
    divergence,
    stats: monitor.stats,
    seconds: (performance.now() - started) / 1000,
    config,
  };
}

/** The config of a header line, or null if `text` is not a valid header. */
function headerConfig(text: string): Partial<ModelConfig> | null {
  try {
    const obj = JSON.parse(text) as HeaderLine;
    if (validateTraceLine(obj) === null && obj.kind === 'header') return obj.config ?? {};
  } catch {
    // Not JSON: the monitor reports the line as invalid.
  }
  return null;
}

/** The configuration of the 10k-connection measurement: 64 slots, accept-proxy, 300 ms deadline. */
export const MEASUREMENT_CONFIG: ModelConfig = makeConfig({
  feMaxconn: 64,
  bindMaxconn: 64,
  globalMaxconn: 64,
});

/**
 * Writes the trace of a random run of `connections` connections to `path` (every line logged).
 * Returns the number of lines. Throws if the run got stuck (work left that nothing could do): its
 * trace would not be the whole run. Owns and closes the file it opens.
 */
export function writeReferenceTrace(
  path: string,
  connections: number,
  seed: number,
  config = MEASUREMENT_CONFIG,
): number {
  const fd = openSync(path, 'w');
  let buffer: string[] = [];
  let lines = 0;
  const flush = (): void => {
    if (buffer.length > 0) writeSync(fd, `${buffer.join('\n')}\n`);
    buffer = [];
  };
  let run: { stuck: boolean; accepted: number };
  try {
    run = randomTrace(config, { connections, seed }, function traceLineOut(line: TraceLine) {
      buffer.push(formatTraceLine(line));
      lines++;
      if (buffer.length >= 4096) flush();
    });
    flush();
  } finally {
    closeSync(fd);
  }
  if (run.stuck)
    throw new Error(`the random run got stuck after accepting ${run.accepted} of ${connections} connections`);
  return lines;
}

/**
 * The `verify` entry: a reference trace of 10,000 connections, written to a temporary file, checked
 * by trace-check's own reader; the figure is the check's wall time. Removes its temporary files.
 */
export async function verifyTraceConformance(): Promise<VerifyResult> {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-trace-'));
  try {
    const path = join(dir, 'trace.ndjson');
    const connections = 10_000;
    const written = writeReferenceTrace(path, connections, 2026);
    const r = await checkTraceFile(path);
    const ok =
      r.verdict === 'conforms' &&
      r.stats.accepted === connections &&
      r.stats.ended === connections &&
      r.stats.lines === written;
    return {
      ok,
      detail: ok
        ? `${connections} connections, ${r.stats.lines} lines checked in ${r.seconds.toFixed(1)} s (${Math.round(r.stats.lines / r.seconds / 1000)}k lines/s)`
        : `${r.verdict}${r.divergence ? ` at line ${r.divergence.line}: ${r.divergence.message}` : ''} (${r.stats.accepted} connections accepted, ${r.stats.ended} ended, ${r.stats.lines}/${written} lines)`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "1 line", "2 lines". */
function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
