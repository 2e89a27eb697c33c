import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_PACKET_LENGTH, PacketDecoder, PacketEncoder } from '../../src/transport/packet.js';
import { noneCipher } from '../../src/algorithms/cipher/none.js';
import { aes128Gcm } from '../../src/algorithms/cipher/aes-gcm.js';
import { ProtocolError } from '../../src/errors.js';
import { cipherAlgorithms, macAlgorithms } from '../../src/algorithms/registry.js';

const none = () => ({
  encoder: new PacketEncoder(noneCipher.createSealer(Buffer.alloc(0), Buffer.alloc(0))),
  decoder: new PacketDecoder(noneCipher.createOpener(Buffer.alloc(0), Buffer.alloc(0))),
});

function rawPacket(payload: Buffer, padding: number, lengthOverride?: number): Buffer {
  const packetLength = lengthOverride ?? 1 + payload.length + padding;
  const out = Buffer.alloc(4 + 1 + payload.length + padding);
  out.writeUInt32BE(packetLength, 0);
  out[4] = padding;
  payload.copy(out, 5);
  return out;
}

describe('binary packet protocol (RFC 4253 §6)', () => {
  test('pads to the block size with at least 4 random bytes, and round-trips', () => {
    const { encoder, decoder } = none();
    for (let size = 1; size < 70; size++) {
      const payload = Buffer.alloc(size, size);
      const wire = Buffer.concat(encoder.encode(payload));
      assert.equal(wire.length % 8, 0);
      const padding = wire[4]!;
      assert.ok(padding >= 4 && padding < 4 + 8, `padding ${padding} for ${size}`);
      decoder.push(wire);
      assert.deepEqual(decoder.next(), payload);
    }
  });

  test('reassembles packets from one-byte chunks and counts sequence numbers', () => {
    const { encoder, decoder } = none();
    const wire = Buffer.concat([...encoder.encode(Buffer.from('first')), ...encoder.encode(Buffer.from('second'))]);
    const out: string[] = [];
    for (const byte of wire) {
      decoder.push(Buffer.from([byte]));
      const payload = decoder.next();
      if (payload) out.push(payload.toString());
    }
    assert.deepEqual(out, ['first', 'second']);
    assert.equal(decoder.sequence, 2);
    assert.equal(encoder.sequence, 2);
  });

  test('sequence numbers wrap at 2^32', () => {
    const { encoder, decoder } = none();
    encoder.sequence = 0xffffffff;
    decoder.sequence = 0xffffffff;
    decoder.push(Buffer.concat(encoder.encode(Buffer.from('x'))));
    assert.ok(decoder.next());
    assert.equal(encoder.sequence, 0);
    assert.equal(decoder.sequence, 0);
  });

  test('refuses an oversized packet from its length alone, before the body arrives', () => {
    const { decoder } = none();
    const header = Buffer.alloc(8);
    header.writeUInt32BE(MAX_PACKET_LENGTH + 4, 0);
    decoder.push(header);
    assert.throws(() => decoder.next(), (e: unknown) => e instanceof ProtocolError && /exceeds the maximum of 262144/.test(e.message));
    assert.equal(decoder.bufferedBytes, 8);
  });

  test('accepts a packet at the 256 KiB limit', () => {
    const { decoder } = none();
    // packet_length = 262140, the largest under 256 KiB with 4 + packet_length a multiple of 8.
    const padding = 11;
    const payload = Buffer.alloc(MAX_PACKET_LENGTH - 4 - 1 - padding, 1);
    decoder.push(rawPacket(payload, padding));
    assert.equal(decoder.next()?.length, payload.length);
  });

  test('refuses padding shorter than 4 bytes', () => {
    const { decoder } = none();
    // 4 + 1 + 8 + 3 = 16: aligned, but only 3 bytes of padding.
    decoder.push(rawPacket(Buffer.alloc(8, 1), 3));
    assert.throws(() => decoder.next(), /padding of 3 bytes is shorter than the minimum of 4/);
  });

  test('refuses a padding length larger than the packet', () => {
    const { decoder } = none();
    const packet = rawPacket(Buffer.alloc(2), 9);
    packet[4] = 200;
    decoder.push(packet);
    assert.throws(() => decoder.next(), /exceeds the packet length/);
  });

  test('refuses a packet length that is not a multiple of the block size', () => {
    const { decoder } = none();
    decoder.push(rawPacket(Buffer.alloc(3), 4));
    assert.throws(() => decoder.next(), /not a multiple of the cipher block size 8/);
  });

  test('refuses a packet length too short to hold padding', () => {
    const { decoder } = none();
    decoder.push(Buffer.from([0, 0, 0, 4, 4, 0, 0, 0]));
    assert.throws(() => decoder.next(), /packet length 4 is too short/);
  });

  test('with an AEAD the length is excluded from the padding alignment', () => {
    const key = Buffer.alloc(16, 7);
    const iv = Buffer.alloc(12, 9);
    const encoder = new PacketEncoder(aes128Gcm.createSealer(key, iv));
    const decoder = new PacketDecoder(aes128Gcm.createOpener(key, iv));
    for (let size = 1; size < 40; size++) {
      const wire = Buffer.concat(encoder.encode(Buffer.alloc(size, 3)));
      assert.equal((wire.length - 4 - 16) % 16, 0);
      decoder.push(wire);
      assert.deepEqual(decoder.next(), Buffer.alloc(size, 3));
    }
  });
});

