/**
 * The fault-injection matrix: every allocation site × every state where the proxy allocates, a
 * client RST in every state a client can be in, and a backend that refuses, resets or closes, in
 * each kind of frontend. Each cell is a script (test/impl/model/script.ts) checked like a random
 * run: the model predicts, the observers judge. A cell that cannot exist says why.
 */
import type { ConfigName } from './configs.ts';
import { DEADLINE } from './configs.ts';
import type { AllocSite } from './ProxyModel.ts';
import type { Action, Script } from './script.ts';

/** The three tables of the matrix. */
export type MatrixTable = 'allocation failure' | 'client reset' | 'backend';

/** One cell: a script, or the reason there is none. */
export interface MatrixCell {
  table: MatrixTable;
  row: string;
  column: string;
  script: Script | null;
  reason?: string; // for a cell without a script
}

const connect: Action = { do: 'connect', src: 'plain' };
const header: Action = { do: 'header', c: 0, kind: 'v1' };
const tls: Action = { do: 'tls', c: 0 };
const data: Action = { do: 'data', c: 0 };
const fault = (site: AllocSite): Action => ({ do: 'fault', site });

/** The states where the proxy allocates, with the configuration and actions that reach each. */
const ALLOC_ROWS: {
  row: string;
  config: (site: AllocSite) => ConfigName;
  reach: Action[];
  sites: AllocSite[];
}[] = [
  {
    row: 'session_accept, handshake pending',
    config: (site) => (site === 'ssl' ? 'tls' : 'pp'),
    // A buffer fault stays armed: the embryonic session allocates none before the deadline kills it.
    reach: [connect, { do: 'advance', ms: DEADLINE + 1 }],
    sites: ['session', 'task', 'ssl', 'req', 'rep'],
  },
  {
    row: 'session_accept, no handshake',
    config: () => 'http',
    reach: [connect],
    sites: ['session', 'task', 'req', 'rep', 'txn'],
  },
  {
    row: 'session_complete after the PROXY header',
    config: (site) => (site === 'txn' ? 'fefull' : 'pp'),
    reach: [connect, header],
    sites: ['req', 'rep', 'txn'],
  },
  {
    row: 'session_complete after TLS',
    config: () => 'ssl',
    reach: [connect, header, tls],
    sites: ['req', 'rep', 'txn'],
  },
];

const SITES: AllocSite[] = ['session', 'task', 'ssl', 'req', 'rep', 'txn'];

/** Where a client can reset its connection, with the scripts that put it there. */
const RESET_ROWS: { row: string; cells: Partial<Record<ConfigName, Action[]>> }[] = [
  {
    row: 'in the backlog',
    cells: {
      pp: [connect, connect, connect, { do: 'reset', c: 2 }, { do: 'reset', c: 0 }],
      http: [connect, connect, connect, { do: 'reset', c: 2 }, { do: 'halfclose', c: 0 }],
    },
  },
  {
    row: 'while its PROXY header is awaited',
    cells: { pp: [connect, { do: 'reset', c: 0 }], ssl: [connect, { do: 'reset', c: 0 }] },
  },
  { row: 'during its TLS handshake', cells: { ssl: [connect, header, { do: 'reset', c: 0 }] } },
  {
    row: 'in its data phase',
    cells: {
      pp: [connect, header, data, { do: 'reset', c: 0 }],
      ssl: [connect, header, tls, data, { do: 'reset', c: 0 }],
      http: [connect, data, { do: 'reset', c: 0 }],
    },
  },
];

/** What the backend does, with the actions that bring a client's stream to it in each configuration. */
const BACKEND_ROWS: { row: string; mode: 'refuse' | 'reset' | 'close'; then: Action[] }[] = [
  { row: 'refuses the connection', mode: 'refuse', then: [] },
  { row: 'resets on the first bytes', mode: 'reset', then: [data] },
  { row: 'closes at once', mode: 'close', then: [] },
];

const STREAM: Partial<Record<ConfigName, Action[]>> = {
  pp: [connect, header],
  ssl: [connect, header, tls],
  http: [connect],
};

/** The configurations the matrix columns of the reset and backend tables name. */
export const MATRIX_COLUMNS: ConfigName[] = ['pp', 'ssl', 'http'];

/** Every cell of the matrix, table by table, row by row. */
export const MATRIX: MatrixCell[] = [
  ...ALLOC_ROWS.flatMap((r) =>
    SITES.map((site): MatrixCell => {
      const config = r.config(site);
      if (!r.sites.includes(site))
        return {
          table: 'allocation failure',
          row: r.row,
          column: site,
          script: null,
          reason:
            site === 'session' || site === 'task'
              ? 'allocated by session_accept, before any handshake'
              : 'tcp mode has no http txn',
        };
      return {
        table: 'allocation failure',
        row: r.row,
        column: site,
        script: { config, actions: [fault(site), ...r.reach] },
      };
    }),
  ),
  ...RESET_ROWS.flatMap((r) =>
    MATRIX_COLUMNS.map((config): MatrixCell => {
      const actions = r.cells[config];
      return actions
        ? { table: 'client reset', row: r.row, column: config, script: { config, actions } }
        : {
            table: 'client reset',
            row: r.row,
            column: config,
            script: null,
            reason: `the ${config} configuration has no such state`,
          };
    }),
  ),
  ...BACKEND_ROWS.flatMap((r) =>
    MATRIX_COLUMNS.map((config): MatrixCell => ({
      table: 'backend',
      row: r.row,
      column: config,
      script: { config, actions: [{ do: 'backend', mode: r.mode }, ...STREAM[config]!, ...r.then] },
    })),
  ),
];

/** A cell's name in test titles and reports. Pure. */
export function cellName(cell: MatrixCell): string {
  return `${cell.table}: ${cell.column} × ${cell.row}`;
}

/**
 * Formats the matrix as one text table per table, a cell showing `verdict(cell)` (e.g. pass,
 * FAIL) or n/a. Pure.
 */
export function formatMatrix(verdict: (cell: MatrixCell) => string): string {
  const out: string[] = [];
  for (const table of ['allocation failure', 'client reset', 'backend'] as MatrixTable[]) {
    const cells = MATRIX.filter((c) => c.table === table);
    const rows = [...new Set(cells.map((c) => c.row))];
    const columns = [...new Set(cells.map((c) => c.column))];
    const head = [
      table === 'allocation failure'
        ? 'where the allocation fails'
        : table === 'backend'
          ? 'the backend'
          : 'the client resets',
      ...columns,
    ];
    const body = rows.map((row) => [
      row,
      ...columns.map((col) => {
        const cell = cells.find((c) => c.row === row && c.column === col)!;
        return cell.script ? verdict(cell) : 'n/a';
      }),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cols: string[]): string =>
      cols
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd();
    out.push(`${table}:`, line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), '');
  }
  return out.join('\n');
}
