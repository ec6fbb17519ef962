import { describe, expect, it } from 'vitest';
import { cidrContains, classifySource, parseAddress, parseCidr } from '../../machines/acl.ts';

describe('source rules at accept', () => {
  it('matches an IPv4 source against an IPv4 network', () => {
    const net = parseCidr('10.1.0.0/16')!;
    expect(cidrContains(net, '10.1.200.3')).toBe(true);
    expect(cidrContains(net, '10.2.0.1')).toBe(false);
  });

  it('matches an IPv4-mapped IPv6 source as the IPv4 address it carries', () => {
    expect(cidrContains(parseCidr('127.0.0.0/8')!, '::ffff:127.0.0.1')).toBe(true);
  });

  it('matches IPv6 sources against an IPv6 prefix', () => {
    const net = parseCidr('2001:db8::/32')!;
    expect(cidrContains(net, '2001:db8:0:1::42')).toBe(true);
    expect(cidrContains(net, '2001:db9::1')).toBe(false);
    expect(cidrContains(parseCidr('::1')!, '::1')).toBe(true);
  });

  it('reads an address without a prefix as a single host', () => {
    const host = parseCidr('192.0.2.7')!;
    expect(cidrContains(host, '192.0.2.7')).toBe(true);
    expect(cidrContains(host, '192.0.2.8')).toBe(false);
  });

  it.each(['1.2.3.4/33', '256.1.1.1', '1.2.3', '::1/129', '1::2::3', 'garbage', '1.2.3.4/8/9', '1.2.3.4/x'])(
    'refuses "%s" as a CIDR',
    (text) => {
      expect(parseCidr(text)).toBeNull();
    },
  );

  it('parses an IPv6 address with a dotted IPv4 tail', () => {
    expect(parseAddress('::ffff:1.2.3.4')).toBe(0xffff01020304n);
    expect(parseAddress('::ffff:1.2.3.999')).toBeNull();
  });

  it('applies tcp-request rules before monitor-net, as session_accept does since 82569f915', () => {
    const rules = {
      reject: [parseCidr('10.0.0.0/8')!],
      monitor: [parseCidr('10.0.0.0/24')!, parseCidr('192.0.2.0/24')!],
    };
    expect(classifySource('10.0.0.5', rules)).toBe('denied');
    expect(classifySource('192.0.2.9', rules)).toBe('monitor');
    expect(classifySource('198.51.100.1', rules)).toBe('plain');
  });

  it('answers only IPv4 sources as monitors, never an IPv4-mapped IPv6 one, as session_accept (AF_INET)', () => {
    const rules = { reject: [], monitor: [parseCidr('10.0.0.0/24')!] };
    expect(classifySource('10.0.0.5', rules)).toBe('monitor');
    expect(classifySource('::ffff:10.0.0.5', rules)).toBe('plain');
  });

  it('matches nothing for an unparsable source address', () => {
    expect(classifySource('not-an-address', { reject: [parseCidr('0.0.0.0/0')!], monitor: [] })).toBe(
      'plain',
    );
  });
});
