import { isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildV1 } from '../../../impl/proxy/build.ts';
import { parseProxyHeader, type ProxyParseOptions } from '../../../impl/proxy/parse.ts';
import {
  formatIPv6,
  parseIPv4Text,
  parseIPv6Text,
  scanIPv4,
  scanIPv6,
  scanPort,
  V1_MAX_LENGTH,
} from '../../../impl/proxy/v1.ts';
import { bytes, V1_FIXTURES, V1_TCP4, V1_TCP6, V1_UNKNOWN_LONG } from './fixtures.ts';

const DEEP = process.env.EMBRYONIC_DEEP === '1';
const RUNS = DEEP ? 10_000 : 1_000;

const strict = (b: Uint8Array, o: Partial<ProxyParseOptions> = {}) =>
  parseProxyHeader(b, { mode: 'strict', ...o });
const tolerant = (b: Uint8Array, o: Partial<ProxyParseOptions> = {}) =>
  parseProxyHeader(b, { mode: 'tolerant', ...o });
const codeOf = (r: ReturnType<typeof strict>) => (r.status === 'error' ? r.code : r.status);

/** The WHATWG URL serialization of an IPv6 address: an oracle independent of formatIPv6(). */
const urlForm = (text: string): string => new URL(`http://[${text}]`).hostname.slice(1, -1);

/** 16 bytes written as 8 full groups, "0db8" style. */
const fullGroups = (b: Uint8Array): string =>
  Array.from({ length: 8 }, (_, i) =>
    (((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0)).toString(16).padStart(4, '0'),
  ).join(':');

/** 8 groups, zeros frequent, so that "::" compression gets exercised. */
const ipv6Bytes = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((groups) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff])));

const ascii = (s: string): Uint8Array => bytes(s);

