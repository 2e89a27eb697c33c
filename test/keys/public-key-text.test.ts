import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeyFormatError } from '../../src/errors.js';
import {
  decodePublicKeyFields,
  detectPublicKeyFormat,
  formatOpenSshPublicKey,
  formatRfc4716PublicKey,
  isKnownKeyTypeName,
  parseOpenSshPublicKey,
  parsePublicKeyText,
  parseRfc4716PublicKey,
  sha256Fingerprint,
} from '../../src/keys/public-key-text.js';
import { havePeers, peerPath } from '../helpers/peers.js';

const KEYS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'openssh-keys');
const PUBLIC_KEYS = ['ed25519_1', 'ed25519_2', 'ecdsa_1', 'ecdsa_2', 'rsa_1', 'rsa_2'];

function fixture(name: string): string {
  return readFileSync(join(KEYS, name), 'utf8');
}

function blobOf(line: string): Buffer {
  return Buffer.from(line.trim().split(/\s+/)[1]!, 'base64');
}

function isKeyFormatError(error: unknown): boolean {
  return error instanceof KeyFormatError;
}

describe('OpenSSH one-line public keys', () => {
  for (const name of PUBLIC_KEYS) {
    test(`${name}.pub parses to its blob, type and comment`, () => {
      const text = fixture(`${name}.pub`);
      const { key, comment } = parseOpenSshPublicKey(text);
      assert.deepEqual(key.blob, blobOf(text));
      assert.equal(key.type, text.split(' ')[0]);
      assert.equal(comment, text.trim().split(/\s+/).slice(2).join(' '));
      assert.equal(`${formatOpenSshPublicKey(key, comment)}\n`, text, 'formats back byte for byte');
    });
  }

  test('fingerprints equal ssh-keygen -l output', () => {
    for (const name of ['ed25519_1', 'ecdsa_1', 'rsa_1']) {
      const { key } = parseOpenSshPublicKey(fixture(`${name}.pub`));
      assert.equal(sha256Fingerprint(key), fixture(`${name}.fp`).trim());
      assert.equal(sha256Fingerprint(key.blob), fixture(`${name}.fp`).trim());
    }
  });

  test('comments keep inner blanks; CRLF, leading blanks and comment lines are tolerated', () => {
    const base = fixture('ed25519_1.pub').trim().split(' ').slice(0, 2).join(' ');
    assert.equal(parseOpenSshPublicKey(`${base} a  comment\twith blanks \r\n`).comment, 'a  comment\twith blanks');
    assert.equal(parseOpenSshPublicKey(`# my key\n\n  ${base}\n`).comment, '');
    assert.equal(parseOpenSshPublicKey(`${base}\t`).comment, '');
    assert.equal(formatOpenSshPublicKey(parseOpenSshPublicKey(base).key), base);
  });

  test('a type that does not match the blob is refused', () => {
    const ed25519 = blobOf(fixture('ed25519_1.pub')).toString('base64');
    assert.throws(() => parseOpenSshPublicKey(`ssh-rsa ${ed25519} liar`), /key type mismatch.*"ssh-rsa".*"ssh-ed25519"/);
    assert.throws(() => parseOpenSshPublicKey(`ecdsa-sha2-nistp384 ${blobOf(fixture('ecdsa_1.pub')).toString('base64')}`), isKeyFormatError);
  });

  test('broken lines are KeyFormatErrors', () => {
    const ed25519 = blobOf(fixture('ed25519_1.pub')).toString('base64');
    const bad = [
      '',
      '# only a comment',
      'ssh-ed25519',
      `ssh-ed25519 ${ed25519.slice(0, 20)}`,
      `ssh-ed25519 ${ed25519.replace('A', '*')}`,
      `ssh-ed25519 =${ed25519}`,
      `ssh-foo ${ed25519}`,
      `ssh-dss ${ed25519}`,
    ];
    for (const text of bad) assert.throws(() => parseOpenSshPublicKey(text), isKeyFormatError, JSON.stringify(text));
  });

  test('types OpenSSH knows but tssh cannot use are kept opaque by decodePublicKeyFields', () => {
    assert.equal(isKnownKeyTypeName('sk-ssh-ed25519@openssh.com'), true);
    assert.equal(isKnownKeyTypeName('ssh-ed25519-cert-v01@openssh.com'), true);
    assert.equal(isKnownKeyTypeName('sk-ssh-ed25519-cert-v01@openssh.com'), true);
    assert.equal(isKnownKeyTypeName('ssh-XXX'), false);
    // An sk-ssh-ed25519 blob: string type, string key, string application.
    const type = 'sk-ssh-ed25519@openssh.com';
    const parts = [Buffer.from(type), Buffer.alloc(32, 7), Buffer.from('ssh:')];
    const blob = Buffer.concat(parts.flatMap((p) => [Buffer.from([0, 0, 0, p.length]), p]));
    const record = decodePublicKeyFields(type, blob.toString('base64'));
    assert.equal(record.key, undefined);
    assert.deepEqual(record.blob, blob);
    // The one-line parser wants a usable key.
    assert.throws(() => parseOpenSshPublicKey(`${type} ${blob.toString('base64')}`), /unsupported public key type/);
  });
});

