/**
 * Every subcommand of the `embryonic` CLI, in the order `--help` lists them.
 * A new subcommand is a file under cli/ and one line here. Each module is loaded only when its
 * command runs (or for `--help`), so `embryonic proxy` starts without loading the model checker,
 * the conformance suite or the diagram renderer.
 */
import type { Command } from './command.ts';

/** One entry of the command index: its name, and how to load its module. */
export interface CommandEntry {
  name: string;
  load(): Promise<Command>;
}

export const COMMANDS: CommandEntry[] = [
  { name: 'verify', load: async () => (await import('./verify.ts')).verifyCommand },
  { name: 'check', load: async () => (await import('./check.ts')).checkCommand },
  { name: 'mutants', load: async () => (await import('./mutants.ts')).mutantsCommand },
  { name: 'check-deep', load: async () => (await import('./checkDeep.ts')).checkDeepCommand },
  { name: 'proxy', load: async () => (await import('./proxy.ts')).proxyCommand },
  { name: 'echo', load: async () => (await import('./echo.ts')).echoCommand },
  { name: 'conform', load: async () => (await import('./conform.ts')).conformCommand },
  { name: 'cover', load: async () => (await import('./cover.ts')).coverCommand },
  { name: 'trace-check', load: async () => (await import('./traceCheck.ts')).traceCheckCommand },
  { name: 'diagrams', load: async () => (await import('./diagrams.ts')).diagramsCommand },
];
