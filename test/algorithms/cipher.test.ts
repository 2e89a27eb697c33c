import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { poly1305 } from '@noble/ciphers/_poly1305.js';
import { aes128Gcm, aes256Gcm } from '../../src/algorithms/cipher/aes-gcm.js';
import { aes128Ctr, aes192Ctr, aes256Ctr } from '../../src/algorithms/cipher/aes-ctr.js';
import { poly1305 as poly1305Ours, poly1305Js, poly1305Implementation } from '../../src/algorithms/cipher/poly1305.js';
import { chacha20Poly1305, chacha20Poly1305Using } from '../../src/algorithms/cipher/chacha20-poly1305.js';
import { chachaPolyWasm } from '../../src/algorithms/cipher/wasm.js';
import { noneCipher } from '../../src/algorithms/cipher/none.js';
import { hmacSha1, hmacSha1Etm, hmacSha2_256, hmacSha2_256Etm, hmacSha2_512, hmacSha2_512Etm } from '../../src/algorithms/mac/hmac.js';
import { MacError } from '../../src/errors.js';
import type { CipherAlgorithm, MacAlgorithm, MacKeyed, PacketOpener, PacketSealer } from '../../src/algorithms/types.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex');

/** A plaintext packet framed and padded as RFC 4253 §6 and the sealer's alignment rule require. */
function buildPacket(sealer: Pick<PacketSealer, 'blockSize' | 'lengthExcludedFromPadding'>, payload: Buffer): Buffer {
  const block = Math.max(8, sealer.blockSize);
  const aligned = sealer.lengthExcludedFromPadding ? 1 + payload.length : 5 + payload.length;
  let padding = block - (aligned % block);
  if (padding < 4) padding += block;
  const packetLength = 1 + payload.length + padding;
  const packet = Buffer.alloc(4 + packetLength);
  packet.writeUInt32BE(packetLength, 0);
  packet[4] = padding;
  payload.copy(packet, 5);
  randomBytes(padding).copy(packet, 5 + payload.length);
  return packet;
}

/**
 * Seal through a scratch copy that is scribbled over afterwards, as the packet layer reuses it:
 * the wire bytes must survive that (the chunks must not alias the scratch buffer).
 */
function sealToWire(sealer: PacketSealer, sequence: number, packet: Buffer): Buffer {
  const scratch = Buffer.from(packet);
  const chunks = sealer.seal(sequence, scratch);
  scratch.fill(0xa5);
  return Buffer.concat(chunks);
}

/** What the packet layer does on receipt: read the length from the header, then open the whole packet. */
function openFromWire(opener: PacketOpener, sequence: number, wire: Buffer): Buffer {
  const received = Buffer.from(wire);
  const packetLength = opener.readLength(sequence, received.subarray(0, opener.headerLength));
  assert.equal(4 + packetLength + opener.tagLength, received.length, 'readLength gives the sealed packet length');
  return Buffer.from(opener.open(sequence, received));
}

interface Mode {
  readonly label: string;
  readonly cipher: CipherAlgorithm;
  readonly mac?: MacAlgorithm;
}

const macAlgorithms = [hmacSha2_256, hmacSha2_512, hmacSha1, hmacSha2_256Etm, hmacSha2_512Etm, hmacSha1Etm];
const modes: Mode[] = [
  { label: aes128Gcm.name, cipher: aes128Gcm },
  { label: aes256Gcm.name, cipher: aes256Gcm },
  { label: chacha20Poly1305.name, cipher: chacha20Poly1305 },
  // Without WebAssembly (the default uses it where it runs).
  { label: `${chacha20Poly1305.name} (node:crypto and @noble)`, cipher: chacha20Poly1305Using('node') },
  ...[aes128Ctr, aes192Ctr, aes256Ctr].flatMap((cipher) =>
    macAlgorithms.map((mac) => ({ label: `${cipher.name} + ${mac.name}`, cipher, mac })),
  ),
];

