/**
 * PROXY protocol v1, the human-readable header (doc/proxy-protocol.txt §2.1):
 *
 *   "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
 *   "PROXY" SP "UNKNOWN" CRLF                  (HAProxy accepts only this UNKNOWN form)
 *   "PROXY" SP "UNKNOWN" SP <anything> CRLF    (spec; option unknownLongForm: 'accept')
 *
 * As HAProxy's conn_recv_proxy() does, the line is read field by field, each field ending at its
 * separator, so a malformed field is reported as soon as it is seen. The steps, one function
 * each: protocol name (readProtocol), then for TCP4/TCP6 four fields (readField) and the CRLF
 * (readCrlf), or for UNKNOWN the end of the line (readUnknownTail). Every step starts with its
 * "need more bytes" exit.
 *
 * Codes: a protocol name other than TCP4/TCP6/UNKNOWN → PRX_BAD_PROTO (HAProxy's memcmp() of
 * "TCP4 ", "TCP6 ", "UNKNOWN\r\n"); anything else wrong → PRX_BAD_HDR. The address and port
 * rules are the spec's (§2.1), stricter than HAProxy's (see ./parse.ts).
 *
 * This file also holds the textual address forms of §2.1 (scanIPv4, scanIPv6 and the
 * format/parse helpers the v2 parser and the builders share).
 */
import type { ProxyEndpoint, ProxyHeader, ProxyParseResult, ResolvedProxyOptions } from './parse.ts';

/** "PROXY " (§2.1: the protocol string, then exactly one space). */
export const V1_SIGNATURE: Uint8Array = ascii('PROXY ');

/**
 * The longest valid v1 line, CRLF included (§2.1): "the worst case" UNKNOWN line with two full
 * IPv6 addresses and two 5-digit ports is 5 + 1 + 7 + 1 + 39 + 1 + 39 + 1 + 5 + 1 + 5 + 2 = 107
 * chars, and "If the CRLF sequence is not found in the first 107 characters, the receiver should
 * declare the line invalid."
 */
export const V1_MAX_LENGTH = 107;

/** HAProxy's "shortest possible line" check: with "PROXY " and fewer bytes, it reports missing. */
const HAPROXY_V1_MIN_READ = 9;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const DOT = 0x2e;
const COLON = 0x3a;
const ZERO = 0x30;

/** Result of one parsing step: a value and the offset after it, or the final parse result. */
type Step<T> = { ok: true; value: T; next: number } | { ok: false; result: ProxyParseResult };

/** Result of checking a field's text: complete and valid, a proper prefix of a valid one, or neither. */
export type FieldScan<T> = { status: 'valid'; value: T } | { status: 'prefix' } | { status: 'invalid' };

const PREFIX: FieldScan<never> = Object.freeze({ status: 'prefix' });
const INVALID: FieldScan<never> = Object.freeze({ status: 'invalid' });

/**
 * Parses a v1 header at the start of <buf>.
 *
 * Requires <buf> to begin with "PROXY " (./parse.ts detects it; otherwise PRX_NOT_HDR is
 * returned). In strict mode <buf> is HAProxy's first read; in tolerant mode it is everything
 * received so far.
 *
 * Returns `need-more` if the bytes so far are a valid beginning of a line (never once 107 bytes
 * are in without a complete line; in strict mode also for fewer than 9 bytes and, for TCP6, until
 * a CR is in, as HAProxy scans the TCP6 line for its CR before decoding it); `done` with
 * `consumed` = the line length, CRLF included; or `error` (PRX_BAD_PROTO, PRX_BAD_HDR).
 *
 * Never throws; reads at most the first 107 bytes of <buf> and does not modify it. Pure.
 */
