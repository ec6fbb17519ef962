import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  cpuWaitMs,
  findFreePortBlock,
  lastValueOf,
  liveProcessCount,
  parseTargetSpec,
  profileOfHaproxy,
  sleep,
  startTarget,
  stopProcess,
  targetName,
  trackChild,
} from '../../conformance/targets.ts';

describe('parseTargetSpec', () => {
  it('knows impl and haproxy by name', () => {
    expect(parseTargetSpec('impl')).toEqual({ kind: 'impl' });
    expect(parseTargetSpec('haproxy')).toEqual({ kind: 'haproxy' });
  });

  it('reads HOST:PORT, with an IPv6 host in brackets, and the stats socket as unix:PATH', () => {
    expect(parseTargetSpec('127.0.0.1:18443', { stats: 'unix:/run/h.sock' })).toEqual({
      kind: 'address',
      host: '127.0.0.1',
      port: 18443,
      stats: '/run/h.sock',
    });
    const v6 = parseTargetSpec('[::1]:18443');
    expect(v6).toEqual({ kind: 'address', host: '::1', port: 18443, stats: null });
    expect(targetName(v6 as Exclude<typeof v6, string>)).toBe('[::1]:18443');
  });

  it('gives a HOST:PORT target the log and the traces it is run apart with, and impl none of them', () => {
    const apart = {
      stats: 'unix:/run/h.sock',
      log: '/run/h.log',
      traces: ['/run/a.ndjson', '/run/b.ndjson'],
    };
    expect(parseTargetSpec('127.0.0.1:18443@2.6', apart)).toEqual({
      kind: 'address',
      host: '127.0.0.1',
      port: 18443,
      stats: '/run/h.sock',
      profile: '2.6',
      log: '/run/h.log',
      traces: ['/run/a.ndjson', '/run/b.ndjson'],
    });
    expect(parseTargetSpec('impl', apart)).toEqual({ kind: 'impl' });
  });

  it('reads the profile a target is judged against after @, for impl and HOST:PORT', () => {
    const impl26 = parseTargetSpec('impl@2.6');
    expect(impl26).toEqual({ kind: 'impl', profile: '2.6' });
    expect(targetName(impl26 as Exclude<typeof impl26, string>)).toBe('impl@2.6');
    const v6 = parseTargetSpec('[::1]:18443@2.9');
    expect(v6).toEqual({ kind: 'address', host: '::1', port: 18443, stats: null, profile: '2.9' });
    expect(targetName(v6 as Exclude<typeof v6, string>)).toBe('[::1]:18443@2.9');
    expect(targetName({ kind: 'impl', profile: 'dev12' })).toBe('impl');
    expect(parseTargetSpec('impl@1.8')).toMatch(/must be dev12, 2\.6, 2\.9, not "1\.8"/);
    expect(parseTargetSpec('haproxy@dev12')).toMatch(/no HAProxy build follows dev12/);
  });

  it('gives a haproxy target its profile after @ and the binary --haproxy names, and other targets no binary', () => {
    const own = parseTargetSpec('haproxy@2.9', { haproxy: '/opt/haproxy-2.9/haproxy' });
    expect(own).toEqual({ kind: 'haproxy', profile: '2.9', bin: '/opt/haproxy-2.9/haproxy' });
    expect(targetName(own as Exclude<typeof own, string>)).toBe('haproxy@2.9');
    expect(targetName({ kind: 'haproxy' })).toBe('haproxy');
    expect(parseTargetSpec('impl@2.9', { haproxy: '/opt/h' })).toEqual({ kind: 'impl', profile: '2.9' });
  });

  it('says what is wrong with a bad target or stats value', () => {
    expect(parseTargetSpec('nginx')).toMatch(/impl\[@PROFILE\], haproxy or HOST:PORT\[@PROFILE\]/);
    expect(parseTargetSpec('127.0.0.1:0')).toMatch(/out of range/);
    expect(parseTargetSpec('127.0.0.1:18443', { stats: '/run/h.sock' })).toMatch(/unix:PATH/);
  });
});

describe('profileOfHaproxy', () => {
  it('judges a HAProxy build by the version its -v prints: 2.9 from 2.9 on, 2.6 from 2.3, none before', () => {
    expect(profileOfHaproxy('HAProxy version 2.6.12-1+deb12u4 2025/10/03 - https://haproxy.org/')).toBe(
      '2.6',
    );
    expect(profileOfHaproxy('HAProxy version 2.3.0 2020/11/05')).toBe('2.6');
    expect(profileOfHaproxy('HAProxy version 2.8.5-1 2023/12/07')).toBe('2.6');
    expect(profileOfHaproxy('HAProxy version 2.9.0-fddb8c13b 2023/12/05')).toBe('2.9');
    expect(profileOfHaproxy('HAProxy version 3.2.1 2025/06/10')).toBe('2.9');
    expect(profileOfHaproxy('HAProxy version 2.2.33 2024/04/05')).toBeNull();
    expect(profileOfHaproxy('HA-Proxy version 1.5.18 2016/05/10')).toBeNull();
  });
});

