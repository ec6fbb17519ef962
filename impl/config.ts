/**
 * The haproxy.cfg subset the reference proxy understands, parsed into a typed configuration, and
 * its mapping onto the machines' ModelConfig.
 *
 * The parser follows HAProxy's syntax for every keyword it accepts, so that the same file runs
 * under `haproxy -f` and `embryonic proxy -f`. It never ignores a line: a keyword it does not
 * support, a malformed argument, or a keyword HAProxy itself rejects in the chosen profile is an
 * error that names file:line. Warnings (HAProxy's own, such as "log format ignored ... no log
 * address") are collected for the caller to print.
 *
 * Supported:
 *   global    maxconn N · nbthread 1 · stats socket PATH [mode OCTAL] [level admin|operator|user]
 *             · log stdout|stderr [format raw|rfc3164] FACILITY [LEVEL [MINLEVEL]]
 *             · maxconnrate N · maxsslconn N · tune.bufsize N
 *   defaults, frontend, backend, listen (where HAProxy allows each keyword)
 *             mode tcp|http · timeout client|client-hs|connect|server TIME · log global
 *             · option tcplog|httplog|dontlognull|socket-stats · maxconn N · rate-limit sessions N
 *             · bind ADDR:PORT [accept-proxy] [ssl crt FILE] [maxconn N] [name NAME] [proxy-tolerant]
 *             · tcp-request connection reject if { src CIDR ... } · monitor-net CIDR (dev12 only)
 *             · default_backend NAME · use_backend NAME (unconditional) · server NAME HOST:PORT
 *
 * Non-HAProxy extensions, documented: `proxy-tolerant` on a bind (tolerant PROXY header reading,
 * impl/handshake.ts), and port 0 on a bind (the system picks a free port; tests use it).
 *
 * One frontend (a `frontend`, or a `listen` with a `bind`) with one `bind`: the machines model one
 * listener (ModelConfig), so a second one is rejected with an error rather than half-supported.
 */
import { readFileSync } from 'node:fs';
import { parseCidr, type Cidr } from '../machines/acl.ts';
import { makeConfig, type ModelConfig, type Profile } from '../machines/config.ts';

/** The sections embryonic reads. */
const SECTIONS = ['global', 'defaults', 'frontend', 'backend', 'listen'];

/** HAProxy's other section keywords: each is refused as a section, not as a keyword of the one before. */
const UNSUPPORTED_SECTIONS = [
  'resolvers',
  'peers',
  'userlist',
  'program',
  'http-errors',
  'ring',
  'cache',
  'mailers',
  'fcgi-app',
  'log-forward',
  'crt-store',
  'traces',
];

/**
 * A configuration error: `file:line: message`, as HAProxy's "parsing [file:line] : ..." alerts; line
 * 0 is the file as a whole (unreadable, or no frontend in it at all).
 */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
  }
}

/** `stats socket` in global. */
export interface StatsSocketConfig {
  path: string; //    the unix socket path
  mode: number; //    file mode of the socket (default 0o600)
  level: 'admin' | 'operator' | 'user';
}

/** One `log` target in global. */
export interface LogTarget {
  to: 'stdout' | 'stderr';
  format: 'raw' | 'rfc3164';
  facility: number; //  syslog facility number (local0 = 16)
  maxLevel: number; //  syslog severity: lines above it (less severe) are dropped; info = 6
}

export interface GlobalConfig {
  maxconn: number; //             global.maxconn (DEFAULT_GLOBAL_MAXCONN when unset)
  maxconnExplicit: boolean; //    set in the file
  stats: StatsSocketConfig | null;
  logs: LogTarget[];
  maxconnrate: number | null; //  global.cps_lim; null = no limit
  maxsslconn: number | null; //   global.maxsslconn; null (or 0, as HAProxy reads it) = no limit
  bufsize: number; //             tune.bufsize (16384 by default)
}

/** The timeouts of a proxy section, in ms; null = unset. */
export interface Timeouts {
  client: number | null;
  clientHs: number | null;
  connect: number | null;
  server: number | null;
}

