/**
 * Every subcommand of the `embryonic` CLI, in the order `--help` lists them.
 * A new subcommand is a file under cli/ and one line here.
 */
import type { Command } from './command.ts';
import { conformCommand } from './conform.ts';
import { diagramsCommand } from './diagrams.ts';
import { checkCommand } from './check.ts';
import { checkDeepCommand } from './checkDeep.ts';
import { mutantsCommand } from './mutants.ts';
import { traceCheckCommand } from './traceCheck.ts';
import { echoCommand } from './echo.ts';
import { proxyCommand } from './proxy.ts';
import { verifyCommand } from './verify.ts';
import { coverCommand } from './cover.ts';

export const COMMANDS: Command[] = [
  verifyCommand,
  diagramsCommand,
  conformCommand,
  checkCommand,
  mutantsCommand,
  checkDeepCommand,
  traceCheckCommand,
  coverCommand,
  proxyCommand,
  echoCommand,
];
