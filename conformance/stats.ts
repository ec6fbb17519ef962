/**
 * Reading a target's counters through its stats socket: `show stat` (CSV, one row per frontend,
 * backend and server) and `show info` ("Name: value" lines), as HAProxy's CLI answers them
 * (doc/management.txt). The same commands are asked of the bundled proxy.
 *
 * Each query is one connection to the unix socket, one command, and the answer up to the close;
 * HAProxy counts that connection in CumConns (its session_new counts totalconn) and, while it is
 * open, in Jobs, but not in CurrConns (the CLI's listener is LI_O_UNLIMITED). This module counts
 * the connections it opens to each socket (cliOpened), so that a change of CumConns can be split
 * into the frontends' connections and the reader's own.
 *
 * HAProxy 2.9 frees a CLI session a moment after the reader saw its answer end: a query sent at
 * once after another found the other still counted in Jobs in 8 of 300 pairs on 2.9.0 (none on
 * 2.6.12, none with 2 ms between them). A query therefore starts QUERY_GAP_MS after the previous
 * one to the same socket ended, so that Jobs counts the reader's own session once.
 */
import { connect } from 'node:net';

/** One row of `show stat`: the CSV fields by name (pxname, svname, scur, smax, stot, conn_tot, ...). */
export type StatRow = Record<string, string>;

/** The counters of a target at one moment. */
export interface StatsSnapshot {
  t: number; //                          ms since the case's origin when the answers arrived
  label: string; //                      what the case was doing: 'before', 'during', 'after', ...
  info: Record<string, string>; //        `show info`
  rows: Record<string, StatRow>; //       `show stat`, keyed 'pxname/svname' ('fe_pp/FRONTEND')
  // CLI connections opened so far to the snapshot's sockets, counting its own `show info` query
  // and not its `show stat` one: what the CumConns of `info` includes of the reader's own queries.
  cli: number;
}

/** Connections statsQuery made (connected) to each socket path, since this process started. */
const opened = new Map<string, number>();

/** How long after a query to a socket ended the next one to it may start, in ms. */
export const QUERY_GAP_MS = 5;

/** When the last query to each socket path ended (performance.now()), while it is under QUERY_GAP_MS old. */
const lastEnded = new Map<string, number>();

/** The last query started to each socket path: the next one waits for it to end. */
const queued = new Map<string, Promise<unknown>>();

/** Returns how many connections statsQuery has opened to the socket at <path> so far. */
export function cliOpened(path: string): number {
  return opened.get(path) ?? 0;
}

/**
 * Sends <command> to the stats socket at <path> once every query to it started before has ended,
 * and no sooner than QUERY_GAP_MS after the last of them ended; resolves with the whole answer.
 * Rejects if the socket cannot be reached, or the answer is not complete within <timeoutMs> of the
 * connect.
 */
export function statsQuery(path: string, command: string, timeoutMs = 2000): Promise<string> {
  const previous = queued.get(path) ?? Promise.resolve();
  const query = previous.then(
    () => queryAfterGap(path, command, timeoutMs),
    () => queryAfterGap(path, command, timeoutMs),
  );
  queued.set(path, query);
  const forget = (): void => {
    if (queued.get(path) === query) queued.delete(path);
  };
  query.then(forget, forget);
  return query;
}

async function queryAfterGap(path: string, command: string, timeoutMs: number): Promise<string> {
  // A timer may fire up to a few ms early against performance.now() (Node arms it from the event
  // loop's cached clock, which is stale by whatever ran since): wait until the gap has passed.
  for (;;) {
    const wait = (lastEnded.get(path) ?? -Infinity) + QUERY_GAP_MS - performance.now();
    if (wait <= 0) break;
    await new Promise((r) => setTimeout(r, Math.ceil(wait)));
  }
  try {
    return await queryOnce(path, command, timeoutMs);
  } finally {
    const now = performance.now();
    // An end older than the gap constrains nothing: forget it, so that the map holds only the
    // sockets queried in the last few ms.
    for (const [p, ended] of lastEnded) if (now - ended >= QUERY_GAP_MS) lastEnded.delete(p);
    lastEnded.set(path, now);
  }
}

