import fc from 'fast-check';
import ppjs from 'proxy-protocol-js';
import { describe, expect, it } from 'vitest';
import { ERR_CODES } from '../../../machines/errCodes.ts';
import { buildV1, buildV2, type ProxyHeaderInit } from '../../../impl/proxy/build.ts';
import {
  HAPROXY_BUFSIZE,
  parseProxyHeader,
  type ProxyHeader,
  type ProxyParseOptions,
  type ProxyParseResult,
} from '../../../impl/proxy/parse.ts';
import { ALL_FIXTURES, bytes, SIG, u16, V1_TCP4, V2_TCP4 } from './fixtures.ts';
import { MALFORMED } from './malformed.ts';

// Runs per property. `npm test` runs 10k+ generated inputs over this file (a few seconds at most);
// EMBRYONIC_DEEP=1 runs ten times as many (100k+).
const DEEP = process.env.EMBRYONIC_DEEP === '1';
const runs = (n: number): number => (DEEP ? n * 10 : n);

type Options = Omit<ProxyParseOptions, 'mode'>;

const PRX_CODES = new Set(Object.keys(ERR_CODES).filter((k) => k.startsWith('PRX_')));

const concat = (...parts: ArrayLike<number>[]): Uint8Array => bytes(...parts.map((p) => Array.from(p)));
const ascii = (s: string): Uint8Array => bytes(s);
const dotted = (b: Uint8Array): string => Array.from(b).join('.');
const fullGroups = (b: ArrayLike<number>): string =>
  Array.from({ length: 8 }, (_, i) =>
    (((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0)).toString(16).padStart(4, '0'),
  ).join(':');
/** The WHATWG URL serialization of an IPv6 address: an oracle independent of the parser. */
const urlForm = (text: string): string => new URL(`http://[${text}]`).hostname.slice(1, -1);

// ---------------------------------------------------------------------------------------------
// Generated valid headers, each with the header the parser must return (computed without it)
// ---------------------------------------------------------------------------------------------

interface Valid {
  bytes: Uint8Array;
  header: ProxyHeader;
  options: Options;
}

const port = fc.integer({ min: 0, max: 65535 });
const ipv4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
const ipv6 = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((groups) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff])));

const v1Tcp4: fc.Arbitrary<Valid> = fc.record({ s: ipv4, d: ipv4, sp: port, dp: port }).map((x) => {
  const source = { address: dotted(x.s), port: x.sp };
  const destination = { address: dotted(x.d), port: x.dp };
  return {
    bytes: buildV1({ family: 'TCP4', source, destination }),
    header: { version: 1, command: 'PROXY', family: 'TCP4', source, destination, tlvs: [] },
    options: {},
  };
});

const v1Tcp6: fc.Arbitrary<Valid> = fc
  .record({ s: ipv6, d: ipv6, sp: port, dp: port, style: fc.constantFrom('full', 'upper', 'compressed') })
  .map((x) => {
    const text = (b: Uint8Array) =>
      x.style === 'full'
        ? fullGroups(b)
        : x.style === 'upper'
          ? fullGroups(b).toUpperCase()
          : urlForm(fullGroups(b));
    const init = {
      family: 'TCP6' as const,
      source: { address: text(x.s), port: x.sp },
      destination: { address: text(x.d), port: x.dp },
    };
    return {
      bytes: buildV1(init),
      header: {
        version: 1,
        command: 'PROXY',
        family: 'TCP6',
        source: { address: urlForm(fullGroups(x.s)), port: x.sp },
        destination: { address: urlForm(fullGroups(x.d)), port: x.dp },
        tlvs: [],
      },
      options: {},
    };
  });

const v1Unknown: fc.Arbitrary<Valid> = fc.oneof(
  fc.constant({
    bytes: ascii('PROXY UNKNOWN\r\n'),
    header: { version: 1, command: 'PROXY', family: 'UNKNOWN', tlvs: [] },
    options: {},
  } satisfies Valid),
  fc.stringMatching(/^[ -~]{0,90}$/).map((tail): Valid => ({
    bytes: ascii(`PROXY UNKNOWN ${tail}\r\n`),
    header: { version: 1, command: 'PROXY', family: 'UNKNOWN', tlvs: [] },
    options: { unknownLongForm: 'accept' },
  })),
);

const tlv = fc.record({
  type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== 0x03),
  value: fc.uint8Array({ maxLength: 32 }),
});

