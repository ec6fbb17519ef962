/**
 * PROXY protocol header reader: detection (doc/proxy-protocol.txt §2.2, end of the section) and
 * dispatch to the v1 (§2.1, ./v1.ts) and v2 (§2.2, ./v2.ts) parsers.
 *
 * This is the pure core of HAProxy's conn_recv_proxy() (src/connection.c, checked at v2.6.0): it
 * turns the bytes read so far into one of three results and never touches a socket. The caller
 * owns the buffer and the socket; after `done` it removes exactly `consumed` bytes, and whatever
 * follows belongs to the next layer (TLS or the application), as in HAProxy, which re-reads
 * exactly the header length and leaves the rest in the socket.
 *
 * Two reading modes:
 *
 *   strict    HAProxy's. The buffer is the first non-empty read (HAProxy peeks once with
 *             recv(MSG_PEEK) of up to tune.bufsize bytes). Only an empty read waits; any header
 *             that is not complete in that read is PRX_TRUNCATED. The checks run in HAProxy's
 *             order, including its byte-count thresholds: fewer than 6 bytes, "PROXY " with fewer
 *             than 9, or fewer than 16 bytes without "PROXY " are all PRX_TRUNCATED whatever they
 *             contain; a v2 header is checked for completeness before its command and family.
 *   tolerant  The spec's recommendation (§2: "Recommendation is to be tolerant"). The buffer is
 *             everything received so far; `need-more` means the bytes can still begin a valid
 *             header, and the reader decides as early as the bytes allow (§2.1: "abort the
 *             connection as soon as possible"). v1 lines are bounded by 107 bytes (§2.1), v2
 *             headers by `bufsize` (HAProxy's tune.bufsize, 16384 by default), so the caller never
 *             buffers more than that.
 *
 * Where strict mode and HAProxy 2.6 give different codes for the same first read (the parser
 * validates fields more than HAProxy does; HAProxy reads a few bytes past the data):
 *   - v1 field rules from §2.1 that HAProxy does not check: leading zeros, octets > 255 and
 *     ports > 65535 (HAProxy's read_uint()/htons() wrap them), the 107-byte line limit, a
 *     malformed address before the line is complete. Here PRX_BAD_HDR; HAProxy accepts the
 *     header or says PRX_TRUNCATED.
 *   - A lone CR or LF as the last byte of the read after the destination port: HAProxy needs
 *     two bytes there before looking (PRX_TRUNCATED); here PRX_BAD_HDR as soon as it is seen.
 *   - "PROXY " followed by 3 or 4 bytes that begin "TCP4 "/"TCP6 "/"UNKNOWN\r\n": HAProxy
 *     compares past the received data (stale buffer bytes); here PRX_TRUNCATED.
 *   - v2 PROXY with a family other than TCP over IPv4/IPv6: see ./v2.ts and the
 *     `v2OtherFamilies` option.
 */
import type { Profile } from '../../machines/config.ts';
import type { ProxyFailCode } from '../../machines/errCodes.ts';
import { parseV1, V1_SIGNATURE } from './v1.ts';
import { HA_PP2_MAX_ALLOC, parseV2, PP2_HEADER_LEN, PP2_SIGNATURE } from './v2.ts';

/** Address family and transport of a header: v1's protocol names and v2's family bytes (§2.1, §2.2). */
export type ProxyFamily = 'TCP4' | 'TCP6' | 'UNKNOWN' | 'UDP4' | 'UDP6' | 'UNIX' | 'UNSPEC';

/** One end of the proxied connection as the header announces it. */
export interface ProxyEndpoint {
  address: string; // IPv4 dotted quad, or IPv6 in WHATWG/RFC 5952 compressed lowercase form
  port: number; // 0..65535
}

/** One v2 Type-Length-Value vector (§2.2). */
export interface ProxyTlv {
  type: number; // 0..255; PP2_TYPE_* in ./v2.ts
  value: Uint8Array; // a copy, owned by the header; 0..65535 bytes
}

