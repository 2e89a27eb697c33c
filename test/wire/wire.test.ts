import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Reader, bytesToBigInt } from '../../src/wire/reader.js';
import { Writer, bigIntToBytes, encodeMpint } from '../../src/wire/writer.js';
import { Disconnect, KexInit, messageName, MSG } from '../../src/wire/messages.js';
import { ProtocolError } from '../../src/errors.js';

describe('RFC 4251 §5 data types', () => {
  test('mpint encodings match the examples of RFC 4251 §5', () => {
    // The RFC's table: value -> encoding.
    const cases: [bigint, string][] = [
      [0n, '00000000'],
      [0x9a378f9b2e332a7n, '0000000809a378f9b2e332a7'],
      [0x80n, '000000020080'],
    ];
    for (const [value, hex] of cases) assert.equal(new Writer().mpintBigInt(value).finish().toString('hex'), hex);
    assert.equal(encodeMpint(Buffer.from('0080', 'hex')).toString('hex'), '000000020080');
  });

  test('reads back every type written', () => {
    const w = new Writer(4)
      .byte(7)
      .boolean(true)
      .uint32(0xdeadbeef)
      .uint64(0x0102030405060708n)
      .string('héllo')
      .nameList(['a', 'b-c@d'])
      .mpintBigInt(0x80n);
    const r = new Reader(w.finish());
    assert.equal(r.byte(), 7);
    assert.equal(r.boolean(), true);
    assert.equal(r.uint32(), 0xdeadbeef);
    assert.equal(r.uint64(), 0x0102030405060708n);
    assert.equal(r.utf8(), 'héllo');
    assert.deepEqual(r.nameList(), ['a', 'b-c@d']);
    assert.equal(bytesToBigInt(r.mpintUnsigned()), 0x80n);
    r.done();
  });

  test('a string length beyond the message is a truncation error, not a read past the end', () => {
    const buffer = Buffer.from([0, 0, 0, 10, 1, 2]);
    assert.throws(() => new Reader(buffer, 0, buffer.length, 'SSH_MSG_TEST').string(), (e: unknown) => e instanceof ProtocolError && /truncated SSH_MSG_TEST: string needs 10 bytes, 2 left/.test(e.message));
  });

  test('a huge claimed length is refused before any allocation', () => {
    assert.throws(() => new Reader(Buffer.from([0xff, 0xff, 0xff, 0xff])).string(), /needs 4294967295 bytes/);
  });

  test('rejects name-lists with empty names or non-ASCII bytes', () => {
    assert.throws(() => new Reader(new Writer().string('a,,b').finish()).nameList(), /empty name/);
    assert.throws(() => new Reader(new Writer().string('a,\u00e9').finish()).nameList(), /non-printable or non-ASCII/);
    assert.deepEqual(new Reader(new Writer().string('').finish()).nameList(), []);
  });

  test('rejects negative and oversized mpints', () => {
    assert.throws(() => new Reader(Buffer.from([0, 0, 0, 1, 0x80])).mpintUnsigned(), /negative mpint/);
    assert.throws(() => new Reader(new Writer().mpintUnsigned(Buffer.alloc(20, 1)).finish()).mpintUnsigned(16), /too large/);
  });

  test('bigIntToBytes pads to a fixed width and refuses values that do not fit', () => {
    assert.equal(bigIntToBytes(1n, 4).toString('hex'), '00000001');
    assert.throws(() => bigIntToBytes(0x10000n, 2), RangeError);
  });
});

describe('message codecs', () => {
  test('encode and decode are inverse, and the number is checked', () => {
    const payload = Disconnect.encode({ reason: 2, description: 'bad', language: '' });
    assert.equal(payload[0], MSG.DISCONNECT);
    assert.deepEqual(Disconnect.decode(payload), { reason: 2, description: 'bad', language: '' });
    assert.throws(() => KexInit.decode(payload), /expected SSH_MSG_KEXINIT \(20\), got message 1/);
  });

  test('trailing bytes are rejected', () => {
    const payload = Buffer.concat([Disconnect.encode({ reason: 2, description: '', language: '' }), Buffer.from([0])]);
    assert.throws(() => Disconnect.decode(payload), /1 unexpected trailing bytes in SSH_MSG_DISCONNECT/);
  });

  test('names messages for logs', () => {
    assert.equal(messageName(MSG.CHANNEL_DATA), 'SSH_MSG_CHANNEL_DATA');
    assert.equal(messageName(250), 'message 250');
  });
});