export function parseV1(buf: Uint8Array, o: ResolvedProxyOptions): ProxyParseResult {
  for (let i = 0; i < V1_SIGNATURE.length; i++) {
    if (buf[i] !== V1_SIGNATURE[i]) return fail('PRX_NOT_HDR', 'does not start with "PROXY " (§2.1)');
  }
  if (o.mode === 'strict' && buf.length < HAPROXY_V1_MIN_READ) return NEED_MORE;
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  const proto = readProtocol(buf, V1_SIGNATURE.length, limit);
  if (!proto.ok) return proto.result;
  if (proto.value === 'UNKNOWN') return readUnknownTail(buf, proto.next, limit, o);
  if (proto.value === 'TCP6' && o.mode === 'strict') {
    const early = awaitCr(buf, proto.next, limit);
    if (early) return early;
  }
  return readTcpLine(buf, proto.next, limit, proto.value);
}

/**
 * Step 1 (§2.1, "a string indicating the proxied INET protocol and family"): "TCP4 ", "TCP6 "
 * (the name and its separator, as HAProxy compares them) or "UNKNOWN".
 */
function readProtocol(buf: Uint8Array, pos: number, limit: number): Step<'TCP4' | 'TCP6' | 'UNKNOWN'> {
  let partial = false;
  for (const [name, token] of PROTOCOL_TOKENS) {
    const m = matchAt(buf, pos, limit, token);
    if (m === 'match') return { ok: true, value: name, next: pos + token.length };
    if (m === 'prefix') partial = true;
  }
  if (partial) return { ok: false, result: more(buf) };
  return {
    ok: false,
    result: fail('PRX_BAD_PROTO', `unhandled protocol ${quote(buf, pos, pos + 9)} (§2.1)`),
  };
}

const PROTOCOL_TOKENS: ReadonlyArray<readonly ['TCP4' | 'TCP6' | 'UNKNOWN', Uint8Array]> = [
  ['TCP4', ascii('TCP4 ')],
  ['TCP6', ascii('TCP6 ')],
  ['UNKNOWN', ascii('UNKNOWN')],
];

/**
 * Step 2 for UNKNOWN (§2.1: "the receiver must ignore anything presented before the CRLF"):
 * "UNKNOWN" is followed by CRLF, or, in the long form, by a space, anything, and CRLF. HAProxy
 * accepts only the short form (4c20d29c2); a mismatch there is its memcmp() of "UNKNOWN\r\n"
 * failing, hence PRX_BAD_PROTO.
 */
function readUnknownTail(
  buf: Uint8Array,
  pos: number,
  limit: number,
  o: ResolvedProxyOptions,
): ProxyParseResult {
  if (pos >= limit) return more(buf);
  const b = buf[pos];
  if (b === CR) {
    if (pos + 1 >= limit) return more(buf);
    if (buf[pos + 1] === LF) return done(unknownHeader(), pos + 2);
    return o.unknownLongForm === 'accept'
      ? fail('PRX_BAD_HDR', 'CR not followed by LF after UNKNOWN (§2.1)')
      : fail('PRX_BAD_PROTO', 'UNKNOWN is not followed by CRLF (§2.1)');
  }
  if (b !== SP || o.unknownLongForm === 'reject') {
    const why =
      b === SP ? 'the long "UNKNOWN <addresses>" form is rejected, as HAProxy does' : 'unhandled protocol';
    return fail('PRX_BAD_PROTO', `${why}: ${quote(buf, pos - 7, pos + 8)} (§2.1)`);
  }
  for (let i = pos + 1; i < limit; i++) {
    if (buf[i] === LF) return fail('PRX_BAD_HDR', 'LF without CR in the UNKNOWN line (§2.1)');
    if (buf[i] !== CR) continue;
    if (i + 1 >= limit) return more(buf);
    if (buf[i + 1] !== LF) return fail('PRX_BAD_HDR', 'CR not followed by LF in the UNKNOWN line (§2.1)');
    return done(unknownHeader(), i + 2);
  }
  return more(buf);
}

/**
 * Strict mode, TCP6 only: HAProxy looks for the CR of a TCP6 line before decoding any field, and
 * reports missing while no CR stands before the last byte of the read.
 */
function awaitCr(buf: Uint8Array, pos: number, limit: number): ProxyParseResult | null {
  for (let i = pos; i + 1 < limit; i++) if (buf[i] === CR) return null;
  return more(buf);
}

