/**
 * The shape every command that acts on one client shares: it finds its client among those the
 * model lets it act on (`pick`, resolve), applies itself to the model, notes what it does, does it
 * on the real side, then waits for both sides to agree. A subclass says which clients it can act on
 * and what it does to each side.
 */
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

/** What one command does to client `id`: its label, and its action on the real side. */
export interface ClientStep {
  label: string;
  real(): unknown; // may return a promise, which run() awaits
}

export abstract class ClientCommand implements ProxyCommand {
  private label = '';

  constructor(readonly pick: number) {}

  /** The client this command acts on in `m`, or null if none can take it. */
  abstract resolve(m: Readonly<ProxyModel>): number | null;

  /**
   * Applies the command to model `m` for client `id` (which resolve() gave) and returns its label
   * and its action on `r`, which run() takes once the label is noted.
   */
  protected abstract step(m: ProxyModel, r: RealSide, id: number): ClientStep;

  /** What the command does, said before it has run. */
  protected abstract describe(): string;

  check(m: Readonly<ProxyModel>): boolean {
    return this.resolve(m) !== null;
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const { label, real } = this.step(m, r, this.resolve(m)!);
    this.label = label;
    r.note(label);
    await real();
    await converge(m, r, label);
  }

  toString(): string {
    return this.label || this.describe();
  }
}
