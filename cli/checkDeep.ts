/**
 * `embryonic check-deep` (`npm run check:deep`): the long checks kept out of `npm test`. The
 * exhaustive exploration with one more connection than `check`, the exploration with every error
 * code, and long random runs over more connections. About a minute on 2 cores.
 */
import {
  ALL_CODES_BOUNDS,
  CONFIG_SPACE,
  DEEP_CONNECTIONS,
  FULL_CONNECTIONS,
  type Bounds,
} from '../properties/bounds.ts';
import { exploreSpace, type ExploreStats, type SpaceResult } from '../properties/explore.ts';
import { randomCheck } from '../properties/arbitraries.ts';
import { has, intFlag, parseArgs, type Command } from './command.ts';
import { formatSpaceResult, randomCheckLine, spaceResultJson } from './check.ts';

function progressLine(config: string, s: ExploreStats): void {
  process.stderr.write(
    `check-deep: ${config}: depth ${s.depth}, ${s.distinct} distinct, ${s.generated} generated, ${s.statesPerSecond} states/s\n`,
  );
}

function explorePart(title: string, connections: number, bounds: Bounds | undefined): SpaceResult {
  process.stderr.write(`check-deep: ${title}...\n`);
  return exploreSpace(CONFIG_SPACE, connections, { bounds, onProgress: progressLine, progressEveryMs: 5000 });
}

export const checkDeepCommand: Command = {
  name: 'check-deep',
  summary: 'the long checks: N+1 connections, every error code, long random runs',
  usage: [
    'Usage: embryonic check-deep [--connections N] [--codes-connections C] [--runs R] [--seed S] [--json]',
    '',
    'Runs, in order:',
    `  1. the exhaustive check with N connections (default ${DEEP_CONNECTIONS}) over the whole space;`,
    `  2. the exhaustive check with C connections (default ${FULL_CONNECTIONS}), every PROXY and SSL error code;`,
    '  3. R random runs (default 2000) of up to 400 events over 6 to 10 connections (fast-check).',
    '',
    'Exit code: 0 iff every invariant holds in all three.',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, {
      switches: ['json'],
      values: ['connections', 'codes-connections', 'runs', 'seed'],
    });
    const connections = intFlag(parsed, 'connections', DEEP_CONNECTIONS, 1);
    const codesConnections = intFlag(parsed, 'codes-connections', FULL_CONNECTIONS, 1);
    const runs = intFlag(parsed, 'runs', 2000, 1);
    const seed = parsed.flags.has('seed') ? intFlag(parsed, 'seed', 0) : undefined;
    const deep = explorePart(`N = ${connections}`, connections, undefined);
    const codes = explorePart(
      `N = ${codesConnections}, every error code`,
      codesConnections,
      ALL_CODES_BOUNDS,
    );
    process.stderr.write(`check-deep: ${runs} random runs...\n`);
    const random = randomCheck({
      numRuns: runs,
      maxCommands: 400,
      minConnections: 6,
      maxConnections: 10,
      ...(seed !== undefined ? { seed } : {}),
    });
    if (has(parsed, 'json'))
      console.log(
        JSON.stringify(
          {
            deep: spaceResultJson(deep),
            allCodes: spaceResultJson(codes),
            random: { ...random, seconds: Number(random.seconds.toFixed(3)) },
          },
          null,
          2,
        ),
      );
    else
      console.log(
        [
          formatSpaceResult(deep),
          '',
          `Every error code, N = ${codesConnections}:`,
          formatSpaceResult(codes),
          '',
          `Random runs: ${randomCheckLine(random)} in ${random.seconds.toFixed(1)} s`,
          ...(random.failure ? random.failure.events.map((e, i) => `  ${i + 1}. ${JSON.stringify(e)}`) : []),
        ].join('\n'),
      );
    return deep.violations.length === 0 && codes.violations.length === 0 && random.failure === null ? 0 : 1;
  },
};