/** Steps 2 to 6 for TCP4/TCP6 (§2.1): src SP dst SP sport SP dport CRLF. */
function readTcpLine(buf: Uint8Array, pos: number, limit: number, family: 'TCP4' | 'TCP6'): ProxyParseResult {
  const addr = family === 'TCP4' ? IPV4_FIELD : IPV6_FIELD;
  const src = readField(buf, pos, limit, addr, SP, 'source address');
  if (!src.ok) return src.result;
  const dst = readField(buf, src.next, limit, addr, SP, 'destination address');
  if (!dst.ok) return dst.result;
  const sport = readField(buf, dst.next, limit, PORT_FIELD, SP, 'source port');
  if (!sport.ok) return sport.result;
  const dport = readField(buf, sport.next, limit, PORT_FIELD, CR, 'destination port');
  if (!dport.ok) return dport.result;
  const end = readLf(buf, dport.next, limit);
  if (!end.ok) return end.result;
  const source: ProxyEndpoint = { address: src.value, port: sport.value };
  const destination: ProxyEndpoint = { address: dst.value, port: dport.value };
  return done({ version: 1, command: 'PROXY', family, source, destination, tlvs: [] }, end.next);
}

/** How to read one field: which bytes may appear in it and how to check and decode its text. */
interface Field<T> {
  name: string;
  isByte: (b: number) => boolean;
  scan: (buf: Uint8Array, start: number, end: number) => FieldScan<T>;
}

const IPV4_FIELD: Field<string> = {
  name: 'IPv4 address',
  isByte: (b) => isDigit(b) || b === DOT,
  scan: (buf, start, end) => mapScan(scanIPv4(buf, start, end), () => latin1(buf, start, end)),
};

const IPV6_FIELD: Field<string> = {
  name: 'IPv6 address',
  isByte: (b) => hexValue(b) >= 0 || b === COLON || b === DOT,
  scan: (buf, start, end) => mapScan(scanIPv6(buf, start, end), (bytes) => formatIPv6(bytes)),
};

const PORT_FIELD: Field<number> = { name: 'port', isByte: isDigit, scan: scanPort };

/**
 * One field and the single separator byte after it (§2.1: "exactly one space", or the CR of the
 * final CRLF). The field runs while its bytes are of the field's kind; its text is then checked
 * whole, so an invalid text is rejected even before its separator arrives.
 */
function readField<T>(
  buf: Uint8Array,
  pos: number,
  limit: number,
  field: Field<T>,
  separator: number,
  what: string,
): Step<T> {
  let end = pos;
  while (end < limit && field.isByte(buf[end] ?? -1)) end++;
  const scan = field.scan(buf, pos, end);
  if (scan.status === 'invalid') {
    return {
      ok: false,
      result: fail('PRX_BAD_HDR', `${what} ${quote(buf, pos, end)} is not a valid ${field.name} (§2.1)`),
    };
  }
  if (end >= limit) return { ok: false, result: more(buf) };
  if (scan.status === 'prefix') {
    return { ok: false, result: fail('PRX_BAD_HDR', `${what} ${quote(buf, pos, end)} is incomplete (§2.1)`) };
  }
  if (buf[end] !== separator) {
    const expected = separator === SP ? 'a single space' : 'CRLF';
    return { ok: false, result: fail('PRX_BAD_HDR', `expected ${expected} after the ${what} (§2.1)`) };
  }
  return { ok: true, value: scan.value, next: end + 1 };
}

/** The LF of the final CRLF (§2.1: "The receiver must not tolerate a single CR or LF character"). */
function readLf(buf: Uint8Array, pos: number, limit: number): Step<null> {
  if (pos >= limit) return { ok: false, result: more(buf) };
  if (buf[pos] !== LF) return { ok: false, result: fail('PRX_BAD_HDR', 'CR not followed by LF (§2.1)') };
  return { ok: true, value: null, next: pos + 1 };
}