/** A decoded PROXY protocol header. */
export interface ProxyHeader {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL'; // v1 has no command: always 'PROXY'
  family: ProxyFamily;
  source?: ProxyEndpoint; // absent = use the connection's real addresses (LOCAL, UNKNOWN, v2 non-TCP)
  destination?: ProxyEndpoint; // present exactly when source is
  tlvs: ProxyTlv[]; // v2 PROXY only, in wire order; [] for v1 and LOCAL
}

/**
 * The outcome of one parse, mirroring conn_recv_proxy()'s return value plus conn->err_code:
 *   need-more  nothing decided yet; call again with the same bytes and more (HAProxy: return 0
 *              without CO_FL_ERROR, i.e. poll again)
 *   done       a complete, valid header occupying buf[0, consumed)
 *   error      the connection must be closed; `code` is what HAProxy logs, `reason` says why;
 *              `source`, when the header was found invalid after its addresses were read (a v2
 *              header's TLVs): HAProxy 2.6 has copied them into the session by then, so its
 *              log names that source
 */
export type ProxyParseResult =
  | { status: 'need-more' }
  | { status: 'done'; header: ProxyHeader; consumed: number }
  | { status: 'error'; code: ProxyFailCode; reason: string; source?: ProxyEndpoint };

/** Options of parseProxyHeader(). */
export interface ProxyParseOptions {
  mode: 'strict' | 'tolerant'; // see the file comment
  eof?: boolean; // the client has shut its side down: no more bytes will come (default false)
  unknownLongForm?: 'reject' | 'accept'; // "PROXY UNKNOWN <anything>\r\n": HAProxy rejects it
  // (PRX_BAD_PROTO, since 4c20d29c2), the spec accepts it (§2.1); default 'reject'
  v2OtherFamilies?: 'real-addresses' | 'haproxy-2.6'; // v2 PROXY with a family other than
  // 0x11/0x21: the spec's reading (default) or HAProxy 2.6's TLV walk from offset 0 (./v2.ts)
  bufsize?: number; // HAProxy's tune.bufsize: the largest v2 header it can read (default 16384)
  maxTlvValue?: number | null; // the largest v2 TLV value of a type without a limit of its own that
  // is accepted: HAProxy 2.9's HA_PP2_MAX_ALLOC (1024, fecc573da), past which it fails the header
  // without an error code (NONE); null (default): no limit, as 2.6 and the spec
}

/**
 * Returns the largest v2 TLV value of a type without a limit of its own that <profile>'s HAProxy
 * accepts (ProxyParseOptions.maxTlvValue): 2.9's HA_PP2_MAX_ALLOC, which stores every TLV
 * (fecc573da); null for dev12 and 2.6, which skip TLVs they do not use. Pure.
 */
export function maxTlvValueFor(profile: Profile): number | null {
  return profile === '2.9' ? HA_PP2_MAX_ALLOC : null;
}

/** The options with every default applied; what ./v1.ts and ./v2.ts receive. */
export type ResolvedProxyOptions = Required<ProxyParseOptions>;

/** HAProxy's default tune.bufsize (BUFSIZE): conn_recv_proxy() peeks at most this many bytes. */
export const HAPROXY_BUFSIZE = 16384;

const NEED_MORE: ProxyParseResult = Object.freeze({ status: 'need-more' });

/**
 * Reads a PROXY protocol header (v1 or v2) from the start of <buf>.
 *
 * Requires nothing of <buf>: any bytes, any length. In strict mode <buf> should be the first
 * non-empty read from the connection; in tolerant mode, everything received so far. <opts.eof>
 * says the client will send nothing more.
 *
 * Returns:
 *   - { status: 'need-more' }: the buffer is empty and the client may still send (both modes), or,
 *     in tolerant mode only, the bytes so far can still begin a valid header.
 *   - { status: 'done', header, consumed }: buf[0, consumed) is a complete valid header. Bytes
 *     from <consumed> on are not examined and belong to the next layer.
 *   - { status: 'error', code, reason }: the connection must be closed. PRX_EMPTY for an empty
 *     buffer at eof; PRX_TRUNCATED for an incomplete header (always in strict mode, at eof in
 *     tolerant mode); PRX_NOT_HDR when the bytes are neither v1 nor v2; PRX_BAD_PROTO for a v1
 *     protocol other than TCP4/TCP6/UNKNOWN; PRX_BAD_HDR for any other invalid header.
 *
 * Never throws and never reads outside <buf>. It does not modify <buf>; the caller keeps owning
 * it. The returned header owns its strings and TLV values (copies), so <buf> may be reused.
 * Allocations are bounded by the header length. Pure.
 */
