import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../cli/command.ts';
import { conformCommand, printedProfile } from '../../cli/conform.ts';

const ROOT = join(import.meta.dirname, '../..');
const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
const hasHaproxy = !haproxy.error && haproxy.status === 0;

describe('embryonic conform', () => {
  it('refuses a target that is not impl, haproxy or HOST:PORT', async () => {
    await expect(conformCommand.run(['--target', 'nginx'])).rejects.toThrow(UsageError);
  });

  it("prints the config of the first target's profile: haproxy's is 2.6, the default dev12", () => {
    expect(printedProfile([])).toBe('dev12');
    expect(printedProfile([{ kind: 'impl' }, { kind: 'haproxy' }])).toBe('2.6');
    expect(
      printedProfile([{ kind: 'address', host: '127.0.0.1', port: 1, stats: null, profile: '2.9' }]),
    ).toBe('2.9');
    expect(printedProfile([{ kind: 'address', host: '127.0.0.1', port: 1, stats: null }])).toBe('dev12');
    expect(printedProfile([{ kind: 'haproxy', profile: '2.9' }])).toBe('2.9');
  });

  it('refuses --stats or --log without a HOST:PORT target, and a --cases glob that matches nothing', async () => {
    await expect(conformCommand.run(['--target', 'haproxy', '--stats', 'unix:/tmp/x.sock'])).rejects.toThrow(
      /--stats is for a HOST:PORT target/,
    );
    await expect(conformCommand.run(['--target', 'haproxy', '--cases', 'no/such/*'])).rejects.toThrow(
      /matches no case/,
    );
    await expect(conformCommand.run(['--target', 'impl', '--log', '/tmp/x.log'])).rejects.toThrow(
      /--log and --trace are for a HOST:PORT target/,
    );
  });

  it('refuses --haproxy without a haproxy target, and a target given twice', async () => {
    await expect(conformCommand.run(['--target', 'impl', '--haproxy', '/opt/haproxy'])).rejects.toThrow(
      /--haproxy is for a haproxy target/,
    );
    await expect(conformCommand.run(['--target', 'impl@2.6', '--target', 'impl@2.6'])).rejects.toThrow(
      /--target impl@2\.6 is given twice/,
    );
    await expect(conformCommand.run(['--target', 'impl', '--target', 'impl@dev12'])).rejects.toThrow(
      /--target impl is given twice/,
    );
  });

  it('prints the documented config for a HOST:PORT target, with its certificate beside the stats socket', () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-print-config-'));
    try {
      const run = spawnSync(
        process.execPath,
        [
          join(ROOT, 'bin/embryonic.js'),
          'conform',
          '--print-config',
          '--target',
          '127.0.0.1:24000@2.6',
          '--stats',
          `unix:${dir}/stats.sock`,
        ],
        { encoding: 'utf8', timeout: 20_000 },
      );
      expect(run.status).toBe(0);
      expect(run.stdout).toContain('frontend fe_pp\n    bind 127.0.0.1:24000 accept-proxy\n');
      expect(run.stdout).toContain(`    stats socket ${dir}/stats.sock\n`);
      expect(run.stdout).toContain('    server echo1 127.0.0.1:24010\n');
      expect(run.stdout).not.toContain('monitor-net'); // HAProxy 2.3 and later refuse it
      expect(existsSync(join(dir, 'site.pem'))).toBe(true);
      if (hasHaproxy) {
        writeFileSync(join(dir, 'h.cfg'), run.stdout);
        const check = spawnSync('haproxy', ['-c', '-f', join(dir, 'h.cfg')], {
          encoding: 'utf8',
          timeout: 10_000,
        });
        expect(check.status).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
