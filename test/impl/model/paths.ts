/**
 * The machines' paths, translated into scripts for the real proxy (`embryonic cover`).
 *
 * The paths are those of properties/machinePaths.ts (replayedPaths): xstate/graph's shortest path
 * to every state of each machine, under each exploration configuration, extended by every event
 * the machine accepts there, replayed with the machine's own transition function. Paths that take
 * the same transitions are one path here (the configurations and the
 * event params that reach the same transitions run the same on the proxy).
 *
 * A path is translated transition by transition into client actions (connect from a source, send
 * a header, complete or break TLS, half-close, reset, let time pass), allocation failures and a
 * configuration whose settings make the same guards hold. The connection and session machines
 * follow one client; a listener transition comes with the clients it needs (a full bind takes
 * `bind maxconn` of them). A transition that cannot happen on Node is listed with the reason; a
 * path that takes one cannot be executed. A transition that needs the data phase's real-time
 * deadlines is taken by a scenario of realTime.ts instead, and so are the paths through it.
 *
 * A translation is checked twice: by a dry run of the model (the script must make the model take
 * the path), then on the real proxy, from its `--trace` output (the script must make the proxy's
 * machines take it).
 */
import { MACHINES, type MachineName } from '../../../machines/compose.ts';
import { listTransitions } from '../../../machines/introspect.ts';
import { replayedPaths } from '../../../properties/machinePaths.ts';
import { CONFIGS, DEADLINE, type ConfigName, type ScenarioConfig } from './configs.ts';
import { realTimeScenarioOf } from './realTime.ts';
import type { Action, Script } from './script.ts';

/**
 * The transitions that cannot happen on the reference proxy, with the reason. Every other
 * transition of every machine must be executed by at least one real run.
 */
export const IMPOSSIBLE_ON_NODE: Record<string, string> = {
  'listener.ready|ACCEPT_ATTEMPT|4':
    'accept() never fails in JavaScript: libuv handles EMFILE/ENFILE/ENOBUFS/ENOMEM inside its accept loop (it closes the connection with its reserve fd) and reports no per-connection error, so the proxy never sees a failed accept',
  'session.absent|SESSION_ACCEPT|4':
    'fcntl(O_NONBLOCK) is done by libuv when it accepts the socket, before JavaScript sees it; the proxy has no fcntl of its own that could fail',
  'session.embryonic|TASK_WAKEUP|1':
    'the embryonic session task is only ever woken by its deadline timer (timerOnExpire); nothing else in the proxy calls task_wakeup on it',
  'connection.handshake.proxyHeader|PROXY_HEADER_ERROR|1':
    'the PROXY parser only fails with codes that leave unread bytes (PRX_TRUNCATED, PRX_NOT_HDR, PRX_BAD_HDR, PRX_BAD_PROTO); an empty read, a read error and the deadline reach the machine as CLIENT_CLOSE, CLIENT_RESET and TIMEOUT instead',
};

/** One distinct path of one machine: the transitions it takes, and how many generated paths take them. */
export interface MachinePath {
  machine: MachineName;
  transitions: string[];
  generated: number; //  xstate/graph paths (over every exploration configuration) with these transitions
}

/** What became of a path: a script for the real proxy, or why there is none. */
export type Translation =
  | { path: MachinePath; script: Script }
  | { path: MachinePath; impossible: string }
  | { path: MachinePath; realTime: string } // a scenario of realTime.ts takes its last transition
  | { path: MachinePath; untranslated: string };

/**
 * Returns every distinct path of every machine, listener first, each with the number of
 * generated paths it stands for. Deterministic; well under a second.
 */
export function machinePaths(): MachinePath[] {
  const out: MachinePath[] = [];
  for (const machine of ['listener', 'connection', 'session'] as const) {
    const seen = new Map<string, MachinePath>();
    for (const { steps, extensions } of replayedPaths(machine)) {
      const prefix = steps.flatMap((r) => r.transitions);
      for (const r of extensions) {
        const transitions = [...prefix, ...r.transitions];
        const key = transitions.join(' > ');
        const known = seen.get(key);
        if (known) known.generated++;
        else seen.set(key, { machine, transitions, generated: 1 });
      }
    }
    out.push(...[...seen.values()].sort((a, b) => a.transitions.join().localeCompare(b.transitions.join())));
  }
  return out;
}

/** Every transition id of every machine, in document order. */
export function allTransitions(): string[] {
  return (['listener', 'connection', 'session'] as const).flatMap((m) =>
    listTransitions(MACHINES[m]).map((t) => t.id),
  );
}

/** The order configurations are tried in: the first whose settings fit a path runs it. */
const PREFERENCE: ConfigName[] = [
  'pp',
  'ssl',
  'tls',
  'tlsmax',
  'tlsmax26',
  'http',
  'http26',
  'fefull',
  'rate',
  'global',
  'rateglobal',
  'ratefull',
];

