import { before, test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { checkPrimeSync, createDiffieHellman, createECDH, createHash, getDiffieHellman } from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { KexError } from '../../src/errors.js';
import type { DhGroup, KexAlgorithm } from '../../src/algorithms/types.js';
import {
  curve25519Sha256,
  curve25519Sha256Libssh,
  x25519KeyPair,
  x25519SharedSecret,
} from '../../src/algorithms/kex/curve25519.js';
import { ecdhNistp256, ecdhNistp384, ecdhNistp521 } from '../../src/algorithms/kex/ecdh-nist.js';
import {
  dhGexSha256,
  dhGroup1Sha1,
  dhGroup14Sha1,
  dhGroup14Sha256,
  dhGroup16Sha512,
  dhGroup18Sha512,
  parseDhValue,
} from '../../src/algorithms/kex/dh.js';
import {
  chooseGexGroup,
  gexGroups,
  modpGroup1,
  modpGroup14,
  modpGroup15,
  modpGroup16,
  modpGroup17,
  modpGroup18,
} from '../../src/algorithms/kex/groups.js';
import {
  C_INIT_LENGTH,
  S_REPLY_LENGTH,
  mlkem768x25519Sha256,
} from '../../src/algorithms/kex/mlkem768x25519.js';
import { Reader } from '../../src/wire/reader.js';
import { bigIntToBytes, encodeMpint, encodeString } from '../../src/wire/writer.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** The contents of the mpint encoding of an unsigned magnitude (what a DH value field carries). */
function mpintContents(magnitude: Buffer): Buffer {
  return new Reader(encodeMpint(magnitude)).string();
}

function agree(algorithm: KexAlgorithm, group?: DhGroup): Buffer {
  const client = algorithm.startClient(group);
  const server = algorithm.respondServer(client.clientValue, group);
  const k = client.finish(server.serverValue);
  assert.deepEqual(k, server.sharedSecret, `${algorithm.name}: both sides derive the same K`);
  return k;
}

/** K for the (EC)DH methods is an mpint with its length prefix: check it is one, canonically encoded. */
function assertMpint(k: Buffer): Buffer {
  const reader = new Reader(k);
  const contents = reader.string();
  reader.done();
  assert.ok(contents.length > 0, 'K is not zero');
  assert.equal(contents[0]! & 0x80, 0, 'K is positive');
  if (contents[0] === 0) assert.ok((contents[1]! & 0x80) !== 0, 'no superfluous leading zero');
  return contents;
}

function assertKexError(fn: () => unknown, message?: string): void {
  assert.throws(fn, (error: unknown) => error instanceof KexError && error.code === 'ERR_SSH_KEX', message);
}

// ---- X25519 ------------------------------------------------------------------------------------

describe('X25519 through node:crypto (RFC 7748)', () => {
  test('§5.2 test vectors', () => {
    const vectors = [
      [
        'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
        'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
        'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
      ],
      [
        '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
        'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
        '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
      ],
    ] as const;
    for (const [scalar, u, expected] of vectors) {
      const pair = x25519KeyPair(hex(scalar));
      assert.equal(x25519SharedSecret(pair.privateKey, hex(u)).toString('hex'), expected);
    }
  });

  test('§5.2 iterated function, 1 and 1,000 iterations', () => {
    let k: Buffer = Buffer.alloc(32);
    k[0] = 9;
    let u: Buffer = Buffer.from(k);
    for (let i = 1; i <= 1000; i++) {
      const next = x25519SharedSecret(x25519KeyPair(k).privateKey, u);
      u = k;
      k = next;
      if (i === 1) assert.equal(k.toString('hex'), '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    }
    assert.equal(k.toString('hex'), '684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
  });

  test('§6.1 Diffie-Hellman: public keys from the base point, shared secret', () => {
    const alice = x25519KeyPair(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    const bob = x25519KeyPair(hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
    assert.equal(alice.publicValue.toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    assert.equal(bob.publicValue.toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    assert.equal(x25519SharedSecret(alice.privateKey, bob.publicValue).toString('hex'), shared);
    assert.equal(x25519SharedSecret(bob.privateKey, alice.publicValue).toString('hex'), shared);
  });
});

describe('curve25519-sha256 (RFC 8731)', () => {
  test('both names, client and server agree; K is an mpint of the 32 bytes', () => {
    assert.equal(curve25519Sha256.name, 'curve25519-sha256');
    assert.equal(curve25519Sha256Libssh.name, 'curve25519-sha256@libssh.org');
    for (const algorithm of [curve25519Sha256, curve25519Sha256Libssh]) {
      assert.equal(algorithm.hash, 'sha256');
      assert.equal(algorithm.groupExchange, false);
      for (let i = 0; i < 20; i++) {
        const contents = assertMpint(agree(algorithm));
        assert.ok(contents.length <= 33);
      }
    }
  });

  test('K is the X25519 output read as big-endian, encoded as mpint (RFC 8731 §3.1)', () => {
    // Client with RFC 7748 §6.1 Alice's key, against our server.
    const alice = x25519KeyPair(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    const server = curve25519Sha256.respondServer(alice.publicValue);
    assert.equal(server.serverValue.length, 32);
    const raw = x25519SharedSecret(alice.privateKey, server.serverValue);
    assert.deepEqual(server.sharedSecret, encodeMpint(raw));
    // With the RFC's fixed pair the encoding is exactly uint32 32 || bytes (top bit clear).
    const bob = x25519KeyPair(hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
    assert.equal(
      encodeMpint(x25519SharedSecret(bob.privateKey, alice.publicValue)).toString('hex'),
      '000000204a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
    );
  });

  test('rejects a peer value that is not 32 bytes', () => {
    for (const length of [0, 1, 31, 33, 64]) {
      assertKexError(() => curve25519Sha256.respondServer(Buffer.alloc(length, 7)), `server, ${length} bytes`);
      const client = curve25519Sha256.startClient();
      assertKexError(() => client.finish(Buffer.alloc(length, 7)), `client, ${length} bytes`);
    }
  });

  test('rejects all-zero and other low-order points (all-zero shared secret)', () => {
    const lowOrder = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ];
    for (const point of lowOrder) {
      assertKexError(() => curve25519Sha256.respondServer(hex(point)), `server, ${point}`);
      const client = curve25519Sha256.startClient();
      assertKexError(() => client.finish(hex(point)), `client, ${point}`);
    }
  });
});

// ---- ECDH on NIST curves -------------------------------------------------------------------------

describe('ecdh-sha2-nistp* (RFC 5656 §4)', () => {
  const cases = [
    { algorithm: ecdhNistp256, curve: 'prime256v1', hash: 'sha256', field: 32 },
    { algorithm: ecdhNistp384, curve: 'secp384r1', hash: 'sha384', field: 48 },
    { algorithm: ecdhNistp521, curve: 'secp521r1', hash: 'sha512', field: 66 },
  ] as const;

  for (const { algorithm, curve, hash, field } of cases) {
    test(`${algorithm.name}: agreement, K is the x coordinate as an mpint`, () => {
      assert.equal(algorithm.hash, hash);
      for (let i = 0; i < 3; i++) assertMpint(agree(algorithm));
      // Against createECDH used directly as the server.
      const client = algorithm.startClient();
      assert.equal(client.clientValue.length, 1 + 2 * field);
      assert.equal(client.clientValue[0], 0x04);
      const server = createECDH(curve);
      const serverValue = server.generateKeys();
      const k = client.finish(serverValue);
      assert.deepEqual(k, encodeMpint(server.computeSecret(client.clientValue)));
    });

    test(`${algorithm.name}: rejects invalid points`, () => {
      const valid = createECDH(curve);
      const point = valid.generateKeys();
      const offCurve = Buffer.from(point);
      offCurve[offCurve.length - 1]! ^= 1;
      const hybrid = Buffer.from(point);
      hybrid[0] = 0x06 | (point[point.length - 1]! & 1);
      const bad: Array<[string, Buffer]> = [
        ['not on the curve', offCurve],
        ['compressed form', valid.getPublicKey(undefined, 'compressed')],
        ['hybrid form', hybrid],
        ['point at infinity', Buffer.from([0])],
        ['empty', Buffer.alloc(0)],
        ['one byte short', point.subarray(0, point.length - 1)],
        ['one byte long', Buffer.concat([point, Buffer.from([0])])],
        ['x = y = 0', Buffer.concat([Buffer.from([4]), Buffer.alloc(2 * field)])],
      ];
      for (const [label, value] of bad) {
        assertKexError(() => algorithm.respondServer(value), `server: ${label}`);
        const client = algorithm.startClient();
        assertKexError(() => client.finish(value), `client: ${label}`);
      }
    });
  }
});

// ---- Finite-field DH -----------------------------------------------------------------------------

describe('MODP groups', () => {
  test('sizes and the RFC 3526 structure (top and bottom 64 bits set)', () => {
    const groups = [
      [modpGroup1, 1024],
      [modpGroup14, 2048],
      [modpGroup15, 3072],
      [modpGroup16, 4096],
      [modpGroup17, 6144],
      [modpGroup18, 8192],
    ] as const;
    for (const [group, bits] of groups) {
      assert.equal(group.bits, bits);
      assert.equal(group.prime.length * 8, bits);
      assert.deepEqual(group.generator, Buffer.from([2]));
      assert.equal(group.prime.subarray(0, 8).toString('hex'), 'ffffffffffffffff');
      assert.equal(group.prime.subarray(-8).toString('hex'), 'ffffffffffffffff');
      // All share the digits of pi after the top 64 bits (RFC 2409 §6.2, RFC 3526 §2).
      assert.equal(group.prime.subarray(8, 12).toString('hex'), 'c90fdaa2');
    }
  });

  test('groups 1 and 14 are safe primes', () => {
    for (const group of [modpGroup1, modpGroup14]) {
      assert.ok(checkPrimeSync(group.prime, { checks: 8 }));
      const q = (BigInt('0x' + group.prime.toString('hex')) - 1n) / 2n;
      assert.ok(checkPrimeSync(q, { checks: 8 }));
    }
  });

  test('chooseGexGroup picks the closest size within [max(min, 2048), max] (RFC 4419 §3, RFC 8270)', () => {
    const bits = (min: number, n: number, max: number): number | undefined => {
      const group = chooseGexGroup(min, n, max);
      return group === undefined ? undefined : group.prime.length * 8;
    };
    assert.equal(bits(1024, 2048, 8192), 2048);
    assert.equal(bits(1024, 1024, 8192), 2048, 'never below 2048 even when the client allows it');
    assert.equal(bits(1024, 1024, 1024), undefined);
    assert.equal(bits(1024, 1536, 2047), undefined);
    assert.equal(bits(2048, 3072, 8192), 3072);
    assert.equal(bits(2048, 7680, 8192), 8192);
    assert.equal(bits(2048, 8192, 8192), 8192);
    assert.equal(bits(2048, 8192, 4096), 4096);
    assert.equal(bits(4096, 2048, 8192), 4096);
    assert.equal(bits(2048, 5120, 8192), 6144, 'a tie goes to the larger group');
    assert.equal(bits(3000, 3000, 3000), undefined);
    assert.equal(bits(2048, 9000, 16384), 8192);
    for (const group of gexGroups) assert.ok(chooseGexGroup(group.bits, group.bits, group.bits) === group);
  });
});

describe('diffie-hellman-group* (RFC 4253 §8, RFC 8268)', () => {
  const fixed = [
    [dhGroup14Sha256, 'diffie-hellman-group14-sha256', 'sha256', modpGroup14],
    [dhGroup16Sha512, 'diffie-hellman-group16-sha512', 'sha512', modpGroup16],
    [dhGroup18Sha512, 'diffie-hellman-group18-sha512', 'sha512', modpGroup18],
    [dhGroup14Sha1, 'diffie-hellman-group14-sha1', 'sha1', modpGroup14],
    [dhGroup1Sha1, 'diffie-hellman-group1-sha1', 'sha1', modpGroup1],
  ] as const;

  for (const [algorithm, name, hash, group] of fixed) {
    test(`${name}: agreement, values are canonical mpint contents below p`, () => {
      assert.equal(algorithm.name, name);
      assert.equal(algorithm.hash, hash);
      assert.equal(algorithm.groupExchange, false);
      const client = algorithm.startClient();
      const server = algorithm.respondServer(client.clientValue);
      assert.deepEqual(client.finish(server.serverValue), server.sharedSecret);
      assertMpint(server.sharedSecret);
      for (const value of [client.clientValue, server.serverValue]) {
        // As a `string` field these bytes must be exactly the mpint: parse them back as one.
        assertMpint(encodeString(value));
        assert.ok(value.length <= group.prime.length + 1);
        parseDhValue(value, group.prime);
      }
    });
  }

  test('group 14 against node DiffieHellman used directly', () => {
    const client = dhGroup14Sha256.startClient();
    const other = getDiffieHellman('modp14');
    const f = other.generateKeys();
    const k = client.finish(new Reader(encodeMpint(f)).string());
    const e = new Reader(encodeString(client.clientValue)).mpintUnsigned();
    assert.deepEqual(k, encodeMpint(other.computeSecret(e)));
  });

  test('group 1 (generic PKCS#8 path) against node DiffieHellman used directly', () => {
    const other = createDiffieHellman(modpGroup1.prime, modpGroup1.generator);
    const e = mpintContents(other.generateKeys());
    const server = dhGroup1Sha1.respondServer(e);
    const f = new Reader(encodeString(server.serverValue)).mpintUnsigned();
    assert.deepEqual(server.sharedSecret, encodeMpint(other.computeSecret(f)));
  });

  test('rejects invalid e and f: 0, 1, p-1, p, larger, negative, non-canonical', () => {
    const p = modpGroup14.prime;
    const pMinus1 = Buffer.from(p);
    pMinus1[pMinus1.length - 1]! -= 1;
    const mpint = (value: bigint): Buffer => mpintContents(bigIntToBytes(value));
    const P = BigInt('0x' + p.toString('hex'));
    const bad: Array<[string, Buffer]> = [
      ['0 (empty mpint)', Buffer.alloc(0)],
      ['0 (explicit zero byte)', Buffer.from([0])],
      ['1', Buffer.from([1])],
      ['p-1', mpint(P - 1n)],
      ['p', mpint(P)],
      ['p+1', mpint(P + 1n)],
      ['2^2048 + 5 (over-long)', mpint((1n << 2048n) + 5n)],
      ['2^4096', mpint(1n << 4096n)],
      ['negative (-1)', Buffer.from([0xff])],
      ['negative (top bit set)', Buffer.concat([Buffer.from([0x80]), Buffer.alloc(10)])],
      ['superfluous leading zero', Buffer.from([0, 5])],
      ['superfluous leading zero on p-2', Buffer.concat([Buffer.from([0]), mpint(P - 2n)])],
    ];
    assert.deepEqual(mpint(P - 1n), Buffer.concat([Buffer.from([0]), pMinus1]));
    for (const [label, value] of bad) {
      assertKexError(() => parseDhValue(value, p), label);
      assertKexError(() => dhGroup14Sha256.respondServer(value), `server: ${label}`);
      const client = dhGroup14Sha256.startClient();
      assertKexError(() => client.finish(value), `client: ${label}`);
    }
    // The extremes that are valid: 2 and p-2.
    assert.deepEqual(parseDhValue(Buffer.from([2]), p), Buffer.from([2]));
    assert.equal(parseDhValue(mpint(P - 2n), p).length, 256);
    agree(dhGroup14Sha256); // still works after all that
  });
});

describe('diffie-hellman-group-exchange-sha256 (RFC 4419)', () => {
  test('is a group exchange and needs a group', () => {
    assert.equal(dhGexSha256.name, 'diffie-hellman-group-exchange-sha256');
    assert.equal(dhGexSha256.hash, 'sha256');
    assert.equal(dhGexSha256.groupExchange, true);
    assertKexError(() => dhGexSha256.startClient());
    assertKexError(() => dhGexSha256.respondServer(Buffer.from([5])));
  });

  test('agreement in every group the server offers', () => {
    for (const group of gexGroups) assertMpint(agree(dhGexSha256, group));
  });

  test('agreement in a group that is not built in (generic path)', () => {
    // Group 15's prime with generator 5: not a named group for OpenSSL.
    const group = { prime: modpGroup15.prime, generator: Buffer.from([5]) };
    assertMpint(agree(dhGexSha256, group));
    // A prime given with a leading zero byte is the same group.
    assertMpint(agree(dhGexSha256, { prime: Buffer.concat([Buffer.from([0]), modpGroup14.prime]), generator: Buffer.from([2]) }));
  });

  test('rejects groups below 2048 bits (RFC 8270), above 8192, even moduli, bad generators', () => {
    const even = Buffer.from(modpGroup14.prime);
    even[even.length - 1]! &= 0xfe;
    const pMinus1 = Buffer.from(modpGroup14.prime);
    pMinus1[pMinus1.length - 1]! -= 1;
    const bad: Array<[string, DhGroup]> = [
      ['1024-bit', modpGroup1],
      ['8200-bit', { prime: Buffer.concat([Buffer.from([0xff]), modpGroup18.prime]), generator: Buffer.from([2]) }],
      ['even modulus', { prime: even, generator: Buffer.from([2]) }],
      ['generator 1', { prime: modpGroup14.prime, generator: Buffer.from([1]) }],
      ['generator 0', { prime: modpGroup14.prime, generator: Buffer.alloc(0) }],
      ['generator p-1', { prime: modpGroup14.prime, generator: pMinus1 }],
    ];
    for (const [label, group] of bad) {
      assertKexError(() => dhGexSha256.startClient(group), `client: ${label}`);
      assertKexError(() => dhGexSha256.respondServer(Buffer.from([5]), group), `server: ${label}`);
    }
  });

  test('rejects invalid peer values', () => {
    const group = modpGroup14;
    assertKexError(() => dhGexSha256.respondServer(Buffer.from([1]), group));
    assertKexError(() => dhGexSha256.startClient(group).finish(Buffer.alloc(0)));
  });
});

// ---- ML-KEM-768 + X25519 -------------------------------------------------------------------------

describe('mlkem768x25519-sha256 (draft-ietf-sshm-mlkem-hybrid-kex-10)', () => {
  // ML-KEM loads on first use (test/algorithms/kex-lazy.test.ts tests that in a process of its own).
  before(() => mlkem768x25519Sha256.prepare?.());
  const sha256 = (...parts: Uint8Array[]): Buffer => {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return hash.digest();
  };

  test('agreement; message lengths; K is a 32-byte string', () => {
    assert.equal(mlkem768x25519Sha256.hash, 'sha256');
    assert.equal(C_INIT_LENGTH, 1216);
    assert.equal(S_REPLY_LENGTH, 1120);
    const client = mlkem768x25519Sha256.startClient();
    assert.equal(client.clientValue.length, 1216);
    const server = mlkem768x25519Sha256.respondServer(client.clientValue);
    assert.equal(server.serverValue.length, 1120);
    const k = client.finish(server.serverValue);
    assert.deepEqual(k, server.sharedSecret);
    assert.equal(k.length, 36);
    assert.equal(k.readUInt32BE(0), 32, 'K is string-encoded, not an mpint: always 32 bytes, no sign byte');
  });

  test('our client against a server built from @noble directly', () => {
    const client = mlkem768x25519Sha256.startClient();
    const ek = client.clientValue.subarray(0, 1184);
    const clientX = client.clientValue.subarray(1184);
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(new Uint8Array(ek));
    const serverX = x25519KeyPair();
    const kCl = x25519SharedSecret(serverX.privateKey, clientX);
    const k = client.finish(Buffer.concat([cipherText, serverX.publicValue]));
    assert.deepEqual(k, encodeString(sha256(sharedSecret, kCl)));
  });

  test('our server against a client built from @noble directly', () => {
    const kem = ml_kem768.keygen();
    const clientX = x25519KeyPair();
    const server = mlkem768x25519Sha256.respondServer(Buffer.concat([kem.publicKey, clientX.publicValue]));
    const kPq = ml_kem768.decapsulate(new Uint8Array(server.serverValue.subarray(0, 1088)), kem.secretKey);
    const kCl = x25519SharedSecret(clientX.privateKey, server.serverValue.subarray(1088));
    assert.deepEqual(server.sharedSecret, encodeString(sha256(kPq, kCl)));
  });

  test('rejects C_INIT and S_REPLY of the wrong length', () => {
    const client = mlkem768x25519Sha256.startClient();
    for (const length of [0, 32, 1184, 1215, 1217, 2432]) {
      assertKexError(() => mlkem768x25519Sha256.respondServer(Buffer.alloc(length)), `C_INIT of ${length}`);
    }
    for (const length of [0, 32, 1088, 1119, 1121, 1216]) {
      assertKexError(() => client.finish(Buffer.alloc(length, 1)), `S_REPLY of ${length}`);
    }
  });

  test('rejects an encapsulation key failing the FIPS 203 §7.2 modulus check', () => {
    const client = mlkem768x25519Sha256.startClient();
    const cInit = Buffer.from(client.clientValue);
    cInit[0] = 0xff;
    cInit[1] = cInit[1]! | 0x0f; // first 12-bit coefficient = 4095 >= q = 3329
    assertKexError(() => mlkem768x25519Sha256.respondServer(cInit));
  });

  test('rejects a low-order X25519 part on either side', () => {
    const client = mlkem768x25519Sha256.startClient();
    const cInit = Buffer.from(client.clientValue);
    cInit.fill(0, 1184);
    assertKexError(() => mlkem768x25519Sha256.respondServer(cInit));
    const server = mlkem768x25519Sha256.respondServer(client.clientValue);
    const sReply = Buffer.from(server.serverValue);
    sReply.fill(0, 1088);
    assertKexError(() => client.finish(sReply));
  });

  test('a corrupted ciphertext gives a different K (ML-KEM implicit rejection), not an error', () => {
    const client = mlkem768x25519Sha256.startClient();
    const server = mlkem768x25519Sha256.respondServer(client.clientValue);
    const sReply = Buffer.from(server.serverValue);
    sReply[10]! ^= 1;
    assert.notDeepEqual(client.finish(sReply), server.sharedSecret);
  });
});
