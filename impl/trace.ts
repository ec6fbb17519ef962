/**
 * The lifecycle trace behind `--trace FILE`: NDJSON in the project's trace format
 * (machines/traceFormat.ts, format version 1), so that `embryonic trace-check` can replay it
 * through the machines.
 *
 * The proxy writes a header (its ModelConfig; steps and effects are logged completely), then for
 * each environment event it feeds to the machines an "input" line (the event and the StepInputs
 * it decided: source class, planned allocation failures), followed by the "step" line of every
 * machine transition (Host.record) and the "effect" line of every effect it executes
 * (Host.execute), and a "counters" line once the step is over. `t` is milliseconds since the
 * proxy started, taken when the step's input line is written: every line of a step carries it (a
 * step is one synchronous run of the machines, and reading the clock per line was the largest
 * part of what tracing cost the proxy's thread). The lines of one step are gathered and written
 * with one synchronous write when the step's counters line closes it (and at RATE_PERIOD, which
 * has none), so a trace is complete up to the last finished step even if the process is killed,
 * at one system call per step instead of one per line.
 *
 * A tap (impl/monitor.ts) receives every line as an object, in memory, before it is written; a raw
 * tap (impl/monitorThread.ts, `proxy --monitor`) receives what the lines are built from, and the
 * lines are then not built at all unless the file or a tap takes them. With a tap the file is
 * optional.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { MachineName, Origin, StepInputs, TransitionRecord } from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import type { Counters } from '../machines/counters.ts';
import type { Effect } from '../machines/effects.ts';
import {
  countersLine,
  effectLine,
  formatTraceLine,
  headerLine,
  inputLine,
  stepLine,
  type TraceLine,
} from '../machines/traceFormat.ts';

/** Pending bytes past which the lines of an unusually long step are written before it ends. */
const FLUSH_AT = 64 * 1024;

/** Receives every trace line, in memory, as it is written (the in-thread live monitor). */
export interface TraceTap {
  /** Called once per line, in order, header first. Must not throw; must not keep `line` mutable. */
  line(line: TraceLine): void;
}

/**
 * Receives what the trace records before any line is built (the live monitor on its worker
 * thread, impl/monitorThread.ts, which encodes it compactly): the header line, then one call per
 * input, step, effect and counters line, in order, with the time each line would carry. The
 * arguments belong to the caller: a tap copies what it keeps. Must not throw.
 */
export interface RawTraceTap {
  header(line: TraceLine): void;
  input(
    t: number,
    machine: MachineName | null,
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs?: Partial<StepInputs>,
  ): void;
  step(t: number, record: TransitionRecord): void;
  effect(t: number, effect: Effect, origin: Origin): void;
  counters(t: number, counters: Counters): void;
}

/** An open trace: a file, taps, or both. Owns its fd until close(); the taps belong to the caller. */
export class Trace {
  private fd: number | null;
  private open = true;
  private pending = ''; // lines of the step in progress, not written yet
  private stepT: number | null = null; // the time of the step in progress, from its input line
  private readonly start = performance.now();
  private readonly header: TraceLine;
  private raw: RawTraceTap | null = null;
  private written = false; // a line after the header was taken: too late for a raw tap

  /**
   * Creates (truncates) the trace file at `path` unless `path` is null, and writes its header for
   * `config`, to the file and to the taps. Throws if the file cannot be opened, having opened
   * nothing. Lines are built only when the file or `tap` takes them: `raw` alone receives what
   * they are built from. A raw tap can also be given later, by takeRawTap.
   */
  constructor(
    readonly path: string | null,
    config: ModelConfig,
    implementation: string,
    private readonly tap: TraceTap | null = null,
    raw: RawTraceTap | null = null,
  ) {
    this.fd = path === null ? null : openSync(path, 'w');
    this.lines = this.fd !== null || tap !== null;
    this.header = headerLine(this.now(), config, ['step', 'effect'], implementation);
    if (this.lines) this.write(this.header);
    this.flush();
    if (raw) this.takeRawTap(raw);
  }

  /**
   * Gives the trace its raw tap once the file is open (`proxy --monitor`: the monitor's worker is
   * started only after a bad path has failed). The tap receives the header at once, then every
   * later line. Requires that the trace has no raw tap yet and has taken no line after its header;
   * throws otherwise, since the tap would miss lines.
   */
  takeRawTap(raw: RawTraceTap): void {
    if (this.raw !== null || this.written || !this.open)
      throw new Error('a raw tap must be given before any line after the header');
    this.raw = raw;
    raw.header(this.header);
  }

  private readonly lines: boolean; // the file or the line tap takes lines

  /** Writes the line of one environment event about to be fed to `machine` (null: RATE_PERIOD). */
  input(
    machine: MachineName | null,
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs?: Partial<StepInputs>,
  ): void {
    if (!this.open) return;
    this.written = true;
    const t = this.now();
    this.stepT = machine === null ? null : t; // RATE_PERIOD is a whole step: no counters line follows
    this.raw?.input(t, machine, conn, event, inputs);
    if (this.lines) this.write(inputLine(t, machine, conn, event, inputs));
    if (machine === null) this.flush();
  }

  /** Writes the line of one machine step. */
  step(record: TransitionRecord): void {
    if (!this.open) return;
    this.written = true;
    const t = this.stepT ?? this.now();
    this.raw?.step(t, record);
    if (this.lines) this.write(stepLine(t, record));
  }

  /** Writes the line of one effect executed by the host. */
  effect(effect: Effect, origin: Origin): void {
    if (!this.open) return;
    this.written = true;
    const t = this.stepT ?? this.now();
    this.raw?.effect(t, effect, origin);
    if (this.lines) this.write(effectLine(t, effect, origin));
  }

  /** Writes the counters as they are now: the step is over, and its lines go to the file. */
  counters(counters: Counters): void {
    if (!this.open) return;
    this.written = true;
    const t = this.stepT ?? this.now();
    this.stepT = null;
    this.raw?.counters(t, counters);
    if (this.lines) this.write(countersLine(t, counters));
    this.flush();
  }

  /** Closes the file, after writing what is pending. Further lines are dropped, for the file and the tap. Idempotent. */
  close(): void {
    if (this.open) this.flush();
    this.open = false;
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  private now(): number {
    return Math.round((performance.now() - this.start) * 1000) / 1000;
  }

  private write(line: TraceLine): void {
    if (!this.open) return;
    this.tap?.line(line);
    if (this.fd === null) return;
    this.pending += `${formatTraceLine(line)}\n`;
    if (this.pending.length > FLUSH_AT) this.flush();
  }

  private flush(): void {
    if (this.fd === null || this.pending === '') return;
    writeSync(this.fd, this.pending);
    this.pending = '';
  }
}
