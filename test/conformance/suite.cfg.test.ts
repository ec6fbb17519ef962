import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../impl/config.ts';
import {
  BACKEND_OFFSET,
  CLIENT_HS_MS,
  DEADLINE_MS,
  DATA_SERVER_TIMEOUT_MS,
  FRONTENDS,
  frontendsOf,
  QUEUE_MAXCONN,
  statsPathOf,
  suiteConfig,
  suiteLayout,
  writeSuiteFiles,
} from '../../conformance/suite.cfg.ts';

const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
const hasHaproxy = !haproxy.error && haproxy.status === 0;
if (!hasHaproxy)
  console.warn('suite.cfg.test: haproxy is not installed; the config is not checked by haproxy -c');

describe('the suite config', () => {
  it('puts every frontend at base port + its offset and the backend at base + BACKEND_OFFSET', () => {
    const layout = suiteLayout(20000, '/tmp/x');
    expect(layout.ports.fe_pp).toBe(20000);
    expect(layout.ports.fe_tls).toBe(20000 + FRONTENDS.fe_tls.offset);
    expect(layout.backendPort).toBe(20000 + BACKEND_OFFSET);
    expect(new Set(Object.values(layout.ports)).size).toBe(Object.keys(FRONTENDS).length);
    expect(Object.values(layout.ports)).not.toContain(layout.backendPort);
    expect(suiteLayout(20000, '/tmp/x', 31000).backendPort).toBe(31000);
  });

  it('refuses a base port that leaves no room for the layout', () => {
    expect(() => suiteLayout(65530, '/tmp/x')).toThrow(RangeError);
    expect(() => suiteLayout(0, '/tmp/x')).toThrow(RangeError);
  });

  it('binds every frontend on loopback with one thread, a stats socket and the deadline as timeout client', () => {
    const cfg = suiteConfig(suiteLayout(20000, '/tmp/x'));
    const cfg26 = suiteConfig(suiteLayout(20000, '/tmp/x'), undefined, '2.6');
    const cfg29 = suiteConfig(suiteLayout(20000, '/tmp/x'), undefined, '2.9');
    for (const [name, fe] of Object.entries(FRONTENDS)) {
      const served = name === 'fe_rate_full' ? cfg26 : name === 'fe_client_hs' ? cfg29 : cfg;
      expect(served).toContain(`frontend ${name}\n    bind 127.0.0.1:${20000 + fe.offset}`);
    }
    expect(cfg).toContain('    nbthread 1\n');
    expect(cfg).toContain('    stats socket /tmp/x/stats.sock\n');
    expect(cfg).toContain(`    timeout client ${DEADLINE_MS}ms\n`);
    expect(cfg).toContain(
      `frontend fe_queue\n    bind 127.0.0.1:20003 accept-proxy\n    maxconn ${QUEUE_MAXCONN}\n`,
    );
    expect(cfg).toContain(
      `frontend fe_fe_queue\n    bind 127.0.0.1:20007 accept-proxy maxconn ${2 * QUEUE_MAXCONN}\n    maxconn ${QUEUE_MAXCONN}\n`,
    );
    expect(cfg).toContain('    tcp-request connection reject if { src 127.0.0.0/8 }\n');
    expect(cfg).toContain('    server echo1 127.0.0.1:20010\n');
    expect(cfg).not.toMatch(/client-hs/);
    // monitor-net, which HAProxy refuses since 2.3, only in the config of dev12 targets.
    expect(cfg).toContain(
      'frontend fe_monitor\n    bind 127.0.0.1:20008\n    maxconn 10\n    monitor-net 127.0.0.0/8\n',
    );
    expect(suiteConfig(suiteLayout(20000, '/tmp/x'), undefined, '2.6')).not.toMatch(/monitor-net|fe_monitor/);
    expect(frontendsOf('2.6')).not.toContain('fe_monitor');
    // fe_rate_full, whose case needs 2.x's frontend task (1 ms re-check), only in 2.x targets' config.
    expect(cfg26).toContain(
      `frontend fe_rate_full\n    bind 127.0.0.1:20012 maxconn 2\n    maxconn 1\n    rate-limit sessions 1\n`,
    );
    expect(cfg).not.toMatch(/fe_rate_full/);
    // fe_client_hs, whose `timeout client-hs` came in 2.9 (and 2.6 refuses), only in 2.9 targets' config.
    expect(cfg29).toContain(
      `frontend fe_client_hs\n    bind 127.0.0.1:20014 accept-proxy\n    maxconn 10\n    timeout client-hs ${CLIENT_HS_MS}ms\n`,
    );
    expect(cfg26).not.toMatch(/client-hs/);
    expect(frontendsOf('dev12')).toEqual(
      Object.keys(FRONTENDS).filter((fe) => fe !== 'fe_rate_full' && fe !== 'fe_client_hs'),
    );
    expect(frontendsOf('2.6')).toEqual(
      Object.keys(FRONTENDS).filter((fe) => fe !== 'fe_monitor' && fe !== 'fe_client_hs'),
    );
    expect(frontendsOf('2.9')).toEqual(Object.keys(FRONTENDS).filter((fe) => fe !== 'fe_monitor'));
  });

  it('slices into one config per frontend, each with its own stats socket, the same global and backend', () => {
    const layout = suiteLayout(20000, '/tmp/x');
    for (const fe of Object.keys(FRONTENDS) as (keyof typeof FRONTENDS)[]) {
      const profile = fe === 'fe_rate_full' ? '2.6' : fe === 'fe_client_hs' ? '2.9' : 'dev12';
      const whole = suiteConfig(layout, undefined, profile);
      const slice = suiteConfig(layout, fe, profile);
      expect(slice.match(/^frontend /gm)).toEqual(['frontend ']);
      expect(slice).toContain(`frontend ${fe}\n`);
      expect(slice).toContain(`    stats socket ${statsPathOf(layout, fe)}\n`);
      // The section that starts with the line <name>.
      const section = (text: string, name: string): string =>
        text.slice(text.indexOf(`\n${name}\n`) + 1).split('\n\n')[0]!;
      expect(section(slice, `frontend ${fe}`)).toBe(section(whole, `frontend ${fe}`));
      expect(section(slice, 'defaults')).toBe(section(whole, 'defaults'));
      expect(section(slice, 'backend be_echo')).toBe(section(whole, 'backend be_echo'));
      expect(section(slice, 'backend be_data')).toBe(section(whole, 'backend be_data'));
      expect(section(slice, 'backend be_data')).toContain(`timeout server ${DATA_SERVER_TIMEOUT_MS}ms`);
    }
    expect(statsPathOf(layout, 'fe_tls')).toBe('/tmp/x/stats-fe_tls.sock');
  });

  it("gives the bundled proxy's config parser (impl/config.ts) a slice it accepts for every frontend", () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-suite-cfg-'));
    try {
      const layout = suiteLayout(20000, dir);
      writeSuiteFiles(layout);
      for (const profile of ['dev12', '2.6', '2.9'] as const) {
        for (const fe of frontendsOf(profile)) {
          const cfg = parseConfig(suiteConfig(layout, fe, profile), `suite-${fe}.cfg`, profile);
          expect(cfg.global.stats?.path).toBe(statsPathOf(layout, fe));
        }
      }
      // The parser refuses monitor-net under 2.6, as HAProxy does: fe_monitor is dev12's only.
      expect(() => parseConfig(suiteConfig(layout, 'fe_monitor'), 'suite-fe_monitor.cfg', '2.6')).toThrow(
        /monitor-net/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasHaproxy)("is accepted by Debian's haproxy (haproxy -c)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-suite-cfg-'));
    try {
      const layout = suiteLayout(20000, dir);
      const cfg = join(dir, 'suite.cfg');
      writeSuiteFiles(layout, cfg, undefined, '2.6');
      const check = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8', timeout: 10_000 });
      expect(`${check.stdout}${check.stderr}`).toContain('Configuration file is valid');
      expect(check.status).toBe(0);
      // The dev12 config adds fe_monitor, which HAProxy 2.6 refuses.
      writeFileSync(cfg, suiteConfig(layout));
      const monitor = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8', timeout: 10_000 });
      expect(monitor.status).not.toBe(0);
      expect(`${monitor.stdout}${monitor.stderr}`).toContain("'monitor-net' doesn't exist anymore");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
