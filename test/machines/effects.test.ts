/**
 * The effect vocabulary is closed both ways: every effect a machine emits (on a transition, on
 * entering or leaving a state, or through a session macro) is named in EFFECTS, and every entry
 * of EFFECTS is emitted by some machine, routed by compose.ts, or emitted by a mutant. The assign
 * actions (context updates) are not effects and stay out of it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { EFFECTS, type Effect, type EffectName } from '../../machines/effects.ts';
import { actionName, listTransitions } from '../../machines/introspect.ts';
import { expandListenerEffect } from '../../machines/listener.machine.ts';
import { expandSessionEffect } from '../../machines/session.machine.ts';

/** The machines' assign actions: context updates, never executed by a host. */
const ASSIGNS = ['setErrCode', 'setErrCodeFromEvent', 'setRet', 'keepConnErrCode'];
/** The macros, expanded into primitives before any host sees them: the entries EFFECTS calls so. */
const MACROS = Object.entries(EFFECTS)
  .filter(([, e]) => e.does.startsWith('macro:'))
  .map(([name]) => name);

const machinesDir = join(import.meta.dirname, '../../machines');
const known = new Set(Object.keys(EFFECTS));

/** Names of the entry and exit actions of every state of `machine`. */
function stateActions(machine: AnyStateMachine): string[] {
  const out: string[] = [];
  const walk = (node: AnyStateNode): void => {
    for (const a of [...node.entry, ...node.exit]) out.push(actionName(a));
    for (const child of Object.values(node.states) as AnyStateNode[]) walk(child);
  };
  walk(machine.root);
  return out;
}

/** Every action name each machine uses, on transitions and on states, assigns excluded. */
const used = Object.entries(MACHINES).flatMap(([name, machine]) =>
  [...listTransitions(machine).flatMap((t) => t.actions), ...stateActions(machine)]
    .filter((a) => !ASSIGNS.includes(a))
    .map((a) => ({ machine: name, effect: a })),
);

/**
 * Expands <effect> with the session's and the listener's expanders under <config>, leaving out what
 * an expander returns unchanged (not one of its macros).
 */
function expand(config: ModelConfig, effect: Effect): Effect[] {
  return [expandSessionEffect, expandListenerEffect].flatMap((f) => {
    const out = f(config, effect);
    return out.length === 1 && out[0] === effect ? [] : out;
  });
}

/**
 * Every primitive a macro expands into, in tcp and http mode, on a raw and a TLS transport, in each
 * profile, for every failure site.
 */
const expanded: Effect[] = (['tcp', 'http'] as const).flatMap((mode) =>
  [false, true].flatMap((ssl) =>
    (['dev12', '2.6'] as const).flatMap((profile) => {
      const config = makeConfig({ mode, ssl, profile });
      return MACROS.flatMap((type) =>
        (['req', 'rep', 'txn', 'accept'] as const).flatMap((site) =>
          expand(config, { type: type as EffectName, params: { site } }),
        ),
      );
    }),
  ),
);

/** The effect names compose.ts routes to another machine (its `case '<effect>':` labels). */
const routed = [
  ...readFileSync(join(machinesDir, 'compose.ts'), 'utf8').matchAll(/case '([a-z][A-Za-z0-9]*)':/g),
].map((m) => m[1]!);

/** The effect names a mutant emits, if machines/mutants.ts exists: its quoted effect names. */
function mutantEffects(): string[] {
  let text: string;
  try {
    text = readFileSync(join(machinesDir, 'mutants.ts'), 'utf8');
  } catch {
    return [];
  }
  return [...text.matchAll(/'([a-z][A-Za-z0-9]*)'/g)].map((m) => m[1]!).filter((n) => known.has(n));
}

describe('the effect vocabulary', () => {
  it("names every action of every machine's transitions and states in EFFECTS", () => {
    const unknown = used.filter((u) => !known.has(u.effect)).map((u) => `${u.machine}: ${u.effect}`);
    expect(unknown).toEqual([]);
    expect(used.length).toBeGreaterThan(50);
  });

  it('registers in each machine only effects of EFFECTS and its assign actions', () => {
    for (const [name, machine] of Object.entries(MACHINES)) {
      const registered = Object.keys(machine.implementations.actions);
      const unknown = registered.filter((a) => !known.has(a) && !ASSIGNS.includes(a));
      expect(unknown, name).toEqual([]);
    }
  });

  it('keeps the assign actions out of EFFECTS, and they are assigns indeed', () => {
    for (const a of ASSIGNS) expect(known.has(a), a).toBe(false);
    const assigns = Object.values(MACHINES).flatMap((m) =>
      Object.entries(m.implementations.actions)
        .filter(([, impl]) => (impl as { type?: unknown }).type === 'xstate.assign')
        .map(([n]) => n),
    );
    expect(assigns.sort()).toEqual([...ASSIGNS].sort());
  });

  it('expands the session macros into primitives of EFFECTS only, never into another macro', () => {
    const names = [...new Set(expanded.map((x) => x.type))];
    expect(names.filter((n) => !known.has(n) || MACROS.includes(n))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['bufAlloc', 'bufFree', 'listDel']));
  });

  it('routes only effects of EFFECTS in compose.ts', () => {
    expect(routed.length).toBeGreaterThanOrEqual(10);
    expect(routed.filter((n) => !known.has(n))).toEqual([]);
  });

  it('emits every entry of EFFECTS from some machine, macro expansion, route or mutant', () => {
    const emitted = new Set<string>([
      ...used.map((u) => u.effect),
      ...expanded.map((x) => x.type),
      ...routed,
      ...mutantEffects(),
    ]);
    expect([...known].filter((n) => !emitted.has(n))).toEqual([]);
  });

  it('says for every entry what it does and which HAProxy statement it stands for', () => {
    for (const [name, entry] of Object.entries(EFFECTS)) {
      expect(entry.does.length, name).toBeGreaterThan(5);
      expect(entry.haproxy.length, name).toBeGreaterThan(3);
    }
  });
});
