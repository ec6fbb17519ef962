import { describe, expect, it } from 'vitest';
import { transitionOf } from '../../conformance/cases.ts';
import { PROFILES } from '../../conformance/predict.ts';
import { summarize, toCoverage, toHtml, toJson, toJunit, wireLine } from '../../conformance/report.ts';
import type { CaseInfo, CaseResult, SuiteReport } from '../../conformance/runner.ts';

/** Makes <c> take <transitions>, under every profile. */
function takes(c: CaseInfo, transitions: string[]): void {
  c.transitions = transitions;
  c.predictions = PROFILES.map((profile) => ({
    profile,
    transitions,
    kills: 0,
    log: [],
    logFrom: [],
    closes: ['fin'],
    deadlines: [300],
    backlog: 0,
    counters: [],
  }));
}

/** A synthetic run: three cases on two targets, one result of each verdict and a hostile string. */
function syntheticReport(): SuiteReport {
  const cases = ['pp1/2.1/a-case', 'hs/tls/b-case', 'cnt/x/c-case'].map((id) => {
    const c: CaseInfo = {
      id,
      requirement: `requirement of ${id}`,
      transitions: [],
      frontend: 'fe_pp' as const,
      needs: [],
      profileDifferences: [],
      scenario: { events: [{ type: 'ACCEPT' }, { type: 'TIMER_EXPIRE' }] },
      scenarios: {},
      predictions: [],
    };
    takes(c, ['session.embryonic|TASK_WAKEUP|0']);
    return c;
  });
  const result = (
    caseId: string,
    target: string,
    verdict: CaseResult['verdict'],
    reason?: string,
  ): CaseResult => ({
    caseId,
    target,
    verdict,
    ...(reason ? { reason } : {}),
    startedAt: '2026-01-01T00:00:00.000Z',
    durationMs: 301.5,
    checks: [
      {
        what: 'client#1 is closed by the target',
        expected: 'FIN at +300 ms after client#1 connect, window [-20, +150] ms',
        actual:
          verdict === 'fail'
            ? 'RST at +1 ms after client#1 connect'
            : 'FIN at +301.5 ms after client#1 connect',
        ok: verdict !== 'fail',
        timing: { expected: 300, measured: verdict === 'fail' ? 1 : 301.5, window: [-20, 150] },
      },
    ],
    wire: [
      { t: 0.2, conn: 'client#1', kind: 'connect', note: '127.0.0.1:1' },
      { t: 0.9, conn: 'client#1', kind: 'write', size: 6, hex: '3c623e787878', text: '<b>xxx' },
      { t: 301.5, conn: 'client#1', kind: verdict === 'fail' ? 'rst-received' : 'fin-received' },
    ],
    backend: [],
    stats: [],
    targetLog: [{ t: 301, line: 'fe_pp/1: Timeout while waiting for PROXY protocol header & <more>' }],
    notes: [],
  });
  return {
    tool: 'embryonic conform',
    generatedAt: '2026-01-01T00:00:00.000Z',
    deadlineMs: 300,
    durationMs: 1234,
    targets: [
      { name: 'impl', profile: 'dev12', description: 'the bundled proxy', unavailable: null },
      { name: '127.0.0.1:18443', profile: 'dev12', description: 'a running proxy', unavailable: null },
    ],
    cases,
    results: [
      result('pp1/2.1/a-case', 'impl', 'pass'),
      result('hs/tls/b-case', 'impl', 'fail', 'client#1 is closed by the target: expected FIN, got RST'),
      result('cnt/x/c-case', 'impl', 'pass'),
      result('pp1/2.1/a-case', '127.0.0.1:18443', 'version-difference', 'profile 2.6: "<reason>"'),
      result('hs/tls/b-case', '127.0.0.1:18443', 'pass'),
      result('cnt/x/c-case', '127.0.0.1:18443', 'skipped', 'needs the stats socket'),
    ],
  };
}

