import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  asciiLowercase,
  formatIpAddress,
  hasWildcards,
  matchAddressList,
  matchCidrList,
  matchHostAndAddress,
  matchHostname,
  matchPattern,
  matchPatternList,
  networkContains,
  parseIpAddress,
  parseIpNetwork,
} from '../../src/keys/patterns.js';

describe('matchPattern', () => {
  test('literals match only themselves, whole string', () => {
    assert.equal(matchPattern('host', 'host'), true);
    assert.equal(matchPattern('host', 'hos'), false);
    assert.equal(matchPattern('hos', 'host'), false);
    assert.equal(matchPattern('Host', 'host'), false, 'case-sensitive by itself');
    assert.equal(matchPattern('', ''), true);
    assert.equal(matchPattern('a', ''), false);
  });

  test('* matches any run, also an empty one', () => {
    assert.equal(matchPattern('', '*'), true);
    assert.equal(matchPattern('anything', '*'), true);
    assert.equal(matchPattern('a.example.com', '*.example.com'), true);
    assert.equal(matchPattern('example.com', '*.example.com'), false);
    assert.equal(matchPattern('ab', 'a*b'), true);
    assert.equal(matchPattern('aXbYbZc', 'a*b*c'), true, 'backtracks past an early b');
    assert.equal(matchPattern('aXbYbZ', 'a*b*c'), false);
    assert.equal(matchPattern('abc', '**c'), true);
    assert.equal(matchPattern('mississippi', '*sip*'), true);
    assert.equal(matchPattern('mississippi', 'm*iss*ppi'), true);
    assert.equal(matchPattern('mississippi', 'm*iss*ppx'), false);
  });

  test('? matches exactly one character', () => {
    assert.equal(matchPattern('192.0.2.1', '192.0.2.?'), true);
    assert.equal(matchPattern('192.0.2.10', '192.0.2.?'), false);
    assert.equal(matchPattern('', '?'), false);
    assert.equal(matchPattern('ab', '?*'), true);
    assert.equal(matchPattern('a', '*?'), true);
    assert.equal(matchPattern('', '*?'), false);
  });

  test('a pathological pattern stays fast', () => {
    const start = process.hrtime.bigint();
    assert.equal(matchPattern('a'.repeat(20_000), `${'*a'.repeat(20)}b`), false);
    assert.ok(process.hrtime.bigint() - start < 1_000_000_000n);
  });
});

describe('pattern lists', () => {
  test('any positive pattern matches; no pattern is "none"', () => {
    assert.equal(matchPatternList('b', 'a,b,c'), 'match');
    assert.equal(matchPatternList('d', 'a,b,c'), 'none');
    assert.equal(matchPatternList('x', ''), 'none');
  });

  test('a negated match wins whatever the order', () => {
    assert.equal(matchPatternList('bad.example.com', '*.example.com,!bad.example.com'), 'negated');
    assert.equal(matchPatternList('bad.example.com', '!bad.example.com,*.example.com'), 'negated');
    assert.equal(matchPatternList('good.example.com', '*.example.com,!bad.example.com'), 'match');
    assert.equal(matchPatternList('other.org', '!bad.example.com'), 'none', 'a negation alone never accepts');
  });

  test('case folding is only for host names, and only ASCII', () => {
    assert.equal(matchPatternList('User', 'user'), 'none');
    assert.equal(matchPatternList('User', 'user', { caseInsensitive: true }), 'match');
    assert.equal(matchHostname('Server.EXAMPLE.com', '*.example.COM'), 'match');
    assert.equal(matchHostname('BAD.example.com', '*.example.com,!bad.*'), 'negated');
    assert.equal(asciiLowercase('ÄBC'), 'Äbc');
  });

  test('hasWildcards', () => {
    assert.equal(hasWildcards('host.example.com'), false);
    assert.equal(hasWildcards('[host]:2222'), false);
    assert.equal(hasWildcards('*.example.com'), true);
    assert.equal(hasWildcards('h?st'), true);
    assert.equal(hasWildcards('!host'), true);
  });
});