/** One `bind` line. */
export interface BindConfig {
  host: string; //           the address to listen on ('0.0.0.0' for ':PORT' and '*:PORT')
  port: number; //           0 = any free port (extension)
  acceptProxy: boolean; //   accept-proxy
  ssl: { crt: string; pem: Buffer } | null; // ssl crt FILE, with the file's content
  maxconn: number | null; // bind maxconn; null = none given: the frontend's in dev12, no limit in 2.x (HAProxy shows slim 0)
  name: string | null; //    name NAME; null = unnamed ("sock-1" in stats, "1" in logs)
  tolerant: boolean; //      proxy-tolerant (extension)
  line: number;
}

/** One `server` line. */
export interface ServerConfig {
  name: string;
  host: string;
  port: number;
  line: number;
}

/** A backend: a `backend` section, or the backend half of a `listen`. */
export interface BackendConfig {
  name: string;
  mode: 'tcp' | 'http';
  timeouts: Timeouts;
  servers: ServerConfig[];
  line: number;
  index: number; // order of declaration among proxies (HAProxy's iid is index + 2)
}

/** The frontend: a `frontend` section, or the frontend half of a `listen`. */
export interface FrontendConfig {
  name: string;
  kind: 'frontend' | 'listen';
  mode: 'tcp' | 'http';
  timeouts: Timeouts;
  bind: BindConfig;
  maxconn: number; //                frontend maxconn (global maxconn when unset, as HAProxy 2.6)
  rateLimitSessions: number | null;
  logging: boolean; //               p->to_log != 0: tcplog/httplog with a log address
  dontlognull: boolean;
  socketStats: boolean; //           option socket-stats: listener rows in `show stat`
  rejects: Cidr[]; //                tcp-request connection reject if { src ... }
  monitors: Cidr[]; //               monitor-net
  backend: string; //                the backend its sessions go to
  line: number;
  index: number;
}

/** The whole configuration. */
export interface ProxyConfig {
  file: string;
  profile: Profile;
  global: GlobalConfig;
  frontend: FrontendConfig;
  backends: BackendConfig[]; // every backend, `listen` sections included, in declaration order
  warnings: string[]; //       HAProxy-style warnings, for the caller to print
}

/** global maxconn when the file sets none (HAProxy derives it from `ulimit -n`; see the README). */
export const DEFAULT_GLOBAL_MAXCONN = 4096;

/** HAProxy's default tune.bufsize. */
export const DEFAULT_BUFSIZE = 16384;

const FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'auth2',
  'ftp',
  'ntp',
  'audit',
  'alert',
  'cron2',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
];
const LEVELS = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

type SectionKind = 'global' | 'defaults' | 'frontend' | 'backend' | 'listen';

/** What a proxy section (or defaults) sets; unset fields inherit from defaults. */
interface ProxySection {
  kind: Exclude<SectionKind, 'global'>;
  name: string;
  line: number;
  mode?: 'tcp' | 'http';
  timeouts: Partial<Timeouts>;
  tcplog?: boolean;
  httplog?: boolean;
  dontlognull?: boolean;
  socketStats?: boolean;
  logGlobal?: boolean;
  maxconn?: number;
  rateLimitSessions?: number;
  defaultBackend?: { name: string; line: number };
  useBackend?: { name: string; line: number };
  binds: BindConfig[];
  rejects: Cidr[];
  monitors: Cidr[];
  servers: ServerConfig[];
}

/**
 * Reads and parses the configuration file at `path` for `profile`.
 * Returns the configuration; throws a ConfigError naming file:line for any line it cannot
 * honour, or (line 0) when the file cannot be read. Reads the `crt` files it names.
 */
export function loadConfig(path: string, profile: Profile = 'dev12'): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, 0, `cannot read the configuration: ${(err as Error).message}`);
  }
  return parseConfig(text, path, profile);
}

/**
 * Parses configuration `text` (named `file` in errors) for `profile`.
 * Returns the configuration; throws a ConfigError naming file:line for an unsupported or
 * malformed line, for a keyword the profile's HAProxy rejects, and for a configuration without
 * exactly one frontend with one bind and a backend with a server. Reads the `crt` files it names
 * through `readCrt` (the file system unless given; a caller that holds the certificate's bytes
 * already, such as the conformance suite predicting from its own config, passes them).
 */