const v2Any: fc.Arbitrary<Valid> = fc
  .record({
    command: fc.constantFrom('PROXY', 'LOCAL'),
    family: fc.constantFrom('TCP4', 'TCP6', 'UDP4', 'UDP6', 'UNIX', 'UNSPEC'),
    s4: ipv4,
    d4: ipv4,
    s6: ipv6,
    d6: ipv6,
    sp: port,
    dp: port,
    tlvs: fc.array(tlv, { maxLength: 4 }),
    crc: fc.boolean(),
  })
  .map((x) => {
    const v4 = x.family === 'TCP4' || x.family === 'UDP4';
    const v6 = x.family === 'TCP6' || x.family === 'UDP6';
    const source = v4 ? { address: dotted(x.s4), port: x.sp } : { address: fullGroups(x.s6), port: x.sp };
    const destination = v4
      ? { address: dotted(x.d4), port: x.dp }
      : { address: fullGroups(x.d6), port: x.dp };
    const init: ProxyHeaderInit = { command: x.command, family: x.family, tlvs: x.tlvs };
    if (v4 || v6) Object.assign(init, { source, destination });
    const built = buildV2(init, { crc32c: x.crc });
    const crcTlv = x.crc ? [{ type: 0x03, value: built.slice(-4) }] : [];
    let header: ProxyHeader;
    if (x.command === 'LOCAL') {
      header = { version: 2, command: 'LOCAL', family: x.family, tlvs: [] };
    } else if (x.family === 'UNSPEC') {
      header = { version: 2, command: 'PROXY', family: 'UNSPEC', tlvs: [] };
    } else if (x.family === 'TCP4' || x.family === 'TCP6') {
      const canon = (ep: { address: string; port: number }) =>
        x.family === 'TCP6' ? { address: urlForm(ep.address), port: ep.port } : ep;
      const ends = { source: canon(source), destination: canon(destination) };
      header = { version: 2, command: 'PROXY', family: x.family, ...ends, tlvs: [...x.tlvs, ...crcTlv] };
    } else {
      header = { version: 2, command: 'PROXY', family: x.family, tlvs: [...x.tlvs, ...crcTlv] };
    }
    return { bytes: built, header, options: {} };
  });

const validHeader: fc.Arbitrary<Valid> = fc.oneof(v1Tcp4, v1Tcp6, v1Unknown, v2Any);

const parse = (b: Uint8Array, mode: 'strict' | 'tolerant', o: Options = {}): ProxyParseResult =>
  parseProxyHeader(b, { mode, ...o });
const codeOf = (r: ProxyParseResult): string => (r.status === 'error' ? r.code : r.status);

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

