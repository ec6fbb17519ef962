/**
 * The hand-written parts of the README held to the code: the glossary's one word for the client,
 * and the impl functions its HAProxy → machine → impl table names.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { definedNames, implNamesOf } from '../diagrams/porting.ts';
import { MACHINES } from '../machines/compose.ts';
import { EFFECTS } from '../machines/effects.ts';

const ROOT = join(import.meta.dirname, '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The tracked text files of the project: its code and its documents. */
function trackedTextFiles(): string[] {
  return execFileSync('git', ['ls-files', '*.ts', '*.md', '*.mjs', '*.js', '.ci/*'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f !== '' && f !== 'test/docs.test.ts');
}

/** The cells of the third column (impl) of the README's HAProxy → machine → impl table. */
function implCells(): string[] {
  const section = README.slice(README.indexOf('## HAProxy → machine → impl'));
  const table = section.slice(0, section.indexOf('\n## '));
  return table
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| HAProxy') && !l.startsWith('|---'))
    .map((l) => l.split(' | ')[2] ?? '');
}

describe('the README', () => {
  it('says "client", never "peer", for the remote end that connected, in every file of the project', () => {
    const offending: string[] = [];
    for (const file of trackedTextFiles()) {
      const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
      lines.forEach((line, i) => {
        // Allowed: HAProxy's `peers` section keyword, and proxy-protocol-js's Peer class.
        const rest = line.replace(/\bpeers\b/g, '').replace(/\bppjs\.Peer\b/g, '');
        if (/\bpeer\b/i.test(rest) && !line.includes('(never "peer" or "remote")'))
          offending.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offending).toEqual([]);
  });

  it('names in its HAProxy → machine → impl table only functions of impl/ and machines/, effects and guards', () => {
    // impl/ functions, and the pure ones of machines/ it calls (classifySource).
    const defined = new Set([...definedNames(join(ROOT, 'impl')), ...definedNames(join(ROOT, 'machines'))]);
    const cells = implCells();
    expect(cells.length).toBeGreaterThanOrEqual(8);
    const named = cells.flatMap((cell) =>
      [...cell.matchAll(/`([A-Za-z_$][\w$.]*)`/g)].flatMap((m) => implNamesOf(m[1]!)),
    );
    expect(named.length).toBeGreaterThan(cells.length);
    const unknown = named.filter((n) => !defined.has(n) && !(n in EFFECTS) && !GUARDS.has(n));
    expect(unknown).toEqual([]);
  });
});

/** The guards of the three machines, which the table may name beside a function. */
const GUARDS = new Set(
  Object.values(MACHINES).flatMap((m) => Object.keys(m.implementations.guards as Record<string, unknown>)),
);