interface Keys {
  readonly key: Buffer;
  readonly iv: Buffer;
  readonly mac: MacKeyed | undefined;
}

function keysFor(mode: Mode): Keys {
  return {
    key: randomBytes(mode.cipher.keyLength),
    iv: randomBytes(mode.cipher.ivLength),
    mac: mode.mac ? { algorithm: mode.mac, key: randomBytes(mode.mac.keyLength) } : undefined,
  };
}

const sealerFor = (mode: Mode, k: Keys): PacketSealer => mode.cipher.createSealer(k.key, k.iv, k.mac);
const openerFor = (mode: Mode, k: Keys): PacketOpener => mode.cipher.createOpener(k.key, k.iv, k.mac);

/** Both implementations; the WebAssembly one where it runs (everywhere but `node --jitless` and TSSH_WASM=0). */
const chachaImplementations = chachaPolyWasm ? (['wasm', 'node'] as const) : (['node'] as const);

for (const implementation of chachaImplementations) describe(`chacha20-poly1305@openssh.com (${implementation})`, () => {
  const chacha20Poly1305 = chacha20Poly1305Using(implementation);
  // draft-ietf-sshm-chacha20-poly1305-04 Appendix A.
  const key = hex(`
    8b bf f6 85  5f c1 02 33  8c 37 3e 73  aa c0 c9 14
    f0 76 a9 05  b2 44 4a 32  ee ca ff ea  e2 2b ec c5
    e9 b7 a7 a5  82 5a 82 49  34 6e c1 c2  83 01 cf 39
    45 43 fc 75  69 88 7d 76  e1 68 f3 75  62 ac 07 40`);
  const plaintext = hex(`
    00 00 00 48  06 5e 00 00  00 00 00 00  00 38 4c 6f
    72 65 6d 20  69 70 73 75  6d 20 64 6f  6c 6f 72 20
    73 69 74 20  61 6d 65 74  2c 20 63 6f  6e 73 65 63
    74 65 74 75  72 20 61 64  69 70 69 73  69 63 69 6e
    67 20 65 6c  69 74 4e 43  e8 04 dc 6c`);
  const wire = hex(`
    2c 3e cc e4  a5 bc 05 89  5b f0 7a 7b  a9 56 b6 c6
    88 29 ac 7c  83 b7 80 b7  00 0e cd e7  45 af c7 05
    bb c3 78 ce  03 a2 80 23  6b 87 b5 3b  ed 58 39 66
    23 02 b1 64  b6 28 6a 48  cd 1e 09 71  38 e3 cb 90
    9b 8b 2b 82  9d d1 8d 2a  35 ff 82 d9  95 34 9e 85
    5b f0 2c 29  8e f7 75 f2  d1 a7 e8 b8`);
  const sequence = 7;

  test('seals the draft appendix A packet to the exact wire bytes (Figure 18)', () => {
    const sealer = chacha20Poly1305.createSealer(key, Buffer.alloc(0));
    const chunks = sealer.seal(sequence, Buffer.from(plaintext));
    assert.deepEqual(Buffer.concat(chunks).subarray(0, 4), hex('2c 3e cc e4'), 'encrypted length (Figure 8)');
    assert.deepEqual(Buffer.concat(chunks), wire);
  });

  test('the WebAssembly Poly1305 (./chacha20-poly1305.c) and the JavaScript one (@noble) agree', () => {
    for (const size of [0, 1, 15, 16, 17, 1000, 32768, 65537]) {
      const message = Buffer.alloc(size);
      for (let i = 0; i < size; i++) message[i] = (i * 131 + size) & 0xff;
      const polyKey = Buffer.alloc(32);
      for (let i = 0; i < 32; i++) polyKey[i] = (i * 7 + size) & 0xff;
      assert.deepEqual(Buffer.from(poly1305Ours(message, polyKey)), Buffer.from(poly1305Js(message, polyKey)), `size ${size}`);
    }
    assert.equal(poly1305Implementation(), process.env.TSSH_WASM === '0' ? 'js' : 'wasm');
  });

  test('reads the length and opens the draft appendix A packet back to its plaintext', () => {
    const opener = chacha20Poly1305.createOpener(key, Buffer.alloc(0));
    assert.equal(opener.readLength(sequence, wire.subarray(0, 4)), 0x48);
    assert.deepEqual(Buffer.from(opener.open(sequence, Buffer.from(wire))), plaintext.subarray(4));
  });

  test('refuses the draft packet under another sequence number (the nonce) with MacError', () => {
    const opener = chacha20Poly1305.createOpener(key, Buffer.alloc(0));
    assert.throws(() => opener.open(sequence + 1, Buffer.from(wire)), MacError);
  });

  test('Poly1305 gives the RFC 8439 §2.5.2 tag', () => {
    const polyKey = hex('85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b');
    const tag = poly1305(Buffer.from('Cryptographic Forum Research Group'), polyKey);
    assert.deepEqual(Buffer.from(tag), hex('a8:06:1d:c1:30:51:36:c6:c2:2b:8b:af:0c:01:27:a9'));
  });

  test('takes the payload key from the first 32 key bytes and the length key from the last 32', () => {
    // Independently: node chacha20 with IV = LE counter || BE uint64 sequence (original DJB layout).
    const k = randomBytes(64);
    const seq = 0x01020304;
    const iv = (counter: number): Buffer => {
      const b = Buffer.alloc(16);
      b.writeUInt32LE(counter, 0);
      b.writeUInt32BE(seq, 12);
      return b;
    };
    // Small packets are sealed wholly in WebAssembly, large ones partly by node:crypto.
    for (const size of [50, 3000]) {
      const packet = buildPacket(chacha20Poly1305.createSealer(k, Buffer.alloc(0)), randomBytes(size));
      const out = chacha20Poly1305.createSealer(k, Buffer.alloc(0)).seal(seq, Buffer.from(packet));
      const encLength = createCipheriv('chacha20', k.subarray(32), iv(0)).update(packet.subarray(0, 4));
      const encBody = createCipheriv('chacha20', k.subarray(0, 32), iv(1)).update(packet.subarray(4));
      const polyKey = createCipheriv('chacha20', k.subarray(0, 32), iv(0)).update(Buffer.alloc(32));
      const tag = poly1305(Buffer.concat([encLength, encBody]), polyKey);
      assert.deepEqual(Buffer.concat(out), Buffer.concat([encLength, encBody, Buffer.from(tag)]), `${size}-byte payload`);
    }
  });
});

