/**
 * What the bundled proxy's lifecycle trace says a case did: the machine transitions it took.
 *
 * The impl target starts each of its processes with `--trace FILE` (targets.ts), so every machine
 * step of the proxy becomes an NDJSON "step" line carrying `conn` and the ids of the `transitions`
 * it took (machines/traceFormat.ts, docs/TRACE.md). The proxy writes the lines of a step with one
 * synchronous write when the step ends, so a file grows by whole steps (a reader that catches one
 * being written skips its unfinished line).
 *
 * Attribution. The runner runs the cases one after another on one target, and after each case waits
 * until the target holds nothing (runner.ts settle): no connection of a case outlives it. The
 * lines of a case are therefore the lines each trace file gained from the moment the case began
 * (markTraces) to the moment its result is taken, after its settle (readTraceSince): the steps of
 * the connections it opened, and the steps its listener took meanwhile (conn null: the listener
 * going full and resuming, its queues), which belong to the case as much as its connections' do.
 * A step the proxy took after that (a queue task firing after the settle) would be counted for the
 * next case, and missed by this one; with the settle it does not happen: over the whole suite,
 * every connection in a case's stretch of trace is accepted and closed within it (measured when
 * this was written), and the listener's steps are those of the case's own accepts and slots.
 * A settle can fail, though (a connection outlives its case until its deadline kills it), and the
 * leftover steps of such a connection would then count for the next case, whose prediction may hold the
 * very transition they take. So a connection's steps count only when the stretch holds its
 * accept, the "ACCEPT_ATTEMPT" input line naming it (impl/driver.ts acceptLoop; a connection the
 * listener did not take at once gets another later, either is enough), and after it; the steps of
 * a connection accepted before the stretch are counted apart (`earlierSteps`), never as taken.
 * Listener steps (conn null) always count. Connections are numbered per file: each process
 * numbers its own.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { parseTraceLine } from '../machines/traceFormat.ts';
import type { Check } from './expect.ts';

/** Where each trace file of a target stood when a case began: its length in bytes, per file. */
export type TraceMark = readonly number[];

/**
 * Returns the current length of each file of <paths> (0 for one that does not exist yet), to be
 * given to readTraceSince once the case is over. Reads file metadata only.
 */
export function markTraces(paths: readonly string[]): TraceMark {
  return paths.map((p) => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  });
}

/** The transitions a stretch of trace took. */
export interface TransitionsTaken {
  transitions: string[]; // every transition id of its step lines, each once, in the order first taken
  steps: number; //        how many step lines it holds
  connections: number; //  how many distinct connections its step lines name (listener steps aside)
  earlierSteps: number; // step lines of connections accepted before the stretch: not counted above
  earlierConnections: number; // how many distinct such connections
}

/**
 * Reads what each file of <paths> gained since <mark> (markTraces, same order), whole lines only,
 * and returns the transitions its step lines took, all files together (connections are counted
 * per file: each process numbers its own; the steps of a connection accepted before the stretch
 * are counted apart, see transitionsTaken). Throws an Error naming the file: when a line is not a
 * valid trace line, when a step line has no transition list, and when the file is shorter than at the mark
 * (truncated or recreated since: what the case did is lost). Reads files only.
 */
export function readTraceSince(paths: readonly string[], mark: TraceMark): TransitionsTaken {
  const parts = paths.map((p, i) => {
    try {
      return { path: p, text: readFrom(p, mark[i] ?? 0) };
    } catch (err) {
      throw new Error(`trace ${p}: ${(err as Error).message}`, { cause: err });
    }
  });
  const all: TransitionsTaken = {
    transitions: [],
    steps: 0,
    connections: 0,
    earlierSteps: 0,
    earlierConnections: 0,
  };
  const taken = new Set<string>(); // in the order first taken
  for (const { path, text } of parts) {
    const one = transitionsTaken(text, basename(path));
    all.steps += one.steps;
    all.connections += one.connections;
    all.earlierSteps += one.earlierSteps;
    all.earlierConnections += one.earlierConnections;
    for (const t of one.transitions) taken.add(t);
  }
  all.transitions = [...taken];
  return all;
}

/**
 * Returns the transitions taken by the step lines of <ndjson>, trace lines of the project's format
 * one a line of one process, read from <origin> (named in errors): those of the listener (conn
 * null), and those of each connection after an "ACCEPT_ATTEMPT" input line naming it. The step
 * lines of a connection with no such line before them (accepted before the stretch) are counted in
 * `earlierSteps` and `earlierConnections` only. Every other kind of line is skipped; a last line
 * without its newline is ignored (a step still being written). Throws an Error naming <origin>,
 * the line number and the format's reason when a line is not a valid trace line
 * (machines/traceFormat.ts parseTraceLine), and when a step line has no `transitions` list. Pure.
 */
