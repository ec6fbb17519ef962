/**
 * The suite's reports, all rendered from one SuiteReport:
 *   toJson   every case × target result as one self-contained JSON object (checks, wire log,
 *            backend, counters, target log), with the targets and the case list
 *   toJunit  JUnit XML: a testsuite per target, a testcase per case; fail → <failure>, skipped →
 *            <skipped>, version-difference and known-bug → a passing testcase whose <system-out>
 *            says why
 *   toCoverage  the transitions the cases that held exercised (taken, where the target's trace
 *            says, else predicted by the model), in diagrams/coverage.ts's format
 *   toHtml   one self-contained HTML page (inline CSS and JS, nothing fetched): the matrix of
 *            targets × cases, then a detail view per case and target with its wire log
 *
 * All are pure functions of the report.
 */
import type { WireEvent } from './client.ts';
import { describePrediction, describeScenario, observablyDiffer, PROFILES } from './predict.ts';
import type { CaseInfo, CaseResult, SuiteReport, TargetSummary, Verdict } from './runner.ts';

/** The verdicts in the order the reports list them. */
export const VERDICTS: readonly Verdict[] = ['pass', 'fail', 'skipped', 'version-difference', 'known-bug'];

/** Returns how many results of <report> have each verdict (all targets together). Pure. */
export function summarize(report: SuiteReport, target?: string): Record<Verdict, number> {
  const counts: Record<Verdict, number> = {
    pass: 0,
    fail: 0,
    skipped: 0,
    'version-difference': 0,
    'known-bug': 0,
  };
  for (const r of report.results) if (target === undefined || r.target === target) counts[r.verdict]++;
  return counts;
}

/** Returns the result of case <caseId> on target <target>, or undefined. Pure. */
export function resultOf(report: SuiteReport, caseId: string, target: string): CaseResult | undefined {
  return report.results.find((r) => r.caseId === caseId && r.target === target);
}

/** Returns <report> as JSON text (2-space indented, one object per case × target in `results`). Pure. */
export function toJson(report: SuiteReport): string {
  return `${JSON.stringify({ ...report, summary: summarize(report) }, null, 2)}\n`;
}

/**
 * Returns the coverage file of <report> for diagrams/coverage.ts: source 'conformance', and for
 * each transition, how many case × target results that held counted it: a pass, or a
 * version-difference that ran (every check held, against its profile's prediction). A known-bug
 * result counts nothing: it held against the model with a bug switched in, whose transitions are
 * not the machines' (the bug's defect can drop a message, and the transition it leads to). A result
 * counts:
 *   - on a target whose trace the runner read (the bundled proxy: the result has
 *     `transitionsTaken`), the transitions the case took, each once, predicted or not;
 *   - on a target whose trace could not be read for the result (it has `traceError`), nothing;
 *   - on any other target (haproxy, HOST:PORT: no trace), the transitions the model predicts for
 *     the case under the target's profile, each once: there they are the model's claim, not an
 *     observation.
 * Every transition a case takes under some profile or a result took is listed, at 0 when no result
 * that held counted it (every case taking it failed, was skipped, was not run, or did not take
 * it). Pure.
 */
