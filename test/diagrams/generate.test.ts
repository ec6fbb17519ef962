import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../cli/diagrams.ts';
import {
  DEADLINE,
  diagramFiles,
  emittedActions,
  labelText,
  MACHINE_NAMES,
  messageRoutes,
  overviewEdges,
  readmeSection,
  renderSvg,
  spliceReadme,
  stateActions,
  toDot,
  transitionLabel,
  type GeneratedFile,
} from '../../diagrams/generate.ts';
import { MACHINES } from '../../machines/compose.ts';
import { EFFECTS } from '../../machines/effects.ts';
import { listStates, listTransitions } from '../../machines/introspect.ts';

const REGENERATE = 'run npx embryonic diagrams';

/** The diagram files as the generator writes them now: rendered once, shared by every test. */
let files: GeneratedFile[] = [];
const fileAt = (path: string): string => files.find((f) => f.path === path)!.content;

beforeAll(async () => {
  files = await diagramFiles();
});

/** Returns the text of every <text> element of an SVG, entities decoded. */
function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) =>
    m[1]!
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&#45;/g, '-')
      .replace(/&amp;/g, '&'),
  );
}

/** Returns `text` without its double-quoted strings and HTML-like labels, where braces are text. */
function structureOf(dot: string): string {
  return dot.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/=<.*?>(?=[,\]])/g, '=<>');
}

describe('the committed diagrams', () => {
  it('equal what the machines generate now', () => {
    const stale = files
      .filter((f) => {
        const path = join(ROOT, f.path);
        return !existsSync(path) || readFileSync(path, 'utf8') !== f.content;
      })
      .map((f) => f.path);
    expect(stale, `out of date: ${REGENERATE}`).toEqual([]);
  });

  it('include the README section the machines generate now', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const current = spliceReadme(readme, readmeSection()) === readme;
    expect(current, `the README's diagrams are out of date: ${REGENERATE}`).toBe(true);
  });

  it('embed every Mermaid diagram in the README', () => {
    const section = readmeSection();
    for (const name of [...MACHINE_NAMES, 'overview'])
      expect(section).toContain('```mermaid\n' + fileAt(`diagrams/${name}.mmd`));
  });
});

describe('the SVG of each machine', () => {
  it.each(MACHINE_NAMES)('renders every state of %s', (name) => {
    const texts = svgTexts(fileAt(`diagrams/${name}.svg`));
    const missing = listStates(MACHINES[name])
      .map((s) => s.path[s.path.length - 1]!)
      .filter((key) => !texts.includes(key));
    expect(missing).toEqual([]);
  });

  it.each(MACHINE_NAMES)('draws every transition of %s, each under its own id', (name) => {
    const svg = fileAt(`diagrams/${name}.svg`);
    const missing = listTransitions(MACHINES[name])
      .map((t) => t.id)
      .filter((id) => !svg.includes(`id="edge:${id}"`) && !svg.includes(`id="a_edge:${id}"`));
    expect(missing).toEqual([]);
  });

  it('renders the overview with every machine and every message', () => {
    const texts = svgTexts(fileAt('diagrams/overview.svg')).join('\n');
    for (const name of MACHINE_NAMES) expect(texts).toContain(name);
    for (const e of overviewEdges().filter((x) => x.effect !== null))
      expect(texts).toContain(`${e.effect} -> ${e.events.join(', ')}`);
  });

  it('renders the same bytes twice', async () => {
    const dot = toDot(MACHINES.session);
    expect(await renderSvg(dot)).toBe(await renderSvg(dot));
  });
});

describe('the Mermaid of each machine', () => {
  it.each(MACHINE_NAMES)('has balanced blocks in %s', (name) => {
    const mmd = fileAt(`diagrams/${name}.mmd`);
    let depth = 0;
    for (const line of mmd.split('\n')) {
      if (/^\s*state \S+ \{$/.test(line)) depth++;
      if (/^\s*\}$/.test(line)) depth--;
      expect(depth).toBeGreaterThanOrEqual(0);
    }
    expect(depth).toBe(0);
    expect(mmd.startsWith('stateDiagram-v2\n')).toBe(true);
  });

  it.each(MACHINE_NAMES)('has one line per transition of %s, with its trigger', (name) => {
    const machine = MACHINES[name];
    const lines = fileAt(`diagrams/${name}.mmd`)
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.includes(' --> ') && !l.includes('[*]'));
    const transitions = listTransitions(machine);
    expect(lines.length).toBe(transitions.reduce((n, t) => n + Math.max(1, t.targets.length), 0));
    for (const t of transitions) {
      const text = labelText(transitionLabel(machine, t));
      expect(lines.filter((l) => l.endsWith(` : ${text}`)).length, t.id).toBeGreaterThan(0);
    }
  });

  it('declares every state inside its compound block', () => {
    for (const name of MACHINE_NAMES) {
      const mmd = fileAt(`diagrams/${name}.mmd`);
      for (const s of listStates(MACHINES[name]).filter((x) => x.path.length > 1)) {
        const parent = s.path[s.path.length - 2]!;
        const open = mmd.match(new RegExp(`\\n( *)state ${parent} \\{\\n`))!;
        const start = open.index! + open[0].length;
        const block = mmd.slice(start, mmd.indexOf(`\n${open[1]}}\n`, start));
        const key = s.path[s.path.length - 1]!;
        expect(block, s.id).toMatch(new RegExp(`(^|\\n)\\s*(${key}|state "${key}" as \\S+)\\n`));
      }
    }
  });
});

