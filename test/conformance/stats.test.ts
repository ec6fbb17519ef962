import { describe, expect, it } from 'vitest';
import {
  infoNumber,
  mergeFields,
  mergeRows,
  parseShowInfo,
  parseShowStat,
  statNumber,
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
