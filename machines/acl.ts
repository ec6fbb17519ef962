/**
 * Source-address rules evaluated at accept: `tcp-request connection reject if { src CIDR }` and
 * `monitor-net CIDR`. Pure address arithmetic, so that the machines and the proxy agree on what a
 * source matched; the proxy passes the result to session_accept as the event's `src`.
 */
import type { SourceClass } from './session.machine.ts';

/** A parsed CIDR: the network as a 128-bit number (IPv4 mapped into ::ffff:0:0/96) and a prefix length. */
export interface Cidr {
  text: string; //     as written in the configuration
  network: bigint; //  network address, IPv4 as ::ffff:a.b.c.d
  prefix: number; //   prefix length over 128 bits
}

/**
 * Parses `text` as "a.b.c.d[/n]" or an IPv6 address with an optional "/n".
 * Returns the Cidr, or null if `text` is not one. Pure; never throws.
 */
export function parseCidr(text: string): Cidr | null {
  const [addr, len, extra] = text.split('/');
  if (addr === undefined || extra !== undefined) return null;
  const value = parseAddress(addr);
  if (value === null) return null;
  const v4 = !addr.includes(':');
  const max = v4 ? 32 : 128;
  const n = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) return null;
  const prefix = v4 ? n + 96 : n;
  return { text, network: value & mask(prefix), prefix };
}

/**
 * Returns `address` ("a.b.c.d", an IPv6 text, or an IPv4-mapped "::ffff:a.b.c.d") as a 128-bit
 * number with IPv4 mapped into ::ffff:0:0/96, or null if it is not an address. Pure; never throws.
 */
export function parseAddress(address: string): bigint | null {
  if (!address.includes(':')) {
    const v4 = parseV4(address);
    return v4 === null ? null : (0xffffn << 32n) | v4;
  }
  // An IPv6 text may end with a dotted IPv4 (::ffff:1.2.3.4): rewrite it as its two hex groups.
  let text = address;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = parseV4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): bigint[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return null;
    return groups.map((g) => BigInt(`0x${g}`));
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === null || rest === null) return null;
  let groups: bigint[];
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return null;
    groups = [...head, ...Array<bigint>(fill).fill(0n), ...rest];
  } else groups = head;
  if (groups.length !== 8) return null;
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

function parseV4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    v = (v << 8n) | BigInt(Number(p));
  }
  return v;
}

function mask(prefix: number): bigint {
  return prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n);
}

/** True iff `address` lies in `cidr`. An unparsable address matches nothing. Pure. */
export function cidrContains(cidr: Cidr, address: string): boolean {
  const a = parseAddress(address);
  return a !== null && (a & mask(cidr.prefix)) === cidr.network;
}

/**
 * Classifies a source address as session_accept sees it: the tcp-request connection rules run
 * first (a match is `denied`), then monitor-net (82569f915: right after the rules), which only
 * matches IPv4 sources (an IPv6 or IPv4-mapped source never matches it). Pure.
 */
export function classifySource(
  address: string,
  rules: { reject: readonly Cidr[]; monitor: readonly Cidr[] },
): SourceClass {
  if (rules.reject.some((c) => cidrContains(c, address))) return 'denied';
  // monitor-net only ever matched AF_INET sources (session_accept: addr->ss_family == AF_INET).
  if (!address.includes(':') && rules.monitor.some((c) => cidrContains(c, address))) return 'monitor';
  return 'plain';
}
