/**
 * The `embryonic` command line: dispatches to a subcommand, prints help, and turns usage errors
 * into exit code 2.
 */
import { UsageError } from './command.ts';
import { COMMANDS } from './commands.ts';

const TOP_USAGE = async (): Promise<string> => {
  const loaded = await Promise.all(COMMANDS.map((c) => c.load()));
  return [
    "embryonic: HAProxy's embryonic sessions as an executable, checkable specification.",
    '',
    'Usage: embryonic <command> [options]     (embryonic <command> --help for its options)',
    '',
    'Commands:',
    ...loaded.map((c) => `  ${c.name.padEnd(12)} ${c.summary}`),
  ].join('\n');
};

/**
 * Runs the CLI with `argv` (the arguments after the program name). Returns the exit code:
 * 0 success, 1 a verification failed, 2 a usage error. Never throws for a usage error.
 */
export async function main(argv: string[]): Promise<number> {
  if (!process.stdout.listeners('error').includes(stdoutOnError)) process.stdout.on('error', stdoutOnError);
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(await TOP_USAGE());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    console.error(`embryonic: unknown command "${name}"\n\n${await TOP_USAGE()}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`embryonic ${name}: ${err.message} (embryonic ${name} --help for its usage)`);
      return 2;
    }
    throw err;
  }
}

/**
 * Ends the process quietly when the reader of standard output goes away (`embryonic trace-check
 * --schema | head`), as a Unix filter does, with the exit code set so far. Rethrows any other
 * error of standard output.
 */
function stdoutOnError(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
}

// Run directly (tsx cli/main.ts ...): the bin/embryonic.js wrapper imports main() instead.
if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
