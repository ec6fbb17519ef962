/**
 * The stats socket, compared with Debian's HAProxy 2.6 running the same configuration (skipped
 * when haproxy is not installed): the same `show stat` header, the same rows with the same fields
 * filled, the same `show info` counts for the CLI itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frontendBackend, parseConfig } from '../../impl/config.ts';
import { FdTab } from '../../impl/fdtab.ts';
import { Pool } from '../../impl/pool.ts';
import {
  ROW_FIELDS,
  showInfo,
  showStat,
  STAT_FIELDS,
  STAT_HEADER,
  zeroTraffic,
  type StatsSource,
} from '../../impl/stats.ts';
import { zeroCounters, type Counters } from '../../machines/counters.ts';
import {
  client,
  cliQuery,
  proxyConfig,
  refusedPort,
  startBackend,
  startProxyProcess,
  waitFor,
  type Backend,
  type ProxyProcess,
} from './harness.ts';

const version = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
const HAVE_HAPROXY = version.status === 0 && /version 2\.6/.test(version.stdout);

const config = (statsPath: string, mode: 'tcp' | 'http', port: number, serverPort: number) => `
global
    maxconn 50
    nbthread 1
    stats socket ${statsPath} mode 600 level admin

defaults
    mode ${mode}
    timeout connect 1s
    timeout server 5s
    timeout client 300ms

frontend fe_${mode}
    bind 127.0.0.1:${port} accept-proxy name main
    option socket-stats
    maxconn 20
    default_backend be_${mode}

backend be_${mode}
    server s1 127.0.0.1:${serverPort}
`;

/** Parses a `show stat` answer into its header and its rows (field → value). */
function parseStat(text: string): { header: string; rows: Record<string, string>[] } {
  const [header, ...lines] = text.trim().split('\n');
  return {
    header: header!,
    rows: lines.map((l) => Object.fromEntries(STAT_FIELDS.map((f, i) => [f, l.split(',')[i] ?? '']))),
  };
}

const typeOf = (row: Record<string, string>) =>
  ({ '0': 'frontend', '1': 'backend', '2': 'server', '3': 'listener' } as const)[
    row.type as '0' | '1' | '2' | '3'
  ];

