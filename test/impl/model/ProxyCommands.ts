/**
 * The commands of a real-proxy scenario for one configuration: every client action the
 * configuration allows, as fast-check arbitraries of ProxyCommand (fc.commands).
 */
import fc from 'fast-check';
import { AdvanceClockCommand } from './AdvanceClockCommand.ts';
import { BACKEND_MODES } from './backend.ts';
import { BackendModeCommand } from './BackendModeCommand.ts';
import { BurstCommand } from './BurstCommand.ts';
import { DEADLINE, type ScenarioConfig } from './configs.ts';
import { ConnectCommand } from './ConnectCommand.ts';
import { HalfCloseCommand } from './HalfCloseCommand.ts';
import { InjectFaultCommand } from './InjectFaultCommand.ts';
import { ALLOC_SITES, type ProxyCommand } from './ProxyModel.ts';
import { ResetCommand } from './ResetCommand.ts';
import { SendDataCommand } from './SendDataCommand.ts';
import { SendHeaderCommand } from './SendHeaderCommand.ts';
import { TlsGarbageCommand } from './TlsGarbageCommand.ts';
import { TlsPartialHelloCommand } from './TlsPartialHelloCommand.ts';
import { TlsHandshakeCommand } from './TlsHandshakeCommand.ts';

/** How many clients a scenario may open at most. */
export const MAX_CLIENTS = 6;

/** The time steps a scenario lets pass: a queue task's retry, a rate period, past the deadline. */
export const TIME_STEPS = [100, 1000, DEADLINE + 1] as const;

/** Returns the arbitrary of scenarios for `config`: up to `maxCommands` client actions. */
export function commandsFor(
  config: ScenarioConfig,
  maxCommands: number,
): fc.Arbitrary<Iterable<ProxyCommand>> {
  const pick = fc.nat({ max: MAX_CLIENTS - 1 });
  const source = fc.constantFrom(...config.sources);
  const arbs: fc.Arbitrary<ProxyCommand>[] = [
    source.map((s) => new ConnectCommand(s)),
    source.map((s) => new ConnectCommand(s)),
    fc
      .tuple(fc.array(source, { minLength: 2, maxLength: 4 }), fc.scheduler())
      .map(([sources, s]) => new BurstCommand(sources, s)),
    fc.tuple(pick, fc.integer({ min: 1, max: 64 })).map(([p, n]) => new SendDataCommand(p, n)),
    pick.map((p) => new HalfCloseCommand(p)),
    pick.map((p) => new ResetCommand(p)),
    fc.constantFrom(...TIME_STEPS).map((ms) => new AdvanceClockCommand(ms)),
    fc.constantFrom(...ALLOC_SITES).map((site) => new InjectFaultCommand(site)),
    fc.constantFrom(...BACKEND_MODES).map((mode) => new BackendModeCommand(mode)),
  ];
  if (config.model.acceptProxy) {
    const kinds = fc.constantFrom('v1', 'v2', 'local', 'partial', 'bad' as const);
    arbs.push(fc.tuple(pick, kinds).map(([p, k]) => new SendHeaderCommand(p, k)));
    arbs.push(
      fc.tuple(pick, fc.constantFrom('v1', 'v2' as const)).map(([p, k]) => new SendHeaderCommand(p, k)),
    );
  }
  if (config.model.ssl) {
    arbs.push(pick.map((p) => new TlsHandshakeCommand(p)));
    arbs.push(pick.map((p) => new TlsHandshakeCommand(p)));
    arbs.push(pick.map((p) => new TlsGarbageCommand(p)));
    arbs.push(pick.map((p) => new TlsPartialHelloCommand(p)));
  }
  return fc.commands(arbs, { maxCommands, size: 'max' });
}