describe('addresses', () => {
  test('IPv4 and IPv6 parse to bytes and print canonically', () => {
    assert.deepEqual(parseIpAddress('192.0.2.1'), { family: 4, bytes: Uint8Array.from([192, 0, 2, 1]) });
    const cases: [string, string][] = [
      ['2001:db8::1', '2001:db8::1'],
      ['2001:0DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::1%eth0', 'fe80::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
      ['::ffff:192.0.2.1', '192.0.2.1'],
      ['::ffff:c000:201', '192.0.2.1'],
    ];
    for (const [input, output] of cases) {
      const address = parseIpAddress(input);
      assert.ok(address, input);
      assert.equal(formatIpAddress(address), output, input);
    }
    for (const bad of ['', 'host', '256.0.0.1', '1.2.3', '1::2::3', '12345::', '192.0.2.*']) {
      assert.equal(parseIpAddress(bad), undefined, bad);
    }
  });

  test('networks: bare addresses, prefixes, bits past the prefix', () => {
    assert.deepEqual(parseIpNetwork('192.0.2.1'), { address: parseIpAddress('192.0.2.1'), prefixLength: 32 });
    const net = parseIpNetwork('192.0.2.0/24');
    assert.ok(net && net !== 'inconsistent');
    assert.equal(net.prefixLength, 24);
    assert.equal(parseIpNetwork('192.0.2.1/24'), 'inconsistent');
    assert.equal(parseIpNetwork('2001:db8::1/32'), 'inconsistent');
    assert.equal(parseIpNetwork('192.0.2.0/33'), undefined);
    assert.equal(parseIpNetwork('192.0.2.0/'), undefined);
    assert.equal(parseIpNetwork('192.0.2.*'), undefined);
    assert.equal(parseIpNetwork('host.example.com'), undefined);
    const v6 = parseIpNetwork('2001:db8::/29');
    assert.ok(v6 && v6 !== 'inconsistent');
    assert.equal(networkContains(v6, parseIpAddress('2001:dbf:ffff::1')!), true);
    assert.equal(networkContains(v6, parseIpAddress('2001:dc0::1')!), false);
    assert.equal(networkContains(v6, parseIpAddress('192.0.2.1')!), false, 'families must agree');
    const all = parseIpNetwork('0.0.0.0/0');
    assert.ok(all && all !== 'inconsistent');
    assert.equal(networkContains(all, parseIpAddress('203.0.113.9')!), true);
  });

  test('address lists: CIDR, wildcards, negation, errors', () => {
    assert.equal(matchAddressList('192.0.2.77', '10.0.0.0/8,192.0.2.0/24'), 'match');
    assert.equal(matchAddressList('192.0.2.77', '192.0.2.*'), 'match');
    assert.equal(matchAddressList('192.0.2.77', '192.0.2.7?'), 'match');
    assert.equal(matchAddressList('198.51.100.1', '10.0.0.0/8,192.0.2.0/24'), 'none');
    assert.equal(matchAddressList('192.0.2.77', '192.0.2.0/24,!192.0.2.77'), 'negated', 'a later negation still wins');
    assert.equal(matchAddressList('192.0.2.78', '192.0.2.0/24,!192.0.2.77'), 'match');
    assert.equal(matchAddressList('2001:db8::5', '2001:db8::/32'), 'match');
    assert.equal(matchAddressList('2001:db8::5', '!2001:db8::/32,*'), 'negated');
    assert.equal(matchAddressList('::ffff:192.0.2.5', '192.0.2.0/24'), 'match', 'IPv4-mapped counts as IPv4');
    assert.equal(matchAddressList('::ffff:192.0.2.5', '192.0.2.*'), 'match');
    assert.equal(matchAddressList('192.0.2.5', '192.0.2.0/24,,10.0.0.0/8'), 'invalid');
    assert.equal(matchAddressList('192.0.2.5', '192.0.2.1/24'), 'invalid');
    assert.equal(matchAddressList('192.0.2.5', '!'), 'invalid');
    assert.equal(matchAddressList('not-an-address', '*'), 'none');
  });

  test('CIDR-only lists (certificate source-address)', () => {
    assert.equal(matchCidrList('192.0.2.5', '192.0.2.0/24'), true);
    assert.equal(matchCidrList('192.0.2.5', '10.0.0.0/8,2001:db8::/32'), false);
    assert.equal(matchCidrList('192.0.2.5', '192.0.2.*'), 'invalid');
    assert.equal(matchCidrList('192.0.2.5', '192.0.2.1/24'), 'invalid');
    assert.equal(matchCidrList('192.0.2.5', ''), 'invalid');
  });

  test('from= semantics: host name or address, negation on either refuses', () => {
    assert.equal(matchHostAndAddress('client.example.com', '192.0.2.5', '*.example.com'), true);
    assert.equal(matchHostAndAddress('client.example.com', '192.0.2.5', '192.0.2.0/24'), true);
    assert.equal(matchHostAndAddress('CLIENT.example.com', '192.0.2.5', 'client.example.com'), true);
    assert.equal(matchHostAndAddress('client.example.com', '192.0.2.5', '*.example.com,!192.0.2.5'), false);
    assert.equal(matchHostAndAddress('client.example.com', '192.0.2.5', '192.0.2.0/24,!client.*'), false);
    assert.equal(matchHostAndAddress('client.example.org', '198.51.100.1', '*.example.com,192.0.2.0/24'), false);
    assert.equal(matchHostAndAddress('192.0.2.5', '192.0.2.5', '192.0.2.0/24,,x'), 'invalid');
  });
});