/**
 * Whether the WebAssembly module is there to test. Only TSSH_WASM=0 may turn it off (the test is
 * then skipped, saying so); anywhere else its absence is a failure.
 */
function wasmLoaded(t: { skip(message: string): void }): boolean {
  if (chachaPolyWasm) return true;
  assert.equal(process.env.TSSH_WASM, '0', 'the WebAssembly module did not load');
  t.skip('TSSH_WASM=0: the WebAssembly module is off');
  return false;
}

describe('chacha20-poly1305@openssh.com in WebAssembly against node:crypto and @noble', () => {
  test('both seal every packet size to the same bytes, across the small-packet limit, and open each other', (t) => {
    if (!wasmLoaded(t)) return;
    const wasm = chacha20Poly1305Using('wasm');
    const node = chacha20Poly1305Using('node');
    const k = randomBytes(64);
    const sealers = [wasm.createSealer(k, Buffer.alloc(0)), node.createSealer(k, Buffer.alloc(0))] as const;
    const openers = [wasm.createOpener(k, Buffer.alloc(0)), node.createOpener(k, Buffer.alloc(0))] as const;
    const sizes: number[] = [];
    for (let size = 0; size <= 2100; size += size < 1950 ? 37 : 1) sizes.push(size);
    sizes.push(32768, 65536 + 3, 256 * 1024, 256 * 1024 + 100);
    let sequence = 0xfffffff0;
    for (const size of sizes) {
      const packet = buildPacket(sealers[0], randomBytes(size));
      const fromWasm = sealToWire(sealers[0], sequence, packet);
      const fromNode = sealToWire(sealers[1], sequence, packet);
      assert.deepEqual(fromWasm, fromNode, `${packet.length}-byte packet`);
      for (const opener of openers) assert.deepEqual(openFromWire(opener, sequence, fromWasm), packet.subarray(4), `${packet.length}-byte packet`);
      sequence = (sequence + 1) >>> 0;
    }
  });

  test('a flipped bit anywhere in a small or large packet is refused before anything is decrypted', (t) => {
    if (!wasmLoaded(t)) return;
    const wasm = chacha20Poly1305Using('wasm');
    const k = randomBytes(64);
    for (const size of [200, 2030, 2050, 5000]) {
      const packet = buildPacket(wasm.createSealer(k, Buffer.alloc(0)), randomBytes(size));
      const wire = sealToWire(wasm.createSealer(k, Buffer.alloc(0)), 9, packet);
      const opener = wasm.createOpener(k, Buffer.alloc(0));
      for (const i of [0, 3, 4, 5, wire.length >> 1, wire.length - 17, wire.length - 16, wire.length - 1]) {
        const tampered = Buffer.from(wire);
        tampered[i]! ^= 0x40;
        const copy = Buffer.from(tampered);
        assert.throws(() => opener.open(9, tampered), MacError, `byte ${i} of ${wire.length}`);
        assert.deepEqual(tampered, copy, 'the input is left as it was');
      }
      assert.deepEqual(opener.open(9, Buffer.from(wire)), packet.subarray(4));
    }
  });
});

