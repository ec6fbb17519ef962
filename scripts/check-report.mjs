#!/usr/bin/env node
/**
 * Checks the conformance suite's HTML report in a real browser: Debian's headless Chromium loads
 * the page from disk, and the DOM it builds (after the page's own script ran) must show, in the
 * matrix, one cell for every case of every target, with the verdict the JSON report gives. The
 * page must be self-contained (no src/href leaving the page). Then a screenshot of the page, and
 * one of the first failing (or first) detail view, are saved.
 *
 * Usage: node scripts/check-report.mjs --html FILE --json FILE [--screenshot FILE] [--min-cases N]
 *                                       [--chromium PATH]
 *   --html        the report (`embryonic conform --html FILE`)
 *   --json        the JSON report of the same run (`--json FILE`): the expected targets × cases
 *   --screenshot  where to save the screenshot (default: reports/conformance.png); the detail view
 *                 goes next to it as <name>-detail.png
 *   --min-cases   fail unless the report has at least N cases (default 1)
 *   --chromium    the browser (default /usr/bin/chromium)
 *
 * Exit code: 0 if every check holds, 1 if one does not, 2 on a usage error or a missing browser.
 * Every browser run is bounded (60 s) and uses a fresh temporary profile, removed afterwards.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const BROWSER_TIMEOUT_MS = 60_000;

/** Parses `--name value` pairs; returns them by name. Exits 2 on a flag without a value. */
function parseFlags(argv) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) usage(`unexpected argument "${a}"`);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) usage(`${a} needs a value`);
    flags[a.slice(2)] = v;
    i++;
  }
  return flags;
}

function usage(message) {
  console.error(`check-report: ${message}`);
  console.error(
    'usage: node scripts/check-report.mjs --html FILE --json FILE [--screenshot FILE] [--min-cases N]',
  );
  process.exit(2);
}

/**
 * Runs Chromium headless with <extra> arguments on <url>, in a fresh profile. Resolves with its
 * stdout; rejects if it exits non-zero or runs longer than BROWSER_TIMEOUT_MS (it is killed).
 */
function chromium(browser, extra, url) {
  const profile = mkdtempSync(join(tmpdir(), 'embryonic-chromium-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--hide-scrollbars',
    `--user-data-dir=${profile}`,
    ...extra,
    url,
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(browser, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, BROWSER_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      if (code === 0) resolvePromise(Buffer.concat(out).toString('utf8'));
      else {
        const tail = Buffer.concat(err).toString('utf8').split('\n').slice(-5).join('\n');
        reject(new Error(`${browser} exited with ${code ?? signal}\n${tail}`));
      }
    });
  });
}

/** Returns the attributes of every opening tag <tag> whose class list includes <cls>. */
function tagsWithClass(dom, tag, cls) {
  const out = [];
  for (const m of dom.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'g'))) {
    const attrs = {};
    for (const a of m[1].matchAll(/([\w-]+)="([^"]*)"/g)) attrs[a[1]] = unescape(a[2]);
    if ((attrs.class ?? '').split(/\s+/).includes(cls)) out.push(attrs);
  }
  return out;
}

