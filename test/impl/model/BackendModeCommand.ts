/** The backend changes what it does with the streams that reach it from now on. */
import type { BackendMode } from './backend.ts';
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

const SAYS: Record<BackendMode, string> = {
  echo: 'the backend echoes',
  reset: 'the backend resets on the first bytes',
  close: 'the backend closes at once',
  refuse: 'the backend refuses connections',
};

export class BackendModeCommand implements ProxyCommand {
  constructor(readonly mode: BackendMode) {}

  check(m: Readonly<ProxyModel>): boolean {
    return m.backendMode !== this.mode;
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