describe('aes-gcm@openssh.com', () => {
  /** RFC 5647 §7: ciphertext || tag computed independently for nonce = fixed || counter, AAD = length. */
  function expectedGcm(openssl: 'aes-128-gcm' | 'aes-256-gcm', key: Buffer, fixed: Buffer, counter: bigint, packet: Buffer): Buffer {
    const nonce = Buffer.alloc(12);
    fixed.copy(nonce, 0, 0, 4);
    nonce.writeBigUInt64BE(counter & 0xffffffffffffffffn, 4);
    const c = createCipheriv(openssl, key, nonce);
    c.setAAD(packet.subarray(0, 4));
    const ct = c.update(packet.subarray(4));
    c.final();
    return Buffer.concat([packet.subarray(0, 4), ct, c.getAuthTag()]);
  }

  for (const [cipher, openssl] of [
    [aes128Gcm, 'aes-128-gcm'],
    [aes256Gcm, 'aes-256-gcm'],
  ] as const) {
    test(`${cipher.name} advances the 64-bit invocation counter by one per packet, with carry`, () => {
      const key = randomBytes(cipher.keyLength);
      const fixed = randomBytes(4);
      // Start just below a 32-bit carry inside the 64-bit counter.
      const start = 0xfffffffen;
      const iv = Buffer.alloc(12);
      fixed.copy(iv);
      iv.writeBigUInt64BE(start, 4);
      const sealer = cipher.createSealer(key, iv);
      const opener = cipher.createOpener(key, iv);
      for (let i = 0; i < 4; i++) {
        const packet = buildPacket(sealer, randomBytes(37 * i));
        const wire = sealToWire(sealer, 100 + i, packet);
        assert.deepEqual(wire, expectedGcm(openssl, key, fixed, start + BigInt(i), packet), `packet ${i}`);
        assert.deepEqual(openFromWire(opener, 100 + i, wire), packet.subarray(4));
      }
    });

    test(`${cipher.name} wraps the invocation counter from 2^64-1 to 0`, () => {
      const key = randomBytes(cipher.keyLength);
      const iv = Buffer.concat([randomBytes(4), Buffer.alloc(8, 0xff)]);
      const sealer = cipher.createSealer(key, iv);
      const first = buildPacket(sealer, randomBytes(20));
      const second = buildPacket(sealer, randomBytes(20));
      assert.deepEqual(sealToWire(sealer, 0, first), expectedGcm(openssl, key, iv, 0xffffffffffffffffn, first));
      assert.deepEqual(sealToWire(sealer, 1, second), expectedGcm(openssl, key, iv, 0n, second));
    });

    test(`${cipher.name} sends the length in clear and seals the same packet differently each time`, () => {
      const sealer = cipher.createSealer(randomBytes(cipher.keyLength), randomBytes(12));
      const packet = buildPacket(sealer, Buffer.from('same payload'));
      const a = sealToWire(sealer, 0, packet);
      const b = sealToWire(sealer, 1, packet);
      assert.deepEqual(a.subarray(0, 4), packet.subarray(0, 4));
      assert.notDeepEqual(a.subarray(4), b.subarray(4));
    });
  }
});

