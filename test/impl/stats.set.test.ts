/**
 * The stats socket's `set` commands (impl/stats.ts, not HAProxy's): `set fault SITE N` on a
 * `level admin` socket only, and the answers to what it refuses. `set clock advance` is tested
 * with the clock (test/impl/clock.test.ts). The proxy runs in this process (impl/proxy.ts) and is
 * read through its stats socket only.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PoolLedger } from '../../impl/pool.ts';
import { startProxy, type ProxyHandle } from '../../impl/proxy.ts';
import { cliQuery } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'embryonic-stats-set-'));

/** Starts a proxy whose stats socket has `level`, and returns it with its socket path. */
async function start(level: 'admin' | 'user'): Promise<{ proxy: ProxyHandle; sock: string }> {
  const sock = join(dir, `${level}.sock`);
  const file = join(dir, `${level}.cfg`);
  writeFileSync(
    file,
    [
      'global',
      `    stats socket ${sock} level ${level}`,
      'defaults',
      '    mode tcp',
      '    timeout client 1s',
      'frontend fe',
      '    bind 127.0.0.1:0 accept-proxy',
      '    default_backend be',
      'backend be',
      '    server s1 127.0.0.1:1',
      '',
    ].join('\n'),
  );
  return { proxy: await startProxy(file, { log: () => {} }), sock };
}

describe('set fault on the stats socket', () => {
  let admin: { proxy: ProxyHandle; sock: string };
  let user: { proxy: ProxyHandle; sock: string };

  beforeAll(async () => {
    admin = await start('admin');
    user = await start('user');
  });
  afterAll(async () => {
    await admin?.proxy.stop();
    await user?.proxy.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('injects an allocation failure at a site on a level admin socket, as --fail-alloc does', async () => {
    expect(await cliQuery(admin.sock, 'set fault req 3')).toBe('\n');
    expect(await cliQuery(admin.sock, 'set fault session 1; set fault txn 2')).toBe('\n\n');
    const pool = JSON.parse(await cliQuery(admin.sock, 'show pool')) as PoolLedger;
    expect(pool.faults.sort()).toEqual(['req:3', 'session:1', 'txn:2']);
  });

  it('names the sites it knows when the site or the attempt is wrong', async () => {
    const syntax = 'set fault: expected SITE N with SITE in session, task, ssl, req, rep, txn and N >= 1\n\n';
    expect(await cliQuery(admin.sock, 'set fault buffer 1')).toBe(syntax);
    expect(await cliQuery(admin.sock, 'set fault req 0')).toBe(syntax);
  });

  it('refuses it on a socket below level admin, and injects nothing', async () => {
    expect(await cliQuery(user.sock, 'set fault req 1')).toBe(
      'set fault: permission denied (needs a stats socket with level admin)\n\n',
    );
    expect((JSON.parse(await cliQuery(user.sock, 'show pool')) as PoolLedger).faults).toEqual([]);
  });

  it('answers an unknown set command with the set commands it knows', async () => {
    expect(await cliQuery(admin.sock, 'set maxconn frontend fe 10')).toBe(
      "Unknown command: 'set maxconn frontend fe 10'\nembryonic knows: set fault SITE N, set clock advance MS\n\n",
    );
  });
});