export function toCoverage(report: SuiteReport): string {
  const transitions: Record<string, number> = {};
  for (const c of report.cases) for (const t of c.transitions) transitions[t] ??= 0;
  for (const r of report.results) {
    const held =
      r.verdict === 'pass' ||
      (r.verdict === 'version-difference' && r.checks.length > 0 && r.checks.every((k) => k.ok));
    if (!held || r.traceError !== undefined) continue;
    const profile = report.targets.find((t) => t.name === r.target)?.profile;
    const predicted = report.cases
      .find((x) => x.id === r.caseId)
      ?.predictions.find((p) => p.profile === profile);
    const counted = r.transitionsTaken ?? predicted?.transitions ?? [];
    for (const t of new Set(counted)) transitions[t] = (transitions[t] ?? 0) + 1;
  }
  return `${JSON.stringify({ source: 'conformance', transitions }, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------
// JUnit XML

/**
 * Returns <report> as JUnit XML: one <testsuite> per target (named after it), one <testcase> per
 * case (name = case id, classname = "conform.<target>"). A failed case has a <failure> with every
 * check, expected against actual, and the wire log; a skipped one a <skipped message>; a
 * version-difference or a known-bug passes, with the reason in <system-out>. Pure.
 */
export function toJunit(report: SuiteReport): string {
  const all = summarize(report);
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="embryonic conform" tests="${report.results.length}" failures="${all.fail}" errors="0" skipped="${all.skipped}" time="${secs(report.durationMs)}" timestamp="${xml(report.generatedAt)}">`,
  ];
  for (const target of report.targets) {
    const results = report.results.filter((r) => r.target === target.name);
    const n = summarize(report, target.name);
    const time = results.reduce((s, r) => s + r.durationMs, 0);
    out.push(
      `  <testsuite name="${xml(target.name)}" tests="${results.length}" failures="${n.fail}" errors="0" skipped="${n.skipped}" time="${secs(time)}">`,
      '    <properties>',
      `      <property name="profile" value="${xml(target.profile)}"/>`,
      `      <property name="description" value="${xml(target.description)}"/>`,
      `      <property name="version-difference" value="${n['version-difference']}"/>`,
      `      <property name="known-bug" value="${n['known-bug']}"/>`,
      '    </properties>',
    );
    for (const r of results) {
      out.push(
        `    <testcase classname="conform.${xml(target.name)}" name="${xml(r.caseId)}" time="${secs(r.durationMs)}">`,
      );
      if (r.verdict === 'fail') {
        out.push(
          `      <failure message="${xml(r.reason ?? 'failed')}" type="fail">${xml(failureText(r))}</failure>`,
        );
      } else if (r.verdict === 'skipped') {
        out.push(`      <skipped message="${xml(r.reason ?? 'skipped')}"/>`);
      } else if (r.verdict === 'version-difference' || r.verdict === 'known-bug') {
        out.push(`      <system-out>${xml(`${r.verdict}: ${r.reason ?? ''}`)}</system-out>`);
      }
      out.push('    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}

/** The body of a JUnit <failure>: the checks, then the wire log, as plain text. */
function failureText(r: CaseResult): string {
  const lines = r.checks.map(
    (k) =>
      `${k.ok ? 'ok  ' : 'FAIL'} ${k.what}\n       expected: ${k.expected}\n       actual:   ${k.actual}`,
  );
  lines.push('', 'wire log (ms since the case began):');
  for (const e of r.wire) lines.push(wireLine(e));
  if (r.targetLog.length) {
    lines.push('', 'target log:');
    for (const l of r.targetLog) lines.push(`${l.t.toFixed(1).padStart(9)}  ${l.line}`);
  }
  return lines.join('\n');
}

/** Returns one wire-log entry as a line of text. Pure. */
export function wireLine(e: WireEvent): string {
  const size = e.size === undefined ? '' : ` ${e.size} B`;
  const text = e.text === undefined ? '' : ` ${JSON.stringify(e.text)}`;
  const note = e.note ? ` (${e.note})` : '';
  return `${e.t.toFixed(1).padStart(9)}  ${e.conn.padEnd(10)} ${e.kind}${size}${text}${note}`;
}

// ---------------------------------------------------------------------------------------------
// HTML

/**
 * Returns <report> as one self-contained HTML page: no external resource, inline CSS and JS only.
 * The matrix (table#matrix) has one row per case and one cell per target; each cell carries
 * data-case, data-target and data-verdict and links to the detail view (details.result) of that
 * case on that target, which holds the requirement, the checks, the timings, the backend's view,
 * the counters, the target's log and the wire log. The fragment #d-<case>-<target> opens one
 * detail view; #only-d-<case>-<target> shows that view alone (for screenshots). Pure.
 */
export function toHtml(report: SuiteReport): string {
  const targetIndex = new Map(report.targets.map((t, i) => [t.name, i]));
  const caseIndex = new Map(report.cases.map((c, i) => [c.id, i]));
  const detailId = (caseId: string, target: string): string =>
    `d-${caseIndex.get(caseId) ?? 0}-${targetIndex.get(target) ?? 0}`;

  const head = report.targets.map(
    (t) => `<th scope="col">${esc(t.name)}<br><small>${esc(t.profile)}</small></th>`,
  );
  const rows = report.cases.map((c) => {
    const cells = report.targets.map((t) => {
      const r = resultOf(report, c.id, t.name);
      const verdict = r?.verdict ?? 'absent';
      const title = r?.reason ? ` title="${esc(r.reason)}"` : '';
      return `<td class="cell v-${verdict}" data-case="${esc(c.id)}" data-target="${esc(t.name)}" data-verdict="${verdict}"${title}><a href="#${detailId(c.id, t.name)}">${verdictLabel(verdict)}</a></td>`;
    });
    return `<tr data-case="${esc(c.id)}"><th scope="row"><a href="#c-${caseIndex.get(c.id)}">${esc(c.id)}</a></th>${cells.join('')}</tr>`;
  });

  const targetsList = report.targets.map((t) => {
    const n = summarize(report, t.name);
    const counts = VERDICTS.map((v) => `<span class="badge v-${v}">${n[v]} ${v}</span>`).join(' ');
    const why = t.unavailable
      ? `<div class="unavailable">${esc(t.unavailable.verdict)}: <pre>${esc(t.unavailable.reason)}</pre></div>`
      : '';
    return `<li data-target="${esc(t.name)}"><b>${esc(t.name)}</b> (profile ${esc(t.profile)}): ${esc(t.description)}<br>${counts}${why}</li>`;
  });

  const details = report.cases.map((c) => caseSection(report, c, caseIndex.get(c.id) ?? 0, detailId));
  const all = summarize(report);

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>embryonic conform: ${report.cases.length} cases × ${report.targets.length} target(s)</title>
<style>${CSS}</style>
</head>
<body data-cases="${report.cases.length}" data-targets="${report.targets.length}">
<header>
<h1>embryonic conformance report</h1>
<p>${report.cases.length} cases × ${report.targets.length} target(s), generated ${esc(report.generatedAt)} in ${secs(report.durationMs)} s.
Deadline (timeout client) ${report.deadlineMs} ms. Totals: ${VERDICTS.map((v) => `<span class="badge v-${v}">${all[v]} ${v}</span>`).join(' ')}</p>
<ul id="targets">${targetsList.join('')}</ul>
<p id="filters">Show: <button type="button" data-filter="all" class="on">all</button>
${VERDICTS.map((v) => `<button type="button" data-filter="${v}">${v}</button>`).join('\n')}
<span id="js-status">(static view)</span></p>
</header>
<main>
<table id="matrix">
<thead><tr><th scope="col">case</th>${head.join('')}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<div id="details">
${details.join('\n')}
</div>
</main>
<script>${JS}</script>
</body>
</html>
`;
}

function caseSection(
  report: SuiteReport,
  c: CaseInfo,
  index: number,
  detailId: (caseId: string, target: string) => string,
): string {
  const meta: string[] = [];
  if (c.section) meta.push(`<dt>spec section</dt><dd>doc/proxy-protocol.txt §${esc(c.section)}</dd>`);
  meta.push(`<dt>frontend</dt><dd>${esc(c.frontend)}</dd>`);
  if (c.needs.length) meta.push(`<dt>needs</dt><dd>${esc(c.needs.join(', '))}</dd>`);
  meta.push(`<dt>scenario</dt><dd>${esc(describeScenario(c.scenario))}</dd>`);
  for (const [profile, scenario] of Object.entries(c.scenarios ?? {}))
    if (describeScenario(scenario) !== describeScenario(c.scenario))
      meta.push(`<dt>scenario under ${esc(profile)}</dt><dd>${esc(describeScenario(scenario))}</dd>`);
  for (const p of c.predictions) {
    if (p.profile !== 'dev12' && !observablyDiffer(p, c.predictions[0]!)) continue;
    meta.push(
      `<dt>${p.profile === 'dev12' ? 'the model predicts' : `under ${esc(p.profile)}`}</dt><dd>the target ${esc(describePrediction(p))}</dd>`,
    );
  }
  meta.push(
    `<dt>transitions (any profile)</dt><dd>${c.transitions.map((t) => `<code>${esc(t)}</code>`).join(' ')}</dd>`,
  );
  for (const d of c.profileDifferences)
    meta.push(`<dt>why ${esc(d.profile)} differs</dt><dd>${esc(d.reason)}</dd>`);
  if (c.predictions.length < PROFILES.length)
    meta.push(
      `<dt>runs on</dt><dd>targets of profile ${c.predictions.map((p) => esc(p.profile)).join(', ')} only: the others do not serve ${esc(c.frontend)}</dd>`,
    );
  const results = report.targets.map((t) => {
    const r = resultOf(report, c.id, t.name);
    return r ? resultDetails(r, t, detailId(c.id, t.name)) : '';
  });
  return `<section class="case" id="c-${index}" data-case="${esc(c.id)}">
<h2>${esc(c.id)}</h2>
<p class="requirement">${esc(c.requirement)}</p>
<dl>${meta.join('')}</dl>
${results.join('\n')}
</section>`;
}

function resultDetails(r: CaseResult, target: TargetSummary, id: string): string {
  const parts: string[] = [];
  if (r.reason) parts.push(`<p class="reason">${esc(r.reason)}</p>`);
  if (r.checks.length) {
    parts.push(
      '<table class="checks"><thead><tr><th></th><th>check</th><th>expected</th><th>actual</th></tr></thead><tbody>',
      ...r.checks.map(
        (k) =>
          `<tr class="${k.ok ? 'ok' : 'bad'}"><td>${k.ok ? '✓' : '✗'}</td><td>${esc(k.what)}</td><td>${esc(k.expected)}</td><td>${esc(k.actual)}${k.timing ? timingBar(k.timing) : ''}</td></tr>`,
      ),
      '</tbody></table>',
    );
  }
  if (r.transitionsTaken) {
    parts.push(
      `<p class="taken">transitions taken (from the proxy trace): ${r.transitionsTaken.map((t) => `<code>${esc(t)}</code>`).join(' ')}</p>`,
    );
  }
  if (r.traceError !== undefined) {
    parts.push(`<p class="taken">the proxy trace could not be read: ${esc(r.traceError)}</p>`);
  }
  if (r.backend.length) {
    parts.push(
      '<h4>backend</h4><table class="plain"><thead><tr><th>connection</th><th>accepted</th><th>first byte</th><th>bytes</th><th>closed</th></tr></thead><tbody>',
      ...r.backend.map(
        (b) =>
          `<tr><td>${esc(b.name)}</td><td>${ms(b.acceptedAt)}</td><td>${b.firstByteAt === null ? '-' : ms(b.firstByteAt)}</td><td>${b.size}</td><td>${b.closedAt === null ? 'open' : `${esc(b.closedBy ?? '')} at ${ms(b.closedAt)}`}</td></tr>`,
      ),
      '</tbody></table>',
    );
  }
  for (const s of r.stats) {
    const rows = Object.entries(s.rows).filter(([k]) => k.endsWith('/FRONTEND') || k.endsWith('/BACKEND'));
    const fields = ['scur', 'smax', 'slim', 'stot', 'conn_tot', 'dcon'];
    parts.push(
      `<h4>counters ${esc(s.label)} (at ${ms(s.t)}): ${Object.entries(s.info)
        .map(([k, v]) => `${esc(k)}=${esc(v)}`)
        .join(' ')}</h4>`,
      `<table class="plain"><thead><tr><th>row</th>${fields.map((f) => `<th>${f}</th>`).join('')}</tr></thead><tbody>`,
      ...rows.map(
        ([k, row]) =>
          `<tr><td>${esc(k)}</td>${fields.map((f) => `<td>${esc(row[f] ?? '')}</td>`).join('')}</tr>`,
      ),
      '</tbody></table>',
    );
  }
  if (r.targetLog.length) {
    const lines = r.targetLog.map((l) => `${esc(l.t.toFixed(1).padStart(9))}  ${esc(l.line)}`);
    parts.push(`<h4>target log</h4><pre class="log">${lines.join('\n')}</pre>`);
  }
  if (r.notes.length)
    parts.push(`<ul class="notes">${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  if (r.wire.length) {
    parts.push(
      '<h4>wire log (ms since the case began)</h4><table class="wire"><thead><tr><th>t</th><th>connection</th><th>event</th><th>size</th><th>bytes</th><th>note</th></tr></thead><tbody>',
      ...r.wire.map(
        (e) =>
          `<tr class="k-${e.kind} ${e.conn.startsWith('backend') ? 'backend' : 'client'}"><td>${e.t.toFixed(1)}</td><td>${esc(e.conn)}</td><td>${esc(e.kind)}</td><td>${e.size ?? ''}</td><td>${e.hex ? `<code class="hex">${esc(hexGroups(e.hex))}</code><br><code class="text">${esc(e.text ?? '')}</code>` : ''}</td><td>${esc(e.note ?? '')}</td></tr>`,
      ),
      '</tbody></table>',
    );
  }
  return `<details class="result r-${r.verdict}" id="${id}" data-case="${esc(r.caseId)}" data-target="${esc(target.name)}" data-verdict="${r.verdict}">
<summary><span class="badge v-${r.verdict}">${verdictLabel(r.verdict)}</span> on <b>${esc(target.name)}</b> in ${ms(r.durationMs)}</summary>
${parts.join('\n')}
</details>`;
}

/** A small bar placing a measured time in its window, for timing checks. */
function timingBar(t: {
  expected: number;
  measured: number | null;
  window: readonly [number, number];
}): string {
  if (t.measured === null || !Number.isFinite(t.measured)) return '';
  const lo = t.expected + t.window[0];
  const hi = t.expected + t.window[1];
  const span = Math.max(1, hi - lo);
  const left = Math.max(-10, Math.min(110, ((t.measured - lo) / span) * 100));
  return `<span class="bar" title="window [${lo}, ${hi}] ms, measured ${t.measured} ms"><span class="mark" style="left:${left.toFixed(1)}%"></span></span>`;
}

function verdictLabel(v: string): string {
  return v === 'version-difference' ? 'version-diff' : v;
}

function hexGroups(hex: string): string {
  return hex.replace(/(.{8})/g, '$1 ').trim();
}

function ms(n: number): string {
  return `${n.toFixed(1)} ms`;
}

function secs(msValue: number): string {
  return (msValue / 1000).toFixed(3);
}

/** Escapes text for HTML content and attribute values. Pure. */
export function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Escapes text for XML, dropping the characters XML 1.0 cannot carry. Pure. */
export function xml(text: string): string {
  // eslint-disable-next-line no-control-regex
  return esc(text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '?'));
}

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 1.5em 3em;color:#1d1d1f;background:#fff}
h1{font-size:1.5em;margin:.8em 0 .3em}h2{font-size:1.1em;margin:1.5em 0 .2em;font-family:ui-monospace,monospace}
h4{margin:.8em 0 .2em;font-size:.95em}
code,pre,.wire{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
#targets{padding-left:1.2em}#targets li{margin:.3em 0}
.badge{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;font-weight:600}
.v-pass{background:#d8f5dd;color:#0b5d1e}.v-fail{background:#ffd9d6;color:#8a1005}
.v-skipped{background:#ececec;color:#555}.v-version-difference{background:#fff0c2;color:#6b4e00}.v-known-bug{background:#f3e1ff;color:#5b2a86}
.v-absent{background:#fff;color:#aaa}
#matrix{border-collapse:collapse;margin:1em 0}#matrix th,#matrix td{border:1px solid #ddd;padding:2px 8px;text-align:left}
#matrix thead th{position:sticky;top:0;background:#f6f6f6}
#matrix td.cell{text-align:center;min-width:7em}#matrix td.cell a{color:inherit;text-decoration:none;display:block}
#matrix th a{color:#1d1d1f;text-decoration:none;font-family:ui-monospace,monospace;font-size:12.5px}
#filters button{font:inherit;border:1px solid #bbb;background:#fafafa;border-radius:4px;padding:1px 8px;cursor:pointer}
#filters button.on{background:#1d1d1f;color:#fff}
#js-status{color:#888;margin-left:1em;font-size:.9em}
.case{border-top:1px solid #ddd;padding-top:.2em}.requirement{margin:.2em 0 .4em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:.3em 0}dt{color:#666}dd{margin:0}
details.result{margin:.4em 0;border:1px solid #ddd;border-left-width:5px;border-radius:4px;padding:.2em .6em}
.r-pass{border-left-color:#3bb95a}.r-fail{border-left-color:#d9382a}.r-skipped{border-left-color:#aaa}.r-version-difference{border-left-color:#e0b000}.r-known-bug{border-left-color:#8e4ec6}
details.result[open]{background:#fcfcfc}details.result summary{cursor:pointer}
.reason{white-space:pre-wrap}
table.checks,table.plain,table.wire{border-collapse:collapse;margin:.3em 0}
table.checks td,table.checks th,table.plain td,table.plain th,table.wire td,table.wire th{border:1px solid #e3e3e3;padding:1px 6px;vertical-align:top;text-align:left}
tr.ok td:first-child{color:#0b5d1e}tr.bad td{background:#fff1ef}tr.bad td:first-child{color:#8a1005;font-weight:700}
.bar{display:inline-block;position:relative;width:80px;height:8px;margin-left:8px;background:#d8f5dd;border-radius:4px;vertical-align:middle}
.bar .mark{position:absolute;top:-3px;width:3px;height:14px;background:#1d1d1f}
table.wire tr.backend td{background:#f3f7ff}table.wire tr.k-rst-received td,table.wire tr.k-rst-sent td{color:#8a1005;font-weight:600}
table.wire tr.k-fin-received td,table.wire tr.k-fin-sent td{color:#0b3d8a;font-weight:600}
code.hex{color:#555;word-break:break-all}code.text{color:#111}
pre.log{background:#f6f6f6;padding:.4em;overflow-x:auto}.unavailable pre{margin:.2em 0;white-space:pre-wrap}
.hidden{display:none}
body.only header,body.only #matrix,body.only section.case:not(.shown),body.only details.result:not(.shown){display:none}
`;

const JS = `
(function () {
  var rows = document.querySelectorAll('#matrix tbody tr');
  var cells = document.querySelectorAll('#matrix td.cell');
  var buttons = document.querySelectorAll('#filters button');
  function show(filter) {
    rows.forEach(function (row) {
      var match = filter === 'all' || row.querySelector('td.cell[data-verdict="' + filter + '"]');
      row.classList.toggle('hidden', !match);
    });
    buttons.forEach(function (b) { b.classList.toggle('on', b.dataset.filter === filter); });
  }
  buttons.forEach(function (b) { b.addEventListener('click', function () { show(b.dataset.filter); }); });
  function openHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    var only = id.indexOf('only-') === 0;
    if (only) id = id.slice(5);
    var el = id && document.getElementById(id);
    if (!el || el.tagName !== 'DETAILS') return;
    el.open = true;
    if (only) {
      document.body.classList.add('only');
      el.classList.add('shown');
      el.parentElement.classList.add('shown');
    } else {
      el.scrollIntoView();
    }
  }
  window.addEventListener('hashchange', openHash);
  openHash();
  document.getElementById('js-status').textContent =
    'matrix: ' + rows.length + ' cases × ' + (document.querySelectorAll('#matrix thead th').length - 1) + ' targets, ' + cells.length + ' cells';
  document.body.dataset.ready = 'true';
})();
`;
