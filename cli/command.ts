/**
 * The shape of one `embryonic` subcommand, and the small argument parser they share.
 * Each subcommand lives in its own file under cli/ and is listed once in cli/commands.ts.
 */

/** One subcommand of the `embryonic` CLI. */
export interface Command {
  name: string; //        what the user types: `embryonic <name>`
  summary: string; //     one line for `embryonic --help`
  usage: string; //       the full `--help` text of the subcommand
  /** Runs the subcommand with its arguments (the name excluded). Returns the process exit code. */
  run(args: string[]): Promise<number>;
}

/** Parsed command-line arguments: flags by name (repeatable ones keep every value) and positionals. */
export interface ParsedArgs {
  flags: Map<string, string[]>;
  positionals: string[];
}

/** What a subcommand accepts: its flags, their one-dash aliases, and how many positionals. */
export interface ArgSpec {
  switches?: readonly string[]; //                flags that take no value: `--json`
  values?: readonly string[]; //                  flags that take one: `--connections 3`, `--connections=3`
  aliases?: Readonly<Record<string, string>>; //  '-f': 'config'
  positionals?: number; //                        at most this many other words (default 0)
}

/**
 * Parses `args` against `spec`: `--flag value`, `--flag=value`, bare `--switch` words, the aliases,
 * and the positionals in order. Returns the flags (a repeated flag keeps every value) and the
 * positionals. Throws a UsageError naming the word at fault, in this order: a flag the spec does
 * not know ("unknown option --x"), a switch given a value, a flag without its value (named as
 * typed, alias included), more positionals than the spec allows ("unexpected argument").
 */
export function parseArgs(args: readonly string[], spec: ArgSpec = {}): ParsedArgs {
  const switches = spec.switches ?? [];
  const values = spec.values ?? [];
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const add = (k: string, v: string): void => {
    flags.set(k, [...(flags.get(k) ?? []), v]);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const alias = spec.aliases?.[a];
    if (alias === undefined && (!a.startsWith('--') || a === '--')) {
      positionals.push(a);
      continue;
    }
    const eq = alias === undefined ? a.indexOf('=') : -1;
    const name = alias ?? (eq === -1 ? a.slice(2) : a.slice(2, eq));
    if (!switches.includes(name) && !values.includes(name)) throw new UsageError(`unknown option --${name}`);
    if (switches.includes(name)) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      add(name, 'true');
    } else if (eq !== -1) add(name, a.slice(eq + 1));
    else {
      const v = args[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      add(name, v);
      i++;
    }
  }
  const extra = positionals[spec.positionals ?? 0];
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  return { flags, positionals };
}

/** A mistake in how the command was called. The CLI prints its message and exits 2. */
export class UsageError extends Error {}

/** Returns the last value of flag `name`, or `fallback`. */
export function flag(parsed: ParsedArgs, name: string, fallback?: string): string | undefined {
  const v = parsed.flags.get(name);
  return v ? v[v.length - 1] : fallback;
}

/** Returns flag `name` as an integer ≥ min, or `fallback`. Throws a UsageError if it is not one. */
export function intFlag(parsed: ParsedArgs, name: string, fallback: number, min = 0): number {
  const v = flag(parsed, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, not "${v}"`);
  return n;
}

/** True iff switch `name` was given. */
export function has(parsed: ParsedArgs, name: string): boolean {
  return parsed.flags.has(name);
}