describe('aes-ctr', () => {
  test('encrypt-and-MAC encrypts the whole packet, length included, as one continuous CTR stream', () => {
    const key = randomBytes(16);
    const iv = randomBytes(16);
    const mac = { algorithm: hmacSha2_256, key: randomBytes(32) };
    const sealer = aes128Ctr.createSealer(key, iv, mac);
    const packets = [0, 100, 1000].map((n) => buildPacket(sealer, randomBytes(n)));
    const wires = packets.map((p, i) => sealToWire(sealer, i, p));
    const stream = createCipheriv('aes-128-ctr', key, iv).update(Buffer.concat(packets));
    let offset = 0;
    for (const [i, p] of packets.entries()) {
      assert.deepEqual(wires[i]!.subarray(0, p.length), stream.subarray(offset, offset + p.length), `packet ${i}`);
      offset += p.length;
    }
  });

  test('the 128-bit counter wraps from 2^128-1 to 0 (RFC 4344 §4)', () => {
    const key = randomBytes(16);
    const sealer = aes128Ctr.createSealer(key, Buffer.alloc(16, 0xff), { algorithm: hmacSha2_256, key: randomBytes(32) });
    const packet = buildPacket(sealer, randomBytes(20)); // 32 bytes: two blocks
    const wire = sealToWire(sealer, 0, packet);
    const ecb = (counter: Buffer): Buffer => createCipheriv('aes-128-ecb', key, null).setAutoPadding(false).update(counter);
    const keystream = Buffer.concat([ecb(Buffer.alloc(16, 0xff)), ecb(Buffer.alloc(16, 0))]);
    const expected = Buffer.from(packet.map((byte, i) => byte ^ keystream[i]!));
    assert.deepEqual(wire.subarray(0, 32), expected);
  });

  test('encrypt-then-MAC sends the length in clear and encrypts only the rest', () => {
    const key = randomBytes(32);
    const iv = randomBytes(16);
    const sealer = aes256Ctr.createSealer(key, iv, { algorithm: hmacSha2_512Etm, key: randomBytes(64) });
    const packet = buildPacket(sealer, randomBytes(77));
    const wire = sealToWire(sealer, 5, packet);
    assert.deepEqual(wire.subarray(0, 4), packet.subarray(0, 4));
    const expected = createCipheriv('aes-256-ctr', key, iv).update(packet.subarray(4));
    assert.deepEqual(wire.subarray(4, packet.length), expected);
  });

  test('needs at least one cipher block before the length is known in encrypt-and-MAC mode only', () => {
    const k = { key: randomBytes(16), iv: randomBytes(16) };
    assert.equal(aes128Ctr.createOpener(k.key, k.iv, { algorithm: hmacSha2_256, key: randomBytes(32) }).headerLength, 16);
    assert.equal(aes128Ctr.createOpener(k.key, k.iv, { algorithm: hmacSha2_256Etm, key: randomBytes(32) }).headerLength, 4);
  });

  test('pads the length in encrypt-and-MAC mode and excludes it in encrypt-then-MAC mode', () => {
    const k = { key: randomBytes(16), iv: randomBytes(16) };
    const em = aes128Ctr.createSealer(k.key, k.iv, { algorithm: hmacSha1, key: randomBytes(20) });
    const etm = aes128Ctr.createSealer(k.key, k.iv, { algorithm: hmacSha1Etm, key: randomBytes(20) });
    assert.equal(em.lengthExcludedFromPadding, false);
    assert.equal(etm.lengthExcludedFromPadding, true);
    assert.equal(em.tagLength, 20);
    assert.equal(etm.blockSize, 16);
  });

  test('refuses to run without a MAC', () => {
    assert.throws(() => aes128Ctr.createSealer(randomBytes(16), randomBytes(16)), TypeError);
    assert.throws(() => aes128Ctr.createOpener(randomBytes(16), randomBytes(16)), TypeError);
  });

  test('reports the RFC 4344 §3.2 rekey limit of 2^32 AES blocks (2^36 bytes)', () => {
    for (const c of [aes128Ctr, aes192Ctr, aes256Ctr, aes128Gcm, aes256Gcm]) assert.equal(c.rekeyBytes, 2 ** 36, c.name);
    assert.equal(chacha20Poly1305.rekeyBytes, undefined);
  });
});

