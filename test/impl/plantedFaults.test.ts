/**
 * The suite catches a broken proxy: each planted fault of impl/faults.ts (switched on by
 * EMBRYONIC_PLANTED_FAULT in the proxy's environment) makes the random scenarios of
 * realProxy.fc.test.ts fail on the check that guards it, and the very same scenarios pass on a
 * proxy without a planted fault.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parsePlantedFault,
  PLANTED_FAULT_ENV,
  PLANTED_FAULTS,
  type PlantedFault,
} from '../../impl/faults.ts';
import { CONFIGS } from './model/configs.ts';
import type { RuleName } from './model/observe.ts';
import { commandsFor, MAX_CLIENTS } from './model/ProxyCommands.ts';
import { beginRun, disposeRun, finishRun, ProxyUnderTest, ScenarioFailure } from './model/RealSide.ts';

/** The same scenarios for every proxy: a fixed seed, a bounded number of runs. */
const SEED = 20260613;
const RUNS = 30;

/** The check each fault must trip. */
const CAUGHT_BY: Record<PlantedFault, RuleName> = {
  'skip-fd-close': 'fds',
  'buffers-at-accept': 'buffers',
  'keep-actconn-on-kill': 'counters',
};

/**
 * Runs the random scenarios on `put`, stopping at the first failure. Returns the failure (the
 * ScenarioFailure of the failing run), or null if every scenario passed.
 */
async function firstFailure(put: ProxyUnderTest): Promise<ScenarioFailure | Error | null> {
  let failure: ScenarioFailure | Error | null = null;
  const details = await fc.check(
    fc.asyncProperty(commandsFor(CONFIGS.pp, 14), async (cmds) => {
      const { model, real } = await beginRun(put, MAX_CLIENTS);
      try {
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        await finishRun(model, real);
      } catch (err) {
        failure = err as Error;
        throw err;
      } finally {
        disposeRun(real);
      }
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  return details.failed ? (failure ?? new Error(String(details.errorInstance))) : null;
}

describe('parsePlantedFault', () => {
  it('reads no fault from an unset or empty variable', () => {
    expect(parsePlantedFault(undefined)).toBeNull();
    expect(parsePlantedFault('')).toBeNull();
  });

  it('reads each planted fault by its name', () => {
    for (const f of PLANTED_FAULTS) expect(parsePlantedFault(f)).toBe(f);
  });

  it('refuses an unknown name, so that a typo cannot test a correct proxy', () => {
    expect(() => parsePlantedFault('skip-close')).toThrow(/expected one of skip-fd-close, buffers-at-accept/);
  });
});

describe('the property suite against a proxy with a planted fault', () => {
  const puts = new Map<PlantedFault | 'none', ProxyUnderTest>();

  beforeAll(async () => {
    const which = [...PLANTED_FAULTS, 'none'] as const;
    const started = await Promise.all(
      which.map((f) => ProxyUnderTest.start(CONFIGS.pp, [], f === 'none' ? {} : { [PLANTED_FAULT_ENV]: f })),
    );
    which.forEach((f, i) => {
      // A broken proxy never converges: fail fast instead of waiting the full time.
      if (f !== 'none') started[i]!.convergeMs = 400;
      puts.set(f, started[i]!);
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...puts].map(([f, p]) => p.stop(f === 'none' ? 'SIGTERM' : 'SIGKILL')));
  });

  it.each(PLANTED_FAULTS)('catches %s, with the check that guards it', async (fault) => {
    const put = puts.get(fault)!;
    expect(put.proxy.stderr()).toContain(`${PLANTED_FAULT_ENV}=${fault}: this proxy carries a planted bug`);
    const failure = await firstFailure(put);
    expect(failure).toBeInstanceOf(ScenarioFailure);
    const rules = (failure as ScenarioFailure).gapList.map((g) => g.rule);
    expect(rules).toContain(CAUGHT_BY[fault]);
    console.log(
      `planted ${fault}: caught after ${put.runs} scenario(s) by ${[...new Set(rules)].join(', ')}`,
    );
  });

  it('passes the same scenarios on a proxy without a planted fault', async () => {
    const put = puts.get('none')!;
    expect(put.proxy.stderr()).not.toContain(PLANTED_FAULT_ENV);
    expect(await firstFailure(put)).toBeNull();
    expect(put.runs).toBe(RUNS);
  });
});
