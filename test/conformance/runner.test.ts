import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { EchoBackend } from '../../conformance/backend.ts';
import { CASES, selectCases } from '../../conformance/cases.ts';
import { runSuite } from '../../conformance/runner.ts';
import { bundledProxyExists, findFreePortBlock } from '../../conformance/targets.ts';

const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
const hasHaproxy = !haproxy.error && haproxy.status === 0;
if (!hasHaproxy) console.warn('runner.test: haproxy is not installed; the run against it is skipped');

const FAST_CASES = [
  'pp1/2.1/header-and-data-in-one-write',
  'pp1/2.1/not-a-header-gets-rst',
  'pp2/2.2/crc32c-mismatch-gets-rst',
  'hs/client-close/fin-before-header-gets-fin',
  'hs/tls/garbage-after-header-gets-fin',
  'lim/reject/tcp-request-reject-gets-rst',
  'cnt/header-error/conn-tot-only',
  'cnt/reject/dcon-counts-the-rejected-connection',
  'hs/monitor/monitor-net-closes-at-accept',
];

describe('a run of the suite', () => {
  it.skipIf(!hasHaproxy)(
    "passes a handful of fast cases on Debian's haproxy, with wire logs and its log lines",
    async () => {
      const cases = selectCases(CASES, FAST_CASES);
      expect(cases).toHaveLength(FAST_CASES.length);
      const report = await runSuite([{ kind: 'haproxy' }], cases);
      expect(report.targets).toEqual([
        expect.objectContaining({ name: 'haproxy', profile: '2.6', unavailable: null }),
      ]);
      expect(report.targets[0]!.description).toMatch(/HAProxy version 2\.6/);
      const verdicts = Object.fromEntries(report.results.map((r) => [r.caseId, r.verdict]));
      expect(verdicts).toEqual({
        ...Object.fromEntries(FAST_CASES.map((id) => [id, 'pass'])),
        'hs/monitor/monitor-net-closes-at-accept': 'version-difference',
      });
      const rst = report.results.find((r) => r.caseId === 'pp1/2.1/not-a-header-gets-rst')!;
      expect(rst.wire.map((e) => e.kind)).toEqual(
        expect.arrayContaining(['connect', 'connected', 'write', 'rst-received']),
      );
      expect(rst.targetLog.map((l) => l.line).join('\n')).toContain(
        'Received something which does not look like a PROXY protocol header',
      );
      // The case's log code is judged against the target's log, not only shown.
      expect(rst.checks).toContainEqual(
        expect.objectContaining({ what: 'the target logs the kill PRX_NOT_HDR', ok: true }),
      );
      const dcon = report.results.find((r) => r.caseId === 'cnt/reject/dcon-counts-the-rejected-connection')!;
      expect(dcon.stats.map((s) => s.label)).toEqual(['before', 'after the RST']);
    },
  );

  it.skipIf(!hasHaproxy)(
    'merges the counters of one process per frontend, as the bundled proxy runs, into the same verdicts',
    async () => {
      const cases = selectCases(CASES, ['cnt/forwarded/*', 'cnt/tls/garbage-*', 'cnt/reject/*']);
      const report = await runSuite([{ kind: 'haproxy', perFrontend: true }], cases);
      expect(report.targets[0]!.description).toMatch(/one process per frontend/);
      expect(report.results.map((r) => [r.caseId, r.verdict])).toEqual(cases.map((c) => [c.id, 'pass']));
    },
  );

  it('runs fast cases on the bundled proxy (one process, fe_pp), or skips them with the reason while it does not exist', async () => {
    const cases = selectCases(CASES, [
      'pp1/2.1/header-and-data-in-one-write',
      'pp2/2.2/crc32c-mismatch-gets-rst',
      'cnt/header-error/*',
    ]);
    const report = await runSuite([{ kind: 'impl', frontends: ['fe_pp'] }], cases);
    if (await bundledProxyExists()) {
      expect(report.targets[0]).toMatchObject({ name: 'impl', profile: 'dev12', unavailable: null });
      expect(report.results.map((r) => [r.caseId, r.verdict])).toEqual(cases.map((c) => [c.id, 'pass']));
    } else {
      expect(report.results.map((r) => r.verdict)).toEqual(cases.map(() => 'skipped'));
      expect(report.results[0]!.reason).toMatch(/the bundled proxy is not available/);
    }
  });

  it('fails a proxy that does not speak the PROXY protocol, with expected against actual and the wire log', async () => {
    const base = await findFreePortBlock(11);
    // Not a proxy: an echo server where fe_pp should be. It never resets a bad header.
    const impostor = await EchoBackend.start('127.0.0.1', base);
    try {
      const cases = selectCases(CASES, [
        'pp1/2.1/not-a-header-gets-rst',
        'cnt/header-error/conn-tot-only',
        'hs/monitor/monitor-net-closes-at-accept',
      ]);
      const report = await runSuite([{ kind: 'address', host: '127.0.0.1', port: base, stats: null }], cases);
      const byId = (id: string) => report.results.find((r) => r.caseId === id);
      const rst = byId('pp1/2.1/not-a-header-gets-rst');
      const counters = byId('cnt/header-error/conn-tot-only');
      const monitor = byId('hs/monitor/monitor-net-closes-at-accept');
      expect(rst).toMatchObject({ verdict: 'fail', target: `127.0.0.1:${base}` });
      expect(rst!.reason).toMatch(/expected RST at \+0 ms after the write.*got still open/);
      expect(rst!.wire.filter((e) => e.kind === 'read').map((e) => e.text)).toEqual(['GET / HTTP/1.0....']);
      expect(counters).toMatchObject({
        verdict: 'skipped',
        reason: expect.stringContaining('--stats unix:PATH'),
      });
      expect(monitor).toMatchObject({ verdict: 'version-difference' });
    } finally {
      await impostor.stop();
    }
  });
});