describe('parseV1 (§2.1)', () => {
  for (const f of V1_FIXTURES) {
    it(`parses the ${f.name} fixture in strict and tolerant mode`, () => {
      for (const mode of ['strict', 'tolerant'] as const) {
        expect(parseProxyHeader(f.bytes, { mode, ...f.options })).toEqual({
          status: 'done',
          header: f.header,
          consumed: f.bytes.length,
        });
      }
    });
  }

  it('consumes exactly the line and leaves the request after it', () => {
    const r = strict(bytes(V1_TCP4.bytes, 'GET / HTTP/1.1\r\n\r\n'));
    expect(r).toEqual({ status: 'done', header: V1_TCP4.header, consumed: V1_TCP4.bytes.length });
  });

  it('accepts port 0 and port 65535 and rejects 65536 with PRX_BAD_HDR', () => {
    expect(codeOf(strict(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n')))).toBe('done');
    expect(codeOf(strict(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n')))).toBe('PRX_BAD_HDR');
  });

  it('rejects a port of six digits with PRX_BAD_HDR before its separator arrives', () => {
    expect(codeOf(tolerant(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 100000')))).toBe('PRX_BAD_HDR');
  });

  it('rejects "00" and "01" as ports but accepts "0"', () => {
    expect(codeOf(strict(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 00 1\r\n')))).toBe('PRX_BAD_HDR');
    expect(codeOf(strict(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 01 1\r\n')))).toBe('PRX_BAD_HDR');
    expect(codeOf(strict(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 0 1\r\n')))).toBe('done');
  });

  it('rejects a TCP4 address with a leading zero in any octet', () => {
    for (const addr of ['01.2.3.4', '1.02.3.4', '1.2.003.4', '1.2.3.00']) {
      expect(codeOf(strict(ascii(`PROXY TCP4 ${addr} 5.6.7.8 1 2\r\n`)))).toBe('PRX_BAD_HDR');
    }
  });

  it('rejects five octets and empty octets', () => {
    for (const addr of ['1.2.3.4.5', '1..3.4', '.1.2.3', '1.2.3.']) {
      expect(codeOf(strict(ascii(`PROXY TCP4 ${addr} 5.6.7.8 1 2\r\n`)))).toBe('PRX_BAD_HDR');
    }
  });

  it('returns need-more for a partial line in tolerant mode and PRX_TRUNCATED for it in strict mode', () => {
    const partial = ascii('PROXY TCP4 192.168.0.1 192.168.0.11 563');
    expect(tolerant(partial)).toEqual({ status: 'need-more' });
    expect(codeOf(strict(partial))).toBe('PRX_TRUNCATED');
  });

  it('reports a malformed TCP4 address before the line ends, in both modes, as HAProxy does', () => {
    const early = ascii('PROXY TCP4 bad header');
    expect(codeOf(strict(early))).toBe('PRX_BAD_HDR');
    expect(codeOf(tolerant(early))).toBe('PRX_BAD_HDR');
  });

  it('waits for the CR of a TCP6 line in strict mode before decoding it, as HAProxy does', () => {
    const noCr = ascii('PROXY TCP6 ::1 ::g');
    expect(codeOf(strict(noCr))).toBe('PRX_TRUNCATED');
    expect(codeOf(tolerant(noCr))).toBe('PRX_BAD_HDR');
    expect(codeOf(strict(ascii('PROXY TCP6 ::1 ::g 1 2\r\n')))).toBe('PRX_BAD_HDR');
  });

  it('rejects a TCP6 line with its CR as the last byte read with PRX_TRUNCATED in strict mode', () => {
    expect(codeOf(strict(V1_TCP6.bytes.subarray(0, V1_TCP6.bytes.length - 1)))).toBe('PRX_TRUNCATED');
  });

  describe('the 107-byte limit', () => {
    const a = '0000:0000:0000:0000:0000:ffff:255.255.255.255'; // 45 chars, valid
    const line107 = `PROXY TCP6 ${a} ffff:ffff:ffff:ffff:ffff:ffff:fff:ff 65535 65535\r\n`;
    const line108 = `PROXY TCP6 ${a} ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff 65535 65535\r\n`;

    it('accepts a TCP6 line of exactly 107 bytes', () => {
      expect(line107.length).toBe(V1_MAX_LENGTH);
      expect(codeOf(strict(ascii(line107)))).toBe('done');
      expect(codeOf(tolerant(ascii(line107)))).toBe('done');
    });

    it('rejects a TCP6 line of 108 valid-looking bytes with PRX_BAD_HDR in both modes', () => {
      expect(line108.length).toBe(V1_MAX_LENGTH + 1);
      expect(codeOf(strict(ascii(line108)))).toBe('PRX_BAD_HDR');
      expect(codeOf(tolerant(ascii(line108)))).toBe('PRX_BAD_HDR');
    });

    it('returns need-more for 106 bytes without CRLF in tolerant mode and PRX_BAD_HDR at 107', () => {
      const body = (n: number) => bytes('PROXY UNKNOWN ', 'x'.repeat(n - 14));
      const opts = { unknownLongForm: 'accept' } as const;
      expect(tolerant(body(106), opts)).toEqual({ status: 'need-more' });
      expect(codeOf(tolerant(body(107), opts))).toBe('PRX_BAD_HDR');
    });
  });

  describe('UNKNOWN', () => {
    it('rejects the long form with PRX_BAD_PROTO by default, as HAProxy does since 4c20d29c2', () => {
      expect(codeOf(strict(V1_UNKNOWN_LONG.bytes))).toBe('PRX_BAD_PROTO');
      expect(codeOf(tolerant(V1_UNKNOWN_LONG.bytes))).toBe('PRX_BAD_PROTO');
    });

    it('accepts the long form and skips to the CRLF with unknownLongForm: accept', () => {
      const r = strict(bytes('PROXY UNKNOWN anything at all\r\nDATA'), { unknownLongForm: 'accept' });
      expect(r).toEqual({
        status: 'done',
        header: { version: 1, command: 'PROXY', family: 'UNKNOWN', tlvs: [] },
        consumed: 31,
      });
    });

    it('rejects a lone LF or a lone CR in the long form with PRX_BAD_HDR', () => {
      const opts = { unknownLongForm: 'accept' } as const;
      expect(codeOf(strict(ascii('PROXY UNKNOWN a\nb\r\n'), opts))).toBe('PRX_BAD_HDR');
      expect(codeOf(strict(ascii('PROXY UNKNOWN a\rb\r\n'), opts))).toBe('PRX_BAD_HDR');
    });

    it('rejects "UNKNOWNX" as an unhandled protocol with PRX_BAD_PROTO', () => {
      expect(codeOf(strict(ascii('PROXY UNKNOWNX\r\n'), { unknownLongForm: 'accept' }))).toBe(
        'PRX_BAD_PROTO',
      );
    });

    it('returns need-more for "PROXY UNKNOWN\\r" in tolerant mode', () => {
      expect(tolerant(ascii('PROXY UNKNOWN\r'))).toEqual({ status: 'need-more' });
    });
  });

  it('decides PRX_BAD_PROTO as soon as no protocol name can match', () => {
    expect(codeOf(tolerant(ascii('PROXY TCPX')))).toBe('PRX_BAD_PROTO');
    expect(tolerant(ascii('PROXY TCP'))).toEqual({ status: 'need-more' });
    expect(tolerant(ascii('PROXY UNKNOW'))).toEqual({ status: 'need-more' });
  });
});

describe('scanIPv4', () => {
  it('agrees with node:net isIPv4 on strings of digits and dots', () => {
    const text = fc.stringMatching(/^[0-9.]{0,17}$/);
    fc.assert(
      fc.property(text, (s) => {
        const b = ascii(s);
        expect(scanIPv4(b, 0, b.length).status === 'valid').toBe(isIPv4(s));
      }),
      { numRuns: RUNS },
    );
  });

  it('calls no proper prefix of a valid address invalid', () => {
    fc.assert(
      fc.property(fc.ipV4(), (s) => {
        const b = ascii(s);
        const invalid = Array.from({ length: b.length }, (_, n) => n).filter(
          (n) => scanIPv4(b, 0, n).status === 'invalid',
        );
        expect(invalid).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('scanIPv6', () => {
  it('agrees with node:net isIPv6 on strings of hex digits, colons and dots', () => {
    const text = fc.oneof(
      fc.stringMatching(/^[0-9a-fA-F:.]{0,46}$/),
      fc.stringMatching(/^(?:[0-9a-f]{0,5}:{1,3}){0,9}(?:[0-9]{1,4}\.){0,4}[0-9a-f]{0,4}$/),
      fc.ipV6(),
    );
    fc.assert(
      fc.property(text, (s) => {
        const b = ascii(s);
        expect(scanIPv6(b, 0, b.length).status === 'valid').toBe(isIPv6(s));
      }),
      { numRuns: RUNS },
    );
  });

  it('decodes every form fast-check generates to the bytes WHATWG URL decodes it to', () => {
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const bytesOf = parseIPv6Text(s);
        expect(bytesOf).not.toBeNull();
        expect(formatIPv6(bytesOf ?? new Uint8Array(16))).toBe(urlForm(s));
      }),
      { numRuns: RUNS },
    );
  });

  it('calls no proper prefix of a valid address invalid', () => {
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const b = ascii(s);
        const invalid = Array.from({ length: b.length }, (_, n) => n).filter(
          (n) => scanIPv6(b, 0, n).status === 'invalid',
        );
        expect(invalid).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects embedded dotted quads with leading zeros or in the wrong place', () => {
    for (const s of [
      '::01.2.3.4',
      '1.2.3.4',
      '1:2:3:4:5:6:7:1.2.3.4',
      '::1.2.3',
      '::1.2.3.4.5',
      '::256.1.1.1',
    ]) {
      expect(parseIPv6Text(s)).toBeNull();
    }
  });
});

describe('formatIPv6', () => {
  it('writes addresses as WHATWG URL serializes them', () => {
    fc.assert(
      fc.property(ipv6Bytes, (b) => {
        expect(formatIPv6(b)).toBe(urlForm(fullGroups(b)));
      }),
      { numRuns: RUNS },
    );
  });

  it('compresses the first of two equally long zero runs and never a single zero group', () => {
    expect(formatIPv6(parseIPv6Text('1:0:0:2:0:0:3:4') ?? new Uint8Array(16))).toBe('1::2:0:0:3:4');
    expect(formatIPv6(parseIPv6Text('1:0:2:3:4:5:6:7') ?? new Uint8Array(16))).toBe('1:0:2:3:4:5:6:7');
  });
});

describe('scanPort and parseIPv4Text', () => {
  it('accepts exactly the decimal integers 0..65535 without heading zeros', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{1,6}$/), (s) => {
        const b = ascii(s);
        const expected = String(Number(s)) === s && Number(s) <= 65535;
        expect(scanPort(b, 0, b.length).status === 'valid').toBe(expected);
      }),
      { numRuns: RUNS },
    );
  });

  it('decodes a dotted quad to its four bytes', () => {
    expect(Array.from(parseIPv4Text('192.0.2.255') ?? [])).toEqual([192, 0, 2, 255]);
    expect(parseIPv4Text('192.0.2')).toBeNull();
  });
});

describe('buildV1', () => {
  it('builds lines that parse back to the same header', () => {
    const port = fc.integer({ min: 0, max: 65535 });
    const tcp4 = fc.record({ s: fc.ipV4(), d: fc.ipV4(), sp: port, dp: port }).map((x) => ({
      init: {
        family: 'TCP4' as const,
        source: { address: x.s, port: x.sp },
        destination: { address: x.d, port: x.dp },
      },
      expected: { source: { address: x.s, port: x.sp }, destination: { address: x.d, port: x.dp } },
    }));
    const tcp6 = fc.record({ s: ipv6Bytes, d: ipv6Bytes, sp: port, dp: port }).map((x) => ({
      init: {
        family: 'TCP6' as const,
        source: { address: fullGroups(x.s), port: x.sp },
        destination: { address: fullGroups(x.d), port: x.dp },
      },
      expected: {
        source: { address: urlForm(fullGroups(x.s)), port: x.sp },
        destination: { address: urlForm(fullGroups(x.d)), port: x.dp },
      },
    }));
    fc.assert(
      fc.property(fc.oneof(tcp4, tcp6), ({ init, expected }) => {
        const line = buildV1(init);
        expect(strict(line)).toEqual({
          status: 'done',
          header: { version: 1, command: 'PROXY', family: init.family, ...expected, tlvs: [] },
          consumed: line.length,
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('builds "PROXY UNKNOWN\\r\\n" for family UNKNOWN', () => {
    expect(buildV1({ family: 'UNKNOWN' })).toEqual(bytes('PROXY UNKNOWN\r\n'));
  });

  it('throws RangeError for an address of the wrong family, a bad port or a v2-only family', () => {
    const ep = (address: string, port = 1) => ({ address, port });
    expect(() => buildV1({ family: 'TCP4', source: ep('::1'), destination: ep('1.2.3.4') })).toThrow(
      RangeError,
    );
    expect(() =>
      buildV1({ family: 'TCP4', source: ep('1.2.3.4', 70000), destination: ep('1.2.3.4') }),
    ).toThrow(RangeError);
    expect(() => buildV1({ family: 'UDP4', source: ep('1.2.3.4'), destination: ep('1.2.3.4') })).toThrow(
      RangeError,
    );
  });
});
