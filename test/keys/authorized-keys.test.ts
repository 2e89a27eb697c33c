import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeyFormatError } from '../../src/errors.js';
import { DEFAULT_KEY_OPTIONS, optionsFieldEnd, parseExpiryTime, parseKeyOptions, parsePermitTarget } from '../../src/keys/authorized-key-options.js';
import { findAuthorizedKey, loadAuthorizedKeysFile, parseAuthorizedKeys, parseAuthorizedKeysLine } from '../../src/keys/authorized-keys.js';
import { parseOpenSshPublicKey } from '../../src/keys/public-key-text.js';

const KEYS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'openssh-keys');

function publicKey(name: string) {
  return parseOpenSshPublicKey(readFileSync(join(KEYS, `${name}.pub`), 'utf8')).key;
}
const ED1 = publicKey('ed25519_1');
const ED2 = publicKey('ed25519_2');
const RSA1 = publicKey('rsa_1');
const K1 = `${ED1.type} ${ED1.blob.toString('base64')}`;
const K2 = `${ED2.type} ${ED2.blob.toString('base64')}`;
const KR = `${RSA1.type} ${RSA1.blob.toString('base64')}`;

function isKeyFormatError(error: unknown): boolean {
  return error instanceof KeyFormatError;
}

describe('authorized_keys lines', () => {
  test('a bare key: default options, comment kept', () => {
    const entry = parseAuthorizedKeysLine(`${K1} alice@laptop  (work)`);
    assert.ok(entry);
    assert.deepEqual(entry.blob, ED1.blob);
    assert.equal(entry.keyType, 'ssh-ed25519');
    assert.equal(entry.comment, 'alice@laptop  (work)');
    assert.equal(entry.options, DEFAULT_KEY_OPTIONS);
    assert.equal(entry.optionsText, '');
    assert.equal(parseAuthorizedKeysLine('   # comment'), undefined);
    assert.equal(parseAuthorizedKeysLine(''), undefined);
  });

  test('quotes with blanks, commas and escaped quotes inside; repeated environment and permitopen', () => {
    const line =
      `command="echo \\"hi, there\\" && /bin/run --flag=\\"a b\\"",` +
      `environment="GREETING=hello, world",environment="PATH=/opt/bin:/usr/bin",environment="GREETING=ignored",` +
      `permitopen="192.0.2.1:80",permitopen="[2001:db8::1]:443",permitopen="db.internal:*",` +
      `permitlisten="8080",permitlisten="localhost:9090",permitlisten="[::1]:22000",` +
      `from="*.example.com,!bad.example.com,192.0.2.0/24",no-pty,No-Agent-Forwarding ${K1} quoted "comment"`;
    const entry = parseAuthorizedKeysLine(line);
    assert.ok(entry);
    const o = entry.options;
    assert.equal(o.command, 'echo "hi, there" && /bin/run --flag="a b"');
    assert.deepEqual(o.environment, [
      { name: 'GREETING', value: 'hello, world' },
      { name: 'PATH', value: '/opt/bin:/usr/bin' },
    ]);
    assert.deepEqual(o.permitOpen, [
      { host: '192.0.2.1', port: 80 },
      { host: '2001:db8::1', port: 443 },
      { host: 'db.internal', port: '*' },
    ]);
    assert.deepEqual(o.permitListen, [
      { host: '*', port: 8080 },
      { host: 'localhost', port: 9090 },
      { host: '::1', port: 22000 },
    ]);
    assert.equal(o.from, '*.example.com,!bad.example.com,192.0.2.0/24');
    assert.equal(o.pty, false);
    assert.equal(o.agentForwarding, false);
    assert.equal(o.portForwarding, true);
    assert.equal(o.x11Forwarding, true);
    assert.equal(entry.comment, 'quoted "comment"');
    assert.equal(entry.optionsText, line.slice(0, line.indexOf(` ${K1}`)));
  });

  test('restrict turns everything off; pty, port-forwarding, … turn it back on', () => {
    const restricted = parseKeyOptions('restrict');
    assert.deepEqual(
      [restricted.restrict, restricted.pty, restricted.portForwarding, restricted.agentForwarding, restricted.x11Forwarding, restricted.userRc],
      [true, false, false, false, false, false],
    );
    const reopened = parseKeyOptions('restrict,pty,port-forwarding,agent-forwarding,X11-forwarding,user-rc,command="nethack"');
    assert.deepEqual(
      [reopened.restrict, reopened.pty, reopened.portForwarding, reopened.agentForwarding, reopened.x11Forwarding, reopened.userRc],
      [true, true, true, true, true, true],
    );
    const order = parseKeyOptions('pty,restrict');
    assert.equal(order.pty, false, 'options apply in order');
    const flags = parseKeyOptions('no-port-forwarding,no-X11-forwarding,no-user-rc,NO-PTY');
    assert.deepEqual([flags.portForwarding, flags.x11Forwarding, flags.userRc, flags.pty, flags.agentForwarding], [false, false, false, false, true]);
  });

  test('cert-authority, principals, tunnel, FIDO flags', () => {
    const o = parseKeyOptions('cert-authority,principals="alice,bob",tunnel="0",no-touch-required,verify-required');
    assert.equal(o.certAuthority, true);
    assert.deepEqual(o.principals, ['alice', 'bob']);
    assert.equal(o.tunnel, 0);
    assert.equal(o.touchRequired, false);
    assert.equal(o.verifyRequired, true);
    assert.equal(parseKeyOptions('tunnel="any"').tunnel, 'any');
    assert.equal(DEFAULT_KEY_OPTIONS.touchRequired, true);
  });

  test('expiry-time: local time, or UTC with Z; the earliest of two wins', () => {
    assert.equal(parseExpiryTime('20300102Z').toISOString(), '2030-01-02T00:00:00.000Z');
    assert.equal(parseExpiryTime('203001021530Z').toISOString(), '2030-01-02T15:30:00.000Z');
    assert.equal(parseExpiryTime('20300102153045z').toISOString(), '2030-01-02T15:30:45.000Z');
    assert.equal(parseExpiryTime('20300102153045UTC').toISOString(), '2030-01-02T15:30:45.000Z');
    assert.equal(parseExpiryTime('203001021530').getTime(), new Date(2030, 0, 2, 15, 30).getTime());
    assert.equal(parseExpiryTime('20300102').getTime(), new Date(2030, 0, 2).getTime());
    assert.equal(parseExpiryTime('20300231Z').toISOString(), '2030-03-03T00:00:00.000Z', 'rolls over like mktime');
    for (const bad of ['2030010', '203001021', '20301302', '20300100', '20300102246000', 'tomorrow', '', 'Z', '19691231Z', '19700101Z']) {
      assert.throws(() => parseExpiryTime(bad), isKeyFormatError, bad);
    }
    const o = parseKeyOptions('expiry-time="20310101Z",expiry-time="20300101Z",expiry-time="20320101Z"');
    assert.equal(o.expiryTime?.toISOString(), '2030-01-01T00:00:00.000Z');
  });

  test('permit targets', () => {
    assert.deepEqual(parsePermitTarget('host/22', 'permitopen'), { host: 'host', port: 22 });
    assert.deepEqual(parsePermitTarget('[::1]/22', 'permitopen'), { host: '::1', port: 22 });
    assert.deepEqual(parsePermitTarget('*', 'permitlisten'), { host: '*', port: '*' });
    for (const bad of ['host', 'host:0', 'host:65536', 'host:x', '[::1]22', '[::1', 'host:']) {
      assert.throws(() => parsePermitTarget(bad, 'permitopen'), isKeyFormatError, bad);
    }
  });

  test('the options field ends at the first blank outside quotes', () => {
    assert.equal(optionsFieldEnd('a="x y",b rest'), 9);
    assert.equal(optionsFieldEnd('a="x \\" y" rest'), 10);
    assert.throws(() => optionsFieldEnd('a="x y rest'), isKeyFormatError);
  });

  test('lines sshd refuses', () => {
    const bad = [
      `unknown-option ${K1}`,
      `no-restrict ${K1}`,
      `no-cert-authority ${K1}`,
      `command=echo ${K1}`,
      `command ${K1}`,
      `pty="yes" ${K1}`,
      `command="open ${K1}`,
      `command="a",command="b" ${K1}`,
      `from="a",from="b" ${K1}`,
      `principals="a",principals="b" ${K1}`,
      `environment="NOEQUALS" ${K1}`,
      `environment="BAD-NAME=x" ${K1}`,
      `environment="=x" ${K1}`,
      `permitopen="host" ${K1}`,
      `permitopen="host:0" ${K1}`,
      `expiry-time="2030" ${K1}`,
      `tunnel="tun0" ${K1}`,
      `no-pty, ${K1}`,
      `no-pty,,pty ${K1}`,
      `command="x"junk ${K1}`,
      `no-pty`,
      `no-pty ${K1.split(' ')[0]}`,
      `no-pty ssh-ed25519 ${RSA1.blob.toString('base64')}`,
      `${K1.slice(0, 40)}`,
    ];
    for (const line of bad) assert.throws(() => parseAuthorizedKeysLine(line), isKeyFormatError, line);
  });

  test('a file: bad lines skipped with their numbers, the others kept', async () => {
    const text = ['# keys', `${K1} one`, 'nonsense here', '', `restrict ${K2} two`, `bogus=1 ${KR}`, `  ${KR} three\r`].join('\n');
    const file = parseAuthorizedKeys(text, '/home/u/.ssh/authorized_keys');
    assert.deepEqual(
      file.entries.map((e) => [e.line, e.comment]),
      [
        [2, 'one'],
        [5, 'two'],
        [7, 'three'],
      ],
    );
    assert.deepEqual(
      file.invalid.map((b) => b.line),
      [3, 6],
    );
    assert.match(file.invalid[1]!.reason, /unknown key option "bogus"/);
    const dir = mkdtempSync(join(tmpdir(), 'tssh-authkeys-'));
    try {
      writeFileSync(join(dir, 'authorized_keys'), text);
      const loaded = await loadAuthorizedKeysFile(join(dir, 'authorized_keys'));
      assert.equal(loaded.entries.length, 3);
      assert.deepEqual(await loadAuthorizedKeysFile(join(dir, 'missing')), { path: join(dir, 'missing'), entries: [], invalid: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('findAuthorizedKey', () => {
  const now = new Date('2030-06-01T12:00:00Z');
  const at = (remoteAddress: string, remoteHost?: string) => ({ remoteAddress, now, ...(remoteHost === undefined ? {} : { remoteHost }) });

  test('the first line with the key and passing options wins', () => {
    const text = `${K2}\n${K1} first\n${K1} second\n`;
    const result = findAuthorizedKey(text, ED1.blob, at('192.0.2.5'));
    assert.ok(result.found);
    assert.equal(result.entry.line, 2);
  });

  test('no line holds the key: not found, no refusals', () => {
    assert.deepEqual(findAuthorizedKey(`${K2}\n`, ED1.blob, at('192.0.2.5')), { found: false, refused: [] });
  });

  test('from= by address (CIDR, wildcard), by host name, with negation', () => {
    const only = (from: string) => `from="${from}" ${K1}\n`;
    assert.equal(findAuthorizedKey(only('192.0.2.0/24'), ED1.blob, at('192.0.2.5')).found, true);
    assert.equal(findAuthorizedKey(only('192.0.2.*'), ED1.blob, at('192.0.2.5')).found, true);
    assert.equal(findAuthorizedKey(only('192.0.2.0/24'), ED1.blob, at('::ffff:192.0.2.5')).found, true);
    assert.equal(findAuthorizedKey(only('2001:db8::/32'), ED1.blob, at('2001:db8::9')).found, true);
    assert.equal(findAuthorizedKey(only('*.example.com'), ED1.blob, at('192.0.2.5', 'ws.example.com')).found, true);
    assert.equal(findAuthorizedKey(only('192.0.2.0/24,!192.0.2.5'), ED1.blob, at('192.0.2.5')).found, false);
    assert.equal(findAuthorizedKey(only('*.example.com,!ws.*'), ED1.blob, at('192.0.2.5', 'ws.example.com')).found, false);
    const refused = findAuthorizedKey(only('10.0.0.0/8'), ED1.blob, at('192.0.2.5'));
    assert.deepEqual(refused, {
      found: false,
      refused: [
        {
          line: 1,
          reason: 'from',
          message: 'authorized_keys:1: key not allowed from host 192.0.2.5 (address 192.0.2.5); from="10.0.0.0/8"',
        },
      ],
    });
    const invalid = findAuthorizedKey(only('192.0.2.1/24'), ED1.blob, at('192.0.2.1'));
    assert.ok(!invalid.found);
    assert.equal(invalid.refused[0]?.reason, 'from-invalid');
  });

  test('expired keys are refused; the second of expiry is still good', () => {
    const text = `expiry-time="20300601115959Z" ${K1}\nexpiry-time="20300601120000Z",command="ok" ${K1}\n`;
    const result = findAuthorizedKey(text, ED1.blob, { remoteAddress: '192.0.2.5', now: new Date('2030-06-01T12:00:00.900Z') });
    assert.ok(result.found);
    assert.equal(result.entry.line, 2);
    const late = findAuthorizedKey(text, ED1.blob, { remoteAddress: '192.0.2.5', now: new Date('2030-06-01T12:00:01Z') });
    assert.ok(!late.found);
    assert.deepEqual(
      late.refused.map((r) => [r.line, r.reason, r.message]),
      [
        [1, 'expired', 'authorized_keys:1: key expired at 2030-06-01T11:59:59.000Z'],
        [2, 'expired', 'authorized_keys:2: key expired at 2030-06-01T12:00:00.000Z'],
      ],
    );
  });

  test('a key refused on one line may be allowed by a later one; every refusal is reported', () => {
    const file = parseAuthorizedKeys(`from="10.0.0.0/8" ${K1}\nfrom="192.0.2.0/24",restrict ${K1}\n`, '/home/u/.ssh/authorized_keys');
    const result = findAuthorizedKey(file, ED1.blob, at('192.0.2.5'));
    assert.ok(result.found);
    assert.equal(result.entry.line, 2);
    assert.equal(result.entry.options.restrict, true);
    const nowhere = findAuthorizedKey(file.entries, ED1.blob, at('198.51.100.1'));
    assert.ok(!nowhere.found);
    assert.deepEqual(
      nowhere.refused.map((r) => r.line),
      [1, 2],
    );
  });

  test('cert-authority lines never authorise the key itself; principals= needs cert-authority', () => {
    assert.deepEqual(findAuthorizedKey(`cert-authority ${K1}\n`, ED1.blob, at('192.0.2.5')), { found: false, refused: [] });
    const result = findAuthorizedKey(`principals="alice" ${K1}\n`, ED1.blob, at('192.0.2.5'));
    assert.ok(!result.found);
    assert.equal(result.refused[0]?.reason, 'principals-without-ca');
  });
});