export function parseConfig(
  text: string,
  file: string,
  profile: Profile = 'dev12',
  readCrt: (path: string) => Buffer = readFileSync,
): ProxyConfig {
  const fail = (line: number, reason: string): never => {
    throw new ConfigError(file, line, reason);
  };
  const global: GlobalConfig = {
    maxconn: DEFAULT_GLOBAL_MAXCONN,
    maxconnExplicit: false,
    stats: null,
    logs: [],
    maxconnrate: null,
    maxsslconn: null,
    bufsize: DEFAULT_BUFSIZE,
  };
  let defaults: ProxySection = emptySection('defaults', '', 0);
  const proxies: ProxySection[] = [];
  let current: ProxySection | 'global' | null = null;
  const names = new Map<string, number>();

  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const words = tokenize(raw, line, fail);
    if (words.length === 0) return;
    const [kw, ...args] = words as [string, ...string[]];

    if (UNSUPPORTED_SECTIONS.includes(kw))
      fail(line, `unsupported section '${kw}' (embryonic supports ${SECTIONS.join(', ')})`);
    if (SECTIONS.includes(kw)) {
      if (kw === 'global') {
        if (args.length > 0) fail(line, `'global' takes no argument`);
        current = 'global';
        return;
      }
      const kind = kw as ProxySection['kind'];
      if (kind === 'defaults') {
        if (args.length > 1) fail(line, `'defaults' takes at most one name`);
        defaults = emptySection('defaults', args[0] ?? '', line);
        current = defaults;
        return;
      }
      if (args.length !== 1) fail(line, `'${kw}' needs exactly one name`);
      const name = args[0]!;
      if (!/^[A-Za-z0-9_.:-]+$/.test(name)) fail(line, `invalid name '${name}' for ${kw}`);
      const previous = names.get(name);
      if (previous !== undefined)
        fail(line, `${kw} '${name}' has the same name as the proxy at line ${previous}`);
      names.set(name, line);
      const section = inherit(defaults, kind, name, line);
      proxies.push(section);
      current = section;
      return;
    }
    if (current === null) fail(line, `'${kw}' outside of any section`);
    if (current === 'global') parseGlobalLine(global, kw, args, line, fail);
    else parseProxyLine(current as ProxySection, kw, args, line, profile, fail, readCrt);
  });

  return assemble(file, profile, global, proxies, fail);
}

function emptySection(kind: ProxySection['kind'], name: string, line: number): ProxySection {
  return { kind, name, line, timeouts: {}, binds: [], rejects: [], monitors: [], servers: [] };
}

/** A new proxy section with what `defaults` sets (HAProxy copies the last defaults section). */
function inherit(d: ProxySection, kind: ProxySection['kind'], name: string, line: number): ProxySection {
  const s = emptySection(kind, name, line);
  s.timeouts = { ...d.timeouts };
  for (const key of [
    'mode',
    'tcplog',
    'httplog',
    'dontlognull',
    'socketStats',
    'logGlobal',
    'maxconn',
    'rateLimitSessions',
    'defaultBackend',
  ] as const) {
    if (d[key] !== undefined) (s as unknown as Record<string, unknown>)[key] = d[key];
  }
  return s;
}

/**
 * Splits a configuration line into words: whitespace separates, `#` starts a comment. Quotes
 * and backslash escapes are not supported (an error says so rather than misreading them).
 */
