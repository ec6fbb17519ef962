import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../../machines/config.ts';
import {
  ConfigError,
  DEFAULT_GLOBAL_MAXCONN,
  loadConfig,
  modelConfigOf,
  parseConfig,
} from '../../impl/config.ts';
import { CERT, ROOT } from './harness.ts';

const EXAMPLE = join(ROOT, 'examples/haproxy.cfg');

const BASE = `global
    maxconn 100
    nbthread 1
    log stderr format raw local0 info
    stats socket /tmp/x.sock mode 600 level admin

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 1s
    timeout server 5s
    timeout client 300ms

frontend fe
    bind 127.0.0.1:8443 accept-proxy
    maxconn 10
    default_backend be

backend be
    server s1 127.0.0.1:8080
`;

/** Returns the ConfigError that parsing `text` throws, or fails. */
function errorOf(text: string, profile: '2.6' | '2.9' | 'dev12' = 'dev12'): ConfigError {
  try {
    parseConfig(text, 'test.cfg', profile);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('the configuration was accepted');
}

describe('the haproxy.cfg subset', () => {
  it('maps the example configuration onto the machines’ configuration', () => {
    const cfg = loadConfig(EXAMPLE);
    expect(cfg.warnings).toEqual([]);
    expect(modelConfigOf(cfg)).toEqual(
      makeConfig({
        profile: 'dev12',
        mode: 'tcp',
        acceptProxy: true,
        ssl: false,
        timeoutClient: 5000,
        timeoutClientHs: null,
        feMaxconn: 10,
        globalMaxconn: 100,
        maxconnrate: null,
        rateLimitSessions: null,
        logging: true,
        dontlognull: false,
      }),
    );
    expect(cfg.frontend).toMatchObject({ name: 'fe_main', backend: 'be_echo', socketStats: true });
    expect(cfg.frontend.bind).toMatchObject({ host: '127.0.0.1', port: 10443, name: 'main', maxconn: null });
    expect(cfg.global.stats).toEqual({ path: '/tmp/embryonic-example.sock', mode: 0o600, level: 'admin' });
  });

  it('reads every supported keyword with HAProxy’s meaning', () => {
    const cfg = parseConfig(
      `global
    maxconn 50
    maxconnrate 20
    maxsslconn 3
    tune.bufsize 8192
    log stdout local0 notice
defaults
    timeout client 2s
    timeout connect 1500ms
    timeout server 1m
    option dontlognull
listen li
    mode http
    log global
    option httplog
    option socket-stats
    bind :8080 accept-proxy proxy-tolerant ssl crt ${CERT} maxconn 7 name web
    rate-limit sessions 5
    tcp-request connection reject if { src 10.0.0.0/8 192.0.2.1 }
    monitor-net 127.0.0.3/32
    server a 127.0.0.1:1
    server b [::1]:2
`,
      'all.cfg',
      'dev12',
    );
    expect(cfg.global).toMatchObject({ maxconn: 50, maxconnrate: 20, maxsslconn: 3, bufsize: 8192 });
    expect(cfg.global.logs).toEqual([{ to: 'stdout', format: 'rfc3164', facility: 16, maxLevel: 5 }]);
    expect(cfg.frontend).toMatchObject({
      kind: 'listen',
      mode: 'http',
      maxconn: 50,
      rateLimitSessions: 5,
      logging: true,
      dontlognull: true,
      backend: 'li',
      timeouts: { client: 2000, clientHs: null, connect: 1500, server: 60000 },
    });
    expect(cfg.frontend.bind).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      acceptProxy: true,
      tolerant: true,
      maxconn: 7,
      name: 'web',
    });
    expect(cfg.frontend.bind.ssl?.crt).toBe(CERT);
    expect(cfg.frontend.rejects.map((c) => c.text)).toEqual(['10.0.0.0/8', '192.0.2.1']);
    expect(cfg.frontend.monitors.map((c) => c.text)).toEqual(['127.0.0.3/32']);
    expect(cfg.backends[0]!.servers.map((s) => `${s.host}:${s.port}`)).toEqual(['127.0.0.1:1', '::1:2']);
    expect(modelConfigOf(cfg)).toMatchObject({
      bindMaxconn: 7,
      feMaxconn: 50,
      ssl: true,
      maxconnrate: 20,
      maxsslconn: 3,
    });
  });

  it('takes the global maxconn for a frontend without one, and a default when global has none', () => {
    const cfg = parseConfig(BASE.replace('    maxconn 10\n', '').replace('    maxconn 100\n', ''), 'x.cfg');
    expect([cfg.global.maxconn, cfg.frontend.maxconn]).toEqual([
      DEFAULT_GLOBAL_MAXCONN,
      DEFAULT_GLOBAL_MAXCONN,
    ]);
  });

  it('warns as HAProxy does when a logging frontend has no log address, and does not log', () => {
    const cfg = parseConfig(BASE.replace('    log global\n', ''), 'x.cfg');
    expect(cfg.warnings).toEqual([
      "config : log format ignored for frontend 'fe' since it has no log address.",
    ]);
    expect(cfg.frontend.logging).toBe(false);
  });

  it('takes timeout client-hs as the handshake deadline in the 2.9 profile only', () => {
    const text = BASE.replace(
      '    timeout client 300ms\n',
      '    timeout client 300ms\n    timeout client-hs 100ms\n',
    );
    expect(modelConfigOf(parseConfig(text, 'x.cfg', '2.9')).timeoutClientHs).toBe(100);
    expect(errorOf(text, '2.6').message).toBe(
      "test.cfg:14: 'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got 'client-hs')",
    );
  });

  it('takes a timeout of 0 as unset, as HAProxy does, and warns that timeout client is missing', () => {
    const cfg = parseConfig(BASE.replace('    timeout client 300ms\n', '    timeout client 0\n'), 'x.cfg');
    expect(cfg.frontend.timeouts.client).toBeNull();
    expect(modelConfigOf(cfg).timeoutClient).toBeNull();
    expect(cfg.warnings.some((w) => w.startsWith("config : missing timeouts for frontend 'fe'"))).toBe(true);
  });

  it('rejects a timeout of 2^31 ms or more with the overflow message HAProxy gives', () => {
    const text = BASE.replace('    timeout client 300ms\n', '    timeout client 25d\n');
    expect(errorOf(text, 'dev12').message).toMatch(
      /^test\.cfg:\d+: timer overflow in argument '25d' to 'timeout client' \(maximum value is 2147483647 ms or ~24\.8 days\)$/,
    );
    expect(
      parseConfig(BASE.replace('    timeout client 300ms\n', '    timeout client 24d\n'), 'x.cfg').frontend
        .timeouts.client,
    ).toBe(24 * 86_400_000);
  });

  it('takes maxsslconn 0 as no limit, as HAProxy does', () => {
    const cfg = parseConfig(
      BASE.replace('    maxconn 100\n', '    maxconn 100\n    maxsslconn 0\n'),
      'x.cfg',
    );
    expect(cfg.global.maxsslconn).toBeNull();
    expect(modelConfigOf(cfg).maxsslconn).toBeNull();
  });

  it('accepts monitor-net in the dev12 profile and rejects it as HAProxy 2.6 does', () => {
    const text = BASE.replace('    maxconn 10\n', '    maxconn 10\n    monitor-net 192.0.2.0/24\n');
    expect(parseConfig(text, 'x.cfg', 'dev12').frontend.monitors).toHaveLength(1);
    expect(errorOf(text, '2.6').message).toBe(
      "test.cfg:18: 'monitor-net' doesn't exist anymore. Please use 'http-request return status 200 if { src 192.0.2.0/24 }' instead.",
    );
  });

  it.each([
    [
      'an unsupported global keyword',
      'global\n    daemon\n',
      2,
      /unsupported keyword 'daemon' in section 'global'/,
    ],
    ['an unsupported section', 'peers p\n', 1, /unsupported section 'peers'/],
    [
      'an unsupported section after a frontend',
      BASE + 'resolvers dns\n    nameserver n 127.0.0.1:53\n',
      BASE.split('\n').length,
      /unsupported section 'resolvers'/,
    ],
    ['nbthread above 1', 'global\n    nbthread 2\n', 2, /embryonic runs one thread/],
    ['a negative maxsslconn', 'global\n    maxsslconn -1\n', 2, /'maxsslconn' needs a non-negative integer/],
    [
      'a log target other than stdout or stderr',
      'global\n    log 127.0.0.1:514 local0\n',
      2,
      /stdout or stderr only/,
    ],
    ['an unknown log facility', 'global\n    log stderr local9\n', 2, /unknown log facility 'local9'/],
    [
      'a malformed timeout',
      'defaults\n    timeout client 3 seconds\n',
      2,
      /'timeout client' needs exactly one time/,
    ],
    ['a time with a bad unit', 'defaults\n    timeout client 3w\n', 2, /'3w' is not a time/],
    ['an unknown timeout', 'defaults\n    timeout tunnel 1s\n', 2, /'timeout tunnel': embryonic supports/],
    ['an unknown option', 'defaults\n    option forwardfor\n', 2, /unsupported option 'forwardfor'/],
    [
      'an unsupported bind option',
      'frontend f\n    bind 127.0.0.1:1 v4v6\n',
      2,
      /unsupported bind option 'v4v6'/,
    ],
    ['ssl without crt', 'frontend f\n    bind 127.0.0.1:1 ssl\n', 2, /'ssl' on a bind needs 'crt FILE'/],
    [
      'a missing certificate',
      'frontend f\n    bind 127.0.0.1:1 ssl crt /nonexistent.pem\n',
      2,
      /unable to load SSL certificate file/,
    ],
    [
      'proxy-tolerant without accept-proxy',
      'frontend f\n    bind 127.0.0.1:1 proxy-tolerant\n',
      2,
      /needs 'accept-proxy'/,
    ],
    ['a port range', 'frontend f\n    bind 127.0.0.1:80-90\n', 2, /ranges are not supported/],
    [
      'a bind in a backend',
      'backend b\n    bind 127.0.0.1:1\n',
      2,
      /'bind' is not allowed in a 'backend' section/,
    ],
    [
      'a server with options',
      'backend b\n    server s 127.0.0.1:1 check\n',
      2,
      /server options are not supported/,
    ],
    [
      'a conditional use_backend',
      'frontend f\n    use_backend b if { src 1.2.3.4 }\n',
      2,
      /without a condition only/,
    ],
    [
      'another tcp-request rule',
      'frontend f\n    tcp-request connection accept if { src 1.2.3.4 }\n',
      2,
      /supports only 'tcp-request connection reject/,
    ],
    [
      'a bad CIDR',
      'frontend f\n    tcp-request connection reject if { src 1.2.3.400 }\n',
      2,
      /'1\.2\.3\.400' is not an address/,
    ],
    ['a keyword outside any section', 'maxconn 10\n', 1, /outside of any section/],
    ['quotes', 'global\n    log "stderr" local0\n', 2, /quotes and backslash escapes are not supported/],
    ['an unknown mode', 'defaults\n    mode health\n', 2, /'mode' must be tcp or http/],
  ])('rejects %s with file:line', (_what, text, line, message) => {
    const e = errorOf(text);
    expect(e.line).toBe(line);
    expect(e.message).toMatch(new RegExp(`^test\\.cfg:${line}: `));
    expect(e.reason).toMatch(message);
  });

  it.each([
    [
      'a second frontend',
      `${BASE}\nfrontend fe2\n    bind 127.0.0.1:8444\n    default_backend be\n`,
      23,
      /second frontend/,
    ],
    [
      'a second bind',
      BASE.replace('    maxconn 10\n', '    bind 127.0.0.1:9000\n    maxconn 10\n'),
      17,
      /a second bind/,
    ],
    [
      'a missing backend',
      BASE.replace('default_backend be', 'default_backend nope'),
      18,
      /no backend named 'nope'/,
    ],
    [
      'a backend without server',
      BASE.replace('    server s1 127.0.0.1:8080\n', ''),
      20,
      /backend 'be' has no server/,
    ],
    ['no frontend', 'backend be\n    server s 127.0.0.1:1\n', 1, /no frontend/],
    ['an empty file, as a whole', '\n', 0, /no frontend/],
  ])('rejects %s, naming the line where it is', (_what, text, line, message) => {
    const e = errorOf(text);
    expect([e.line, e.reason]).toEqual([line, expect.stringMatching(message)]);
  });

  it.each(
    // HAProxy's other sections (its doc/configuration.txt), each refused by name wherever it starts.
    [
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
    ],
  )("refuses a '%s' section as an unsupported section", (section) => {
    const e = errorOf(`${BASE}${section} x\n`);
    expect([e.line, e.reason]).toEqual([
      BASE.split('\n').length,
      expect.stringMatching(`unsupported section '${section}'`),
    ]);
  });

  it('names the file when it cannot be read', () => {
    expect(() => loadConfig('/nonexistent/haproxy.cfg')).toThrow(
      /^\/nonexistent\/haproxy\.cfg:0: cannot read/,
    );
  });
});