describe('the DOT of each machine', () => {
  it.each([...MACHINE_NAMES, 'overview'])('has balanced braces and brackets in %s', (name) => {
    const structure = structureOf(fileAt(`diagrams/${name}.dot`));
    for (const [open, close] of [
      ['{', '}'],
      ['[', ']'],
    ] as const)
      expect(structure.split(open).length, `${name} ${open}${close}`).toBe(structure.split(close).length);
  });

  it.each(MACHINE_NAMES)('names every transition of %s exactly once', (name) => {
    const dot = fileAt(`diagrams/${name}.dot`);
    for (const t of listTransitions(MACHINES[name])) {
      const named = dot.split(`id="edge:${t.id}"`).length - 1 + (dot.split(`ID="edge:${t.id}"`).length - 1);
      expect(named, t.id).toBe(Math.max(1, t.targets.length));
    }
  });

  it.each([...MACHINE_NAMES, 'overview'])('gives Graphviz only ASCII labels to measure in %s', (name) => {
    const labels = [...fileAt(`diagrams/${name}.dot`).matchAll(/label=("(?:[^"\\]|\\.)*"|<.*?>(?=[,\]]))/g)];
    expect(labels.length).toBeGreaterThan(0);
    for (const [, label] of labels) expect(label).toMatch(/^[\x20-\x7e]*$/);
  });

  it('draws a compound state as a cluster', () => {
    for (const name of MACHINE_NAMES)
      for (const s of listStates(MACHINES[name]).filter((x) => x.type === 'compound'))
        expect(fileAt(`diagrams/${name}.dot`)).toContain(`subgraph "cluster_${s.id}" {`);
  });
});

describe('a transition label', () => {
  it('reads "after timeout client" for the handshake deadline', () => {
    const deadline = listTransitions(MACHINES.session).filter(
      (t) => t.event === DEADLINE.event && t.guard === DEADLINE.guard,
    );
    expect(deadline.length).toBe(1);
    const label = labelText(transitionLabel(MACHINES.session, deadline[0]!));
    expect(label.startsWith('after timeout client')).toBe(true);
    expect(label).not.toContain(DEADLINE.event);
    expect(fileAt('diagrams/session.mmd')).toContain(`: ${label}\n`);
  });

  it('reads "always" for an eventless transition and "[else]" for an unguarded fallback', () => {
    for (const name of MACHINE_NAMES) {
      const machine = MACHINES[name];
      for (const t of listTransitions(machine)) {
        const label = transitionLabel(machine, t);
        if (t.event === 'always') expect(label.trigger).toBe('always');
        if (t.guard === null && t.rank > 0) expect(label.guard).toBe('else');
        if (t.guard !== null && t.guard !== DEADLINE.guard) expect(label.guard).toBe(t.guard);
      }
    }
  });

  it('keeps every message and counts what it leaves out', () => {
    const messages = new Set<string>(messageRoutes().map((r) => r.effect));
    for (const name of MACHINE_NAMES) {
      const machine = MACHINES[name];
      for (const t of listTransitions(machine)) {
        const emitted = emittedActions(machine, t);
        const label = transitionLabel(machine, t);
        expect(label.shown.length + label.omitted, t.id).toBe(emitted.length);
        expect(
          label.shown.every((a) => emitted.includes(a)),
          t.id,
        ).toBe(true);
        const kept = emitted.filter((a) => messages.has(a));
        if (kept.length <= 5) for (const m of kept) expect(label.shown, t.id).toContain(m);
        if (emitted.length <= 5) expect(label.shown).toEqual(emitted);
      }
    }
  });

  it('includes the entry effects of the states a transition enters', () => {
    for (const name of MACHINE_NAMES) {
      const machine = MACHINES[name];
      for (const t of listTransitions(machine)) {
        for (const target of t.targets) {
          for (const e of stateActions(machine, target).entry)
            expect(emittedActions(machine, t), t.id).toContain(e);
        }
      }
    }
  });
});

describe('the messages between machines', () => {
  it('are the effects compose.ts routes, each to an event its machine accepts', () => {
    const routes = messageRoutes();
    for (const r of routes) {
      expect(r.effect in EFFECTS).toBe(true);
      expect(
        listTransitions(MACHINES[r.to]).some((t) => t.event === r.event),
        `${r.effect} → ${r.event}`,
      ).toBe(true);
    }
    const effects = routes.map((r) => r.effect);
    for (const m of [
      'sessionAccept',
      'acceptReturned',
      'connStartHandshake',
      'handshakeEnded',
      'connTimeout',
      'connClose',
      'resumeListener',
      'dequeueGlobal',
      'dequeueFrontend',
    ])
      expect(effects).toContain(m);
  });

  it('draw one overview edge per message a machine emits, and the rest come from the host', () => {
    const edges = overviewEdges();
    for (const e of edges.filter((x) => x.effect !== null)) {
      expect(e.emitters.length).toBeGreaterThan(0);
      for (const id of e.emitters) {
        const machine = MACHINES[e.from as keyof typeof MACHINES];
        const t = listTransitions(machine).find((x) => x.id === id)!;
        expect(emittedActions(machine, t)).toContain(e.effect);
      }
    }
    for (const name of MACHINE_NAMES) {
      const arriving = new Set(edges.filter((e) => e.to === name).flatMap((e) => e.events));
      for (const t of listTransitions(MACHINES[name]).filter((x) => x.event !== 'always'))
        expect(
          [...arriving].some((a) => a.startsWith(t.event)),
          `${name} ${t.event}`,
        ).toBe(true);
    }
  });
});