function tokenize(raw: string, line: number, fail: (line: number, reason: string) => never): string[] {
  const hash = raw.indexOf('#');
  const text = hash === -1 ? raw : raw.slice(0, hash);
  if (/["'\\]/.test(text)) fail(line, 'quotes and backslash escapes are not supported by embryonic');
  return text.split(/\s+/).filter((w) => w.length > 0);
}

function parseGlobalLine(
  g: GlobalConfig,
  kw: string,
  args: string[],
  line: number,
  fail: (line: number, reason: string) => never,
): void {
  switch (kw) {
    case 'maxconn':
      g.maxconn = positiveInt(args, kw, line, fail);
      g.maxconnExplicit = true;
      return;
    case 'nbthread': {
      const n = positiveInt(args, kw, line, fail);
      if (n !== 1) fail(line, `'nbthread ${n}': embryonic runs one thread (the counters need nbthread 1)`);
      return;
    }
    case 'maxconnrate':
      g.maxconnrate = positiveInt(args, kw, line, fail);
      return;
    case 'maxsslconn': {
      // ssl_parse_global_int: 0 is accepted and, as unset, means no limit.
      if (args.length !== 1) fail(line, `'maxsslconn' needs exactly one number`);
      const v = args[0]!;
      if (!/^\d+$/.test(v) || Number(v) > 2 ** 31 - 1)
        fail(line, `'maxsslconn' needs a non-negative integer, not '${v}'`);
      g.maxsslconn = Number(v) || null;
      return;
    }
    case 'tune.bufsize': {
      const n = positiveInt(args, kw, line, fail);
      if (n < 1024) fail(line, `'tune.bufsize ${n}' is too small (at least 1024)`);
      g.bufsize = n;
      return;
    }
    case 'stats': {
      if (args[0] !== 'socket' || args[1] === undefined)
        fail(line, `'stats' in global supports only 'stats socket PATH [mode OCTAL] [level LEVEL]'`);
      const stats: StatsSocketConfig = { path: args[1]!, mode: 0o600, level: 'admin' };
      if (stats.path.includes('@') || stats.path.includes(':'))
        fail(line, `'stats socket ${stats.path}': embryonic supports a unix socket path only`);
      for (let i = 2; i < args.length; i += 2) {
        const opt = args[i]!;
        const v = args[i + 1];
        if (v === undefined) fail(line, `'stats socket' option '${opt}' needs a value`);
        if (opt === 'mode') {
          if (!/^[0-7]{3,4}$/.test(v!)) fail(line, `'stats socket' mode '${v}' is not an octal mode`);
          stats.mode = parseInt(v!, 8);
        } else if (opt === 'level') {
          if (v !== 'admin' && v !== 'operator' && v !== 'user')
            fail(line, `'stats socket' level must be admin, operator or user, not '${v}'`);
          stats.level = v as StatsSocketConfig['level'];
        } else fail(line, `'stats socket' option '${opt}' is not supported (mode, level)`);
      }
      if (g.stats) fail(line, `a second 'stats socket' is not supported`);
      g.stats = stats;
      return;
    }
    case 'log': {
      g.logs.push(parseLogTarget(args, line, fail));
      return;
    }
    default:
      fail(
        line,
        `unsupported keyword '${kw}' in section 'global' (embryonic supports maxconn, nbthread 1, stats socket, log, maxconnrate, maxsslconn, tune.bufsize)`,
      );
  }
}

/** `log <target> [format <fmt>] <facility> [<max level> [<min level>]]` (HAProxy's syntax, a subset). */
function parseLogTarget(
  args: string[],
  line: number,
  fail: (line: number, reason: string) => never,
): LogTarget {
  const [to, ...rest] = args;
  if (to !== 'stdout' && to !== 'stderr')
    fail(line, `'log ${to ?? ''}': embryonic logs to stdout or stderr only`);
  let format: LogTarget['format'] = 'rfc3164';
  if (rest[0] === 'format') {
    const f = rest[1];
    if (f !== 'raw' && f !== 'rfc3164')
      fail(line, `'log ... format ${f ?? ''}': embryonic supports raw and rfc3164`);
    format = f as LogTarget['format'];
    rest.splice(0, 2);
  }
  const [facility, max, min, extra] = rest;
  if (facility === undefined) fail(line, `'log ${to}' needs a facility (e.g. local0)`);
  const fac = FACILITIES.indexOf(facility!);
  if (fac === -1) fail(line, `unknown log facility '${facility}'`);
  let maxLevel = 7;
  if (max !== undefined) {
    maxLevel = LEVELS.indexOf(max);
    if (maxLevel === -1) fail(line, `unknown log level '${max}'`);
  }
  if (min !== undefined && !LEVELS.includes(min)) fail(line, `unknown log level '${min}'`);
  if (extra !== undefined) fail(line, `unexpected '${extra}' after the log levels`);
  return { to: to as LogTarget['to'], format, facility: fac, maxLevel };
}

/** Where HAProxy allows each proxy keyword (the capability of the section). */
const PROXY_KEYWORDS: Record<string, readonly ProxySection['kind'][]> = {
  mode: ['defaults', 'frontend', 'backend', 'listen'],
  timeout: ['defaults', 'frontend', 'backend', 'listen'],
  option: ['defaults', 'frontend', 'backend', 'listen'],
  log: ['defaults', 'frontend', 'backend', 'listen'],
  maxconn: ['defaults', 'frontend', 'listen'],
  'rate-limit': ['defaults', 'frontend', 'listen'],
  bind: ['frontend', 'listen'],
  'tcp-request': ['frontend', 'listen'],
  'monitor-net': ['defaults', 'frontend', 'listen'],
  default_backend: ['defaults', 'frontend', 'listen'],
  use_backend: ['frontend', 'listen'],
  server: ['backend', 'listen'],
};

const TIMEOUT_NAMES =
  "'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin'";

function parseProxyLine(
  s: ProxySection,
  kw: string,
  args: string[],
  line: number,
  profile: Profile,
  fail: (line: number, reason: string) => never,
  readCrt: (path: string) => Buffer,
): void {
  const where = PROXY_KEYWORDS[kw];
  if (where === undefined) {
    fail(
      line,
      `unsupported keyword '${kw}' in section '${s.kind}' (embryonic supports ${Object.keys(PROXY_KEYWORDS).join(', ')})`,
    );
  }
  if (!where!.includes(s.kind)) fail(line, `'${kw}' is not allowed in a '${s.kind}' section`);
  switch (kw) {
    case 'mode':
      if (args.length !== 1 || (args[0] !== 'tcp' && args[0] !== 'http'))
        fail(line, `'mode' must be tcp or http (embryonic), not '${args.join(' ')}'`);
      s.mode = args[0] as 'tcp' | 'http';
      return;
    case 'timeout': {
      const [name, value, extra] = args;
      const key = { client: 'client', 'client-hs': 'clientHs', connect: 'connect', server: 'server' }[
        name ?? ''
      ] as keyof Timeouts | undefined;
      if (name === 'client-hs' && profile !== '2.9') fail(line, `${TIMEOUT_NAMES} (got 'client-hs')`);
      if (key === undefined)
        fail(
          line,
          `'timeout ${name ?? ''}': embryonic supports client, connect, server (and client-hs in 2.9)`,
        );
      if (value === undefined || extra !== undefined) fail(line, `'timeout ${name}' needs exactly one time`);
      const ms = parseTime(value!, line, fail);
      // HAProxy 2.0 and later refuse it (9faebe34c); 1.5-dev took it and let its ticks wrap. The
      // bundled proxy refuses it in every profile: Node's timers cannot wait that long either.
      if (ms >= 2 ** 31)
        fail(
          line,
          `timer overflow in argument '${value}' to 'timeout ${name}' (maximum value is 2147483647 ms or ~24.8 days)`,
        );
      // HAProxy stores `timeout X 0` as the tick 0, which every reader takes as unset
      // (tick_add_ifset: TICK_ETERNITY; the "missing timeouts" warning tests !timeout.client).
      s.timeouts[key!] = ms === 0 ? null : ms;
      return;
    }
    case 'option': {
      if (args.length !== 1)
        fail(
          line,
          `'option' takes one word here (embryonic supports tcplog, httplog, dontlognull, socket-stats)`,
        );
      const opt = args[0]!;
      if (opt === 'tcplog') s.tcplog = true;
      else if (opt === 'httplog') s.httplog = true;
      else if (opt === 'dontlognull') s.dontlognull = true;
      else if (opt === 'socket-stats') {
        if (s.kind === 'backend') fail(line, `'option socket-stats' is not allowed in a 'backend' section`);
        s.socketStats = true;
      } else
        fail(
          line,
          `unsupported option '${opt}' (embryonic supports tcplog, httplog, dontlognull, socket-stats)`,
        );
      return;
    }
    case 'log':
      if (args.length !== 1 || args[0] !== 'global')
        fail(line, `'log' in a proxy section supports only 'log global'`);
      s.logGlobal = true;
      return;
    case 'maxconn':
      s.maxconn = positiveInt(args, kw, line, fail);
      return;
    case 'rate-limit':
      if (args[0] !== 'sessions') fail(line, `'rate-limit' supports only 'rate-limit sessions N'`);
      s.rateLimitSessions = positiveInt(args.slice(1), 'rate-limit sessions', line, fail);
      return;
    case 'bind':
      s.binds.push(parseBind(args, line, fail, readCrt));
      return;
    case 'tcp-request': {
      const [conn, action, cond, open, fetch, ...rest] = args;
      const close = rest.pop();
      if (
        conn !== 'connection' ||
        action !== 'reject' ||
        cond !== 'if' ||
        open !== '{' ||
        fetch !== 'src' ||
        close !== '}' ||
        rest.length === 0
      )
        fail(line, `'tcp-request' supports only 'tcp-request connection reject if { src CIDR ... }'`);
      for (const c of rest) {
        const cidr = parseCidr(c);
        if (!cidr) fail(line, `'${c}' is not an address or a CIDR`);
        s.rejects.push(cidr!);
      }
      return;
    }
    case 'monitor-net': {
      if (args.length !== 1) fail(line, `'monitor-net' needs exactly one CIDR`);
      if (profile !== 'dev12')
        fail(
          line,
          `'monitor-net' doesn't exist anymore. Please use 'http-request return status 200 if { src ${args[0]} }' instead.`,
        );
      const cidr = parseCidr(args[0]!);
      if (!cidr) fail(line, `'${args[0]}' is not an address or a CIDR`);
      s.monitors.push(cidr!);
      return;
    }
    case 'default_backend':
      if (args.length !== 1) fail(line, `'default_backend' needs exactly one backend name`);
      s.defaultBackend = { name: args[0]!, line };
      return;
    case 'use_backend':
      if (args.length !== 1)
        fail(line, `'use_backend' is supported without a condition only ('use_backend NAME')`);
      if (s.useBackend) fail(line, `a second 'use_backend' is not supported (unconditional only)`);
      s.useBackend = { name: args[0]!, line };
      return;
    case 'server': {
      const [name, addr, ...opts] = args;
      if (name === undefined || addr === undefined) fail(line, `'server' needs a name and HOST:PORT`);
      if (opts.length > 0) fail(line, `server options are not supported by embryonic ('${opts.join(' ')}')`);
      const { host, port } = parseHostPort(addr!, line, fail, false);
      if (s.servers.some((x) => x.name === name)) fail(line, `server '${name}' is declared twice`);
      s.servers.push({ name: name!, host, port, line });
      return;
    }
  }
}

function parseBind(
  args: string[],
  line: number,
  fail: (line: number, reason: string) => never,
  readCrt: (path: string) => Buffer,
): BindConfig {
  const [addr, ...opts] = args;
  if (addr === undefined) fail(line, `'bind' needs ADDR:PORT`);
  const { host, port } = parseHostPort(addr!, line, fail, true);
  const bind: BindConfig = {
    host,
    port,
    acceptProxy: false,
    ssl: null,
    maxconn: null,
    name: null,
    tolerant: false,
    line,
  };
  let ssl = false;
  let crt: string | null = null;
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i]!;
    const value = (): string => {
      const v = opts[++i];
      if (v === undefined) fail(line, `bind option '${o}' needs a value`);
      return v!;
    };
    if (o === 'accept-proxy') bind.acceptProxy = true;
    else if (o === 'proxy-tolerant') bind.tolerant = true;
    else if (o === 'ssl') ssl = true;
    else if (o === 'crt') crt = value();
    else if (o === 'maxconn') bind.maxconn = positiveInt([value()], 'bind maxconn', line, fail);
    else if (o === 'name') bind.name = value();
    else
      fail(
        line,
        `unsupported bind option '${o}' (embryonic supports accept-proxy, ssl crt FILE, maxconn N, name NAME, proxy-tolerant)`,
      );
  }
  if (ssl && crt === null) fail(line, `'ssl' on a bind needs 'crt FILE'`);
  if (!ssl && crt !== null) fail(line, `'crt' on a bind needs 'ssl'`);
  if (bind.tolerant && !bind.acceptProxy) fail(line, `'proxy-tolerant' needs 'accept-proxy'`);
  if (crt !== null) {
    try {
      bind.ssl = { crt, pem: readCrt(crt) };
    } catch (err) {
      fail(line, `unable to load SSL certificate file '${crt}': ${(err as Error).message}`);
    }
  }
  return bind;
}