type Need = (c: ScenarioConfig) => boolean;

const acceptProxy: Need = (c) => c.model.acceptProxy;
const ssl: Need = (c) => c.model.ssl;
const noHandshake: Need = (c) => !c.model.acceptProxy && !c.model.ssl;
const http: Need = (c) => c.model.mode === 'http';
const raw500: Need = (c) => c.model.mode === 'http' && !c.model.ssl;
const dev12: Need = (c) => c.model.profile === 'dev12';
const logging: Need = (c) => c.model.logging;
const maxsslconn1: Need = (c) => c.model.ssl && c.model.maxsslconn === 1;
const not =
  (n: Need): Need =>
  (c) =>
    !n(c);
const both =
  (a: Need, b: Need): Need =>
  (c) =>
    a(c) && b(c);
const hasSource =
  (src: 'denied' | 'monitor'): Need =>
  (c) =>
    c.sources.includes(src);

/**
 * Returns the translation of `path` into a script for the real proxy: a configuration and the
 * client actions that make the proxy's machines take the path's transitions. Pure.
 */
export function translate(path: MachinePath): Translation {
  const impossible = path.transitions.find((t) => IMPOSSIBLE_ON_NODE[t]);
  if (impossible) return { path, impossible: `${impossible}: ${IMPOSSIBLE_ON_NODE[impossible]}` };
  const scenario = path.transitions.map(realTimeScenarioOf).find((x) => x !== undefined);
  if (scenario) return { path, realTime: `${scenario.name}: ${scenario.what}` };
  return path.machine === 'listener' ? translateListener(path) : translateLife(path);
}

/** The first configuration that satisfies every need, or null. */
function configFor(needs: Need[]): ConfigName | null {
  return PREFERENCE.find((n) => needs.every((need) => need(CONFIGS[n]))) ?? null;
}

/** The client actions that complete client c0's handshake in `c`. */
function completeHandshake(c: ScenarioConfig): Action[] {
  const out: Action[] = [];
  if (c.model.acceptProxy) out.push({ do: 'header', c: 0, kind: 'v1' });
  if (c.model.ssl) out.push({ do: 'tls', c: 0 });
  return out;
}

