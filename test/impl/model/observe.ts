/**
 * The independent observers of the proxy, and the checks that compare what they see with what the
 * model predicts. The proxy is read only from outside: its stats socket (`show info`, `show stat`,
 * the pool and fd ledgers of `show pool` and `show fd`, and its host's own checks, `show
 * violations`), /proc/<pid>/fd, what each client saw and what the backend saw. Never its machines.
 *
 * Every check is a named rule; `gaps` returns, for the current observation, one sentence per rule
 * that does not hold. The proxy works asynchronously, so a command waits until the gaps are gone
 * (converge in RealSide.ts) and fails with the last gaps if they do not go within its time limit.
 */
import { HTTP_200, HTTP_500, HTTP_500_DEV12 } from '../../../impl/driver.ts';
import type { FdReport } from '../../../impl/fdtab.ts';
import type { PoolLedger } from '../../../impl/pool.ts';
import type { BackendSeen } from './backend.ts';
import { ALLOC_SITES, type ProxyModel } from './ProxyModel.ts';
import type { ProxyUnderTest, RealSide } from './RealSide.ts';

/** One observation of the proxy from outside. */
export interface Observation {
  fe: Record<string, number>; //   the FRONTEND row of `show stat`
  li: Record<string, number>; //   the listener row (option socket-stats)
  liStatus: string; //             the listener row's status: OPEN, FULL or WAITING
  be: Record<string, number>; //   the BACKEND row
  info: Record<string, number>; // `show info`
  pool: PoolLedger;
  fd: FdReport;
  host: string[]; //               `show violations`: what the proxy's host found wrong in its effects
  fdCount: number; //              entries of /proc/<pid>/fd, read just before the query
  queries: number; //              CLI connections the test made so far, this one included
  backend: BackendSeen;
}

const NUMBER_FIELDS = ['scur', 'smax', 'stot', 'conn_tot', 'dcon', 'rate', 'conn_rate', 'econ'];

/** Reads the proxy once: /proc/<pid>/fd, then one CLI line with the five `show` commands. */
export async function observe(put: ProxyUnderTest): Promise<Observation> {
  const fdCount = put.proxy.fdCount();
  const text = await put.query('show info; show stat; show pool; show fd; show violations');
  const blocks = text.split('\n\n');
  const info: Record<string, number> = {};
  for (const line of blocks[0]!.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) info[line.slice(0, i)] = Number(line.slice(i + 1).trim());
  }
  const [header, ...rows] = blocks[1]!.split('\n');
  const fields = header!.slice(2).split(',');
  const row = (svname: (r: Record<string, string>) => boolean): Record<string, string> => {
    for (const r of rows) {
      const cells = r.split(',');
      const rec: Record<string, string> = {};
      fields.forEach((f, i) => (rec[f] = cells[i] ?? ''));
      if (svname(rec)) return rec;
    }
    throw new Error(`show stat has no such row:\n${blocks[1]}`);
  };
  const nums = (r: Record<string, string>): Record<string, number> =>
    Object.fromEntries(NUMBER_FIELDS.map((f) => [f, Number(r[f] || 0)]));
  const fe = row((r) => r.svname === 'FRONTEND');
  const li = row((r) => r.type === '3');
  const be = row((r) => r.svname === 'BACKEND');
  return {
    fe: nums(fe),
    li: nums(li),
    liStatus: li.status ?? '',
    be: nums(be),
    info,
    pool: JSON.parse(blocks[2]!) as PoolLedger,
    fd: JSON.parse(blocks[3]!) as FdReport,
    host: (JSON.parse(blocks[4]!) as { violations: string[] }).violations,
    fdCount,
    queries: put.queries,
    backend: { ...put.backend.seen },
  };
}

