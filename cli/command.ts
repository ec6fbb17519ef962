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

/**
 * Parses `args` as `--flag value`, `--flag=value` and bare `--switch` words. `switches` names the
 * flags that take no value. Returns the flags and the positionals in order.
 * Throws a UsageError naming the flag when a flag that takes a value has none.
 */
export function parseArgs(args: string[], switches: readonly string[] = []): ParsedArgs {
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const add = (k: string, v: string): void => {
    flags.set(k, [...(flags.get(k) ?? []), v]);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--') || a === '--') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    if (eq !== -1) add(name, a.slice(eq + 1));
    else if (switches.includes(name)) add(name, 'true');
    else {
      const v = args[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      add(name, v);
      i++;
    }
  }
  return { flags, positionals };
}

/** A mistake in how the command was called. The CLI prints its message and the usage, and exits 2. */
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

/**
 * Rejects flags the subcommand does not know. Throws a UsageError naming the first unknown one.
 */
export function expectOnly(parsed: ParsedArgs, known: readonly string[]): void {
  for (const k of parsed.flags.keys()) if (!known.includes(k)) throw new UsageError(`unknown option --${k}`);
}
