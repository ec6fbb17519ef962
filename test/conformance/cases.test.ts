import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../../machines/compose.ts';
import { listTransitions } from '../../machines/introspect.ts';
import type { Profile } from '../../machines/config.ts';
import type { Counters } from '../../machines/counters.ts';
import { mutantById } from '../../machines/mutants.ts';
import {
  CASE_ID_PATTERN,
  CASES,
  hex,
  baselineProfileOf,
  predictionOf,
  profilesOf,
  selectCases,
  transitionOf,
} from '../../conformance/cases.ts';
import { observablyDiffer, PROFILES } from '../../conformance/predict.ts';
import { FRONTENDS } from '../../conformance/suite.cfg.ts';

const transitionIds = new Set(Object.values(MACHINES).flatMap((m) => listTransitions(m).map((t) => t.id)));

describe('the conformance case list', () => {
  it('has at least 40 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it('gives every case a unique id', () => {
    const ids = CASES.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('writes every id as family/section-or-topic/name', () => {
    expect(CASES.map((c) => c.id).filter((id) => !CASE_ID_PATTERN.test(id))).toEqual([]);
  });

  it('keeps the frozen ids of the first release', () => {
    // Ids are frozen: a case may be added or retired, never renamed. These are a sample of each family.
    const ids = new Set(CASES.map((c) => c.id));
    for (const id of [
      'hs/proxy-timeout/silent-client-gets-fin-at-deadline',
      'hs/tls/one-deadline-from-accept-with-late-header',
      'pp1/2.1/split-header-gets-rst-on-first-fragment',
      'pp2/2.2/crc32c-mismatch-gets-rst',
      'lim/maxconn/embryonic-connections-take-slots-and-queue',
      'lim/reject/tcp-request-reject-gets-rst',
      'cnt/reject/dcon-counts-the-rejected-connection',
    ]) {
      expect(ids.has(id), id).toBe(true);
    }
  });

  it('names only transitions that exist in the machines, and at least one per case', () => {
    const dangling = CASES.flatMap((c) =>
      c.transitions.filter((t) => !transitionIds.has(t)).map((t) => `${c.id}: ${t}`),
    );
    expect(dangling).toEqual([]);
    expect(CASES.filter((c) => c.transitions.length === 0).map((c) => c.id)).toEqual([]);
  });

  it('gives every PROXY protocol case the spec section its id starts with', () => {
    for (const c of CASES.filter((c) => c.id.startsWith('pp'))) {
      const family = c.id.startsWith('pp1/') ? '2.1' : '2.2';
      expect(c.section, c.id).toBeDefined();
      expect(c.section!.startsWith(family), c.id).toBe(true);
    }
  });

  it('gives every case a requirement and a known frontend, and every difference a reason', () => {
    for (const c of CASES) {
      expect(c.requirement.length, c.id).toBeGreaterThan(40);
      expect(Object.keys(FRONTENDS), c.id).toContain(c.frontend);
      for (const d of c.profileDifferences ?? []) expect(d.reason.length, c.id).toBeGreaterThan(20);
    }
  });

  it('names known bugs that are mutants of the machines and that the case shows: the prediction with the bug differs', () => {
    const shown: string[] = [];
    for (const c of CASES)
      for (const bug of c.knownBugs ?? []) {
        expect(() => mutantById(bug.mutant), c.id).not.toThrow();
        expect(mutantById(bug.mutant).kind, c.id).toBe('history');
        for (const p of bug.profiles) {
          expect(profilesOf(c), c.id).toContain(p);
          expect(observablyDiffer(predictionOf(c, p, bug), predictionOf(c, p)), `${c.id} ${p}`).toBe(true);
          shown.push(`${c.id} ${bug.mutant} ${p}`);
        }
      }
    // HAProxy 2.4+ never closes a TLS connection whose SSL context maxsslconn refused (Debian's 2.6.12).
    expect(shown).toContain(
      'lim/maxsslconn/tls-connection-beyond-maxsslconn-is-closed-at-accept transport-init-failure-leaks-fd 2.6',
    );
    // 2.6.12 predates 65ae1347c: a release within the rate's second leaves the listener limited.
    expect(shown).toContain(
      'lim/rate-limit/release-within-the-second-arms-the-frontend-task frontend-task-not-armed-on-release 2.6',
    );
  });

  it('runs the scenario of every case on the machines under every profile that serves its frontend', () => {
    for (const c of CASES)
      for (const p of profilesOf(c)) expect(() => predictionOf(c, p), `${c.id} under ${p}`).not.toThrow();
    expect(CASES.filter((c) => profilesOf(c).length < PROFILES.length).map((c) => c.id)).toEqual([
      'hs/client-hs/silent-client-gets-fin-at-client-hs',
      'hs/client-hs/session-keeps-timeout-client',
      'hs/monitor/monitor-net-closes-at-accept',
      'lim/rate-limit/release-within-the-second-arms-the-frontend-task',
    ]);
  });

  it("gives a reason for a profile exactly where the model's prediction for it differs from dev12's", () => {
    const predicted: string[] = [];
    const reasoned: string[] = [];
    for (const c of CASES) {
      // Each profile against dev12, or against the first profile that serves the case when dev12
      // does not; a profile whose targets do not serve the case's frontend differs wholly.
      const baseline = baselineProfileOf(c);
      for (const p of PROFILES.filter((x) => x !== baseline)) {
        const served = profilesOf(c).includes(p);
        if (!served || observablyDiffer(predictionOf(c, p), predictionOf(c, baseline)))
          predicted.push(`${c.id} ${p}`);
      }
      for (const d of c.profileDifferences ?? []) reasoned.push(`${c.id} ${d.profile}`);
    }
    expect(reasoned.sort()).toEqual(predicted.sort());
    // The differences Debian's 2.6.12 shows (haproxy-2.6-observed.md), as the model derives them.
    expect(predicted).toEqual(
      expect.arrayContaining([
        'hs/tls/fin-within-client-hello-is-handshake-failure 2.6',
        'hs/tls/fin-after-client-hello-is-empty 2.6',
        'hs/client-reset/rst-during-tls-handshake-releases-slot 2.6',
      ]),
    );
  });

  it('predicts the same counters under every profile but where 2.x refuses an SSL context before the session and the rules exist, or 2.9 a header', () => {
    // totalsslconns (CumSslConns) came in 1.5-dev22 (71b734c30): 1.5-dev12 keeps no total of SSL contexts.
    const common = (k: Counters[]) => k.map(({ totalsslconns: _, ...rest }) => rest);
    const differ: string[] = [];
    for (const c of CASES)
      for (const p of profilesOf(c))
        if (
          !isDeepStrictEqual(
            common(predictionOf(c, p).counters),
            common(predictionOf(c, baselineProfileOf(c)).counters),
          )
        )
          differ.push(`${c.id} ${p}`);
    expect(differ).toEqual([
      // 2.9 refuses the header: no session is counted (cum_sess).
      'pp2/2.2/custom-tlv-over-1024-bytes-gets-rst-from-2-9 2.9',
      'lim/maxsslconn/tls-connection-beyond-maxsslconn-is-closed-at-accept 2.6',
      'lim/maxsslconn/tls-connection-beyond-maxsslconn-is-closed-at-accept 2.9',
      'lim/maxsslconn/refusal-pauses-the-listener-for-100-ms 2.6',
      'lim/maxsslconn/refusal-pauses-the-listener-for-100-ms 2.9',
      'lim/maxsslconn/rejected-source-at-maxsslconn-is-refused-before-the-rules-from-2x 2.6',
      'lim/maxsslconn/rejected-source-at-maxsslconn-is-refused-before-the-rules-from-2x 2.9',
    ]);
    const last = (id: string, p: Profile) =>
      predictionOf(
        CASES.find((c) => c.id === id)!,
        p,
      ).counters.at(-1)!;
    // 2.9's refused header: the connection counts in conn_tot, its session never in stot.
    const tlv = differ[0]!.split(' ')[0]!;
    expect(last(tlv, '2.6')).toMatchObject({ cumConn: 1, cumSess: 1 });
    expect(last(tlv, '2.9')).toMatchObject({ cumConn: 1, cumSess: 0 });
    const refused = differ[1]!.split(' ')[0]!;
    expect(last(refused, 'dev12')).toMatchObject({ cumConn: 3, totalconn: 3 });
    expect(last(refused, '2.6')).toMatchObject({ cumConn: 3, totalconn: 2 });
    // The rules would reject the third source: 1.5-dev12 counts it in dcon, 2.x refuses its SSL context first.
    const rejected = differ.at(-1)!.split(' ')[0]!;
    expect(last(rejected, 'dev12')).toMatchObject({ cumConn: 3, totalconn: 3, deniedConn: 1 });
    expect(last(rejected, '2.6')).toMatchObject({ cumConn: 3, totalconn: 2, deniedConn: 0 });
  });

  it('derives the counters of each moment of a scenario from the machines, from zero', () => {
    const at = (id: string) =>
      predictionOf(
        CASES.find((c) => c.id === id)!,
        'dev12',
      ).counters;
    // An embryonic connection counts in scur and conn_tot, never in stot; the deadline gives scur back.
    const timeout = at('cnt/timeout/embryonic-counted-in-scur-not-stot');
    expect(timeout[0]).toMatchObject({ feconn: 0, cumConn: 0, cumSess: 0, actconn: 0 });
    expect(timeout[1]).toMatchObject({ feconn: 1, cumConn: 1, cumSess: 0, actconn: 1, connMax: 1 });
    expect(timeout[2]).toMatchObject({ feconn: 0, cumConn: 1, cumSess: 0, actconn: 0 });
    // stot counts at the end of the TLS handshake, not at the header.
    const tls = at('cnt/tls/stot-counts-only-after-the-tls-handshake');
    expect(tls.map((k) => k.cumSess)).toEqual([0, 0, 0, 1, 1]);
    // Twelve connections on ten slots: scur stops at ten.
    const slots = at('cnt/maxconn/scur-reaches-slim-and-smax-follows');
    expect(Math.max(...slots.map((k) => k.feconn))).toBe(10);
    expect(slots.at(-1)).toMatchObject({ feconn: 0, cumConn: 12, connMax: 10, actconn: 0 });
    expect(at('cnt/reject/dcon-counts-the-rejected-connection')[1]).toMatchObject({
      deniedConn: 1,
      cumConn: 1,
    });
  });

  it('derives from the machines the kills each case logs, and the kills that dontlognull hides', () => {
    const at = (id: string, profile: 'dev12' | '2.6' = 'dev12') => {
      const p = predictionOf(
        CASES.find((c) => c.id === id)!,
        profile,
      );
      return { kills: p.kills, log: p.log };
    };
    expect(at('hs/proxy-timeout/silent-client-gets-fin-at-deadline')).toEqual({
      kills: 1,
      log: ['PRX_TIMEOUT'],
    });
    expect(at('hs/tls/silent-after-header-gets-fin-at-deadline').log).toEqual(['SSL_TIMEOUT']);
    expect(at('pp1/2.1/split-header-gets-rst-on-first-fragment').log).toEqual(['PRX_TRUNCATED']);
    expect(at('log/dontlognull/fin-before-header-not-logged')).toEqual({ kills: 1, log: [] });
    expect(at('log/dontlognull/not-a-header-logged').log).toEqual(['PRX_NOT_HDR']);
    expect(at('hs/client-reset/rst-during-tls-handshake-releases-slot').log).toEqual(['SSL_ABORT']);
    expect(at('hs/client-reset/rst-during-tls-handshake-releases-slot', '2.6').log).toEqual([
      'SSL_HANDSHAKE',
    ]);
    // Twelve connections on ten slots, every one killed by its deadline, every kill logged.
    expect(at('lim/maxconn/embryonic-connections-take-slots-and-queue')).toEqual({
      kills: 12,
      log: Array.from({ length: 12 }, () => 'PRX_TIMEOUT'),
    });
    // A completed session and a rejected connection kill no embryonic session: no kill line.
    expect(at('pp1/2.1/header-and-data-in-one-write')).toEqual({ kills: 0, log: [] });
    expect(at('lim/reject/tcp-request-reject-gets-rst')).toEqual({ kills: 0, log: [] });
  });

  it('runs the monitor-net case on dev12 targets only, and says why 2.6 and 2.9 have no such path', () => {
    const monitor = CASES.find((c) => c.id === 'hs/monitor/monitor-net-closes-at-accept')!;
    expect(profilesOf(monitor)).toEqual(['dev12']);
    expect(monitor.profileDifferences?.map((d) => d.profile)).toEqual(['2.6', '2.9']);
    expect(() => predictionOf(monitor, '2.6')).toThrow(/no target of profile 2\.6 serves fe_monitor/);
    // On dev12 the source is a monitor by the frontend's own monitor-net, not by the scenario.
    expect(predictionOf(monitor, 'dev12').transitions).toContain(
      transitionOf('session.absent', 'SESSION_ACCEPT', 'sourceIsMonitor'),
    );
  });

  it('covers the paths the issue lists', () => {
    const covered = new Set(CASES.flatMap((c) => c.transitions));
    for (const t of [
      transitionOf('connection.handshake.proxyHeader', 'TIMEOUT'),
      transitionOf('connection.handshake.proxyHeader', 'CLIENT_CLOSE'),
      transitionOf('connection.handshake.proxyHeader', 'PROXY_HEADER_ERROR', 'errorLeavesUnreadBytes'),
      transitionOf('connection.handshake.proxyHeader', 'PROXY_HEADER_OK', 'ssl'),
      transitionOf('connection.handshake.proxyHeader', 'PROXY_HEADER_OK'),
      transitionOf('connection.handshake.tls', 'TLS_OK'),
      transitionOf('connection.handshake.tls', 'TLS_ERROR'),
      transitionOf('connection.handshake.tls', 'TIMEOUT'),
      transitionOf('session.absent', 'SESSION_ACCEPT', 'sourceDenied'),
      transitionOf('session.absent', 'SESSION_ACCEPT', 'handshakePending'),
      transitionOf('listener.ready', 'ACCEPT_RETURNED', 'listenerFull'),
      transitionOf('listener.full', 'RESUME', 'slotFree'),
      transitionOf('listener.ready', 'ACCEPT_ATTEMPT', 'frontendFull'),
      transitionOf('listener.limited.onFrontendQueue', 'DEQUEUE_FRONTEND'),
    ]) {
      expect(covered.has(t), t).toBe(true);
    }
    expect(CASES.filter((c) => c.needs?.includes('stats')).length).toBeGreaterThanOrEqual(8);
  });
});

describe('transitionOf', () => {
  it('finds a transition by source, event and guard, whatever its rank', () => {
    const id = transitionOf('session.absent', 'SESSION_ACCEPT', 'sourceDenied');
    expect(id).toMatch(/^session\.absent\|SESSION_ACCEPT\|\d+$/);
    expect(listTransitions(MACHINES.session).find((t) => t.id === id)?.guard).toBe('sourceDenied');
  });

  it('throws when the machines have no such transition', () => {
    expect(() => transitionOf('session.absent', 'SESSION_ACCEPT', 'noSuchGuard')).toThrow(/0 transitions/);
  });
});

describe('selectCases', () => {
  it('selects every case when no glob is given', () => {
    expect(selectCases(CASES, [])).toHaveLength(CASES.length);
  });

  it('lets "*" match across slashes and keeps the list order', () => {
    const pp1 = selectCases(CASES, ['pp1/*']);
    expect(pp1.length).toBeGreaterThan(5);
    expect(pp1.every((c) => c.id.startsWith('pp1/2.1/'))).toBe(true);
    expect(pp1.map((c) => c.id)).toEqual(CASES.filter((c) => c.id.startsWith('pp1/')).map((c) => c.id));
  });

  it('treats dots literally and unions several globs', () => {
    expect(selectCases(CASES, ['pp1/2x1/*'])).toEqual([]);
    const both = selectCases(CASES, ['lim/*', 'cnt/reject/*']);
    expect(both.map((c) => c.id)).toContain('cnt/reject/dcon-counts-the-rejected-connection');
    expect(both.every((c) => c.id.startsWith('lim/') || c.id.startsWith('cnt/reject/'))).toBe(true);
  });
});

describe('hex', () => {
  it('reads an annotated dump: the groups before the two spaces that start each annotation', () => {
    const bytes = hex(`0d0a0d0a
      21          ver_cmd: version 2, command PROXY (fam is hex-looking: add)
      0a010203 0a01   addresses`);
    expect(Buffer.from(bytes).toString('hex')).toBe('0d0a0d0a210a0102030a01');
  });

  it('refuses a line whose groups are not whole bytes of hex instead of cutting the dump short', () => {
    expect(() => hex('0d0a\n  2g  typo')).toThrow(/not whole bytes of hex: 2g {2}typo/);
    expect(() => hex('0d0a0\n')).toThrow(/not whole bytes/);
  });
});