/** "Need more bytes", unless 107 bytes are already in: then the line can no longer be valid. */
function more(buf: Uint8Array): ProxyParseResult {
  if (buf.length >= V1_MAX_LENGTH) {
    return fail('PRX_BAD_HDR', `no complete line within the first ${V1_MAX_LENGTH} bytes (§2.1)`);
  }
  return NEED_MORE;
}

function unknownHeader(): ProxyHeader {
  return { version: 1, command: 'PROXY', family: 'UNKNOWN', tlvs: [] };
}

const NEED_MORE: ProxyParseResult = Object.freeze({ status: 'need-more' });

function done(header: ProxyHeader, consumed: number): ProxyParseResult {
  return { status: 'done', header, consumed };
}

function fail(code: 'PRX_NOT_HDR' | 'PRX_BAD_HDR' | 'PRX_BAD_PROTO', reason: string): ProxyParseResult {
  return { status: 'error', code, reason };
}

// ---------------------------------------------------------------------------------------------
// Textual addresses and ports (§2.1)
// ---------------------------------------------------------------------------------------------

/**
 * Checks the IPv4 text <buf>[<start>, <end>) (§2.1): "exactly 4 integers in the range [0..255]
 * inclusive written in decimal representation separated by exactly one dot", with no heading
 * zeroes. Returns `valid` with the 4 address bytes, `prefix` if the text can still be completed
 * into a valid address, or `invalid`.
 * Pure; reads only <buf>[<start>, <end>).
 */
export function scanIPv4(buf: Uint8Array, start: number, end: number): FieldScan<Uint8Array> {
  const octets: number[] = [];
  let digits = 0;
  let value = 0;
  let leadingZero = false;
  for (let i = start; i < end; i++) {
    const b = buf[i] ?? -1;
    if (isDigit(b)) {
      if (digits > 0 && leadingZero) return INVALID;
      if (digits === 0) leadingZero = b === ZERO;
      value = value * 10 + (b - ZERO);
      digits++;
      if (value > 255) return INVALID;
    } else if (b === DOT) {
      if (digits === 0 || octets.length === 3) return INVALID;
      octets.push(value);
      digits = 0;
      value = 0;
    } else {
      return INVALID;
    }
  }
  if (octets.length < 3 || digits === 0) return PREFIX;
  octets.push(value);
  return { status: 'valid', value: Uint8Array.from(octets) };
}

/**
 * Checks the IPv6 text <buf>[<start>, <end>) (§2.1: "sets of 4 hexadecimal digits (upper or
 * lower case) delimited by colons", at most one "::", 128 bits in total). As HAProxy validates it
 * with inet_pton(), groups may have 1 to 4 digits and the last 32 bits may be a dotted quad
 * (RFC 4291 §2.2). Returns `valid` with the 16 address bytes, `prefix` if the text can still be
 * completed into a valid address, or `invalid` as soon as no completion can be valid.
 * Pure; reads only <buf>[<start>, <end>).
 */
export function scanIPv6(buf: Uint8Array, start: number, end: number): FieldScan<Uint8Array> {
  const s = new V6Scanner();
  for (let i = start; i < end; i++) if (!s.push(buf[i] ?? -1)) return INVALID;
  return s.finish();
}

/**
 * Incremental IPv6 text checker. Each push() rejects a byte as soon as the text can no longer
 * become a valid address; finish() tells a complete address from a proper prefix.
 */
class V6Scanner {
  private groups: number[] = []; // 16-bit groups written so far (≤ 8)
  private elided = -1; // index in groups where "::" stands; -1 = no "::" yet
  private colons = 0; // ':' just read in a row (0, 1 or 2)
  private tokLen = 0; // hex digits of the group being read (0..4)
  private tokHex = 0; // its value as hex
  private tokDec = 0; // its value as decimal, if it turns out to be a dotted quad's first octet
  private tokAllDec = true; // all its digits are decimal
  private tokLeadZero = false; // it starts with '0'
  private quad: number[] | null = null; // completed octets of a trailing dotted quad
  private octLen = 0; // digits of the octet being read in the dotted quad
  private octVal = 0;
  private octLeadZero = false;

