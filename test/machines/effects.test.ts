/**
 * The effect vocabulary is closed both ways: every effect a machine emits (on a transition, on
 * entering or leaving a state, or through a macro) is named in EFFECTS, and every entry
 * of EFFECTS is emitted by some machine, routed by compose.ts, or emitted by a mutant. The assign
 * actions (context updates) are not effects and stay out of it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { describe, expect, it } from 'vitest';
import { PROFILES } from '../../conformance/predict.ts';
import { expandEffect, MACHINES } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import {
  EFFECTS,
  isMacroEffect,
  macroOwner,
  type Effect,
  type EffectName,
  type MacroEffectName,
} from '../../machines/effects.ts';
import { actionName, listTransitions } from '../../machines/introspect.ts';
import { MUTANTS } from '../../machines/mutants.ts';
import { expandListenerEffect } from '../../machines/listener.machine.ts';
import { expandSessionEffect } from '../../machines/session.machine.ts';

/** The machines' assign actions: context updates, never executed by a host. */
const ASSIGNS = ['setErrCode', 'setErrCodeFromEvent', 'setRet', 'keepConnErrCode'];
/** The macros, expanded into primitives before any host sees them: the entries EFFECTS gives an owner. */
const MACROS = (Object.keys(EFFECTS) as EffectName[]).filter(isMacroEffect);
/** Each machine's expander, as its module exports it. */
const EXPANDERS = { session: expandSessionEffect, listener: expandListenerEffect } as const;

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

/** Every configuration an expansion depends on: tcp and http mode, a raw and a TLS transport, each profile. */
const CONFIGS: ModelConfig[] = (['tcp', 'http'] as const).flatMap((mode) =>
  [false, true].flatMap((ssl) => PROFILES.map((profile) => makeConfig({ mode, ssl, profile }))),
);
const SITES = ['req', 'rep', 'txn', 'accept'] as const;

/** Every primitive a macro expands into (expandEffect), under every configuration, for every failure site. */
const expanded: Effect[] = CONFIGS.flatMap((config) =>
  MACROS.flatMap((type) => SITES.flatMap((site) => expandEffect(config, { type, params: { site } }))),
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

  it('expands the macros into primitives of EFFECTS only, never into another macro', () => {
    const names = [...new Set(expanded.map((x) => x.type))];
    expect(names.filter((n) => !known.has(n) || isMacroEffect(n))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['bufAlloc', 'bufFree', 'listDel', 'jobsInc']));
  });

  it('marks as macros exactly the effects an expander changes, each with the machine whose expander does', () => {
    const changedBy = (name: EffectName): string[] =>
      Object.entries(EXPANDERS)
        .filter(([, expand]) =>
          CONFIGS.some((config) =>
            SITES.some((site) => {
              const effect: Effect = { type: name, params: { site } };
              const out = expand(config, effect);
              return out.length !== 1 || out[0] !== effect;
            }),
          ),
        )
        .map(([machine]) => machine);
    const owners = Object.fromEntries((Object.keys(EFFECTS) as EffectName[]).map((n) => [n, changedBy(n)]));
    expect(owners).toEqual(
      Object.fromEntries(
        (Object.keys(EFFECTS) as EffectName[]).map((n) => [n, isMacroEffect(n) ? [macroOwner(n)] : []]),
      ),
    );
    expect(MACROS.length).toBeGreaterThanOrEqual(10);
  });

  it('uses each macro only in the machine that owns it, mutants included, and calls it a macro in its description', () => {
    // The machines a mutant switches in for a machine of the composition, under every configuration.
    const mutantUsed = MUTANTS.flatMap((m) =>
      CONFIGS.flatMap((config) =>
        Object.entries(m.defect(config).machines ?? {}).flatMap(([name, machine]) =>
          [...listTransitions(machine).flatMap((t) => t.actions), ...stateActions(machine)].map((a) => ({
            machine: name,
            effect: a,
          })),
        ),
      ),
    );
    expect(mutantUsed.length).toBeGreaterThan(0);
    const misplaced = [...used, ...mutantUsed]
      .filter((u) => known.has(u.effect) && isMacroEffect(u.effect as EffectName))
      .filter((u) => u.machine !== macroOwner(u.effect as MacroEffectName))
      .map((u) => `${u.machine}: ${u.effect}`);
    expect(misplaced).toEqual([]);
    for (const [name, entry] of Object.entries(EFFECTS))
      expect(entry.does.startsWith('macro:'), name).toBe(isMacroEffect(name as EffectName));
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
