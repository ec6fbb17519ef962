import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECK_ARGS, spaceFromFlags, checkCommand } from '../../cli/check.ts';
import { parseArgs, UsageError } from '../../cli/command.ts';
import { CONFIG_SPACE } from '../../properties/bounds.ts';
import { INVARIANTS } from '../../properties/invariants.ts';

const ROOT = join(import.meta.dirname, '../..');

describe('embryonic check', () => {
  it('prints {generated, distinct, depth, seconds, violations} as JSON and exits 0 when every invariant holds', () => {
    const run = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/embryonic.js'), 'check', '--connections', '1', '--json'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(
      expect.arrayContaining(['generated', 'distinct', 'depth', 'seconds', 'violations']),
    );
    expect(out.violations).toEqual([]);
    expect(out.invariants).toEqual(INVARIANTS.map((i) => i.name));
    expect(out.distinct).toBeGreaterThan(0);
    expect((out.configs as { name: string }[]).map((c) => c.name)).toEqual(CONFIG_SPACE.map((c) => c.name));
  });

  it('applies --maxconn, --profile, --mode and --ssl to every configuration of the space', () => {
    const space = spaceFromFlags(
      parseArgs(['--maxconn', '1', '--profile', '2.9', '--mode', 'http', '--ssl'], CHECK_ARGS),
    );
    expect(space.length).toBeGreaterThan(0);
    expect(space.length).toBeLessThan(CONFIG_SPACE.length);
    for (const { config } of space) {
      expect(config).toMatchObject({
        feMaxconn: 1,
        bindMaxconn: 1,
        globalMaxconn: 1,
        profile: '2.9',
        mode: 'http',
      });
      expect(config.ssl).toBe(true);
    }
  });

  it('applies --maxsslconn to every configuration, 0 meaning no limit as in HAProxy', () => {
    const limited = spaceFromFlags(parseArgs(['--ssl', '--maxsslconn', '1'], CHECK_ARGS));
    expect(limited.map((c) => c.config.maxsslconn)).toEqual(limited.map(() => 1));
    const unlimited = spaceFromFlags(parseArgs(['--maxsslconn', '0'], CHECK_ARGS));
    expect(unlimited.every((c) => c.config.maxsslconn === null)).toBe(true);
  });

  it('keeps only the configurations named with --config', () => {
    const space = spaceFromFlags(parseArgs(['--config', 'http-raw', '--config', 'tcp-proxy'], CHECK_ARGS));
    expect(space.map((c) => c.name)).toEqual(['tcp-proxy', 'http-raw']);
  });

  it('refuses an unknown profile, mode or configuration', async () => {
    await expect(checkCommand.run(['--profile', '1.4'])).rejects.toThrow(UsageError);
    await expect(checkCommand.run(['--mode', 'udp'])).rejects.toThrow(UsageError);
    await expect(checkCommand.run(['--config', 'nope'])).rejects.toThrow(/unknown --config nope/);
  });
});