  /** Maximum number of written groups: 8, or 7 when "::" stands for at least one zero group. */
  private get room(): number {
    return this.elided >= 0 ? 7 : 8;
  }

  push(b: number): boolean {
    if (this.quad !== null) return this.pushQuad(b);
    if (hexValue(b) >= 0) return this.pushHex(b);
    if (b === COLON) return this.pushColon();
    if (b === DOT) return this.startQuad();
    return false;
  }

  private pushHex(b: number): boolean {
    if (this.tokLen === 0) {
      if (this.colons === 1 && this.groups.length === 0) return false; // ":1": a lone leading colon
      if (this.groups.length + 1 > this.room) return false;
      this.tokAllDec = true;
      this.tokLeadZero = b === ZERO;
      this.tokDec = 0;
    }
    if (this.tokLen === 4) return false;
    this.tokHex = this.tokHex * 16 + hexValue(b);
    this.tokLen++;
    if (isDigit(b)) this.tokDec = this.tokDec * 10 + (b - ZERO);
    else this.tokAllDec = false;
    this.colons = 0;
    return true;
  }

  private pushColon(): boolean {
    if (this.tokLen > 0) {
      this.groups.push(this.tokHex);
      this.tokLen = 0;
      this.tokHex = 0;
      this.colons = 1;
      return this.groups.length < this.room; // another group or "::" must still fit
    }
    if (this.colons === 1) {
      if (this.elided >= 0) return false; // a second "::"
      this.elided = this.groups.length;
      this.colons = 2;
      return true;
    }
    if (this.colons === 0) {
      this.colons = 1; // only at the very start: must become "::"
      return true;
    }
    return false; // ":::"
  }

  /** A '.' turns the group being read into the first octet of a dotted quad (32 bits, 2 groups). */
  private startQuad(): boolean {
    const { tokLen, tokDec } = this;
    if (tokLen === 0 || tokLen > 3 || !this.tokAllDec || (tokLen > 1 && this.tokLeadZero) || tokDec > 255) {
      return false;
    }
    if (this.elided >= 0 ? this.groups.length + 2 > 7 : this.groups.length !== 6) return false;
    this.quad = [tokDec];
    this.tokLen = 0;
    return true;
  }

  private pushQuad(b: number): boolean {
    if (isDigit(b)) {
      if (this.octLen > 0 && this.octLeadZero) return false;
      if (this.octLen === 0) this.octLeadZero = b === ZERO;
      this.octVal = this.octVal * 10 + (b - ZERO);
      this.octLen++;
      return this.octVal <= 255;
    }
    if (b !== DOT || this.octLen === 0 || this.quad === null || this.quad.length === 3) return false;
    this.quad.push(this.octVal);
    this.octLen = 0;
    this.octVal = 0;
    return true;
  }

  finish(): FieldScan<Uint8Array> {
    const groups = this.groups.slice();
    if (this.quad !== null) {
      const [a = 0, b = 0, c = 0] = this.quad;
      if (this.quad.length < 3 || this.octLen === 0) return PREFIX;
      groups.push((a << 8) | b, (c << 8) | this.octVal);
    } else {
      if (this.colons === 1) return PREFIX; // "1:" or ":"
      if (this.tokLen > 0) groups.push(this.tokHex);
    }
    if (this.elided < 0 ? groups.length !== 8 : groups.length > 7) return PREFIX;
    return { status: 'valid', value: expandGroups(groups, this.elided) };
  }
}

/** Writes 16-bit <groups> as 16 bytes, with zero groups standing for "::" at index <elided>. */
function expandGroups(groups: number[], elided: number): Uint8Array {
  const out = new Uint8Array(16);
  const head = elided >= 0 ? groups.slice(0, elided) : groups;
  const tail = elided >= 0 ? groups.slice(elided) : [];
  head.forEach((g, i) => writeGroup(out, i, g));
  tail.forEach((g, i) => writeGroup(out, 8 - tail.length + i, g));
  return out;
}

