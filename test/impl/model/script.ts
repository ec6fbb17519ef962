/**
 * Fixed scenarios: a script of client actions as data (naming its clients c0, c1, ... in connect
 * order), turned into the same commands the random scenarios run, so that a script is checked
 * exactly as a random run is. The transition coverage (cli/cover.ts) and the fault-injection
 * matrix are scripts.
 */
import { AdvanceClockCommand } from './AdvanceClockCommand.ts';
import type { BackendMode } from './backend.ts';
import { BackendModeCommand } from './BackendModeCommand.ts';
import type { ClientCommand } from './ClientCommand.ts';
import type { ConfigName, ScenarioConfig } from './configs.ts';
import { ConnectCommand } from './ConnectCommand.ts';
import { HalfCloseCommand } from './HalfCloseCommand.ts';
import { InjectFaultCommand } from './InjectFaultCommand.ts';
import { ModelError, ProxyModel, type AllocSite, type HeaderKind, type ProxyCommand } from './ProxyModel.ts';
import { beginRun, disposeRun, finishRun, type ProxyUnderTest, type RealSide } from './RealSide.ts';
import { ResetCommand } from './ResetCommand.ts';
import { SendDataCommand } from './SendDataCommand.ts';
import { SendHeaderCommand } from './SendHeaderCommand.ts';
import { TlsGarbageCommand } from './TlsGarbageCommand.ts';
import { TlsPartialHelloCommand } from './TlsPartialHelloCommand.ts';
import { TlsHandshakeCommand } from './TlsHandshakeCommand.ts';

/** One client action of a script. `c` names a client by its connect order. */
export type Action =
  | { do: 'connect'; src: 'plain' | 'denied' | 'monitor' }
  | { do: 'header'; c: number; kind: HeaderKind }
  | { do: 'tls'; c: number }
  | { do: 'garbage'; c: number }
  | { do: 'hello-part'; c: number }
  | { do: 'data'; c: number }
  | { do: 'halfclose'; c: number }
  | { do: 'reset'; c: number }
  | { do: 'advance'; ms: number }
  | { do: 'fault'; site: AllocSite }
  | { do: 'backend'; mode: BackendMode };

/** A script: the configuration it runs on and its actions. */
export interface Script {
  config: ConfigName;
  actions: Action[];
}

/**
 * Returns the command for `action` in model `m` (for a client action, the command whose pick
 * resolves to that client), or null if the action cannot happen in `m`. Pure.
 */
export function commandFor(m: Readonly<ProxyModel>, action: Action): ProxyCommand | null {
  const targeted = (make: (pick: number) => ClientCommand, c: number): ProxyCommand | null => {
    for (let pick = 0; pick < m.clients.length; pick++) {
      const cmd = make(pick);
      const id = cmd.resolve(m);
      if (id === null) return null;
      if (id === c) return cmd;
    }
    return null;
  };
  let cmd: ProxyCommand | null;
  switch (action.do) {
    case 'connect':
      cmd = new ConnectCommand(action.src);
      break;
    case 'header':
      return targeted((p) => new SendHeaderCommand(p, action.kind), action.c);
    case 'tls':
      return targeted((p) => new TlsHandshakeCommand(p), action.c);
    case 'garbage':
      return targeted((p) => new TlsGarbageCommand(p), action.c);
    case 'hello-part':
      return targeted((p) => new TlsPartialHelloCommand(p), action.c);
    case 'data':
      return targeted((p) => new SendDataCommand(p, 8), action.c);
    case 'halfclose':
      return targeted((p) => new HalfCloseCommand(p), action.c);
    case 'reset':
      return targeted((p) => new ResetCommand(p), action.c);
    case 'advance':
      cmd = new AdvanceClockCommand(action.ms);
      break;
    case 'fault':
      cmd = new InjectFaultCommand(action.site);
      break;
    case 'backend':
      cmd = new BackendModeCommand(action.mode);
      break;
  }
  return cmd.check(m) ? cmd : null;
}

/**
 * Runs `actions` on the model alone, as a dry run: returns the model afterwards, or throws a
 * ModelError naming the first action that cannot happen. The real side is never touched.
 */