describe('cipher parameters', () => {
  test('key, IV and block sizes match the specifications', () => {
    const table: [CipherAlgorithm, string, number, number, number, boolean][] = [
      [aes128Gcm, 'aes128-gcm@openssh.com', 16, 12, 16, true],
      [aes256Gcm, 'aes256-gcm@openssh.com', 32, 12, 16, true],
      [aes128Ctr, 'aes128-ctr', 16, 16, 16, false],
      [aes192Ctr, 'aes192-ctr', 24, 16, 16, false],
      [aes256Ctr, 'aes256-ctr', 32, 16, 16, false],
      [chacha20Poly1305, 'chacha20-poly1305@openssh.com', 64, 0, 8, true],
      [noneCipher, 'none', 0, 0, 8, false],
    ];
    for (const [c, name, keyLength, ivLength, blockSize, aead] of table) {
      assert.deepEqual([c.name, c.keyLength, c.ivLength, c.blockSize, c.aead], [name, keyLength, ivLength, blockSize, aead]);
    }
  });

  test('AEAD sealers and openers exclude the length from padding and carry a 16-byte tag', () => {
    for (const c of [aes128Gcm, aes256Gcm, chacha20Poly1305]) {
      const sealer = c.createSealer(randomBytes(c.keyLength), randomBytes(c.ivLength));
      const opener = c.createOpener(randomBytes(c.keyLength), randomBytes(c.ivLength));
      assert.equal(sealer.lengthExcludedFromPadding, true, c.name);
      assert.equal(opener.lengthExcludedFromPadding, true, c.name);
      assert.equal(sealer.tagLength, 16, c.name);
      assert.equal(opener.headerLength, 4, c.name);
    }
  });

  test('too-short key material is refused; longer material is cut to size (as OpenSSH does)', () => {
    assert.throws(() => aes256Gcm.createSealer(randomBytes(16), randomBytes(12)), RangeError);
    assert.throws(() => chacha20Poly1305.createOpener(randomBytes(32), Buffer.alloc(0)), RangeError);
    assert.throws(() => aes128Ctr.createSealer(randomBytes(16), randomBytes(16), { algorithm: hmacSha2_512, key: randomBytes(32) }), RangeError);
    const key = randomBytes(40);
    const iv = randomBytes(20);
    const long = aes128Gcm.createSealer(key, iv);
    const exact = aes128Gcm.createOpener(key.subarray(0, 16), iv.subarray(0, 12));
    const packet = buildPacket(long, randomBytes(10));
    assert.deepEqual(openFromWire(exact, 0, sealToWire(long, 0, packet)), packet.subarray(4));
  });
});