/** HOST:PORT, [IPv6]:PORT, :PORT and *:PORT (bind only). Port 0 only on a bind. */
function parseHostPort(
  text: string,
  line: number,
  fail: (line: number, reason: string) => never,
  isBind: boolean,
): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  if (colon === -1) fail(line, `'${text}' has no port (HOST:PORT)`);
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText))
    fail(line, `'${portText}' is not a port in '${text}' (ranges are not supported)`);
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !isBind)) fail(line, `port ${port} is out of range in '${text}'`);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '' || host === '*') {
    if (!isBind) fail(line, `'${text}' needs a host`);
    host = '0.0.0.0';
  }
  if (host.includes('@')) fail(line, `address prefixes such as '${host.split('@')[0]}@' are not supported`);
  return { host, port };
}

/** HAProxy's time syntax: a number with an optional unit us, ms (default), s, m, h, d. */
function parseTime(text: string, line: number, fail: (line: number, reason: string) => never): number {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(text);
  if (!m) fail(line, `'${text}' is not a time (a number with an optional unit us, ms, s, m, h, d)`);
  const n = Number(m![1]);
  const unit = m![2] ?? 'ms';
  const ms = { us: n / 1000, ms: n, s: n * 1000, m: n * 60_000, h: n * 3_600_000, d: n * 86_400_000 }[unit]!;
  return Math.ceil(ms);
}