export function dryRun(config: ScenarioConfig, actions: readonly Action[], maxClients = 6): ProxyModel {
  const m = new ProxyModel(config, maxClients, 0);
  for (const a of actions) {
    if (!commandFor(m, a)) throw new ModelError(`cannot ${describeAction(a)} now`);
    applyToModel(m, a);
  }
  return m;
}

/** Applies `action` to the model only (what the command's run does to it). */
function applyToModel(m: ProxyModel, a: Action): void {
  switch (a.do) {
    case 'connect':
      m.connect(a.src);
      return;
    case 'header':
      m.header(a.c, a.kind);
      return;
    case 'tls':
      m.tlsHandshake(a.c);
      return;
    case 'garbage':
      m.tlsGarbage(a.c);
      return;
    case 'hello-part':
      m.tlsPartialHello(a.c);
      return;
    case 'data':
      m.data(a.c, 'x'.repeat(8));
      return;
    case 'halfclose':
      m.close(a.c, 'fin');
      return;
    case 'reset':
      m.close(a.c, 'rst');
      return;
    case 'advance':
      m.advance(a.ms);
      return;
    case 'fault':
      m.injectFault(a.site);
      return;
    case 'backend':
      m.setBackend(a.mode);
      return;
  }
}

/**
 * Runs `actions` on `put` as one run (begin, each action as its command with its checks, finish).
 * Resolves with the model and the real side once every check passed; rejects with the first
 * failure (a ScenarioFailure, or a ModelError for an action that cannot happen).
 */
export async function runScript(
  put: ProxyUnderTest,
  actions: readonly Action[],
  maxClients = 6,
): Promise<{ model: ProxyModel; real: RealSide }> {
  await spendFaults(put);
  const { model, real } = await beginRun(put, maxClients);
  try {
    for (const a of actions) {
      const cmd = commandFor(model, a);
      if (!cmd) throw new ModelError(`cannot ${describeAction(a)} now:\n${real.formatScript()}`);
      await cmd.run(model, real);
    }
    await finishRun(model, real);
    return { model, real };
  } finally {
    disposeRun(real);
  }
}

/**
 * Makes the allocation failures still injected on `put` (left by an earlier run) happen, in runs
 * of their own, so that a script starts with none: a client connects and completes its handshake,
 * which reaches every allocation site in order, until none is left. Checked like any run.
 */
export async function spendFaults(put: ProxyUnderTest): Promise<void> {
  for (let i = 0; i < 8; i++) {
    const { model, real } = await beginRun(put, 6);
    try {
      if (model.armed.size === 0) return;
      const c = model.clients.length;
      const steps: ((m: ProxyModel) => Action | null)[] = [
        () => ({ do: 'connect', src: 'plain' }),
        (m) => (m.connState(c) === 'handshake.proxyHeader' ? { do: 'header', c, kind: 'v1' } : null),
        (m) => (m.connState(c) === 'handshake.tls' ? { do: 'tls', c } : null),
      ];
      for (const step of steps) {
        const a = step(model);
        if (!a) continue;
        const cmd = commandFor(model, a);
        if (!cmd) throw new ModelError(`cannot ${describeAction(a)} to spend the injected failures`);
        await cmd.run(model, real);
      }
      await finishRun(model, real);
    } finally {
      disposeRun(real);
    }
  }
  throw new Error(`the injected failures of ${put.config.name} could not be spent`);
}

/** How a script says `a`. Pure. */
export function describeAction(a: Action): string {
  switch (a.do) {
    case 'connect':
      return `connect from a ${a.src} source`;
    case 'header':
      return `c${a.c}: send a ${a.kind} header`;
    case 'tls':
      return `c${a.c}: complete TLS`;
    case 'garbage':
      return `c${a.c}: send garbage in TLS`;
    case 'hello-part':
      return `c${a.c}: send part of a ClientHello record`;
    case 'data':
      return `c${a.c}: send data`;
    case 'halfclose':
      return `c${a.c}: half-close`;
    case 'reset':
      return `c${a.c}: reset`;
    case 'advance':
      return `let ${a.ms} ms pass`;
    case 'fault':
      return `fail the next ${a.site} allocation`;
    case 'backend':
      return `backend ${a.mode}`;
  }
}
