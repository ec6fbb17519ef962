/**
 * Every subcommand of the `embryonic` CLI, in the order `--help` lists them.
 * A new subcommand is a file under cli/ and one line here.
 */
import type { Command } from './command.ts';
import { conformCommand } from './conform.ts';
import { diagramsCommand } from './diagrams.ts';
import { verifyCommand } from './verify.ts';

export const COMMANDS: Command[] = [verifyCommand, diagramsCommand, conformCommand];