/** A connection or session path: the life of one client, c0. */
function translateLife(path: MachinePath): Translation {
  const needs: Need[] = [];
  let src: 'plain' | 'denied' | 'monitor' = 'plain';
  let completionFails = false;
  const ts = path.transitions;
  for (const t of ts) {
    switch (t) {
      case 'connection.accepted|START_HANDSHAKE|0':
      case 'connection.handshake.proxyHeader|PROXY_HEADER_ERROR|0':
        needs.push(acceptProxy);
        break;
      case 'connection.accepted|START_HANDSHAKE|1':
        needs.push(not(acceptProxy), ssl);
        break;
      case 'connection.handshake.proxyHeader|PROXY_HEADER_OK|0':
        needs.push(acceptProxy, ssl);
        break;
      case 'connection.handshake.proxyHeader|PROXY_HEADER_OK|1':
        needs.push(acceptProxy, not(ssl));
        break;
      case 'connection.accepted|NO_HANDSHAKE|0':
      case 'session.absent|SESSION_ACCEPT|12':
        needs.push(noHandshake);
        break;
      case 'session.absent|SESSION_ACCEPT|11':
        needs.push(noHandshake);
        completionFails = true;
        break;
      case 'connection.accepted|CLOSE|0':
      case 'session.absent|SESSION_ACCEPT|3':
        src = 'denied';
        needs.push(hasSource('denied'));
        break;
      case 'session.absent|SESSION_ACCEPT|5':
        src = 'monitor';
        needs.push(hasSource('monitor'));
        break;
      case 'session.absent|SESSION_ACCEPT|10':
        needs.push(not(noHandshake), not(ssl));
        break;
      case 'session.absent|SESSION_ACCEPT|9':
        needs.push(ssl);
        break;
      case 'session.absent|SESSION_ACCEPT|8':
        needs.push(ssl, dev12);
        break;
      case 'session.absent|SESSION_ACCEPT|7':
        needs.push(maxsslconn1, dev12);
        break;
      case 'session.absent|SESSION_ACCEPT|1':
        needs.push(ssl, not(dev12));
        break;
      case 'session.absent|SESSION_ACCEPT|0':
        needs.push(maxsslconn1, not(dev12));
        break;
      case 'connection.ready|CLOSE|0':
      case 'connection.error|CLOSE|0':
        needs.push(ssl);
        break;
      case 'connection.ready|CLOSE|1':
      case 'connection.error|CLOSE|1':
        needs.push(not(ssl));
        break;
      case 'connection.handshake.tls|CLIENT_CLOSE|0':
      case 'connection.handshake.tls|CLIENT_RESET|0':
        needs.push(ssl, dev12); // the half-read record counts only with 1.5-dev's OpenSSL rule
        break;
      case 'session.monitored|always|0':
        needs.push(http);
        break;
      case 'session.monitored|always|1':
        needs.push(not(http));
        break;
      case 'session.expired|always|0':
      case 'session.killed|always|0':
        needs.push(logging);
        break;
      case 'session.expired|always|1':
      case 'session.killed|always|1':
        needs.push(not(logging));
        break;
      case 'session.setupFailed|always|0':
        needs.push(raw500);
        if (completionFails) needs.push(dev12);
        break;
      case 'session.setupFailed|always|1':
        needs.push(completionFails ? not(both(raw500, dev12)) : not(raw500));
        break;
      default:
        break;
    }
  }
  const name = configFor(needs);
  if (!name) return { path, untranslated: 'no configuration of test/impl/model/configs.ts fits its guards' };
  const c = CONFIGS[name];
  const before: Action[] = [];
  const after: Action[] = [];
  for (const t of ts) {
    switch (t) {
      case 'session.absent|SESSION_ACCEPT|2':
        before.push({ do: 'fault', site: 'session' });
        break;
      case 'session.absent|SESSION_ACCEPT|6':
        before.push({ do: 'fault', site: 'task' });
        break;
      case 'session.absent|SESSION_ACCEPT|0':
      case 'session.absent|SESSION_ACCEPT|7':
        // Another client holds the one SSL context maxsslconn allows.
        before.push({ do: 'connect', src: 'plain' });
        break;
      case 'session.absent|SESSION_ACCEPT|1':
      case 'session.absent|SESSION_ACCEPT|8':
        before.push({ do: 'fault', site: 'ssl' });
        break;
      case 'session.absent|SESSION_ACCEPT|11':
        before.push({ do: 'fault', site: 'req' });
        break;
      case 'connection.handshake.proxyHeader|PROXY_HEADER_OK|0':
      case 'connection.handshake.proxyHeader|PROXY_HEADER_OK|1':
        after.push({ do: 'header', c: 0, kind: 'v1' });
        break;
      case 'connection.handshake.proxyHeader|PROXY_HEADER_ERROR|0':
        after.push({ do: 'header', c: 0, kind: 'partial' });
        break;
      case 'connection.handshake.tls|CLIENT_CLOSE|0':
        after.push({ do: 'hello-part', c: 0 }, { do: 'halfclose', c: 0 });
        break;
      case 'connection.handshake.tls|CLIENT_RESET|0':
        after.push({ do: 'hello-part', c: 0 }, { do: 'reset', c: 0 });
        break;
      case 'connection.handshake.proxyHeader|CLIENT_CLOSE|0':
      case 'connection.handshake.tls|CLIENT_CLOSE|1':
      case 'connection.ready|CLOSE|0':
      case 'connection.ready|CLOSE|1':
      case 'session.initialized|SESSION_END|0':
        after.push({ do: 'halfclose', c: 0 });
        break;
      case 'connection.handshake.proxyHeader|CLIENT_RESET|0':
      case 'connection.handshake.tls|CLIENT_RESET|1':
        after.push({ do: 'reset', c: 0 });
        break;
      case 'connection.handshake.proxyHeader|TIMEOUT|0':
      case 'connection.handshake.tls|TIMEOUT|0':
      case 'session.embryonic|TASK_WAKEUP|0':
        after.push({ do: 'advance', ms: DEADLINE + 1 });
        break;
      case 'connection.handshake.tls|TLS_OK|0':
        after.push({ do: 'tls', c: 0 });
        break;
      case 'connection.handshake.tls|TLS_ERROR|0':
        after.push({ do: 'garbage', c: 0 });
        break;
      case 'session.embryonic|HANDSHAKE_END|0':
        after.push(c.model.acceptProxy ? { do: 'header', c: 0, kind: 'bad' } : { do: 'garbage', c: 0 });
        break;
      case 'session.embryonic|HANDSHAKE_END|1':
        after.push({ do: 'fault', site: 'req' }, ...completeHandshake(c));
        break;
      case 'session.embryonic|HANDSHAKE_END|2':
        after.push(...completeHandshake(c));
        break;
      default:
        break;
    }
  }
  return { path, script: { config: name, actions: [...before, { do: 'connect', src }, ...after] } };
}