function positiveInt(
  args: string[],
  kw: string,
  line: number,
  fail: (line: number, reason: string) => never,
): number {
  if (args.length !== 1) fail(line, `'${kw}' needs exactly one number`);
  const v = args[0]!;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 2 ** 31 - 1)
    fail(line, `'${kw}' needs a positive integer, not '${v}'`);
  return Number(v);
}

function assemble(
  file: string,
  profile: Profile,
  global: GlobalConfig,
  proxies: ProxySection[],
  fail: (line: number, reason: string) => never,
): ProxyConfig {
  const warnings: string[] = [];
  const fronts = proxies.filter((p) => p.kind === 'frontend' || (p.kind === 'listen' && p.binds.length > 0));
  if (fronts.length === 0)
    fail(
      proxies.length > 0 ? proxies[0]!.line : 0,
      'no frontend: a frontend or listen section with a bind is needed',
    );
  if (fronts.length > 1)
    fail(
      fronts[1]!.line,
      `${fronts[1]!.kind} '${fronts[1]!.name}' is a second frontend; embryonic serves one frontend with one bind (the machines model one listener)`,
    );
  const fe = fronts[0]!;
  if (fe.binds.length === 0) fail(fe.line, `frontend '${fe.name}' has no bind`);
  if (fe.binds.length > 1)
    fail(
      fe.binds[1]!.line,
      `a second bind in '${fe.name}'; embryonic serves one bind (the machines model one listener)`,
    );

  const backends: BackendConfig[] = [];
  proxies.forEach((p, index) => {
    if (p.kind === 'frontend') return;
    if (p.kind === 'listen' && p.servers.length === 0) {
      if (p === fe) return; // a listen with a bind and no server: a frontend only
      fail(p.line, `listen '${p.name}' has neither a bind nor a server`);
    }
    if (p.kind === 'backend' && p.servers.length === 0) fail(p.line, `backend '${p.name}' has no server`);
    backends.push({
      name: p.name,
      mode: p.mode ?? 'tcp',
      timeouts: fullTimeouts(p.timeouts),
      servers: p.servers,
      line: p.line,
      index,
    });
  });

  let backendName: string;
  const ref = fe.useBackend ?? fe.defaultBackend;
  if (ref) {
    if (!backends.some((b) => b.name === ref.name)) fail(ref.line, `no backend named '${ref.name}'`);
    backendName = ref.name;
  } else if (fe.kind === 'listen' && fe.servers.length > 0) backendName = fe.name;
  else
    backendName = fail(
      fe.line,
      `${fe.kind} '${fe.name}' has no backend (default_backend, use_backend or server)`,
    );
  const backend = backends.find((b) => b.name === backendName)!;
  if ((backend.mode ?? 'tcp') !== (fe.mode ?? 'tcp'))
    fail(
      fe.line,
      `${fe.kind} '${fe.name}' (mode ${fe.mode ?? 'tcp'}) uses backend '${backend.name}' (mode ${backend.mode})`,
    );

  const timeouts = fullTimeouts(fe.timeouts);
  const wantsLog = fe.tcplog === true || fe.httplog === true;
  const hasLogAddress = fe.logGlobal === true && global.logs.length > 0;
  if (wantsLog && !hasLogAddress)
    warnings.push(`config : log format ignored for ${fe.kind} '${fe.name}' since it has no log address.`);
  if (timeouts.client === null || backend.timeouts.connect === null || backend.timeouts.server === null)
    warnings.push(
      `config : missing timeouts for ${fe.kind} '${fe.name}'. While not properly invalid, you will certainly encounter various problems with such a configuration.`,
    );

  return {
    file,
    profile,
    global,
    frontend: {
      name: fe.name,
      kind: fe.kind as 'frontend' | 'listen',
      mode: fe.mode ?? 'tcp',
      timeouts,
      bind: fe.binds[0]!,
      maxconn: fe.maxconn ?? global.maxconn,
      rateLimitSessions: fe.rateLimitSessions ?? null,
      logging: wantsLog && hasLogAddress,
      dontlognull: fe.dontlognull === true,
      socketStats: fe.socketStats === true,
      rejects: fe.rejects,
      monitors: fe.monitors,
      backend: backendName,
      line: fe.line,
      index: proxies.indexOf(fe),
    },
    backends,
    warnings,
  };
}