function unescape(text) {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** Returns the width and height of a PNG file from its IHDR chunk. */
function pngSize(file) {
  const b = readFileSync(file);
  if (b.length < 24 || b.toString('latin1', 1, 4) !== 'PNG') return null;
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  if (!flags.html || !flags.json) usage('--html and --json are required');
  const browser = flags.chromium ?? '/usr/bin/chromium';
  if (!existsSync(browser)) {
    console.error(`check-report: no browser at ${browser}: apt-get install -y chromium`);
    process.exit(2);
  }
  const htmlPath = resolve(flags.html);
  const report = JSON.parse(readFileSync(flags.json, 'utf8'));
  const shot = resolve(flags.screenshot ?? 'reports/conformance.png');
  const minCases = Number(flags['min-cases'] ?? 1);
  const url = pathToFileURL(htmlPath).href;
  const problems = [];
  const check = (ok, message) => {
    if (!ok) problems.push(message);
  };

  // 1. Self-contained: nothing in the page's source points outside it.
  const source = readFileSync(htmlPath, 'utf8');
  const external = [...source.matchAll(/\b(?:src|href)\s*=\s*"(?!#)([^"]*)"/g)].map((m) => m[1]);
  check(external.length === 0, `the page references outside resources: ${external.slice(0, 5).join(', ')}`);
  check(!/<link\b|@import|url\(/i.test(source), 'the page loads a stylesheet or a url()');

  // 2. The DOM as Chromium built it, after the page's script ran.
  const dom = await chromium(browser, ['--dump-dom'], url);
  check(
    /<body\b[^>]*data-ready="true"/.test(dom),
    "the page's script did not run (body[data-ready] is not true)",
  );
  const cells = tagsWithClass(dom, 'td', 'cell');
  const details = new Set(tagsWithClass(dom, 'details', 'result').map((d) => d.id));
  const ids = new Set([...dom.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]));
  const caseIds = report.cases.map((c) => c.id);
  const targets = report.targets.map((t) => t.name);
  check(caseIds.length >= minCases, `the report has ${caseIds.length} cases, fewer than ${minCases}`);
  check(targets.length > 0, 'the report has no target');
  check(
    cells.length === caseIds.length * targets.length,
    `the matrix has ${cells.length} cells, expected ${caseIds.length} cases × ${targets.length} targets`,
  );
  const cellHrefs = [...dom.matchAll(/<td\b[^>]*class="cell[^"]*"[^>]*><a href="#([^"]+)"/g)].map(
    (m) => m[1],
  );
  for (const target of targets) {
    for (const id of caseIds) {
      const cell = cells.find((c) => c['data-case'] === id && c['data-target'] === target);
      const result = report.results.find((r) => r.caseId === id && r.target === target);
      if (!cell) {
        problems.push(`no matrix cell for ${id} on ${target}`);
        continue;
      }
      check(
        result !== undefined && cell['data-verdict'] === result.verdict,
        `the cell for ${id} on ${target} shows ${cell['data-verdict']}, the JSON says ${result?.verdict}`,
      );
    }
  }
  for (const href of cellHrefs)
    check(ids.has(href) && details.has(href), `a matrix cell links to a missing detail #${href}`);
  const status = /<span id="js-status">([^<]*)<\/span>/.exec(dom)?.[1] ?? '';
  check(
    status.startsWith(`matrix: ${caseIds.length} cases × ${targets.length} targets`),
    `the page's own count reads "${status}"`,
  );

  // 3. Screenshots: the page, and the detail view of the first failing case (or the first case).
  mkdirSync(dirname(shot), { recursive: true });
  await chromium(browser, [`--screenshot=${shot}`, '--window-size=1400,2000'], url);
  const size = existsSync(shot) ? pngSize(shot) : null;
  check(
    size !== null && size.width === 1400 && size.height === 2000,
    `the screenshot ${shot} is missing or not 1400×2000`,
  );
  const failing = report.results.find((r) => r.verdict === 'fail') ?? report.results[0];
  let detailShot = null;
  if (failing) {
    const target = targets.indexOf(failing.target);
    const index = caseIds.indexOf(failing.caseId);
    detailShot = shot.replace(/(\.png)?$/, '-detail.png');
    await chromium(
      browser,
      [`--screenshot=${detailShot}`, '--window-size=1400,2000'],
      `${url}#only-d-${index}-${target}`,
    );
    check(
      existsSync(detailShot) && statSync(detailShot).size > 0,
      `the detail screenshot ${detailShot} is missing`,
    );
  }

  const verdicts = {};
  for (const c of cells) verdicts[c['data-verdict']] = (verdicts[c['data-verdict']] ?? 0) + 1;
  console.log(
    `check-report: ${caseIds.length} cases × ${targets.length} target(s) [${targets.join(', ')}]: ` +
      `${cells.length} matrix cells (${Object.entries(verdicts)
        .map(([v, n]) => `${n} ${v}`)
        .join(', ')}), ${details.size} detail views`,
  );
  console.log(`check-report: screenshot ${shot}${detailShot ? `, detail ${detailShot}` : ''}`);
  if (problems.length) {
    for (const p of problems.slice(0, 30)) console.error(`check-report: FAIL ${p}`);
    if (problems.length > 30) console.error(`check-report: ... and ${problems.length - 30} more`);
    process.exit(1);
  }
  console.log('check-report: ok');
}

main().catch((err) => {
  console.error(`check-report: ${err.message}`);
  process.exit(1);
});