describe('the report writers', () => {
  it('counts the verdicts per target and overall', () => {
    const r = syntheticReport();
    expect(summarize(r)).toEqual({ pass: 3, fail: 1, skipped: 1, 'version-difference': 1, 'known-bug': 0 });
    expect(summarize(r, 'impl')).toEqual({
      pass: 2,
      fail: 1,
      skipped: 0,
      'version-difference': 0,
      'known-bug': 0,
    });
  });

  it('writes JSON that reads back to every result with its wire log and a summary', () => {
    const back = JSON.parse(toJson(syntheticReport()));
    expect(back.results).toHaveLength(6);
    expect(back.results[1].wire[1]).toMatchObject({ kind: 'write', hex: '3c623e787878' });
    expect(back.summary).toEqual({ pass: 3, fail: 1, skipped: 1, 'version-difference': 1, 'known-bug': 0 });
  });

  it('writes JUnit XML with a testsuite per target and a failure, a skip and a passing version difference', () => {
    const xml = toJunit(syntheticReport());
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    expect(xml.match(/<testsuite /g)).toHaveLength(2);
    expect(xml.match(/<testcase /g)).toHaveLength(6);
    expect(xml).toContain(
      '<testsuites name="embryonic conform" tests="6" failures="1" errors="0" skipped="1"',
    );
    expect(xml).toMatch(
      /<testcase classname="conform.impl" name="hs\/tls\/b-case"[^>]*>\s*<failure message=/,
    );
    expect(xml).toContain('<skipped message="needs the stats socket"/>');
    expect(xml).toContain(
      '<system-out>version-difference: profile 2.6: &quot;&lt;reason&gt;&quot;</system-out>',
    );
    // The failure carries expected vs actual and the wire log, escaped.
    expect(xml).toContain('expected: FIN at +300 ms');
    expect(xml).toContain('rst-received');
    expect(xml).not.toContain('<b>xxx');
  });

  it('writes a known-bug as a passing JUnit testcase that names the bug, and counts it apart', () => {
    const r = syntheticReport();
    r.results[2] = { ...r.results[2]!, verdict: 'known-bug', reason: "HAProxy's known bug leak-x (abc123)" };
    const xml = toJunit(r);
    expect(xml).toMatch(
      /<testcase classname="conform.impl" name="cnt\/x\/c-case"[^>]*>\s*<system-out>known-bug: HAProxy&#39;s known bug leak-x \(abc123\)<\/system-out>\s*<\/testcase>/,
    );
    expect(xml).toContain('<property name="known-bug" value="1"/>');
    expect(summarize(r, 'impl')).toMatchObject({ pass: 1, 'known-bug': 1 });
  });

  it('writes HTML whose matrix has a cell for every case of every target, linked to its detail view', () => {
    const r = syntheticReport();
    const html = toHtml(r);
    for (const c of r.cases) {
      for (const t of r.targets) {
        const verdict = r.results.find((x) => x.caseId === c.id && x.target === t.name)!.verdict;
        expect(html).toContain(`data-case="${c.id}" data-target="${t.name}" data-verdict="${verdict}"`);
      }
    }
    expect(html.match(/<td class="cell /g)).toHaveLength(6);
    const links = [...html.matchAll(/<td class="cell[^>]*><a href="#([^"]+)"/g)].map((m) => m[1]);
    for (const id of links) expect(html).toMatch(new RegExp(`<details[^>]* id="${id}"`));
  });

  it("shows each case's scenario and the model's prediction, and another profile's only where it differs", () => {
    const r = syntheticReport();
    const c = r.cases[1]!;
    c.predictions = c.predictions.map((p) => ({
      ...p,
      kills: 1,
      log: p.profile === 'dev12' ? ['SSL_EMPTY'] : ['SSL_HANDSHAKE'],
    }));
    c.profileDifferences = [{ profile: '2.6', reason: 'OpenSSL <3> says so' }];
    const html = toHtml(r);
    expect(html).toContain('<dt>scenario</dt><dd>ACCEPT, TIMER_EXPIRE</dd>');
    expect(html).toContain('<dt>the model predicts</dt><dd>the target logs SSL_EMPTY; closes with FIN</dd>');
    expect(html).toContain('<dt>under 2.6</dt><dd>the target logs SSL_HANDSHAKE; closes with FIN');
    expect(html).toContain('<dt>why 2.6 differs</dt><dd>OpenSSL &lt;3&gt; says so</dd>');
    // a-case predicts the same under every profile: one line only.
    expect(html.match(/<dt>under 2\.6<\/dt>/g)).toHaveLength(1);
    expect(html).not.toContain('scenario under');
  });

  it("shows a profile's own scenario where it differs from the case's", () => {
    const r = syntheticReport();
    r.cases[0]!.scenarios = {
      '2.6': r.cases[0]!.scenario,
      '2.9': { events: [{ type: 'ACCEPT' }, { type: 'PROXY_HEADER_ERROR', code: 'NONE' }] },
    };
    const html = toHtml(r);
    expect(html).toContain('<dt>scenario under 2.9</dt><dd>ACCEPT, PROXY_HEADER_ERROR code=NONE</dd>');
    expect(html).not.toContain('scenario under 2.6');
  });

  it('writes HTML that is self-contained and escapes what the target sent', () => {
    const html = toHtml(syntheticReport());
    expect(html).not.toMatch(/\b(src|href)="(?!#)/);
    expect(html).not.toMatch(/<link\b/);
    expect(html).toContain('&lt;b&gt;xxx');
    expect(html).not.toContain('<b>xxx');
    expect(html).toContain('Timeout while waiting for PROXY protocol header &amp; &lt;more&gt;');
  });

  it('writes a coverage file that counts the results that held per transition, and lists the others at 0', () => {
    const r = syntheticReport();
    takes(r.cases[1]!, ['connection.handshake.tls|TLS_ERROR|0']);
    const coverage = JSON.parse(toCoverage(r));
    // TASK_WAKEUP: a-case and c-case passed on impl, and a-case is a version-difference on the
    // other target whose checks all held; TLS_ERROR: b-case failed on impl, passed on the other.
    expect(coverage).toEqual({
      source: 'conformance',
      transitions: { 'session.embryonic|TASK_WAKEUP|0': 3, 'connection.handshake.tls|TLS_ERROR|0': 1 },
    });
  });

  it('counts, on a target without a trace, what the model predicts under its profile', () => {
    const r = syntheticReport();
    r.targets[1]!.profile = '2.6';
    const on26 = transitionOf('connection.handshake.tls', 'CLIENT_RESET', 'tlsHandshakeNotEmpty');
    r.cases[0]!.predictions = r.cases[0]!.predictions.map((p) =>
      p.profile === '2.6' ? { ...p, transitions: [on26] } : p,
    );
    // A version-difference with a failed check did not hold: it counts for nothing.
    r.results[4]!.verdict = 'version-difference';
    r.results[4]!.checks[0]!.ok = false;
    const coverage = JSON.parse(toCoverage(r));
    expect(coverage.transitions).toEqual({ 'session.embryonic|TASK_WAKEUP|0': 2, [on26]: 1 });
  });

  it('counts, for a result with a trace, the transitions the case took rather than those predicted', () => {
    const r = syntheticReport();
    const predicted = r.cases[0]!.transitions[0]!;
    const taken = [
      transitionOf('listener.ready', 'ACCEPT_ATTEMPT'),
      transitionOf('connection.handshake.proxyHeader', 'CLIENT_CLOSE'),
    ];
    // What a trace shows is counted, whatever is predicted: a-case took other transitions than its
    // prediction's (a synthetic result: the runner would fail it), c-case took it, twice over.
    r.results[0]!.transitionsTaken = taken;
    r.results[2]!.transitionsTaken = [predicted, taken[0]!, predicted];
    // hs/tls/b-case failed on impl: what it took counts for nothing.
    r.results[1]!.transitionsTaken = [transitionOf('connection.handshake.tls', 'TLS_ERROR')];
    const coverage = JSON.parse(toCoverage(r));
    // The other target has no trace: its two results that held count the predictions of a-case
    // and b-case.
    expect(coverage).toEqual({
      source: 'conformance',
      transitions: { [predicted]: 3, [taken[0]!]: 2, [taken[1]!]: 1 },
    });
  });

  it('counts nothing for a passing result whose trace could not be read, not even what is predicted', () => {
    const r = syntheticReport();
    takes(r.cases[1]!, ['connection.handshake.tls|TLS_ERROR|0']);
    // a-case passed on impl, whose trace was unreadable for it.
    r.results[0]!.traceError =
      'trace /tmp/fe_pp.ndjson: the file is shorter (10 bytes) than when the case began';
    const coverage = JSON.parse(toCoverage(r));
    expect(coverage).toEqual({
      source: 'conformance',
      transitions: { 'session.embryonic|TASK_WAKEUP|0': 2, 'connection.handshake.tls|TLS_ERROR|0': 1 },
    });
  });

  it('shows the transitions a result took in its detail view', () => {
    const r = syntheticReport();
    const attempt = transitionOf('listener.ready', 'ACCEPT_ATTEMPT');
    r.results[0]!.transitionsTaken = [attempt];
    expect(toHtml(r)).toContain(
      `<p class="taken">transitions taken (from the proxy trace): <code>${attempt}</code></p>`,
    );
  });

  it('says in its detail view why a result has no transitions taken when its trace could not be read', () => {
    const r = syntheticReport();
    r.results[0]!.traceError =
      'trace /tmp/fe_pp.ndjson: the file is shorter (10 bytes) than when <the case> began';
    expect(toHtml(r)).toContain(
      '<p class="taken">the proxy trace could not be read: trace /tmp/fe_pp.ndjson: the file is shorter (10 bytes) than when &lt;the case&gt; began</p>',
    );
  });

  it('prints a wire-log entry as one line with its time, connection, event and bytes', () => {
    expect(wireLine({ t: 0.9, conn: 'client#1', kind: 'write', size: 6, hex: '', text: '<b>xxx' })).toBe(
      '      0.9  client#1   write 6 B "<b>xxx"',
    );
  });
});
