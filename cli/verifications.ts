/**
 * Every verification `embryonic verify` runs, in order. Each part of the project adds its own
 * entry here: the check of the machines' traceability, the replay of HAProxy's paths, the model
 * checker, the mutants, the diagrams, the conformance suite against the bundled proxy, ...
 */
import { verifyConformance } from './conform.ts';
import { verifyRealProxyCoverage } from './cover.ts';
import { verifyDiagrams } from './diagrams.ts';
import { verifyModelCheck, verifyRandomRuns } from './check.ts';
import { verifyMutants } from './mutants.ts';
import { verifyTraceConformance } from './traceCheck.ts';
import { verifyHistoryPaths, verifyMachineCoverage, verifyTraceability } from './verifyModel.ts';

/** The outcome of one verification. */
export interface VerifyResult {
  ok: boolean; //           true iff everything it checks holds (or it was skipped)
  skipped?: string; //      why it did not run, when it did not
  detail: string; //        one line: what was measured
}

/** One verification: a name for the summary table and what it checks. */
export interface Verification {
  name: string;
  what: string;
  run(): Promise<VerifyResult>;
}

export const VERIFICATIONS: Verification[] = [
  {
    name: 'traceability',
    what: 'every state and transition has a description and meta.haproxy',
    run: verifyTraceability,
  },
  {
    name: 'machine paths',
    what: 'generated paths reach every state and every transition',
    run: verifyMachineCoverage,
  },
  {
    name: 'history paths',
    what: 'haproxy-history.md §3 paths replay with their exact counters',
    run: verifyHistoryPaths,
  },
  {
    name: 'model check N=3',
    what: 'every invariant in every reachable state, 3 connections, the whole configuration space',
    run: verifyModelCheck,
  },
  {
    name: 'mutants',
    what: 'every historical bug and porting mistake is killed by an invariant',
    run: verifyMutants,
  },
  {
    name: 'random runs',
    what: 'every invariant after every step of random runs over 6 to 8 connections (fast-check)',
    run: verifyRandomRuns,
  },
  {
    name: 'diagrams in sync',
    what: 'diagrams/, PORTING.md and the README diagrams match the machines',
    run: verifyDiagrams,
  },
  {
    name: 'conformance (impl, impl@2.6, impl@2.9)',
    what: "every conformance case passes on the bundled proxy, as dev12, 2.6 and 2.9, against each profile's predictions (or is a version-difference)",
    run: verifyConformance,
  },
  {
    name: 'real-proxy coverage',
    what: 'every machine path runs on the real proxy, checked from outside; every reachable transition executed; the fault matrix passes',
    run: verifyRealProxyCoverage,
  },
  {
    name: 'trace-check 10k',
    what: 'a reference trace of 10,000 connections conforms to the machines; the figure is its check time',
    run: verifyTraceConformance,
  },
];
