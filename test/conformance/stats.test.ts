import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectCounters } from '../../conformance/expect.ts';
import type { CaseContext, Check } from '../../conformance/expect.ts';
import {
  cliOpened,
  infoNumber,
  mergeFields,
  mergeRows,
  parseShowInfo,
  parseShowStat,
  QUERY_GAP_MS,
  readMergedStats,
  statNumber,
  statsQuery,
  type StatsSnapshot,
} from '../../conformance/stats.ts';

// The shape of HAProxy 2.6's answers (fields cut to a few; the real CSV has about a hundred).
const SHOW_STAT = [
  '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,conn_tot,dcon,',
  'fe_pp,FRONTEND,,,1,1,10,3,0,0,0,0,0,,,7,0,',
  'be_echo,echo1,0,0,0,1,,3,0,0,,0,,0,0,,,',
  'be_echo,BACKEND,0,0,0,1,10,3,0,0,0,0,,0,0,,,',
  '',
].join('\n');

const SHOW_INFO = [
  'Name: HAProxy',
  'Version: 2.6.12-1+deb12u4',
  'CurrConns: 1',
  'CumConns: 12',
  'Jobs: 8',
  '',
].join('\n');

describe('the stats socket answers', () => {
  it('parse show stat into rows keyed pxname/svname', () => {
    const rows = parseShowStat(SHOW_STAT);
    expect(Object.keys(rows)).toEqual(['fe_pp/FRONTEND', 'be_echo/echo1', 'be_echo/BACKEND']);
    expect(rows['fe_pp/FRONTEND']).toMatchObject({
      scur: '1',
      smax: '1',
      slim: '10',
      stot: '3',
      conn_tot: '7',
      dcon: '0',
    });
  });

  it('parse show info into values by name', () => {
    expect(parseShowInfo(SHOW_INFO)).toMatchObject({
      CurrConns: '1',
      CumConns: '12',
      Version: '2.6.12-1+deb12u4',
    });
  });

  it('read counters as numbers, and say null for an absent or empty field', () => {
    const snap: StatsSnapshot = {
      t: 0,
      label: 'x',
      info: parseShowInfo(SHOW_INFO),
      rows: parseShowStat(SHOW_STAT),
      cli: 1,
    };
    expect(statNumber(snap, 'fe_pp/FRONTEND', 'conn_tot')).toBe(7);
    expect(statNumber(snap, 'fe_pp/FRONTEND', 'econ')).toBeNull();
    expect(statNumber(snap, 'fe_nope/FRONTEND', 'scur')).toBeNull();
    expect(infoNumber(snap, 'CurrConns')).toBe(1);
    expect(infoNumber(snap, 'Nope')).toBeNull();
  });

  it('give no rows for an answer without a CSV header', () => {
    expect(parseShowStat('Unknown command\n')).toEqual({});
  });
});

describe('the counters of several processes', () => {
  it('add up numbers and keep the first of anything else', () => {
    expect(
      mergeFields([
        { CurrConns: '1', Name: 'HAProxy' },
        { CurrConns: '2', Name: 'other', Jobs: '3' },
      ]),
    ).toEqual({
      CurrConns: '3',
      Name: 'HAProxy',
      Jobs: '3',
    });
  });

  it('keep a row served by one process as it is and add up a row served by several', () => {
    const a = { 'fe_pp/FRONTEND': { scur: '1', stot: '2' }, 'be_echo/BACKEND': { stot: '2', status: 'UP' } };
    const b = { 'fe_tls/FRONTEND': { scur: '0', stot: '5' }, 'be_echo/BACKEND': { stot: '5', status: 'UP' } };
    expect(mergeRows([a, b])).toEqual({
      'fe_pp/FRONTEND': { scur: '1', stot: '2' },
      'be_echo/BACKEND': { stot: '7', status: 'UP' },
      'fe_tls/FRONTEND': { scur: '0', stot: '5' },
    });
  });
});

/**
 * Starts a unix-socket server at <path> that answers as HAProxy's CLI counts: each connection adds
 * one to CumConns before the command runs. Resolves with the server; the caller closes it.
 */
function startCli(path: string): Promise<Server> {
  let cum = 100;
  const server = createServer(function serverOnConnection(socket: Socket) {
    cum++;
    socket.once('data', function socketOnData(line: Buffer) {
      const answer = line.toString().startsWith('show info')
        ? `CumConns: ${cum}\nJobs: 3\n\n`
        : '# pxname,svname,scur\nfe,FRONTEND,0\n\n';
      socket.end(answer);
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

describe("the reader's own CLI connections", () => {
  it('counts each connection it makes to a socket, and judges CumConns less those made between two snapshots', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-cli-'));
    const paths = [join(dir, 'a.sock'), join(dir, 'b.sock')];
    const servers = await Promise.all(paths.map(startCli));
    try {
      const before = await readMergedStats(paths, 'before', () => 0);
      // Each snapshot is a show info then a show stat per socket; its own show info is counted.
      expect(paths.map(cliOpened)).toEqual([2, 2]);
      expect(before.cli).toBe(2);
      await readMergedStats(paths, 'between', () => 0);
      const after = await readMergedStats(paths, 'after', () => 0);
      expect(after.cli).toBe(10);
      // Two servers at 101 then 105 each: +8 in all, every one of them the reader's own.
      expect(infoNumber(after, 'CumConns')! - infoNumber(before, 'CumConns')!).toBe(8);
      const checks: Check[] = [];
      const ctx = { check: (k: Check) => void checks.push(k) } as unknown as CaseContext;
      expectCounters(ctx, before, after, [
        { info: 'CumConns', delta: 0, plusCli: true },
        { info: 'CumConns', delta: 1, plusCli: true },
        { info: 'Jobs', delta: 0 },
      ]);
      expect(checks.map((k) => [k.expected, k.ok])).toEqual([
        ["+8 (+0, and the reader's 8 CLI connections)", true],
        ["+9 (+1, and the reader's 8 CLI connections)", false],
        ['+0', true],
      ]);
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`starts a query no sooner than ${QUERY_GAP_MS} ms after the previous one to the socket ended, even one sent while it ran, as HAProxy 2.9 may still count that one in Jobs`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'embryonic-cli-'));
    const path = join(dir, 'gap.sock');
    const accepted: number[] = [];
    const answered: number[] = [];
    const server = createServer(function serverOnConnection(socket: Socket) {
      accepted.push(performance.now());
      socket.once('data', () => {
        answered.push(performance.now()); // before the reader can have seen the answer end
        socket.end('Jobs: 3\n\n');
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      // Two sequential queries, then one sent while another runs: it waits for that one to end.
      await statsQuery(path, 'show info');
      await Promise.all([statsQuery(path, 'show info'), statsQuery(path, 'show info')]);
      // Each connect comes at least the gap after the previous answer was sent, which is before
      // the reader saw it end: a lower bound load cannot break.
      expect(accepted).toHaveLength(3);
      for (let i = 1; i < 3; i++)
        expect(accepted[i]! - answered[i - 1]!).toBeGreaterThanOrEqual(QUERY_GAP_MS);
    } finally {
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
