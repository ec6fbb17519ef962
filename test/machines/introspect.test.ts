import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../../machines/compose.ts';
import { listStates, listTransitions } from '../../machines/introspect.ts';

const shared = join(import.meta.dirname, '../../../shared');
const sources = [
  readFileSync(join(shared, 'seed/embryonic-sessions.diff'), 'utf8'),
  readFileSync(join(shared, 'reference/haproxy-history.md'), 'utf8'),
].join('\n');

/** HAProxy identifiers named in a meta.haproxy text: C functions, flags, error codes, fields. */
function identifiers(text: string): string[] {
  return [...text.matchAll(/[A-Za-z_][A-Za-z0-9_]*(?:->[a-z_]+)?/g)]
    .map((m) => m[0])
    .filter((w) => w.includes('_') || w.includes('->'));
}

describe('the machines as data', () => {
  it.each(Object.keys(MACHINES))(
    'gives every state and transition of %s a description and a meta.haproxy',
    (name) => {
      const machine = MACHINES[name as keyof typeof MACHINES];
      expect(listStates(machine).length).toBeGreaterThan(0);
      expect(listTransitions(machine).length).toBeGreaterThan(0);
    },
  );

  it.each(Object.keys(MACHINES))(
    'traces every state and transition of %s to a function named in the seed or haproxy-history.md',
    (name) => {
      const machine = MACHINES[name as keyof typeof MACHINES];
      const untraced = [...listStates(machine), ...listTransitions(machine)]
        .filter((x) => !identifiers(x.meta.haproxy).some((id) => sources.includes(id.split('->')[0]!)))
        .map((x) => `${x.id}: ${x.meta.haproxy}`);
      expect(untraced).toEqual([]);
    },
  );

  it('has the six states the users named', () => {
    const ids = Object.values(MACHINES).flatMap((m) => listStates(m).map((s) => s.path[s.path.length - 1]));
    for (const state of ['accepted', 'handshake', 'embryonic', 'initialized', 'error', 'expired'])
      expect(ids).toContain(state);
  });

  it('names events in UPPER_SNAKE and states in camelCase', () => {
    for (const m of Object.values(MACHINES)) {
      for (const s of listStates(m)) expect(s.path[s.path.length - 1]).toMatch(/^[a-z][a-zA-Z0-9]*$/);
      for (const t of listTransitions(m)) expect(t.event).toMatch(/^([A-Z][A-Z0-9_]*|always)$/);
    }
  });

  it('keeps machines/ free of imports from impl/ and from Node', () => {
    const dir = join(import.meta.dirname, '../../machines');
    const offending = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) =>
        [...readFileSync(join(dir, f), 'utf8').matchAll(/from ['"]([^'"]+)['"]/g)]
          .map((m) => m[1]!)
          .filter(
            (spec) =>
              spec.startsWith('node:') || spec.includes('/impl/') || ['net', 'tls', 'fs'].includes(spec),
          )
          .map((spec) => `${f}: ${spec}`),
      );
    expect(offending).toEqual([]);
  });
});
