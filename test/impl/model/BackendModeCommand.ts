/**
 * The backend changes what it does with the streams that reach it from now on; it does not start
 * refusing while a client's reset waits in the backlog where the stream starts at accept.
 */
import type { BackendMode } from './backend.ts';
import { converge, type RealSide } from './RealSide.ts';
import { resetMeetsRefusal, type ProxyCommand, type ProxyModel } from './ProxyModel.ts';

const SAYS: Record<BackendMode, string> = {
  echo: 'the backend echoes',
  reset: 'the backend resets on the first bytes',
  close: 'the backend closes at once',
  refuse: 'the backend refuses connections',
};

export class BackendModeCommand implements ProxyCommand {
  constructor(readonly mode: BackendMode) {}

  /**
   * True iff the mode changes, and no client waits in the backlog with a reset that would then meet
   * a refusal at accept (resetMeetsRefusal: whether the proxy counts it is not the client's to know).
   */
  check(m: Readonly<ProxyModel>): boolean {
    return (
      m.backendMode !== this.mode &&
      !m.clients.some((c) => c.pending.includes('rst') && resetMeetsRefusal(m, c.id, this.mode))
    );
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    m.setBackend(this.mode);
    r.note(SAYS[this.mode]);
    await r.put.backend.setMode(this.mode);
    await converge(m, r, SAYS[this.mode]);
  }

  toString(): string {
    return SAYS[this.mode];
  }
}