/** A listener path: each transition with the clients and actions that lead the listener to take it. */
function translateListener(path: MachinePath): Translation {
  const needs: Need[] = [];
  const steps: ((c: ScenarioConfig, clients: number) => Action[])[] = [];
  const connect = (n: number): Action[] => Array.from({ length: n }, () => ({ do: 'connect', src: 'plain' }));
  for (const t of path.transitions) {
    switch (t) {
      case 'listener.ready|ACCEPT_ATTEMPT|0':
        needs.push((c) => c.model.maxconnrate !== null);
        steps.push((c) => connect(c.model.maxconnrate! + 1));
        break;
      case 'listener.ready|ACCEPT_ATTEMPT|1':
        needs.push((c) => c.model.rateLimitSessions === 1 && c.model.acceptProxy && !c.model.ssl);
        // 10 ms into the rate's period: the frontend's task, 999 ms after the limit (dev12's
        // next_event_delay at a rate of 1), then looks after the period, not just before its end.
        steps.push(() => [
          ...connect(1),
          { do: 'header', c: 0, kind: 'v1' },
          { do: 'advance', ms: 10 },
          ...connect(1),
        ]);
        break;
      case 'listener.ready|ACCEPT_ATTEMPT|2':
        needs.push((c) => c.model.globalMaxconn < c.model.feMaxconn);
        steps.push((c) => connect(c.model.globalMaxconn + 1));
        break;
      case 'listener.ready|ACCEPT_ATTEMPT|3':
        needs.push((c) => c.model.bindMaxconn === null || c.model.feMaxconn < c.model.bindMaxconn);
        steps.push((c) => connect(c.model.feMaxconn + 1));
        break;
      case 'listener.ready|ACCEPT_ATTEMPT|5':
      case 'listener.ready|ACCEPT_RETURNED|3':
        steps.push(() => connect(1));
        break;
      case 'listener.ready|ACCEPT_RETURNED|0':
        steps.push(() => [{ do: 'fault', site: 'session' }, ...connect(1)]);
        break;
      case 'listener.ready|ACCEPT_RETURNED|1':
        needs.push(hasSource('denied'));
        steps.push(() => [{ do: 'connect', src: 'denied' }]);
        break;
      case 'listener.ready|ACCEPT_RETURNED|2':
        needs.push((c) => c.bindMaxconn !== null && c.bindMaxconn <= c.model.feMaxconn);
        steps.push((c) => connect(c.bindMaxconn!));
        break;
      case 'listener.full|RESUME|0':
        steps.push(() => [{ do: 'reset', c: 0 }]);
        break;
      case 'listener.limited.onGlobalQueue|DEQUEUE_GLOBAL|0':
        // The global task fires while the connections accepted before the limit still hold every
        // global slot (they stay embryonic far longer than a second).
        needs.push((c) => c.model.globalMaxconn <= (c.model.maxconnrate ?? Infinity));
        steps.push(() => [{ do: 'advance', ms: 1000 }]);
        break;
      case 'listener.limited.onFrontendQueue|DEQUEUE_FRONTEND|0':
        // The frontend's task fires while the session that spent the rate still fills the frontend.
        needs.push((c) => c.model.feMaxconn <= 1);
        steps.push(() => [{ do: 'advance', ms: 1000 }]);
        break;
      case 'listener.limited.onGlobalQueue|DEQUEUE_GLOBAL|1':
      case 'listener.limited.onFrontendQueue|DEQUEUE_FRONTEND|2':
        steps.push(() => [{ do: 'advance', ms: 1000 }]);
        break;
      case 'listener.limited.onFrontendQueue|DEQUEUE_FRONTEND|1':
        // The session completed this second ends while the rate still has no budget.
        steps.push(() => [{ do: 'halfclose', c: 0 }]);
        break;
      default:
        return { path, untranslated: `no listener recipe for ${t}` };
    }
  }
  const name = configFor(needs);
  if (!name) return { path, untranslated: 'no configuration of test/impl/model/configs.ts fits its guards' };
  const actions: Action[] = [];
  for (const step of steps)
    actions.push(...step(CONFIGS[name], actions.filter((a) => a.do === 'connect').length));
  return { path, script: { config: name, actions } };
}

/**
 * True iff `path` is realized by `lives`, the transitions each machine instance took in a run:
 * a connection or session path must be the beginning of one client's life, a listener path a
 * consecutive part of the listener's. Pure.
 */
export function realizes(
  path: MachinePath,
  lives: { listener: string[]; conns: Iterable<{ connection: string[]; session: string[] }> },
): boolean {
  const p = path.transitions;
  if (path.machine === 'listener') {
    const l = lives.listener;
    for (let i = 0; i + p.length <= l.length; i++) if (p.every((t, j) => l[i + j] === t)) return true;
    return false;
  }
  for (const life of lives.conns) {
    const seq = life[path.machine as 'connection' | 'session'];
    if (p.length <= seq.length && p.every((t, j) => seq[j] === t)) return true;
  }
  return false;
}