export function parseProxyHeader(buf: Uint8Array, opts: ProxyParseOptions): ProxyParseResult {
  const o = resolveOptions(opts);
  if (buf.length === 0) {
    return o.eof ? fail('PRX_EMPTY', 'connection closed before any byte of the PROXY header') : NEED_MORE;
  }
  const result = o.mode === 'strict' ? dispatchStrict(buf) : dispatchTolerant(buf);
  const outcome = result === 'v1' ? parseV1(buf, o) : result === 'v2' ? parseV2(buf, o) : result;
  if (outcome.status !== 'need-more' || (o.mode === 'tolerant' && !o.eof)) return outcome;
  return fail('PRX_TRUNCATED', truncatedReason(buf, o));
}

/**
 * Applies the defaults of ProxyParseOptions.
 * Pure.
 */
export function resolveOptions(opts: ProxyParseOptions): ResolvedProxyOptions {
  return {
    mode: opts.mode,
    eof: opts.eof ?? false,
    unknownLongForm: opts.unknownLongForm ?? 'reject',
    v2OtherFamilies: opts.v2OtherFamilies ?? 'real-addresses',
    bufsize: opts.bufsize ?? HAPROXY_BUFSIZE,
    maxTlvValue: opts.maxTlvValue ?? null,
  };
}

function fail(code: ProxyFailCode, reason: string): ProxyParseResult {
  return { status: 'error', code, reason };
}

/**
 * Strict detection, in conn_recv_proxy()'s order: "PROXY " is v1; otherwise fewer than 16 bytes
 * is "missing" and the rest is checked as v2 (signature and version mismatch → PRX_NOT_HDR, in
 * ./v2.ts). HAProxy first reports "missing" for fewer than 6 bytes; such a read cannot hold
 * "PROXY ", so the 16-byte rule already covers it.
 */
function dispatchStrict(buf: Uint8Array): 'v1' | 'v2' | ProxyParseResult {
  if (prefixMatch(buf, V1_SIGNATURE) === 'match') return 'v1';
  if (buf.length < PP2_HEADER_LEN) return NEED_MORE;
  return 'v2';
}

/**
 * Tolerant detection (§2.2, "Identifying the protocol version is easy"): "PROXY " is v1, the v2
 * signature is v2, a proper prefix of either is incomplete, anything else is not a header. The
 * two signatures differ in their first byte, so at most one can match.
 */
function dispatchTolerant(buf: Uint8Array): 'v1' | 'v2' | ProxyParseResult {
  const v1 = prefixMatch(buf, V1_SIGNATURE);
  if (v1 === 'match') return 'v1';
  if (v1 === 'prefix') return NEED_MORE;
  if (prefixMatch(buf, PP2_SIGNATURE) !== 'mismatch') return 'v2';
  return fail('PRX_NOT_HDR', 'starts with neither "PROXY " (§2.1) nor the v2 signature (§2.2)');
}

/**
 * Compares the start of <buf> with <sig>: 'match' if <buf> begins with all of <sig>, 'prefix' if
 * <buf> is shorter than <sig> and equal to its beginning, 'mismatch' otherwise.
 * Pure.
 */
export function prefixMatch(buf: Uint8Array, sig: Uint8Array): 'match' | 'prefix' | 'mismatch' {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return 'mismatch';
  return buf.length >= sig.length ? 'match' : 'prefix';
}

function truncatedReason(buf: Uint8Array, o: ResolvedProxyOptions): string {
  const why = o.eof ? 'the connection was closed' : 'strict mode reads the header in one go';
  return `incomplete PROXY header (${buf.length} bytes received) and ${why}`;
}