/** The rules, by name: what each check says in its failure message. */
export const RULES = {
  counters: 'counter balance: stats, model and ground truth agree',
  buffers: 'no pool allocation for a connection whose handshake has not ended',
  pool: 'the pool ledger matches the allocations the model made',
  fds: 'every fd closed exactly once, none leaked',
  clients: 'each client observed exactly one close, of the predicted kind, with the predicted bytes',
  backend: 'the backend saw exactly the streams and bytes the model predicts',
  host: 'the proxy executed every effect as asked (its host reports no violation)',
} as const;

export type RuleName = keyof typeof RULES;

/** One rule that does not hold, with what was seen. */
export interface Gap {
  rule: RuleName;
  detail: string;
}

/**
 * Returns the gaps between `obs` and what `model` predicts for `real` since the run's baseline
 * observation. Empty when everything agrees. Pure.
 */
export function gaps(model: ProxyModel, real: RealSide, obs: Observation): Gap[] {
  const out: Gap[] = [];
  const base = real.baseline;
  const c = model.state.counters;
  const mem = model.state.memory;
  const gap = (rule: RuleName, detail: string): void => {
    out.push({ rule, detail });
  };
  const eq = (rule: RuleName, what: string, seen: number, predicted: number): void => {
    if (seen !== predicted) gap(rule, `${what} is ${seen}, the model predicts ${predicted}`);
  };

  // --- counter balance: the gauges against the model and against what the clients hold ---
  const clientIds = model.clients.map((cl) => cl.id);
  const heldByClients = clientIds.filter((id) => {
    const cl = real.clients[id];
    return cl !== undefined && !cl.closed && cl.did !== 'rst' && !model.parked(id);
  }).length;
  const heldByModel = clientIds.filter((id) => model.held(id)).length;
  eq('counters', 'show info CurrConns', obs.info.CurrConns ?? NaN, c.actconn);
  eq('counters', 'FRONTEND scur', obs.fe.scur!, c.feconn);
  eq('counters', 'listener scur', obs.li.scur!, c.nbconn);
  if (obs.info.CurrConns !== heldByClients)
    gap(
      'counters',
      `show info CurrConns is ${obs.info.CurrConns}, but the clients hold ${heldByClients} accepted connection(s) open (the model: ${heldByModel})`,
    );
  eq('counters', 'FRONTEND stot (delta)', obs.fe.stot! - base.fe.stot!, c.cumSess);
  eq('counters', 'FRONTEND conn_tot (delta)', obs.fe.conn_tot! - base.fe.conn_tot!, c.cumConn);
  eq('counters', 'FRONTEND dcon (delta)', obs.fe.dcon! - base.fe.dcon!, c.deniedConn);
  eq('counters', 'FRONTEND smax', obs.fe.smax!, Math.max(base.fe.smax!, c.connMax));
  eq('counters', 'FRONTEND rate', obs.fe.rate!, c.feSessPerSec);
  eq('counters', 'FRONTEND conn_rate', obs.fe.conn_rate!, c.feConnPerSec);
  eq('counters', 'listener stot (delta)', obs.li.stot! - base.li.stot!, c.lCumConn);
  eq('counters', 'show info ConnRate', obs.info.ConnRate ?? NaN, c.connPerSec);
  eq('counters', 'show info CurrSslConns', obs.info.CurrSslConns ?? NaN, c.sslconns);
  eq(
    'counters',
    'show info CumSslConns (delta)',
    (obs.info.CumSslConns ?? NaN) - base.info.CumSslConns!,
    c.totalsslconns,
  );
  eq(
    'counters',
    'show info CumConns (delta, less the CLI connections)',
    (obs.info.CumConns ?? NaN) - base.info.CumConns! - (obs.queries - base.queries),
    c.totalconn,
  );
  eq(
    'counters',
    'show info Jobs (less the 2 listeners and this CLI connection)',
    (obs.info.Jobs ?? NaN) - 3,
    c.jobs,
  );
  const status = listenerStatus(model);
  if (obs.liStatus !== status)
    gap(
      'counters',
      `the listener row says ${obs.liStatus}, the model's listener is ${model.listenerState()} (${status})`,
    );

  // --- the pool ledger ---
  const live = (site: (typeof ALLOC_SITES)[number]): number =>
    mem.filter((m) =>
      site === 'session'
        ? m.session === 'live'
        : site === 'task'
          ? m.task === 'live'
          : site === 'ssl'
            ? m.sslCtx === 'live'
            : m.bufs[site] === 'live',
    ).length;
  for (const site of ALLOC_SITES) {
    const s = obs.pool.sites[site];
    const b = base.pool.sites[site];
    eq('pool', `${site} live`, s.live, live(site));
    eq('pool', `${site} allocs (delta)`, s.allocs - b.allocs, model.tally.allocs[site]);
    eq('pool', `${site} frees (delta)`, s.frees - b.frees, model.tally.frees[site]);
    eq('pool', `${site} failed (delta)`, s.failed - b.failed, model.tally.failed[site]);
  }
  const armed = obs.pool.faults.map((f) => f.split(':')[0]).sort();
  if (armed.join() !== [...model.armed].sort().join())
    gap(
      'pool',
      `injected faults not yet reached: ${armed.join(', ') || 'none'}; the model: ${[...model.armed].join(', ') || 'none'}`,
    );
  const poolViolations = obs.pool.violations.slice(base.pool.violations.length);
  if (poolViolations.length > 0) gap('pool', `pool violations: ${poolViolations.join('; ')}`);
  const hostViolations = obs.host.slice(base.host.length);
  if (hostViolations.length > 0) gap('host', `host violations: ${hostViolations.join('; ')}`);

  // --- no buffer before the handshake ends ---
  const completed = model.clients.filter((cl) => model.sessionState(cl.id) === 'initialized').length;
  const embryonic = model.clients.filter((cl) => model.sessionState(cl.id) === 'embryonic').length;
  for (const site of ['req', 'rep', 'txn'] as const) {
    if (obs.pool.sites[site].live > completed)
      gap(
        'buffers',
        `${obs.pool.sites[site].live} ${site} buffer(s) live while only ${completed} session(s) ended their handshake (${embryonic} embryonic)`,
      );
  }

  // --- fds: the ledger, /proc, and the backend sockets ---
  const parked = clientIds.filter((id) => model.parked(id)).length;
  const fdOpen = mem.filter((m) => m.fd === 'open').length;
  eq('fds', 'fd table entries', obs.fd.live.length, fdOpen + parked);
  eq(
    'fds',
    'fd closes (delta)',
    obs.fd.closes - base.fd.closes,
    mem.reduce((n, m) => n + m.fdCloses, 0),
  );
  eq(
    'fds',
    'fd closes with a FIN (delta)',
    obs.fd.fin - base.fd.fin,
    mem.filter((m) => m.closedWith === 'fin').length,
  );
  eq(
    'fds',
    'fd closes with an RST (delta)',
    obs.fd.rst - base.fd.rst,
    mem.filter((m) => m.closedWith === 'rst').length,
  );
  const fdViolations = obs.fd.violations.slice(base.fd.violations.length);
  if (fdViolations.length > 0) gap('fds', `fd ledger violations: ${fdViolations.join('; ')}`);
  const streams = model.clients.filter(
    (cl) => cl.stream && !cl.ended && (cl.stream.mode === 'echo' || cl.stream.mode === 'reset'),
  ).length;
  const expectedFds = real.put.idleFds + fdOpen + parked + streams;
  if (obs.fdCount !== expectedFds)
    gap(
      'fds',
      `/proc/${real.put.proxy.pid}/fd has ${obs.fdCount} entries; idle ${real.put.idleFds} + ${fdOpen} client(s) + ${parked} parked + ${streams} backend socket(s) = ${expectedFds}`,
    );

  // --- each client ---
  for (const cl of model.clients) {
    const rc = real.clients[cl.id];
    if (!rc) continue;
    const m = mem[cl.id]!;
    const name = `c${cl.id}`;
    if (rc.did === 'rst') {
      if (rc.seen.closes !== 1)
        gap('clients', `${name} reset its connection but its socket closed ${rc.seen.closes} times`);
      continue;
    }
    if (m.fd !== 'closed') {
      if (rc.closed)
        gap(
          'clients',
          `${name} saw its connection end (${rc.seen.first ?? rc.seen.errors.join(',')}) but the model keeps it open (${model.connState(cl.id)})`,
        );
      else if (cl.stream?.mode === 'echo' && rc.received !== cl.echoed)
        gap(
          'clients',
          `${name} got ${JSON.stringify(rc.received)} back, the echo is ${JSON.stringify(cl.echoed)}`,
        );
      continue;
    }
    if (rc.seen.closes !== 1 || rc.seen.first === null) {
      gap(
        'clients',
        `${name}: the model closed it with ${m.closedWith === 'rst' ? 'an RST' : 'a FIN'}; the client saw ${describeSeen(rc.seen)}`,
      );
      continue;
    }
    if (rc.seen.first !== m.closedWith)
      gap(
        'clients',
        `${name} saw ${rc.seen.first === 'rst' ? 'an RST' : 'a FIN'}, the model closed it with ${m.closedWith === 'rst' ? 'an RST' : 'a FIN'}`,
      );
    if (rc.seen.ends + rc.seen.resets > (rc.did === 'fin' ? 2 : 1) || rc.seen.ends > 1)
      gap('clients', `${name} saw more than one end: ${describeSeen(rc.seen)}`);
    const expected = expectedBytes(model, cl.id);
    if (expected !== null && rc.received !== expected)
      gap(
        'clients',
        `${name} received ${JSON.stringify(rc.received.slice(0, 80))}, the model predicts ${JSON.stringify(expected.slice(0, 80))}`,
      );
  }

  // --- the backend ---
  eq(
    'backend',
    'connections the backend accepted (delta)',
    obs.backend.accepted - base.backend.accepted,
    model.tally.streams - model.tally.refused,
  );
  eq('backend', 'connections open at the backend', obs.backend.open, streams);
  eq('backend', 'BACKEND econ (delta)', obs.be.econ! - base.be.econ!, model.tally.refused);
  const bytes = model.clients.reduce((n, cl) => n + cl.toBackend, 0);
  eq('backend', 'bytes the backend received (delta)', obs.backend.bytes - base.backend.bytes, bytes);
  return out;
}