describe('none (before the first NEWKEYS)', () => {
  test('passes packets through unchanged with no tag, in a copy that does not alias the input', () => {
    const sealer = noneCipher.createSealer(Buffer.alloc(0), Buffer.alloc(0));
    const opener = noneCipher.createOpener(Buffer.alloc(0), Buffer.alloc(0));
    assert.deepEqual([sealer.blockSize, sealer.tagLength, sealer.lengthExcludedFromPadding], [8, 0, false]);
    assert.deepEqual([opener.blockSize, opener.tagLength, opener.headerLength, opener.lengthExcludedFromPadding], [8, 0, 4, false]);
    const packet = buildPacket(sealer, Buffer.from('hello'));
    const wire = sealToWire(sealer, 3, packet);
    assert.deepEqual(wire, packet);
    assert.deepEqual(openFromWire(opener, 3, wire), packet.subarray(4));
  });
});

describe('round trips for every cipher and MAC mode', () => {
  const payloadSizes = [0, 1, 15, 16, 31, 100, 1500, 32768, 35000];
  // Consecutive sequence numbers across the uint32 wrap: the caller wraps 2^32-1 to 0.
  const sequences = [0xfffffffd, 0xfffffffe, 0xffffffff, 0, 1];

  for (const mode of modes) {
    test(`${mode.label}: packets of ${payloadSizes.join('/')} bytes at sequence numbers across 2^32-1 -> 0`, () => {
      const k = keysFor(mode);
      const sealer = sealerFor(mode, k);
      const opener = openerFor(mode, k);
      let n = 0;
      for (const sequence of sequences) {
        for (const size of payloadSizes) {
          const packet = buildPacket(sealer, randomBytes(size));
          const block = Math.max(8, sealer.blockSize);
          assert.equal((sealer.lengthExcludedFromPadding ? packet.length - 4 : packet.length) % block, 0);
          const wire = sealToWire(sealer, sequence, packet);
          assert.equal(wire.length, packet.length + sealer.tagLength);
          assert.deepEqual(openFromWire(opener, sequence, wire), packet.subarray(4), `packet ${n} (seq ${sequence}, ${size} bytes)`);
          n++;
        }
      }
    });

    // GCM's nonce is its own invocation counter (RFC 5647 §8.1): it does not take the sequence number.
    if (mode.cipher !== aes128Gcm && mode.cipher !== aes256Gcm) {
      test(`${mode.label}: a packet opened under another sequence number throws MacError`, () => {
        const k = keysFor(mode);
        const sealer = sealerFor(mode, k);
        const opener = openerFor(mode, k);
        const wire = sealToWire(sealer, 0xffffffff, buildPacket(sealer, randomBytes(64)));
        // chacha20-poly1305 decrypts a wrong length under the wrong nonce: open what arrived anyway.
        opener.readLength(0, wire.subarray(0, opener.headerLength));
        assert.throws(() => opener.open(0, Buffer.from(wire)), MacError);
      });
    }
  }
});

describe('tampering is detected', () => {
  for (const mode of modes) {
    test(`${mode.label}: a flipped bit in any byte (length, body or tag) makes open() throw MacError`, () => {
      const k = keysFor(mode);
      const sealer = sealerFor(mode, k);
      const packet = buildPacket(sealer, randomBytes(45));
      const sequence = 42;
      const wire = sealToWire(sealer, sequence, packet);
      // The untampered packet opens (with a fresh opener: CTR and GCM openers are stateful).
      assert.deepEqual(openFromWire(openerFor(mode, k), sequence, wire), packet.subarray(4));
      for (let i = 0; i < wire.length; i++) {
        const tampered = Buffer.from(wire);
        tampered[i]! ^= 1 << (i % 8);
        const opener = openerFor(mode, k);
        // The packet layer reads the (tampered) length first, then opens what it received.
        opener.readLength(sequence, tampered.subarray(0, opener.headerLength));
        assert.throws(() => opener.open(sequence, tampered), MacError, `byte ${i} of ${wire.length}`);
      }
    });
  }
});