describe.skipIf(!HAVE_HAPROXY)("show stat and show info, side by side with Debian's HAProxy 2.6", () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-stats-'));
  const haproxies: ChildProcess[] = [];
  let ours: ProxyProcess;
  let theirs: Record<'tcp' | 'http', string>; // their stats socket paths
  let ourPort = 0;

  /** Starts haproxy on `cfg` and resolves once its stats socket answers. */
  async function startHaproxy(cfg: string, statsPath: string): Promise<void> {
    const file = join(dir, `${haproxies.length}.cfg`);
    writeFileSync(file, cfg);
    const child = spawn('haproxy', ['-db', '-f', file], { stdio: 'ignore' });
    haproxies.push(child);
    await waitFor(
      'haproxy to answer',
      () =>
        cliQuery(statsPath, 'show info').then(
          () => true,
          () => undefined,
        ),
      10_000,
    );
  }

  beforeAll(async () => {
    const serverPort = await refusedPort();
    theirs = { tcp: join(dir, 'tcp.sock'), http: join(dir, 'http.sock') };
    await startHaproxy(config(theirs.tcp, 'tcp', await refusedPort(), serverPort), theirs.tcp);
    await startHaproxy(config(theirs.http, 'http', await refusedPort(), serverPort), theirs.http);
    ours = await startProxyProcess((d) => config(join(d, 'stats.sock'), 'tcp', 0, serverPort));
    ourPort = ours.port;
  });

  afterAll(async () => {
    await ours?.stop();
    for (const h of haproxies) h.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the header line of HAProxy 2.6, field for field', async () => {
    const { header } = parseStat(await cliQuery(theirs.tcp, 'show stat'));
    expect(header).toBe(STAT_HEADER);
    expect(parseStat(await ours.query('show stat')).header).toBe(STAT_HEADER);
  });

  it.each(['tcp', 'http'] as const)(
    'knows which fields HAProxy fills on each row type in %s mode',
    async (mode) => {
      const { rows } = parseStat(await cliQuery(theirs[mode], 'show stat'));
      expect(rows.map(typeOf)).toEqual(['frontend', 'listener', 'server', 'backend']);
      for (const row of rows) {
        const filled = STAT_FIELDS.filter((f) => row[f] !== '' && f !== 'pxname' && f !== 'svname');
        expect(filled.sort()).toEqual([...ROW_FIELDS[typeOf(row)][mode]].sort());
      }
    },
  );

  it('prints, idle, the same rows as an idle HAProxy with the same configuration', async () => {
    const scrub = (row: Record<string, string>) => ({
      ...row,
      lastchg: '',
      addr: row.addr?.replace(/:\d+$/, ':PORT'),
    });
    const theirRows = parseStat(await cliQuery(theirs.tcp, 'show stat')).rows.map(scrub);
    const ourRows = parseStat(await ours.query('show stat')).rows.map(scrub);
    expect(ourRows).toEqual(theirRows);
    expect(ourPort).toBeGreaterThan(0);
  });

  it('counts the CLI in show info as HAProxy does: in CumConns and Jobs, not in CurrConns', async () => {
    const fields = [
      'CurrConns',
      'Jobs',
      'Listeners',
      'Maxconn',
      'Hard_maxconn',
      'Nbthread',
      'Stopping',
      'Unstoppable Jobs',
      'ConnRateLimit',
    ];
    const read = async (q: (cmd: string) => Promise<string>) => {
      const text = await q('show info');
      const all = Object.fromEntries(
        text
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]),
      );
      return { ...Object.fromEntries(fields.map((f) => [f, all[f]])), cum: Number(all.CumConns) };
    };
    const a1 = await read((c) => cliQuery(theirs.tcp, c));
    const a2 = await read((c) => cliQuery(theirs.tcp, c));
    const b1 = await read(ours.query);
    const b2 = await read(ours.query);
    expect({ ...b1, cum: undefined }).toEqual({ ...a1, cum: undefined });
    expect([b2.cum - b1.cum, a2.cum - a1.cum]).toEqual([1, 1]);
  });

  it('creates the stats socket with mode 0600 and answers its own commands', async () => {
    expect(statSync(ours.statsPath).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await ours.query('show pool'))).toMatchObject({ bufsize: 16384, violations: [] });
    expect(JSON.parse(await ours.query('show fd'))).toMatchObject({ live: [], violations: [] });
    expect(JSON.parse(await ours.query('show violations'))).toEqual({ violations: [] });
    expect(JSON.parse(await ours.query('show monitor'))).toEqual({ monitor: null }); // no --monitor
    expect(await ours.query('show model')).toMatch(/^Unknown command: 'show model'/);
    expect(await ours.query('show info; show stat')).toMatch(/^Name: embryonic\n[\s\S]*\n\n# pxname,/);
  });
});