/** What the proxy must have written to client `c` by the time it closed it; null = not checked. */
function expectedBytes(model: ProxyModel, c: number): string | null {
  const cl = model.clients[c]!;
  const m = model.state.memory[c]!;
  if (m.sent.includes('500')) return model.config.model.profile === 'dev12' ? HTTP_500_DEV12 : HTTP_500;
  if (m.sent.includes('200')) return HTTP_200;
  if (cl.stream) return cl.stream.mode === 'echo' ? cl.echoed : '';
  if (cl.tlsStarted) return null; // the TLS layer may have sent an alert or its own handshake bytes
  return '';
}

/** The listener row's status for the model's listener (impl/stats.ts shows HAProxy's rule). */
function listenerStatus(model: ProxyModel): string {
  const bindMax = model.config.bindMaxconn ?? 0;
  const full = bindMax !== 0 && model.state.counters.nbconn >= bindMax;
  if (full) return 'FULL';
  return model.listenerState().startsWith('limited') ? 'WAITING' : 'OPEN';
}

function describeSeen(s: { ends: number; resets: number; closes: number; errors: string[] }): string {
  const parts = [`${s.ends} FIN`, `${s.resets} RST`, `${s.closes} close`];
  if (s.errors.length > 0) parts.push(`errors ${s.errors.join(',')}`);
  return parts.join(', ');
}

/** Formats `list` as the lines of a failure message. */
export function formatGaps(list: readonly Gap[]): string {
  return list.map((g) => `  [${g.rule}] ${g.detail}`).join('\n');
}