describe('RFC 4716 public keys', () => {
  // RFC 4716 §3.6, first example (a 1024-bit RSA key with e = 35), headers and all.
  const RFC_EXAMPLE = [
    '---- BEGIN SSH2 PUBLIC KEY ----',
    'Comment: "1024-bit RSA, converted from OpenSSH by me@example.com"',
    'x-command: /home/me/bin/lock-in-guest.sh',
    'AAAAB3NzaC1yc2EAAAABIwAAAIEA1on8gxCGJJWSRT4uOrR13mUaUk0hRf4RzxSZ1zRb',
    'YYFw8pfGesIFoEuVth4HKyF8k1y4mRUnYHP1XNMNMJl1JcEArC2asV8sHf6zSPVffozZ',
    '5TT4SfsUu/iKy9lUcCfXzwre4WWZSXXcPff+EHtWshahu3WzBdnGxm5Xoi89zcE=',
    '---- END SSH2 PUBLIC KEY ----',
    '',
  ].join('\n');

  test('the RFC example: quoted comment, unknown header kept, body over three lines', () => {
    const parsed = parseRfc4716PublicKey(RFC_EXAMPLE);
    assert.equal(parsed.key.type, 'ssh-rsa');
    assert.equal(parsed.comment, '1024-bit RSA, converted from OpenSSH by me@example.com');
    assert.deepEqual(parsed.headers, [
      { tag: 'Comment', value: '"1024-bit RSA, converted from OpenSSH by me@example.com"' },
      { tag: 'x-command', value: '/home/me/bin/lock-in-guest.sh' },
    ]);
    assert.equal(
      parsed.key.blob.toString('base64'),
      'AAAAB3NzaC1yc2EAAAABIwAAAIEA1on8gxCGJJWSRT4uOrR13mUaUk0hRf4RzxSZ1zRbYYFw8pfGesIFoEuVth4HKyF8k1y4mRUnYHP1XNMNMJl1JcEArC2asV8sHf6zSPVffozZ5TT4SfsUu/iKy9lUcCfXzwre4WWZSXXcPff+EHtWshahu3WzBdnGxm5Xoi89zcE=',
    );
  });

  test('continued headers, unquoted comments, CR and CRLF line ends, case-insensitive tags', () => {
    const body = RFC_EXAMPLE.split('\n').slice(3, 6);
    const text = [
      '---- BEGIN SSH2 PUBLIC KEY ----',
      'Subject: me',
      'COMMENT: 1024-bit rsa, created by me@example.com Mon Jan 15 \\',
      '08:31:24 2001',
      ...body,
      '---- END SSH2 PUBLIC KEY ----',
    ];
    for (const eol of ['\n', '\r\n', '\r']) {
      const parsed = parseRfc4716PublicKey(text.join(eol));
      assert.equal(parsed.comment, '1024-bit rsa, created by me@example.com Mon Jan 15 08:31:24 2001');
      assert.deepEqual(parsed.headers[0], { tag: 'Subject', value: 'me' });
    }
  });

  test('our output parses back, wraps long headers under 72 bytes and the body at 70', () => {
    const { key } = parseOpenSshPublicKey(fixture('rsa_2.pub'));
    const comment = `a long comment — ${'x'.repeat(150)} with UTF-8 ✓ inside`;
    const text = formatRfc4716PublicKey(key, { comment, headers: [{ tag: 'x-note', value: 'kept' }] });
    for (const line of text.split('\n')) assert.ok(Buffer.byteLength(line) <= 72, line);
    assert.ok(text.split('\n').some((line) => line.length === 70));
    const parsed = parseRfc4716PublicKey(text);
    assert.deepEqual(parsed.key.blob, key.blob);
    assert.equal(parsed.comment, comment);
    assert.deepEqual(parsed.headers[1], { tag: 'x-note', value: 'kept' });
  });

  test('malformed blocks are refused', () => {
    const lines = RFC_EXAMPLE.trim().split('\n');
    const bad = [
      lines.slice(1).join('\n'),
      lines.slice(0, -1).join('\n'),
      [lines[0], 'Comment: dangling \\'].join('\n'),
      [...lines.slice(0, 3), 'AAAA*notbase64', lines[6]].join('\n'),
      [lines[0], ': no tag', ...lines.slice(3)].join('\n'),
    ];
    for (const text of bad) assert.throws(() => parseRfc4716PublicKey(text), isKeyFormatError, text);
    assert.throws(() => formatRfc4716PublicKey(parseRfc4716PublicKey(RFC_EXAMPLE).key, { headers: [{ tag: 'bad:tag', value: 'x' }] }), isKeyFormatError);
  });

  test('format detection and the either-form parser', () => {
    const line = fixture('ed25519_1.pub');
    const block = formatRfc4716PublicKey(parseOpenSshPublicKey(line).key, { comment: 'c' });
    assert.equal(detectPublicKeyFormat(line), 'openssh');
    assert.equal(detectPublicKeyFormat(`\n\n${block}`), 'rfc4716');
    assert.equal(detectPublicKeyFormat('-----BEGIN PUBLIC KEY-----\n'), undefined);
    assert.equal(detectPublicKeyFormat(''), undefined);
    assert.equal(parsePublicKeyText(line).format, 'openssh');
    const fromBlock = parsePublicKeyText(block);
    assert.equal(fromBlock.format, 'rfc4716');
    assert.equal(fromBlock.comment, 'c');
    assert.deepEqual(fromBlock.key.blob, parsePublicKeyText(line).key.blob);
    assert.throws(() => parsePublicKeyText('hello'), isKeyFormatError);
  });

  test('ssh-keygen -e output parses to the same blob, and ssh-keygen -i reads ours', (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    const dir = mkdtempSync(join(tmpdir(), 'tssh-rfc4716-'));
    try {
      for (const name of PUBLIC_KEYS) {
        const line = fixture(`${name}.pub`);
        const exported = execFileSync(keygen, ['-e', '-f', join(KEYS, `${name}.pub`)], { encoding: 'utf8' });
        const parsed = parseRfc4716PublicKey(exported);
        assert.deepEqual(parsed.key.blob, blobOf(line), name);
        assert.match(parsed.comment, /converted by .* from OpenSSH/);
        const ours = join(dir, `${name}.rfc`);
        writeFileSync(ours, formatRfc4716PublicKey(parsed.key, { comment: parsed.comment }));
        const imported = execFileSync(keygen, ['-i', '-f', ours], { encoding: 'utf8' });
        assert.deepEqual(blobOf(imported), blobOf(line), name);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