describe('input read into one reused buffer (Transport.receive with transient chunks)', () => {
  test('a read ending on a packet boundary lets the carry go; the next split packet still comes out whole', () => {
    const { encoder, decoder } = none();
    const payloads = [100, 5000, 20000, 7, 300].map((size, i) => Buffer.alloc(size, i + 1));
    const packets = payloads.map((p) => Buffer.concat(encoder.encode(p)));
    // Reads: packet 0 and half of 1 | rest of 1 (a boundary: nothing kept) | a third of 2 |
    // the rest of 2, 3 and 4 (a boundary again).
    const wire = Buffer.concat(packets);
    const cuts = [packets[0]!.length + 2000, packets[0]!.length + packets[1]!.length, packets[0]!.length + packets[1]!.length + 6000, wire.length];
    const readBuffer = Buffer.alloc(wire.length);
    const received: Buffer[] = [];
    let offset = 0;
    for (const cut of cuts) {
      wire.copy(readBuffer, 0, offset, cut);
      decoder.push(readBuffer.subarray(0, cut - offset));
      offset = cut;
      for (let payload = decoder.next(); payload; payload = decoder.next()) received.push(payload);
      decoder.retain();
      readBuffer.fill(0xee);
    }
    assert.deepEqual(received, payloads);
    assert.equal(decoder.bufferedBytes, 0);
  });

  // A socket with net's `onread` hands every read in the same buffer: after retain(), nothing the
  // decoder keeps or returns may still point into it. The buffer is scribbled over after every
  // read, so a payload that still aliased it would come out wrong.
  const cases: [string, () => { encoder: PacketEncoder; decoder: PacketDecoder }][] = [
    ['none (opens in place)', none],
    ...(['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com'] as const).map(
      (name) =>
        [
          name,
          () => {
            const cipher = cipherAlgorithms.all.get(name)!;
            const key = Buffer.alloc(64, 1);
            const iv = Buffer.alloc(16, 2);
            return { encoder: new PacketEncoder(cipher.createSealer(key, iv)), decoder: new PacketDecoder(cipher.createOpener(key, iv)) };
          },
        ] as [string, () => { encoder: PacketEncoder; decoder: PacketDecoder }],
    ),
    ...(['hmac-sha2-256', 'hmac-sha2-256-etm@openssh.com'] as const).map(
      (macName) =>
        [
          `aes128-ctr + ${macName}${macName.endsWith('etm@openssh.com') ? '' : ' (MAC-then-encrypt: opens in place)'}`,
          () => {
            const cipher = cipherAlgorithms.all.get('aes128-ctr')!;
            const mac = { algorithm: macAlgorithms.all.get(macName)!, key: Buffer.alloc(32, 3) };
            const key = Buffer.alloc(16, 1);
            const iv = Buffer.alloc(16, 2);
            return { encoder: new PacketEncoder(cipher.createSealer(key, iv, mac)), decoder: new PacketDecoder(cipher.createOpener(key, iv, mac)) };
          },
        ] as [string, () => { encoder: PacketEncoder; decoder: PacketDecoder }],
    ),
  ];
  for (const [name, make] of cases) {
    test(name, () => {
      const { encoder, decoder } = make();
      const payloads = [1, 17, 300, 4000, 32768, 40000, 5, 65000, 9, 100].map((size, i) => {
        const payload = Buffer.alloc(size);
        for (let j = 0; j < size; j++) payload[j] = (i * 31 + j * 7) & 0xff;
        return payload;
      });
      const wire = Buffer.concat(payloads.flatMap((p) => encoder.encode(p)));
      // Reads of varied sizes, some splitting a length field, some holding several packets.
      const readSizes = [3, 1, 70000, 2, 5000, 1, 16, 100000, 7];
      const readBuffer = Buffer.alloc(100000);
      const received: Buffer[] = [];
      let offset = 0;
      for (let i = 0; offset < wire.length; i++) {
        const n = Math.min(readSizes[i % readSizes.length]!, wire.length - offset);
        wire.copy(readBuffer, 0, offset, offset + n);
        offset += n;
        decoder.push(readBuffer.subarray(0, n));
        for (let payload = decoder.next(); payload; payload = decoder.next()) received.push(payload);
        decoder.retain();
        readBuffer.fill(0xee); // the next read overwrites it
      }
      assert.equal(received.length, payloads.length);
      received.forEach((payload, i) => assert.ok(payload.equals(payloads[i]!), `payload ${i} (${payloads[i]!.length} bytes) intact`));
      assert.equal(decoder.bufferedBytes, 0);
    });
  }
});
