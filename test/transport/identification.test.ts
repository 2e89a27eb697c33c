import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { IdentificationReader, parseIdentificationLine } from '../../src/transport/identification.js';
import { VersionError } from '../../src/errors.js';

describe('identification exchange (RFC 4253 §4.2)', () => {
  test('reads an identification ended by CR LF and returns the bytes after it', () => {
    const reader = new IdentificationReader(true);
    const done = reader.push(Buffer.from('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6\r\n\x00\x00\x01'));
    assert.ok(done);
    assert.equal(done.identification.line, 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6');
    assert.equal(done.identification.softwareVersion, 'OpenSSH_9.2p1');
    assert.equal(done.identification.comments, 'Debian-2+deb12u6');
    assert.deepEqual([...done.rest], [0, 0, 1]);
  });

  test('accepts a bare LF from old peers and a line split across chunks', () => {
    const reader = new IdentificationReader(false);
    assert.equal(reader.push(Buffer.from('SSH-2.0-Old')), undefined);
    const done = reader.push(Buffer.from('Peer\n'));
    assert.equal(done?.identification.line, 'SSH-2.0-OldPeer');
  });

  test('accepts SSH-1.99 as SSH-2.0', () => {
    assert.equal(parseIdentificationLine('SSH-1.99-Cisco-1.25').protoVersion, '1.99');
  });

  test('refuses an SSH-1 peer with a message that quotes its identification', () => {
    assert.throws(
      () => parseIdentificationLine('SSH-1.5-OldServer'),
      (error: unknown) =>
        error instanceof VersionError &&
        error.reason === 8 &&
        error.message.includes('"SSH-1.5-OldServer"') &&
        /SSH-1/.test(error.message),
    );
  });

  test('refuses an unknown protocol version', () => {
    assert.throws(() => parseIdentificationLine('SSH-3.0-Future'), /unsupported SSH protocol version 3\.0 .*"SSH-3\.0-Future"/);
  });

  test('a client ignores lines a server sends before its identification', () => {
    const reader = new IdentificationReader(true);
    const done = reader.push(Buffer.from('Welcome to the switch\r\nauthorised use only\r\nSSH-2.0-Switch_1.0\r\n'));
    assert.equal(done?.identification.softwareVersion, 'Switch_1.0');
    assert.deepEqual(reader.preamble, ['Welcome to the switch', 'authorised use only']);
  });

  test('a server refuses a client whose first line is not an identification', () => {
    const reader = new IdentificationReader(false);
    assert.throws(() => reader.push(Buffer.from('GET / HTTP/1.1\r\n')), /client did not start with an SSH identification/);
  });

  test('refuses a line longer than 255 bytes without waiting for its end', () => {
    const reader = new IdentificationReader(true);
    assert.throws(() => reader.push(Buffer.alloc(300, 0x41)), /longer than 255 bytes/);
  });

  test('refuses endless lines before the identification after 8 KiB', () => {
    const reader = new IdentificationReader(true);
    assert.throws(() => {
      for (let i = 0; i < 1000; i++) reader.push(Buffer.from('banner line number something\r\n'));
    }, /more than 8192 bytes before its SSH identification/);
  });

  test('refuses an identification with a NUL byte or without a software version', () => {
    assert.throws(() => new IdentificationReader(true).push(Buffer.from('SSH-2.0-a\x00b\r\n')), /NUL/);
    assert.throws(() => parseIdentificationLine('SSH-2.0-'), VersionError);
    assert.throws(() => parseIdentificationLine('SSH-2.0'), VersionError);
  });
});
