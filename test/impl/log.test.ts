import { describe, expect, it } from 'vitest';
import { formatEmbryonicKill, formatLogDate, formatTcplog, Logger } from '../../impl/log.ts';

const at = new Date(2026, 10, 26, 18, 24, 12, 902).getTime();

describe("the proxy's log lines", () => {
  it('writes the embryonic kill line in HAProxy’s format', () => {
    expect(formatLogDate(at)).toBe('26/Nov/2026:18:24:12.902');
    expect(
      formatEmbryonicKill({
        address: '::ffff:127.0.0.1',
        port: 37100,
        acceptDate: at,
        frontend: 'fe_main',
        bind: 'main',
        message: 'Timeout while waiting for PROXY protocol header',
      }),
    ).toBe(
      '127.0.0.1:37100 [26/Nov/2026:18:24:12.902] fe_main/main: Timeout while waiting for PROXY protocol header',
    );
  });

  it('writes the tcplog line in HAProxy 2.6’s default format', () => {
    expect(
      formatTcplog({
        address: '10.1.2.3',
        port: 40000,
        acceptDate: at,
        frontend: 'fe_pp',
        ssl: true,
        backend: 'be_echo',
        server: 'echo1',
        tw: 5,
        tc: 0,
        tt: 407,
        bytesToClient: 5,
        termination: 'cD',
        actconn: 1,
        feconn: 1,
        beconn: 0,
        srvconn: 0,
        retries: 0,
      }),
    ).toBe('10.1.2.3:40000 [26/Nov/2026:18:24:12.902] fe_pp~ be_echo/echo1 5/0/407 5 cD 1/1/0/0/0 0/0');
  });

  it('sends a line to the targets whose level takes it, raw or with a syslog header', () => {
    const out: string[] = [];
    const logger = new Logger(
      [
        { to: 'stderr', format: 'raw', facility: 16, maxLevel: 6 },
        { to: 'stdout', format: 'rfc3164', facility: 16, maxLevel: 6 },
        { to: 'stdout', format: 'raw', facility: 16, maxLevel: 3 },
      ],
      (to, text) => out.push(`${to} ${text}`),
    );
    logger.log('hello', 6, at);
    expect(out).toEqual(['stderr hello\n', `stdout <134>Nov 26 18:24:12 embryonic[${process.pid}]: hello\n`]);
    expect(new Logger([]).enabled()).toBe(false);
  });

  it('pads the milliseconds of the date to three digits, and the syslog day with a space', () => {
    const early = new Date(2026, 10, 5, 8, 4, 2, 5).getTime();
    expect(formatLogDate(early)).toBe('05/Nov/2026:08:04:02.005');
    const out: string[] = [];
    new Logger([{ to: 'stdout', format: 'rfc3164', facility: 16, maxLevel: 6 }], (_to, text) =>
      out.push(text),
    ).log('x', 6, early);
    expect(out).toEqual([`<134>Nov  5 08:04:02 embryonic[${process.pid}]: x\n`]);
  });
});