const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
const HAVE_HAPROXY = haproxy.status === 0 && /version 2\.6/.test(haproxy.stdout);

describe.skipIf(!HAVE_HAPROXY)("Debian's HAProxy 2.6 on the same files", () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-hacfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const check = (text: string) => {
    const file = join(dir, 'h.cfg');
    writeFileSync(file, text);
    return spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
  };

  it('accepts examples/haproxy.cfg', () => {
    const r = spawnSync('haproxy', ['-c', '-f', EXAMPLE], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Configuration file is valid');
  });

  it('rejects monitor-net and timeout client-hs with the messages the 2.6 profile gives', () => {
    const text = BASE.replace('    maxconn 10\n', '    maxconn 10\n    monitor-net 192.0.2.0/24\n').replace(
      '    timeout client 300ms\n',
      '    timeout client 300ms\n    timeout client-hs 100ms\n',
    );
    const r = check(text);
    expect(r.status).not.toBe(0);
    for (const t of [
      text.replace('    monitor-net 192.0.2.0/24\n', '    # monitor-net (removed)\n'),
      text.replace('    timeout client-hs 100ms\n', '    # timeout client-hs (removed)\n'),
    ]) {
      const e = errorOf(t, '2.6');
      expect(r.stderr).toContain(`parsing [${join(dir, 'h.cfg')}:${e.line}] : ${e.reason}`);
    }
  });
});