export function transitionsTaken(ndjson: string, origin = 'trace'): TransitionsTaken {
  const lines = ndjson.split('\n');
  lines.pop(); // '' after the last newline, or a partial line
  const taken = new Set<string>(); // in the order first taken
  const connections = new Set<number>();
  const accepted = new Set<number>(); // connections with an ACCEPT_ATTEMPT line so far
  const earlier = new Set<number>();
  let steps = 0;
  let earlierSteps = 0;
  for (const [i, text] of lines.entries()) {
    if (text.trim() === '') continue;
    const parsed = parseTraceLine(text);
    if (parsed.error !== undefined) throw new Error(`${origin} line ${i + 1}: ${parsed.error}`);
    const line = parsed.line;
    if (line.kind === 'input' && line.name === 'ACCEPT_ATTEMPT' && line.conn !== null) {
      accepted.add(line.conn);
      continue;
    }
    if (line.kind !== 'step') continue;
    if (line.transitions === undefined) {
      throw new Error(`${origin} line ${i + 1}: a step line without its list of transition ids`);
    }
    if (line.conn !== null && !accepted.has(line.conn)) {
      earlierSteps++;
      earlier.add(line.conn);
      continue;
    }
    steps++;
    if (line.conn !== null) connections.add(line.conn);
    for (const t of line.transitions) taken.add(t);
  }
  return {
    transitions: [...taken],
    steps,
    connections: connections.size,
    earlierSteps,
    earlierConnections: earlier.size,
  };
}

/**
 * Returns the check "the case takes the transitions the model predicts": ok iff <taken>
 * (readTraceSince over the case) holds exactly the ids of <predicted> (the model's prediction for
 * the case under the target's profile, cases.ts predictionOf), each at least once: every predicted
 * transition taken, and none taken that the scenario does not predict, so that the scenario is
 * what the case's body made the proxy do. <taken> an Error: the trace could not be read, and the
 * check fails with its message. The actual names the predicted ids not taken and the ids taken but
 * not predicted. Pure.
 */
export function takesPredictedCheck(predicted: readonly string[], taken: TransitionsTaken | Error): Check {
  const what = 'the case takes the transitions the model predicts';
  const unique = [...new Set(predicted)];
  const expected = `the ${unique.length} predicted transition(s), and no other, in the steps of the proxy's trace during the case`;
  if (taken instanceof Error) return { what, expected, actual: `no trace: ${taken.message}`, ok: false };
  const took = new Set(taken.transitions);
  const missing = unique.filter((t) => !took.has(t));
  const predictedSet = new Set(unique);
  const more = taken.transitions.filter((t) => !predictedSet.has(t));
  const seen = `${taken.steps} step(s) on ${taken.connections} connection(s)`;
  const problems = [
    ...(missing.length > 0 ? [`not taken: ${missing.join(', ')}`] : []),
    ...(more.length > 0 ? [`taken, not predicted: ${more.join(', ')}`] : []),
  ];
  return {
    what,
    expected,
    actual: problems.length > 0 ? `${problems.join('; ')} (${seen})` : `all taken, no other (${seen})`,
    ok: problems.length === 0,
  };
}

/**
 * Returns the text of file <path> from the first line that starts at or after byte <offset> to its
 * end (a mark taken while a step was being written falls inside its line, which is then skipped).
 * Throws when the file cannot be read, and when it is shorter than <offset> (truncated or
 * recreated since the mark: the lines written in between are lost).
 */
function readFrom(path: string, offset: number): string {
  const fd = openSync(path, 'r');
  try {
    const from = Math.max(0, offset - 1); // one byte back: is the mark at the start of a line?
    const size = fstatSync(fd).size;
    if (size < offset) {
      throw new Error(
        `the file is shorter (${size} bytes) than when the case began (${offset} bytes): it was truncated or recreated meanwhile`,
      );
    }
    if (size === offset) return '';
    const buf = Buffer.alloc(size - from);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, from + got);
      if (n === 0) break;
      got += n;
    }
    const text = buf.subarray(0, got).toString('utf8');
    if (offset === 0) return text;
    const start = text.indexOf('\n'); // at 0 when the mark is at the start of a line
    return start === -1 ? '' : text.slice(start + 1);
  } finally {
    closeSync(fd);
  }
}
