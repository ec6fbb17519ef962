/**
 * The argument parser every subcommand shares (cli/command.ts): what it accepts, and the one
 * usage error it gives for each mistake, named as the user typed it.
 */
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../cli/command.ts';

const SPEC = {
  switches: ['json'],
  values: ['connections', 'config'],
  aliases: { '-f': 'config' },
  positionals: 1,
};

/** The message of the UsageError parseArgs throws for <args>, or 'no error'. */
function mistake(args: string[]): string {
  try {
    parseArgs(args, SPEC);
    return 'no error';
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
}

describe('parseArgs', () => {
  it('reads values in both forms, switches, aliases and positionals, a repeated flag keeping each value', () => {
    const p = parseArgs(['--connections', '3', '--config=a', '-f', 'b', '--json', 'FILE'], SPEC);
    expect(p.flags.get('connections')).toEqual(['3']);
    expect(p.flags.get('config')).toEqual(['a', 'b']);
    expect(p.flags.get('json')).toEqual(['true']);
    expect(p.positionals).toEqual(['FILE']);
  });

  it('names an unknown option as unknown, with or without a value after it', () => {
    expect(mistake(['--bogus'])).toBe('unknown option --bogus');
    expect(mistake(['--bogus', '1'])).toBe('unknown option --bogus');
    expect(mistake(['--bogus=1'])).toBe('unknown option --bogus');
  });

  it('names a missing value as the user typed the flag, alias included', () => {
    expect(mistake(['--connections'])).toBe('--connections needs a value');
    expect(mistake(['-f'])).toBe('-f needs a value');
    expect(mistake(['-f', '--json'])).toBe('-f needs a value');
  });

  it('refuses a value given to a switch', () => {
    expect(mistake(['--json=false'])).toBe('--json takes no value');
  });

  it('refuses more positionals than the command takes', () => {
    expect(mistake(['a'])).toBe('no error');
    expect(mistake(['a', 'b'])).toBe('unexpected argument "b"');
    expect(mistake(['-x'])).toBe('no error'); // one positional, which the command judges
    expect(() => parseArgs(['-x'])).toThrow('unexpected argument "-x"');
  });

  it('takes a lone -- as a positional, not as an option', () => {
    expect(parseArgs(['--', 'x'], { positionals: 2 }).positionals).toEqual(['--', 'x']);
  });
});
