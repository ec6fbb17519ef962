/**
 * The real proxy under random scenarios (fast-check model-based testing), and the fault-injection
 * matrix, on the same proxy processes: one child process per configuration, started once with
 * `--test-clock` and reused by every run.
 *
 * In a random scenario several concurrent clients connect, send whole, split, bad, v2 and LOCAL
 * PROXY headers, complete a TLS handshake or send garbage, send data, half-close, reset, stay
 * silent past the deadline (on the proxy's virtual clock) and flood past maxconn (fast-check's
 * scheduler orders a flood); the backend echoes, resets, closes or refuses; an allocation fails at
 * a named site. The composed machines (SystemModel with the configuration's ModelConfig) predict;
 * the proxy is judged from outside only, after every command and at the end of every run: counter
 * balance (stats, model and what the clients hold), no buffer before the handshake ends (the pool
 * ledger), every fd closed exactly once and none leaked (the fd ledger and /proc/<pid>/fd), each
 * client saw exactly one close of the predicted kind, and the backend saw exactly the predicted
 * streams and bytes (test/impl/model/observe.ts). A failure prints the shrunk run as a numbered
 * script of client actions.
 *
 * npm test runs RUNS scenarios (125 in all); EMBRYONIC_DEEP=1 runs DEEP_RUNS (15,000 in all) on
 * every configuration and prints the figures. EMBRYONIC_SEED=N replays a seed; EMBRYONIC_CONFIGS=a,b
 * keeps only those configurations.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIGS, type ConfigName } from './model/configs.ts';
import { cellName, MATRIX } from './model/matrix.ts';
import { commandsFor, MAX_CLIENTS } from './model/ProxyCommands.ts';
import { beginRun, disposeRun, finishRun, ProxyUnderTest } from './model/RealSide.ts';
import { runScript } from './model/script.ts';

const DEEP = process.env.EMBRYONIC_DEEP === '1';
const SEED = process.env.EMBRYONIC_SEED ? { seed: Number(process.env.EMBRYONIC_SEED) } : {};

/** Scenarios per configuration in npm test, and with EMBRYONIC_DEEP=1. */
const RUNS: Partial<Record<ConfigName, number>> = { pp: 50, ssl: 25, http: 25, tlsmax: 15, tlsmax26: 10 };
const DEEP_RUNS: Record<ConfigName, number> = {
  pp: 2000,
  ssl: 1500,
  tls: 1000,
  tlsmax: 1000,
  tlsmax26: 1000,
  http: 1500,
  http26: 1000,
  rate: 1000,
  global: 1000,
  rateglobal: 1000,
  ratefull: 1000,
  ratefull26: 1000,
  fefull: 1000,
};
const ONLY = process.env.EMBRYONIC_CONFIGS?.split(',');
/** Scenarios for a configuration EMBRYONIC_CONFIGS names that npm test does not run. */
const NAMED_RUNS = 15;
const PLAN = Object.fromEntries(
  Object.entries(
    DEEP ? DEEP_RUNS : { ...Object.fromEntries((ONLY ?? []).map((n) => [n, NAMED_RUNS])), ...RUNS },
  )
    .filter(([name]) => ONLY === undefined || ONLY.includes(name))
    .filter(([name]) => name in CONFIGS),
) as Partial<Record<ConfigName, number>>;
const MAX_COMMANDS = DEEP ? 24 : 14;

const CELLS = MATRIX.filter((c) => c.script !== null);
const puts = new Map<ConfigName, ProxyUnderTest>();

beforeAll(async () => {
  const names = [...new Set([...(Object.keys(PLAN) as ConfigName[]), ...CELLS.map((c) => c.script!.config)])];
  const started = await Promise.all(names.map((n) => ProxyUnderTest.start(CONFIGS[n])));
  names.forEach((n, i) => puts.set(n, started[i]!));
}, 60_000);

afterAll(async () => {
  await Promise.all([...puts.values()].map((p) => p.stop()));
});

describe('the real proxy under random scenarios, judged from outside against the composed machines', () => {
  // Deep runs take the configurations concurrently (each has its own proxy process): both cores work.
  (DEEP ? it.concurrent : it).each(Object.keys(PLAN) as ConfigName[])(
    'keeps every invariant after every client action on the %s configuration',
    async (name) => {
      const put = puts.get(name)!;
      const started = performance.now();
      const runsBefore = put.runs;
      let actions = 0;
      let acted = 0; // scenarios that ran at least one client action
      await fc.assert(
        fc.asyncProperty(commandsFor(CONFIGS[name], MAX_COMMANDS), async (cmds) => {
          const { model, real } = await beginRun(put, MAX_CLIENTS);
          try {
            await fc.asyncModelRun(() => ({ model, real }), cmds);
            if (real.script.length > 0) acted++; // before finishRun notes how the run ends
            await finishRun(model, real);
          } finally {
            actions += real.script.length;
            disposeRun(real);
          }
        }),
        { numRuns: PLAN[name]!, ...SEED },
      );
      expect(put.runs - runsBefore).toBe(PLAN[name]!);
      // Scenarios acted (64-100% of them in samples; fast-check also generates empty command
      // lists): a harness that dropped its commands would hold every property vacuously.
      expect(acted).toBeGreaterThanOrEqual(PLAN[name]! / 4);
      console.log(
        `real proxy, ${name}: ${PLAN[name]} scenarios (${acted} with client actions), ${actions} script lines, ` +
          `${((performance.now() - started) / 1000).toFixed(1)} s` +
          (put.restarts > 0 ? ` (${put.restarts} restart(s) after a failure)` : ''),
      );
    },
    DEEP ? 3_600_000 : 60_000,
  );
});

describe('the fault-injection matrix on the real proxy', () => {
  it.each(CELLS.map((cell) => [cellName(cell), cell] as const))(
    '%s: the model predicts, the observers agree, everything is released',
    async (_name, cell) => {
      const { model, real } = await runScript(puts.get(cell.script!.config)!, cell.script!.actions);
      // The cell did what it says: a fault cell reached its allocation (before the handshake, a
      // buffer fault must not be reached), a reset cell reset in that state, a backend cell's
      // stream met that backend.
      if (cell.table === 'allocation failure') {
        const site = cell.column as 'session' | 'task' | 'ssl' | 'req' | 'rep' | 'txn';
        const early =
          cell.row.startsWith('session_accept, handshake') &&
          (site === 'req' || site === 'rep' || site === 'txn');
        expect(model.tally.failed[site]).toBe(early ? 0 : 1);
      } else if (cell.table === 'client reset') {
        expect(real.script.filter((l) => l.endsWith(`resets (RST) ${cell.row}`))).not.toEqual([]);
      } else {
        const mode = cell.script!.actions.find((a) => a.do === 'backend') as { mode: string };
        expect(model.clients.filter((c) => c.stream?.mode === mode.mode)).not.toEqual([]);
      }
    },
  );
});