describe('show violations', () => {
  let echo: Backend;
  let planted: ProxyProcess;
  let unlisted: ProxyProcess;

  beforeAll(async () => {
    echo = await startBackend('echo');
    const acceptProxy = (dir: string): string =>
      proxyConfig(
        dir,
        '2s',
        `
frontend fe_main
    bind 127.0.0.1:0 accept-proxy
    default_backend be_echo

backend be_echo
    server s1 127.0.0.1:${echo.port}
`,
      );
    // The machines run with the mutant buffers-at-accept switched in (machines/mutants.ts): they
    // ask for the session's buffers at accept and again when the handshake ends.
    planted = await startProxyProcess(acceptProxy, ['--monitor'], {
      EMBRYONIC_MONITOR_DEFECT: 'buffers-at-accept',
    });
    // HAProxy's bug 3b24641745: a failed session_complete frees the session still linked. The
    // first req allocation fails, so the first completion fails.
    unlisted = await startProxyProcess(acceptProxy, ['--monitor', '--fail-alloc', 'req:1'], {
      EMBRYONIC_MONITOR_DEFECT: 'no-list-del-on-completion-failure',
    });
  });

  afterAll(async () => {
    await planted?.stop();
    await unlisted?.stop();
    await echo?.close();
  });

  it('lists each effect the host could not execute as asked: a buffer allocated twice', async () => {
    expect(await planted.violations()).toEqual([]);
    const c = client(planted.port, { first: 'PROXY TCP4 10.1.2.3 10.0.0.1 40000 80\r\nping', limitMs: 2000 });
    await waitFor('the echo', () => (c.socket.bytesRead >= 4 ? true : undefined));
    c.socket.end();
    await c.outcome;
    const found = await waitFor('the violations', async () => {
      const v = await planted.violations();
      return v.length > 0 ? v : undefined;
    });
    expect(found).toEqual([
      expect.stringMatching(/^connection \d+: req allocated twice$/),
      expect.stringMatching(/^connection \d+: rep allocated twice$/),
    ]);
  });

  it('lists a session freed while still linked in the sessions list', async () => {
    const c = client(unlisted.port, {
      first: 'PROXY TCP4 10.1.2.3 10.0.0.1 40000 80\r\nping',
      limitMs: 2000,
    });
    await c.outcome;
    const found = await waitFor('the violation', async () => {
      const v = await unlisted.violations();
      return v.length > 0 ? v : undefined;
    });
    expect(found).toEqual([
      expect.stringMatching(/^connection \d+ ended still linked in the sessions list$/),
    ]);
  });
});

describe('show info and show stat, from a source written out here', () => {
  const cfg = parseConfig(
    'global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout client 1s\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    server s1 127.0.0.1:2\n',
    'unit.cfg',
  );
  const now = 1_000_000;
  const source = (counters: Partial<Counters>, lastSessAgo: number | null): StatsSource => {
    const traffic = { ...zeroTraffic(), lastSess: lastSessAgo === null ? null : now - lastSessAgo };
    return {
      cfg,
      counters: { ...zeroCounters(), ...counters },
      maxima: { listenerConnMax: 0, connRateMax: 0, sessRateMax: 0, feConnRateMax: 0 },
      traffic: { bin: 0, bout: 0 },
      backends: [
        {
          cfg: frontendBackend(cfg),
          counters: traffic,
          servers: [{ name: 's1', host: '127.0.0.1', port: 2, counters: traffic }],
          next: 0,
        },
      ],
      startedAt: now - 10_000,
      stopping: false,
      listenerState: () => 'ready',
      listenAddress: () => '127.0.0.1:1',
      poolLedger: () => new Pool(1024).ledger(),
      fdReport: () => new FdTab().report(),
      hostViolations: () => [],
    };
  };
  const info = (text: string): Record<string, string> =>
    Object.fromEntries(
      text
        .trim()
        .split('\n')
        .map((l) => l.split(': ') as [string, string]),
    );

  it('gives the connection rate as ConnRate and the frontend session rate as SessRate', () => {
    const shown = info(showInfo(source({ connPerSec: 2, feSessPerSec: 1 }, null), { cum: 0, cur: 0 }, now));
    expect([shown.ConnRate, shown.SessRate]).toEqual(['2', '1']);
  });

  it('gives the seconds since the last session as lastsess, -1 when there was none', () => {
    const rows = (ago: number | null) =>
      parseStat(showStat(source({}, ago), now))
        .rows.filter((r) => r.pxname === 'be')
        .map((r) => r.lastsess);
    expect(rows(5000)).toEqual(['5', '5']);
    expect(rows(null)).toEqual(['-1', '-1']);
  });
});