function fullTimeouts(t: Partial<Timeouts>): Timeouts {
  return {
    client: t.client ?? null,
    clientHs: t.clientHs ?? null,
    connect: t.connect ?? null,
    server: t.server ?? null,
  };
}

/**
 * Returns the machines' configuration for the frontend of `cfg`. Pure.
 * A bind without maxconn gets the profile's default (makeConfig): the frontend's in dev12, as
 * 1.5-dev's cfgparse gives it; none of its own in 2.x (l->maxconn stays 0).
 */
export function modelConfigOf(cfg: ProxyConfig): ModelConfig {
  const fe = cfg.frontend;
  return makeConfig({
    profile: cfg.profile,
    mode: fe.mode,
    acceptProxy: fe.bind.acceptProxy,
    ssl: fe.bind.ssl !== null,
    timeoutClient: fe.timeouts.client,
    timeoutClientHs: fe.timeouts.clientHs,
    feMaxconn: fe.maxconn,
    ...(fe.bind.maxconn !== null ? { bindMaxconn: fe.bind.maxconn } : {}),
    globalMaxconn: cfg.global.maxconn,
    maxconnrate: cfg.global.maxconnrate,
    maxsslconn: cfg.global.maxsslconn,
    rateLimitSessions: fe.rateLimitSessions,
    unlimited: false,
    logging: fe.logging,
    dontlognull: fe.dontlognull,
  });
}

/** The backend the frontend's sessions go to. */
export function frontendBackend(cfg: ProxyConfig): BackendConfig {
  return cfg.backends.find((b) => b.name === cfg.frontend.backend)!;
}
