import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { aes128Ctr, aes256Ctr } from '../../src/algorithms/cipher/aes-ctr.js';
import { hmacSha1, hmacSha1Etm, hmacSha2_256, hmacSha2_256Etm, hmacSha2_512, hmacSha2_512Etm } from '../../src/algorithms/mac/hmac.js';
import { MacError } from '../../src/errors.js';
import type { MacAlgorithm, PacketSealer } from '../../src/algorithms/types.js';

/** A plaintext packet padded as RFC 4253 §6 requires for this sealer. */
function buildPacket(sealer: PacketSealer, payload: Buffer): Buffer {
  const block = Math.max(8, sealer.blockSize);
  const aligned = sealer.lengthExcludedFromPadding ? 1 + payload.length : 5 + payload.length;
  let padding = block - (aligned % block);
  if (padding < 4) padding += block;
  const packet = Buffer.alloc(4 + 1 + payload.length + padding);
  packet.writeUInt32BE(packet.length - 4, 0);
  packet[4] = padding;
  payload.copy(packet, 5);
  randomBytes(padding).copy(packet, 5 + payload.length);
  return packet;
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

const all = [hmacSha2_256, hmacSha2_512, hmacSha1, hmacSha2_256Etm, hmacSha2_512Etm, hmacSha1Etm];
// Consecutive packets, crossing the uint32 wrap of the sequence number.
const sequences = [0, 1, 0xfffffffe, 0xffffffff, 0, 1];
const payloadSizes = [0, 5, 16, 1000, 32768];

describe('HMAC algorithm descriptions (RFC 6668, RFC 4253 §6.4, OpenSSH PROTOCOL §1.5)', () => {
  test('names, hashes, key and digest lengths, and the encrypt-then-MAC flag', () => {
    const table: [MacAlgorithm, string, string, number, boolean][] = [
      [hmacSha2_256, 'hmac-sha2-256', 'sha256', 32, false],
      [hmacSha2_512, 'hmac-sha2-512', 'sha512', 64, false],
      [hmacSha2_256Etm, 'hmac-sha2-256-etm@openssh.com', 'sha256', 32, true],
      [hmacSha2_512Etm, 'hmac-sha2-512-etm@openssh.com', 'sha512', 64, true],
      [hmacSha1, 'hmac-sha1', 'sha1', 20, false],
      [hmacSha1Etm, 'hmac-sha1-etm@openssh.com', 'sha1', 20, true],
    ];
    for (const [mac, name, hash, length, etm] of table) {
      assert.deepEqual(
        [mac.name, mac.hash, mac.keyLength, mac.digestLength, mac.etm],
        [name, hash, length, length, etm],
      );
    }
  });
});

describe('MAC values equal node:crypto createHmac computed independently', () => {
  for (const mac of all) {
    const order = mac.etm ? 'uint32 seq || uint32 length || ciphertext' : 'uint32 seq || plaintext packet';
    test(`${mac.name}: the tag is HMAC(key, ${order}) over consecutive packets across the sequence wrap`, () => {
      const key = randomBytes(16);
      const iv = randomBytes(16);
      const macKey = randomBytes(mac.keyLength);
      const sealer = aes128Ctr.createSealer(key, iv, { algorithm: mac, key: macKey });
      const opener = aes128Ctr.createOpener(key, iv, { algorithm: mac, key: macKey });
      assert.equal(sealer.tagLength, mac.digestLength);
      // The reference keystream: one CTR cipher across all packets, as RFC 4344 §4 chains them.
      const reference = createCipheriv('aes-128-ctr', key, iv);
      let i = 0;
      for (const sequence of sequences) {
        const packet = buildPacket(sealer, randomBytes(payloadSizes[i++ % payloadSizes.length]!));
        const wire = Buffer.concat(sealer.seal(sequence, Buffer.from(packet)));
        const end = packet.length;
        const tag = wire.subarray(end);
        if (mac.etm) {
          const ciphertext = reference.update(packet.subarray(4));
          assert.deepEqual(wire.subarray(0, end), Buffer.concat([packet.subarray(0, 4), ciphertext]));
          const expected = createHmac(mac.hash, macKey).update(Buffer.concat([uint32(sequence), packet.subarray(0, 4), ciphertext])).digest();
          assert.deepEqual(tag, expected, `seq ${sequence}`);
        } else {
          assert.deepEqual(wire.subarray(0, end), reference.update(packet));
          const expected = createHmac(mac.hash, macKey).update(Buffer.concat([uint32(sequence), packet])).digest();
          assert.deepEqual(tag, expected, `seq ${sequence}`);
        }
        const length = opener.readLength(sequence, wire.subarray(0, opener.headerLength));
        assert.equal(length, packet.length - 4);
        assert.deepEqual(Buffer.from(opener.open(sequence, Buffer.from(wire))), packet.subarray(4));
      }
    });

    test(`${mac.name}: a different MAC key makes open() throw MacError`, () => {
      const key = randomBytes(32);
      const iv = randomBytes(16);
      const sealer = aes256Ctr.createSealer(key, iv, { algorithm: mac, key: randomBytes(mac.keyLength) });
      const opener = aes256Ctr.createOpener(key, iv, { algorithm: mac, key: randomBytes(mac.keyLength) });
      const wire = Buffer.concat(sealer.seal(9, buildPacket(sealer, randomBytes(100))));
      opener.readLength(9, wire.subarray(0, opener.headerLength));
      assert.throws(() => opener.open(9, wire), MacError);
    });
  }

  test('only the first keyLength bytes of longer MAC key material are used (RFC 4253 §7.2)', () => {
    const key = randomBytes(16);
    const iv = randomBytes(16);
    const material = randomBytes(100);
    const sealer = aes128Ctr.createSealer(key, iv, { algorithm: hmacSha2_256Etm, key: material });
    const packet = buildPacket(sealer, randomBytes(33));
    const wire = Buffer.concat(sealer.seal(3, Buffer.from(packet)));
    const expected = createHmac('sha256', material.subarray(0, 32)).update(uint32(3)).update(wire.subarray(0, packet.length)).digest();
    assert.deepEqual(wire.subarray(packet.length), expected);
  });
});
