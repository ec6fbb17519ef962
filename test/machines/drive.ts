/**
 * What the per-machine example tests (test/machines/*.machine.test.ts) share: where a transition
 * starts, and driving one fresh machine along a path to the step under test.
 */
import { MACHINES, MachineRunner, type CachedStep, type MachineName } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';

/** Returns the dotted state a transition id starts from: 'session.embryonic|X|0' → 'embryonic'. Pure. */
export function sourceOf(id: string): string {
  return id.split('|')[0]!.split('.').slice(1).join('.');
}

/**
 * Drives a fresh `name` machine under `config` through `path`, then steps `event`. Returns the
 * state it stepped from, the step, the state it reached, and the runner (to read the snapshot).
 * Throws if an event of the path is not accepted (the path does not reach what it claims).
 */
export function drive(
  name: MachineName,
  config: Partial<ModelConfig>,
  path: readonly { type: string }[],
  event: { type: string },
): { source: string; step: CachedStep; target: string; runner: MachineRunner } {
  const runner = new MachineRunner(name, MACHINES[name], makeConfig(config));
  let id = runner.initial();
  for (const ev of path) {
    const s = runner.step(id, ev);
    if (s.transitions.length === 0) throw new Error(`${ev.type} is not accepted in ${runner.value(id)}`);
    id = s.next;
  }
  const source = runner.value(id);
  const step = runner.step(id, event);
  return { source, step, target: runner.value(step.next), runner };
}