function writeGroup(out: Uint8Array, index: number, g: number): void {
  out[index * 2] = g >>> 8;
  out[index * 2 + 1] = g & 0xff;
}

/**
 * Checks the port text <buf>[<start>, <end>) (§2.1): "a decimal integer in the range
 * [0..65535] inclusive", no heading zeroes. Returns `valid` with the port, `prefix` for the
 * empty text, or `invalid`.
 * Pure.
 */
export function scanPort(buf: Uint8Array, start: number, end: number): FieldScan<number> {
  if (end <= start) return PREFIX;
  let value = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i] ?? -1;
    if (!isDigit(b) || (i > start && buf[start] === ZERO)) return INVALID;
    value = value * 10 + (b - ZERO);
    if (value > 65535) return INVALID;
  }
  return { status: 'valid', value };
}

/**
 * Returns the 4 bytes of the IPv4 address <text> written as §2.1 requires, or null.
 * Pure.
 */
export function parseIPv4Text(text: string): Uint8Array | null {
  const bytes = ascii(text);
  const scan = scanIPv4(bytes, 0, bytes.length);
  return scan.status === 'valid' ? scan.value : null;
}

/**
 * Returns the 16 bytes of the IPv6 address <text> (any inet_pton() form, no zone), or null.
 * Pure.
 */
export function parseIPv6Text(text: string): Uint8Array | null {
  const bytes = ascii(text);
  const scan = scanIPv6(bytes, 0, bytes.length);
  return scan.status === 'valid' ? scan.value : null;
}

/**
 * Formats the 4 bytes at <bytes>[<offset>] as a dotted quad. Requires 4 readable bytes (missing
 * ones read as 0).
 * Pure.
 */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  return [0, 1, 2, 3].map((i) => bytes[offset + i] ?? 0).join('.');
}

/**
 * Formats the 16 bytes at <bytes>[<offset>] as an IPv6 address the way WHATWG URL serializes it:
 * lowercase hex without leading zeros, the first longest run of two or more zero groups written
 * "::", no dotted quad (this is RFC 5952 §4 except the IPv4-mapped form). Requires 16 readable
 * bytes (missing ones read as 0).
 * Pure.
 */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++)
    groups.push(((bytes[offset + 2 * i] ?? 0) << 8) | (bytes[offset + 2 * i + 1] ?? 0));
  const [runStart, runLen] = longestZeroRun(groups);
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (runLen >= 2 && i === runStart) {
      out += i === 0 ? '::' : ':';
      i += runLen - 1;
      continue;
    }
    out += (groups[i] ?? 0).toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

function longestZeroRun(groups: number[]): [number, number] {
  let best: [number, number] = [-1, 0];
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > best[1]) best = [i, j - i];
    i = j > i ? j : i + 1;
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Byte helpers
// ---------------------------------------------------------------------------------------------

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  return -1;
}

function mapScan<T, U>(scan: FieldScan<T>, f: (v: T) => U): FieldScan<U> {
  return scan.status === 'valid' ? { status: 'valid', value: f(scan.value) } : scan;
}

/** Compares <buf>[<pos>, <limit>) with <token>: all of it, a proper prefix of it, or neither. */
function matchAt(
  buf: Uint8Array,
  pos: number,
  limit: number,
  token: Uint8Array,
): 'match' | 'prefix' | 'mismatch' {
  for (let i = 0; i < token.length; i++) {
    if (pos + i >= limit) return 'prefix';
    if (buf[pos + i] !== token[i]) return 'mismatch';
  }
  return 'match';
}

/** ASCII text to bytes; characters outside US-ASCII become 0xFF, which no field accepts. */
function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out[i] = c < 0x80 ? c : 0xff;
  }
  return out;
}

function latin1(buf: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i] ?? 0);
  return s;
}

/** A short printable rendering of <buf>[<start>, <end>) for error reasons (control bytes escaped). */
function quote(buf: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = Math.max(0, start); i < Math.min(end, buf.length); i++) {
    const b = buf[i] ?? 0;
    s +=
      b >= 0x20 && b < 0x7f && b !== 0x22 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `"${s}"`;
}