function queryOnce(path: string, command: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`stats socket ${path}: no complete answer to "${command}" within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', function socketOnConnect() {
      opened.set(path, cliOpened(path) + 1);
      socket.write(`${command}\n`);
    });
    socket.on('data', function socketOnData(chunk: Buffer) {
      chunks.push(chunk);
    });
    socket.on('error', function socketOnError(err: Error) {
      clearTimeout(timer);
      reject(new Error(`stats socket ${path}: ${err.message}`));
    });
    socket.on('close', function socketOnClose(hadError: boolean) {
      clearTimeout(timer);
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/**
 * Parses the CSV of `show stat`: a header line "# pxname,svname,..." then one line per row.
 * Returns the rows keyed 'pxname/svname'. Pure; lines that do not fit the header are skipped.
 */
export function parseShowStat(csv: string): Record<string, StatRow> {
  const lines = csv.split('\n').filter((l) => l.length > 0);
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) return {};
  const names = header.slice(2).split(',');
  const rows: Record<string, StatRow> = {};
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    const values = line.split(',');
    const row: StatRow = {};
    names.forEach((name, i) => {
      if (name) row[name] = values[i] ?? '';
    });
    if (row.pxname && row.svname) rows[`${row.pxname}/${row.svname}`] = row;
  }
  return rows;
}

/** Parses `show info`: "Name: value" per line. Returns the values by name. Pure. */
export function parseShowInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) info[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return info;
}

/**
 * Reads `show info` then `show stat` from the socket at <path>. Resolves with the snapshot, timed
 * by <now>() when the answers arrived; rejects as statsQuery() does.
 */
export async function readStats(path: string, label: string, now: () => number): Promise<StatsSnapshot> {
  const info = parseShowInfo(await statsQuery(path, 'show info'));
  const cli = cliOpened(path); // this process's queries to <path> run one at a time: its own included
  const rows = parseShowStat(await statsQuery(path, 'show stat'));
  return { t: now(), label, info, rows, cli };
}

/**
 * Reads the counters of every socket in <paths> (one process each) and merges them into one
 * snapshot, as if one process served them all: numeric `show info` fields add up; rows found in
 * one answer are kept as they are; a row found in several (the shared backend) gets its numeric
 * fields added up (for a maximum such as smax the sum is an upper bound). Rejects as statsQuery().
 */
export async function readMergedStats(
  paths: readonly string[],
  label: string,
  now: () => number,
): Promise<StatsSnapshot> {
  if (paths.length === 1) return readStats(paths[0]!, label, now);
  const snaps = await Promise.all(paths.map((p) => readStats(p, label, now)));
  return {
    t: now(),
    label,
    info: mergeFields(snaps.map((s) => s.info)),
    rows: mergeRows(snaps.map((s) => s.rows)),
    cli: snaps.reduce((sum, s) => sum + s.cli, 0),
  };
}

/** Merges several processes' field maps: numbers add up, anything else keeps its first value. Pure. */
export function mergeFields(maps: readonly Record<string, string>[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const map of maps) {
    for (const [k, v] of Object.entries(map)) {
      const prev = out[k];
      if (prev === undefined) out[k] = v;
      else if (/^\d+$/.test(prev) && /^\d+$/.test(v)) out[k] = String(Number(prev) + Number(v));
    }
  }
  return out;
}

/** Merges several processes' `show stat` rows by key, with mergeFields for a shared row. Pure. */
export function mergeRows(all: readonly Record<string, StatRow>[]): Record<string, StatRow> {
  const out: Record<string, StatRow> = {};
  const keys = new Set(all.flatMap((rows) => Object.keys(rows)));
  for (const key of keys) out[key] = mergeFields(all.flatMap((rows) => (rows[key] ? [rows[key]] : [])));
  return out;
}

/**
 * Returns counter <field> of row <key> ('fe_pp/FRONTEND') in <snap> as a number, or null when the
 * row or the field is absent or empty. Pure.
 */
export function statNumber(snap: StatsSnapshot, key: string, field: string): number | null {
  const v = snap.rows[key]?.[field];
  return v === undefined || v === '' ? null : Number(v);
}

/** Returns `show info` field <name> in <snap> as a number, or null when absent. Pure. */
export function infoNumber(snap: StatsSnapshot, name: string): number | null {
  const v = snap.info[name];
  return v === undefined || v === '' ? null : Number(v);
}