describe('lastValueOf', () => {
  it('finds the value of the last occurrence of a flag, as the proxy reads it, in either spelling', () => {
    expect(lastValueOf(['--trace', '/a', '--monitor', '--trace=/b'], '--trace')).toBe('/b');
    expect(lastValueOf(['--trace=/b', '--trace', '/c'], '--trace')).toBe('/c');
    expect(lastValueOf(['--tracer', '/x', '--monitor'], '--trace')).toBeUndefined();
  });
});

describe('the targets the suite starts', () => {
  it('skips haproxy, with a message, when it is not in PATH', async () => {
    const empty = mkdtempSync(`${tmpdir()}/embryonic-empty-path-`);
    const saved = process.env.PATH;
    process.env.PATH = empty;
    try {
      const target = await startTarget({ kind: 'haproxy' });
      expect(target.unavailable?.verdict).toBe('skipped');
      expect(target.unavailable?.reason).toMatch(/haproxy is not installed/);
      await target.stop();
    } finally {
      process.env.PATH = saved;
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('fails, never skips, a haproxy target whose --haproxy build does not run, saying which', async () => {
    const target = await startTarget({ kind: 'haproxy', profile: '2.9', bin: '/nonexistent/haproxy' });
    expect(target.name).toBe('haproxy@2.9');
    expect(target.unavailable?.verdict).toBe('fail');
    expect(target.unavailable?.reason).toMatch(/\/nonexistent\/haproxy -v failed/);
    await target.stop();
  });

  it('fails a HAProxy older than 2.3, or one that prints no version, unless a profile is named', async () => {
    const dir = mkdtempSync(`${tmpdir()}/embryonic-old-haproxy-`);
    try {
      const old = `${dir}/haproxy`;
      writeFileSync(old, '#!/bin/sh\necho "HA-Proxy version 1.5.18 2016/05/10"\n', { mode: 0o755 });
      const target = await startTarget({ kind: 'haproxy', bin: old });
      expect(target.unavailable?.verdict).toBe('fail');
      expect(target.unavailable?.reason).toMatch(/HA-Proxy version 1\.5\.18.*haproxy@2\.6/);
      await target.stop();
      const mute = `${dir}/mute`;
      writeFileSync(mute, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      const silent = await startTarget({ kind: 'haproxy', bin: mute });
      expect(silent.unavailable?.reason).toMatch(/^\S+\/mute \(no version line\): the suite judges/);
      await silent.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails the bundled proxy, never skips it, when it exits at start, with its output', async () => {
    const target = await startTarget({
      kind: 'impl',
      frontends: ['fe_pp'],
      args: () => ['--no-such-option'],
    });
    try {
      expect(target.unavailable?.verdict).toBe('fail');
      expect(target.unavailable?.reason).toMatch(
        /exited at start \(code 2,[\s\S]*its output:[\s\S]*unknown option --no-such-option/,
      );
    } finally {
      await target.stop();
    }
  });

  it('finds a block of consecutive free loopback ports below the ephemeral range', async () => {
    const base = await findFreePortBlock(6);
    expect(base).toBeGreaterThanOrEqual(20000);
    expect(base + 6).toBeLessThan(32768);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(base + 5, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('stops a process that ignores SIGTERM with SIGKILL after its bound', async () => {
    const child = spawn(
      process.execPath,
      ['-e', "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000);"],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    const started = performance.now();
    await stopProcess(child, 200);
    expect(child.signalCode).toBe('SIGKILL');
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });
});

describe('trackChild', () => {
  it('forgets a child that could not start, which never exits', async () => {
    const before = liveProcessCount();
    const child = spawn('/nonexistent/embryonic-no-such-program', []);
    trackChild(child);
    expect(liveProcessCount()).toBe(before + 1);
    await new Promise<void>((resolve) => child.once('error', () => resolve()));
    expect(liveProcessCount()).toBe(before);
  });
});

describe('cpuWaitMs', () => {
  /** Starts `sh -c <script>` on CPU 0 only (taskset), tracked, and resolves once it runs. */
  async function onCpu0(script: string): Promise<ChildProcess> {
    const child = spawn('taskset', ['-c', '0', 'sh', '-c', script], { stdio: 'ignore' });
    trackChild(child);
    await once(child, 'spawn');
    return child;
  }

  it('reads from the kernel how long a process that could run waited for a CPU, and nothing for one asleep', async () => {
    const asleep = await onCpu0('sleep 5');
    await sleep(50); // its start (exec, loading) is work, done before the busy ones run
    const busy = [await onCpu0('while :; do :; done'), await onCpu0('while :; do :; done')];
    try {
      const from = [...busy, asleep].map((child) => cpuWaitMs(child.pid!)!);
      await sleep(300);
      const [a, b, idle] = [...busy, asleep].map((child, i) => cpuWaitMs(child.pid!)! - from[i]!);
      // Two busy processes on one CPU: each waits while the other runs, about half of the 300 ms.
      expect(a).toBeGreaterThan(60);
      expect(b).toBeGreaterThan(60);
      expect(idle).toBeLessThan(10);
    } finally {
      await Promise.all([...busy, asleep].map((child) => stopProcess(child)));
    }
  });

  it('reads null for a process that is gone', async () => {
    const child = await onCpu0('exit 0');
    await once(child, 'exit');
    expect(cpuWaitMs(child.pid!)).toBeNull();
  });
});