describe('parseProxyHeader', () => {
  describe('detection', () => {
    it('returns need-more for an empty buffer in both modes: the only case strict mode waits', () => {
      expect(parse(bytes(), 'strict')).toEqual({ status: 'need-more' });
      expect(parse(bytes(), 'tolerant')).toEqual({ status: 'need-more' });
    });

    it('rejects an empty buffer at eof with PRX_EMPTY in both modes', () => {
      expect(codeOf(parse(bytes(), 'strict', { eof: true }))).toBe('PRX_EMPTY');
      expect(codeOf(parse(bytes(), 'tolerant', { eof: true }))).toBe('PRX_EMPTY');
    });

    it('treats every proper prefix of "PROXY " and of the v2 signature as incomplete, not as PRX_NOT_HDR', () => {
      for (const sig of [ascii('PROXY '), bytes(SIG)]) {
        for (let n = 1; n < sig.length; n++) {
          expect(parse(sig.subarray(0, n), 'tolerant')).toEqual({ status: 'need-more' });
          expect(codeOf(parse(sig.subarray(0, n), 'strict'))).toBe('PRX_TRUNCATED');
        }
      }
    });

    it('rejects 16 bytes that are neither v1 nor v2 with PRX_NOT_HDR in both modes', () => {
      const tls = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03], [1, 2, 3, 4, 5]);
      for (const mode of ['strict', 'tolerant'] as const)
        expect(codeOf(parse(tls, mode))).toBe('PRX_NOT_HDR');
    });

    it('applies HAProxy thresholds in strict mode: under 16 bytes without "PROXY " is PRX_TRUNCATED', () => {
      expect(codeOf(parse(ascii('SSH-2.0-OpenSSH'), 'strict'))).toBe('PRX_TRUNCATED');
      expect(codeOf(parse(ascii('SSH-2.0-OpenSSH_'), 'strict'))).toBe('PRX_NOT_HDR');
      expect(codeOf(parse(ascii('SSH-2.0-OpenSSH'), 'tolerant'))).toBe('PRX_NOT_HDR');
    });

    it('rejects an incomplete header at eof with PRX_TRUNCATED in tolerant mode', () => {
      expect(codeOf(parse(V2_TCP4.bytes.subarray(0, 20), 'tolerant', { eof: true }))).toBe('PRX_TRUNCATED');
    });

    it('returns done for a complete header at eof', () => {
      expect(codeOf(parse(V1_TCP4.bytes, 'tolerant', { eof: true }))).toBe('done');
      expect(codeOf(parse(V1_TCP4.bytes, 'strict', { eof: true }))).toBe('done');
    });

    it('uses 16384 as the default bufsize, as HAProxy does', () => {
      expect(HAPROXY_BUFSIZE).toBe(16384);
    });
  });

  describe('malformed inputs (test/impl/proxy/malformed.ts)', () => {
    it('holds at least 30 cases', () => {
      expect(MALFORMED.length).toBeGreaterThanOrEqual(30);
    });

    for (const c of MALFORMED) {
      it(`rejects ${c.desc} with ${c.expectedCode} in ${c.mode} mode`, () => {
        const r = parse(c.bytes, c.mode, c.options);
        expect(r.status === 'error' && { code: r.code, hasReason: r.reason.length > 0 }).toEqual({
          code: c.expectedCode,
          hasReason: true,
        });
      });
    }
  });

  describe('fixtures fed one byte at a time', () => {
    for (const f of ALL_FIXTURES) {
      it(`returns need-more for each proper prefix of the ${f.name} fixture in tolerant mode, then done`, () => {
        for (let n = 1; n < f.bytes.length; n++) {
          expect(parse(f.bytes.subarray(0, n), 'tolerant', f.options)).toEqual({ status: 'need-more' });
        }
        expect(parse(f.bytes, 'tolerant', f.options)).toEqual({
          status: 'done',
          header: f.header,
          consumed: f.bytes.length,
        });
      });

      it(`rejects each proper prefix of the ${f.name} fixture with PRX_TRUNCATED in strict mode`, () => {
        for (let n = 1; n < f.bytes.length; n++) {
          expect(codeOf(parse(f.bytes.subarray(0, n), 'strict', f.options))).toBe('PRX_TRUNCATED');
        }
      });
    }
  });

  describe('properties', () => {
    it('gives need-more for every chunked prefix of a valid header in tolerant mode, then the whole-header result', () => {
      fc.assert(
        fc.property(
          validHeader,
          fc.uint8Array({ maxLength: 24 }),
          fc.array(fc.integer({ min: 1, max: 48 }), { minLength: 1, maxLength: 8 }),
          (h, trailing, sizes) => {
            const stream = concat(h.bytes, trailing);
            const whole = parse(stream, 'tolerant', h.options);
            expect(whole).toEqual({ status: 'done', header: h.header, consumed: h.bytes.length });
            let received = 0;
            for (let i = 0; received < stream.length; i++) {
              received = Math.min(stream.length, received + (sizes[i % sizes.length] ?? 1));
              const r = parse(stream.subarray(0, received), 'tolerant', h.options);
              expect(r).toEqual(received < h.bytes.length ? { status: 'need-more' } : whole);
            }
          },
        ),
        { numRuns: runs(300) },
      );
    });

    it('rejects any proper non-empty prefix of a valid header with PRX_TRUNCATED in strict mode', () => {
      fc.assert(
        fc.property(validHeader, fc.nat(), (h, k) => {
          const n = 1 + (k % (h.bytes.length - 1));
          expect(codeOf(parse(h.bytes.subarray(0, n), 'strict', h.options))).toBe('PRX_TRUNCATED');
        }),
        { numRuns: runs(1000) },
      );
    });

    it('never consumes the bytes after the header', () => {
      fc.assert(
        fc.property(
          validHeader,
          fc.uint8Array({ minLength: 1, maxLength: 64 }),
          fc.boolean(),
          (h, data, s) => {
            const r = parse(concat(h.bytes, data), s ? 'strict' : 'tolerant', h.options);
            expect(r).toEqual({ status: 'done', header: h.header, consumed: h.bytes.length });
          },
        ),
        { numRuns: runs(1000) },
      );
    });

    describe('differential against proxy-protocol-js', () => {
      it('parses its v1 TCP4 and TCP6 lines to the same addresses and ports', () => {
        const line = fc.oneof(
          fc.record({
            inet: fc.constant(ppjs.INETProtocol.TCP4),
            s: fc.ipV4(),
            d: fc.ipV4(),
            sp: port,
            dp: port,
          }),
          fc.record({
            inet: fc.constant(ppjs.INETProtocol.TCP6),
            s: fc.ipV6(),
            d: fc.ipV6(),
            sp: port,
            dp: port,
          }),
        );
        fc.assert(
          fc.property(line, fc.uint8Array({ maxLength: 16 }), ({ inet, s, d, sp, dp }, data) => {
            const text = new ppjs.V1ProxyProtocol(inet, new ppjs.Peer(s, sp), new ppjs.Peer(d, dp)).build();
            const r = parse(concat(ascii(text), data), 'strict');
            if (text.length > 107) {
              expect(codeOf(r)).toBe('PRX_BAD_HDR'); // §2.1: no CRLF within 107 bytes
              return;
            }
            const canon = (a: string) => (inet === ppjs.INETProtocol.TCP6 ? urlForm(a) : a);
            expect(r).toEqual({
              status: 'done',
              header: {
                version: 1,
                command: 'PROXY',
                family: inet,
                source: { address: canon(s), port: sp },
                destination: { address: canon(d), port: dp },
                tlvs: [],
              },
              consumed: text.length,
            });
          }),
          { numRuns: runs(1000) },
        );
      });

      it('parses its v2 headers to the same command, family, addresses and ports', () => {
        const header = fc.record({
          command: fc.constantFrom(ppjs.Command.PROXY, ppjs.Command.LOCAL),
          transport: fc.constantFrom(ppjs.TransportProtocol.STREAM, ppjs.TransportProtocol.DGRAM),
          v6: fc.boolean(),
          s4: ipv4,
          d4: ipv4,
          s6: ipv6,
          d6: ipv6,
          sp: port,
          dp: port,
          data: fc.uint8Array({ maxLength: 16 }),
        });
        fc.assert(
          fc.property(header, (x) => {
            const address = x.v6
              ? new ppjs.IPv6ProxyAddress(
                  ppjs.IPv6Address.createFrom(Array.from(x.s6)),
                  x.sp,
                  ppjs.IPv6Address.createFrom(Array.from(x.d6)),
                  x.dp,
                )
              : new ppjs.IPv4ProxyAddress(
                  ppjs.IPv4Address.createFrom(Array.from(x.s4)),
                  x.sp,
                  ppjs.IPv4Address.createFrom(Array.from(x.d4)),
                  x.dp,
                );
            const wire = new ppjs.V2ProxyProtocol(x.command, x.transport, address, x.data).build();
            const r = parse(wire, 'strict');
            const stream = x.transport === ppjs.TransportProtocol.STREAM;
            const family = x.v6 ? (stream ? 'TCP6' : 'UDP6') : stream ? 'TCP4' : 'UDP4';
            const expected: ProxyHeader =
              x.command === ppjs.Command.LOCAL || !stream
                ? {
                    version: 2,
                    command: x.command === ppjs.Command.LOCAL ? 'LOCAL' : 'PROXY',
                    family,
                    tlvs: [],
                  }
                : {
                    version: 2,
                    command: 'PROXY',
                    family,
                    source: { address: x.v6 ? urlForm(fullGroups(x.s6)) : dotted(x.s4), port: x.sp },
                    destination: { address: x.v6 ? urlForm(fullGroups(x.d6)) : dotted(x.d4), port: x.dp },
                    tlvs: [],
                  };
            expect(r).toEqual({ status: 'done', header: expected, consumed: x.v6 ? 52 : 28 });
          }),
          { numRuns: runs(1000) },
        );
      });
    });

    describe('robustness', () => {
      const noise = fc.uint8Array({ maxLength: 128 });
      const nearHeaders = fc.oneof(
        noise,
        noise.map((b) => concat(ascii('PROXY '), b)),
        noise.map((b) => concat(SIG, b)),
        fc
          .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.nat(300), noise)
          .map(([verCmd, fam, len, b]) => concat(SIG, [verCmd, fam], u16(len), b)),
        fc.stringMatching(/^PROXY (?:TCP4|TCP6|UNKNOWN) [0-9a-fA-F.: \r\n]{0,110}$/).map(ascii),
      );
      const mutation = fc.oneof(
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
        fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
        fc.record({
          kind: fc.constant('insert' as const),
          at: fc.nat(),
          byte: fc.integer({ min: 0, max: 255 }),
        }),
        fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
      );
      type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;
      const mutate = (b: Uint8Array, m: Mutation): Uint8Array => {
        const at = m.at % (b.length + 1);
        const out = Array.from(b);
        if (m.kind === 'flip' && at < out.length) out[at] = (out[at] ?? 0) ^ (1 << m.bit);
        if (m.kind === 'truncate') out.length = at;
        if (m.kind === 'insert') out.splice(at, 0, m.byte);
        if (m.kind === 'delete') out.splice(at, 1);
        return Uint8Array.from(out);
      };
      const mutated = fc
        .tuple(validHeader, fc.array(mutation, { minLength: 1, maxLength: 4 }))
        .map(([h, ms]) => ms.reduce(mutate, h.bytes));
      const options = fc.record({
        eof: fc.boolean(),
        unknownLongForm: fc.constantFrom('reject' as const, 'accept' as const),
        v2OtherFamilies: fc.constantFrom('real-addresses' as const, 'haproxy-2.6' as const),
      });

      /** True iff <b> can still be the start of a header, judging only by its shape. */
      const prefixShaped = (b: Uint8Array): boolean => {
        const v1 = ascii('PROXY ');
        if (b.length <= v1.length && b.every((x, i) => x === v1[i])) return true;
        if (b.length > v1.length && v1.every((x, i) => x === b[i])) return b.length < 107;
        if (b.length < 13) return b.every((x, i) => x === SIG[i]);
        if (!SIG.every((x, i) => x === b[i]) || (b[12] ?? 0) >> 4 !== 2) return false;
        if (b.length < 16) return true;
        const total = 16 + (((b[14] ?? 0) << 8) | (b[15] ?? 0));
        return b.length < total && total <= HAPROXY_BUFSIZE;
      };

      /**
       * Parses <b> and returns the result with the list of invariants it breaks (empty when none).
       * Plain predicates rather than one expect() each: this runs on thousands of inputs.
       */
      const checkOutcome = (b: Uint8Array, mode: 'strict' | 'tolerant', o: Options) => {
        let r: ProxyParseResult;
        try {
          r = parse(b, mode, o);
        } catch (e) {
          return { r: null, broken: [`${mode}: threw ${String(e)}`] };
        }
        const broken: string[] = [];
        const check = (ok: boolean, what: string) => ok || broken.push(`${mode}: ${what}`);
        if (r.status === 'done') {
          check(r.consumed > 0 && r.consumed <= b.length, 'consumed within the buffer');
          if (r.header.version === 1) check(r.consumed <= 107, 'a v1 line is at most 107 bytes');
          else
            check(r.consumed === 16 + (((b[14] ?? 0) << 8) | (b[15] ?? 0)), 'a v2 header is 16 + len bytes');
          check(
            (r.header.source === undefined) === (r.header.destination === undefined),
            'both endpoints or none',
          );
        } else if (r.status === 'error') {
          check(PRX_CODES.has(r.code), `a PRX_* code, not ${r.code}`);
          check(r.code !== 'PRX_TIMEOUT' && r.code !== 'PRX_ABORT', `no socket-level code (${r.code})`);
          check(
            (r.code === 'PRX_EMPTY') === (b.length === 0 && o.eof === true),
            'PRX_EMPTY iff empty at eof',
          );
          check(r.reason.length > 0, 'a reason');
        } else {
          // need-more: only an empty buffer waits in strict mode; tolerant mode waits on prefixes
          check(o.eof !== true, 'no need-more at eof');
          check(b.length === 0 || (mode === 'tolerant' && prefixShaped(b)), 'need-more only for a prefix');
        }
        return { r, broken };
      };

      const checkBothModes = (b: Uint8Array, o: Options): void => {
        const s = checkOutcome(b, 'strict', o);
        const t = checkOutcome(b, 'tolerant', o);
        const broken = [...s.broken, ...t.broken];
        // A complete valid header is accepted identically by both modes.
        if (s.r?.status === 'done' || t.r?.status === 'done') {
          if (JSON.stringify(s.r) !== JSON.stringify(t.r)) broken.push('strict and tolerant agree on done');
        }
        // Tolerant need-more becomes PRX_TRUNCATED (or PRX_EMPTY) once the client closes.
        if (t.r?.status === 'need-more') {
          const atEof = codeOf(parse(b, 'tolerant', { ...o, eof: true }));
          if (atEof !== (b.length ? 'PRX_TRUNCATED' : 'PRX_EMPTY'))
            broken.push(`need-more then ${atEof} at eof`);
        }
        expect(broken).toEqual([]);
      };

      it('never throws on random and near-header bytes, and ends in done, a waiting need-more or a PRX code', () => {
        fc.assert(
          fc.property(nearHeaders, options, (b, o) => checkBothModes(b, o)),
          { numRuns: runs(2500) },
        );
      });

      it('never throws on mutated valid headers (bit flips, truncation, insertion, deletion)', () => {
        fc.assert(
          fc.property(mutated, options, (b, o) => checkBothModes(b, o)),
          { numRuns: runs(2500) },
        );
      });
    });
  });
});
