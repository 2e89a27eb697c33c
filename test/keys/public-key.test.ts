import { test, describe } from 'node:test';
import { skipUnlessPeers } from '../helpers/peers.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createECDH, createPublicKey, createSecretKey, generateKeyPair, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KeyFormatError } from '../../src/errors.js';
import {
  decodeSignatureBlob,
  encodeSignatureBlob,
  parsePublicKeyBlob,
  publicKeyFromKeyObject,
  publicKeyTypeOf,
} from '../../src/keys/public-key.js';
import { generatePrivateKey, privateKeyFromKeyObject } from '../../src/keys/private-key.js';
import { Writer } from '../../src/wire/writer.js';

const SSH_KEYGEN = '/usr/bin/ssh-keygen';

/** The base64 blob of an OpenSSH `.pub` line. */
function blobOf(line: string): Buffer {
  const field = line.trim().split(/\s+/)[1];
  assert.ok(field !== undefined);
  return Buffer.from(field, 'base64');
}

function jwk(key: KeyObject): { [name: string]: string } {
  return key.export({ format: 'jwk' }) as { [name: string]: string };
}

function assertKeyFormatError(fn: () => unknown, message?: string): void {
  assert.throws(fn, (error: unknown) => error instanceof KeyFormatError && error.code === 'ERR_SSH_KEY_FORMAT', message);
}

// Public keys and their parameters from OpenSSH's regression test data (regress/unittests/sshkey/testdata).
const OPENSSH = {
  ed25519: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZ ED25519 test key #1',
  ecdsa256:
    'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAxZW5ZDq1vcnSlYbTPvQGN3PbGgRO0ht5Rcd/JwWr5AAw2iPY4d/5Lxvybfb6ZttqsKJJUwhg38wpF5CCmlpQc= ECDSA test key #1',
  ecdsa256Point:
    '040c595b9643ab5bdc9d29586d33ef4063773db1a044ed21b7945c77f2705abe40030da23d8e1dff92f1bf26df6fa66db6ab0a249530860dfcc291790829a5a507',
  ecdsa521:
    'ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAHZ2VNyoDedBwqsdzY+kkNptc9DrtRCVmO6cULLj+691MhItqVqTMJbTFlI4MnAg9PoGTF/0KmLJfy8vSffXGKqqwGKcFNtd1XCo+7Qu9tXbxron9g6Dmu7y8jaLkixcwZwnwLs6GmA9qZGuiAfOGV0Gf9/u98sr+vikOa4Ow5JFDTw5g== ECDSA test key #2',
  ecdsa521Point:
    '0401d9d95372a0379d070aac77363e924369b5cf43aed4425663ba7142cb8feebdd4c848b6a56a4cc25b4c5948e0c9c083d3e819317fd0a98b25fcbcbd27df5c62aaab018a70536d7755c2a3eed0bbdb576f1ae89fd83a0e6bbbcbc8da2e48b17306709f02ece86980f6a646ba201f38657419ff7fbbdf2cafebe290e6b83b0e491434f0e6',
  rsa1024:
    'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDLV5lUTt7FrADseB/CGhEZzpoojjEW5y8+ePvLppmK3MmMI18ud6vxzpK3bwZLYkVSyfJYI0HmIuGhdu7yMrW6wb84gbq8C31Xoe9EORcIUuGSvDKdNSM1SjlhDquRblDFB8kToqXyx1lqrXecXylxIUOL0jE+u0rU1967pDJx+w== RSA test key #1',
  rsa1024N:
    '00cb5799544edec5ac00ec781fc21a1119ce9a288e3116e72f3e78fbcba6998adcc98c235f2e77abf1ce92b76f064b624552c9f2582341e622e1a176eef232b5bac1bf3881babc0b7d57a1ef4439170852e192bc329d3523354a39610eab916e50c507c913a2a5f2c7596aad779c5f297121438bd2313ebb4ad4d7debba43271fb',
};

describe('parsePublicKeyBlob on OpenSSH test keys', () => {
  test('ssh-ed25519', () => {
    const blob = blobOf(OPENSSH.ed25519);
    const key = parsePublicKeyBlob(blob);
    assert.equal(key.type, 'ssh-ed25519');
    assert.deepEqual(key.blob, blob);
    assert.equal(key.keyObject.type, 'public');
    assert.equal(key.keyObject.asymmetricKeyType, 'ed25519');
    assert.deepEqual(Buffer.from(jwk(key.keyObject)['x']!, 'base64url'), blob.subarray(-32));
    assert.deepEqual(publicKeyFromKeyObject(key.keyObject).blob, blob);
  });

  test('ecdsa-sha2-nistp256 and nistp521: the point matches', () => {
    for (const [line, point, curve] of [
      [OPENSSH.ecdsa256, OPENSSH.ecdsa256Point, 'prime256v1'],
      [OPENSSH.ecdsa521, OPENSSH.ecdsa521Point, 'secp521r1'],
    ] as const) {
      const blob = blobOf(line);
      const key = parsePublicKeyBlob(blob);
      assert.equal(key.type, line.split(' ')[0]);
      assert.equal(key.keyObject.asymmetricKeyDetails?.namedCurve, curve);
      const { x, y } = jwk(key.keyObject);
      assert.equal('04' + Buffer.from(x!, 'base64url').toString('hex') + Buffer.from(y!, 'base64url').toString('hex'), point);
      assert.deepEqual(publicKeyFromKeyObject(key.keyObject).blob, blob);
    }
  });

  test('ssh-rsa (1024 bits, the minimum accepted): n and e match', () => {
    const blob = blobOf(OPENSSH.rsa1024);
    const key = parsePublicKeyBlob(blob);
    assert.equal(key.type, 'ssh-rsa');
    assert.equal(key.keyObject.asymmetricKeyDetails?.modulusLength, 1024);
    assert.equal(key.keyObject.asymmetricKeyDetails?.publicExponent, 65537n);
    assert.equal('00' + Buffer.from(jwk(key.keyObject)['n']!, 'base64url').toString('hex'), OPENSSH.rsa1024N);
    assert.deepEqual(publicKeyFromKeyObject(key.keyObject).blob, blob);
  });

  test('publicKeyTypeOf reads the type only', () => {
    assert.equal(publicKeyTypeOf(blobOf(OPENSSH.ecdsa521)), 'ecdsa-sha2-nistp521');
    assertKeyFormatError(() => publicKeyTypeOf(Buffer.from([0, 0, 1])));
  });

  test('the returned blob is a copy', () => {
    const blob = blobOf(OPENSSH.ed25519);
    const key = parsePublicKeyBlob(blob);
    blob.fill(0);
    assert.equal(publicKeyTypeOf(key.blob), 'ssh-ed25519');
  });

  test('a blob seen again reuses its KeyObject; each caller still gets its own key and blob', async () => {
    const blob = blobOf(OPENSSH.ed25519);
    const first = parsePublicKeyBlob(blob);
    const second = parsePublicKeyBlob(Buffer.from(blob));
    assert.equal(second.keyObject, first.keyObject, 'the import is not repeated');
    assert.notEqual(second, first);
    assert.notEqual(second.blob, first.blob);
    first.blob.fill(0);
    assert.deepEqual(parsePublicKeyBlob(blob).blob, blob, "one caller's writes do not reach the next");
    // More keys than are kept: every one still decodes to itself, and the oldest are imported anew.
    const keys = await Promise.all(Array.from({ length: 300 }, () => generatePrivateKey('ed25519')));
    const objects = keys.map((k) => parsePublicKeyBlob(k.publicKey.blob).keyObject);
    keys.forEach((k, i) => assert.deepEqual(jwk(objects[i]!), jwk(k.publicKey.keyObject), `key ${i}`));
    assert.notEqual(parsePublicKeyBlob(blob).keyObject, first.keyObject, 'the first blob was dropped to make room');
    // A malformed blob is refused every time, never remembered.
    const truncated = blob.subarray(0, blob.length - 1);
    assertKeyFormatError(() => parsePublicKeyBlob(truncated));
    assertKeyFormatError(() => parsePublicKeyBlob(truncated));
  });
});

describe('parsePublicKeyBlob rejects malformed and unsupported keys', () => {
  const w = (): Writer => new Writer();
  const ed = blobOf(OPENSSH.ed25519);
  const ec = blobOf(OPENSSH.ecdsa256);
  const rsa = blobOf(OPENSSH.rsa1024);
  const point = Buffer.from(OPENSSH.ecdsa256Point, 'hex');
  const offCurve = Buffer.from(point);
  offCurve[64]! ^= 1;
  const n = Buffer.from(OPENSSH.rsa1024N, 'hex').subarray(1);
  const evenN = Buffer.from(n);
  evenN[evenN.length - 1]! &= 0xfe;
  const compressed = Buffer.concat([Buffer.from([0x02 | (point[64]! & 1)]), point.subarray(1, 33)]);

  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['truncated length', Buffer.from([0, 0])],
    ['truncated ed25519', ed.subarray(0, ed.length - 1)],
    ['trailing byte', Buffer.concat([ed, Buffer.from([0])])],
    ['truncated ecdsa', ec.subarray(0, 40)],
    ['truncated rsa', rsa.subarray(0, rsa.length - 10)],
    ['unknown type', w().string('ssh-dss').string(Buffer.alloc(20)).finish()],
    ['certificate type', w().string('ssh-ed25519-cert-v01@openssh.com').string(Buffer.alloc(32)).finish()],
    ['ed25519 key of 31 bytes', w().string('ssh-ed25519').string(Buffer.alloc(31)).finish()],
    ['ed25519 key of 33 bytes', w().string('ssh-ed25519').string(Buffer.alloc(33)).finish()],
    ['ecdsa with another curve name', w().string('ecdsa-sha2-nistp256').string('nistp384').string(point).finish()],
    ['ecdsa with no curve name', w().string('ecdsa-sha2-nistp256').string('').string(point).finish()],
    ['ecdsa compressed point', w().string('ecdsa-sha2-nistp256').string('nistp256').string(compressed).finish()],
    ['ecdsa point off the curve', w().string('ecdsa-sha2-nistp256').string('nistp256').string(offCurve).finish()],
    ['ecdsa point too short', w().string('ecdsa-sha2-nistp256').string('nistp256').string(point.subarray(0, 64)).finish()],
    ['ecdsa P-256 point in a P-384 key', w().string('ecdsa-sha2-nistp384').string('nistp384').string(point).finish()],
    [
      'ecdsa P-384 point off the curve (DER import path)',
      (() => {
        const p384 = createECDH('secp384r1').generateKeys();
        p384[96]! ^= 1;
        return w().string('ecdsa-sha2-nistp384').string('nistp384').string(p384).finish();
      })(),
    ],
    ['ecdsa point at infinity', w().string('ecdsa-sha2-nistp256').string('nistp256').string(Buffer.from([0])).finish()],
    ['rsa 1023 bits', w().string('ssh-rsa').mpintUnsigned(Buffer.from([1, 0, 1])).mpintUnsigned(Buffer.concat([Buffer.from([0x7f]), randomBytes(127)])).finish()],
    ['rsa 512 bits', w().string('ssh-rsa').mpintUnsigned(Buffer.from([1, 0, 1])).mpintUnsigned(Buffer.concat([Buffer.from([0xc1]), randomBytes(62), Buffer.from([0x01])])).finish()],
    ['rsa even modulus', w().string('ssh-rsa').mpintUnsigned(Buffer.from([1, 0, 1])).mpintUnsigned(evenN).finish()],
    ['rsa e = 1', w().string('ssh-rsa').mpintUnsigned(Buffer.from([1])).mpintUnsigned(n).finish()],
    ['rsa e = 0', w().string('ssh-rsa').mpintUnsigned(Buffer.alloc(0)).mpintUnsigned(n).finish()],
    ['rsa even e', w().string('ssh-rsa').mpintUnsigned(Buffer.from([1, 0, 0])).mpintUnsigned(n).finish()],
    ['rsa negative n', w().string('ssh-rsa').mpintUnsigned(Buffer.from([1, 0, 1])).string(n).finish()],
    ['rsa n over 16384 bits', w().string('ssh-rsa').mpintUnsigned(Buffer.from([1, 0, 1])).mpintUnsigned(Buffer.alloc(2100, 0x55)).finish()],
  ];
  for (const [label, blob] of cases) {
    test(label, () => assertKeyFormatError(() => parsePublicKeyBlob(blob)));
  }
});

describe('publicKeyFromKeyObject, privateKeyFromKeyObject, generatePrivateKey', () => {
  const generateKeyPairAsync = promisify(generateKeyPair);

  test('generated keys of every type round-trip through their blob', async () => {
    const expectations = [
      ['ed25519', 'ssh-ed25519', 51],
      ['ecdsa-p256', 'ecdsa-sha2-nistp256', 104],
      ['ecdsa-p384', 'ecdsa-sha2-nistp384', 136],
      ['ecdsa-p521', 'ecdsa-sha2-nistp521', 172],
      ['rsa', 'ssh-rsa', undefined],
    ] as const;
    for (const [type, keyType, blobLength] of expectations) {
      const key = await generatePrivateKey(type, type === 'rsa' ? 2048 : undefined);
      assert.equal(key.type, keyType);
      assert.equal(key.publicKey.type, keyType);
      assert.equal(key.keyObject.type, 'private');
      assert.equal(key.publicKey.keyObject.type, 'public');
      if (blobLength !== undefined) assert.equal(key.publicKey.blob.length, blobLength);
      const parsed = parsePublicKeyBlob(key.publicKey.blob);
      assert.equal(parsed.type, keyType);
      assert.deepEqual(
        parsed.keyObject.export({ type: 'spki', format: 'der' }),
        key.publicKey.keyObject.export({ type: 'spki', format: 'der' }),
      );
      // From the private KeyObject, the same public key.
      assert.deepEqual(privateKeyFromKeyObject(key.keyObject).publicKey.blob, key.publicKey.blob);
      assert.deepEqual(publicKeyFromKeyObject(key.keyObject).blob, key.publicKey.blob);
    }
  });

  test('RSA defaults to 3072 bits and refuses to generate under 2048', async () => {
    const key = await generatePrivateKey('rsa');
    assert.equal(key.keyObject.asymmetricKeyDetails?.modulusLength, 3072);
    await assert.rejects(generatePrivateKey('rsa', 1024), RangeError);
    await assert.rejects(generatePrivateKey('rsa', 2047), RangeError);
  });

  test('EC coordinates with leading zero bytes keep their fixed length', async () => {
    // Some P-256 keys have an x or y below 2^248; check every blob is the full size.
    for (let i = 0; i < 40; i++) {
      const key = await generatePrivateKey('ecdsa-p256');
      assert.equal(key.publicKey.blob.length, 104);
    }
  });

  test('rejects keys SSH has no type for', async () => {
    assertKeyFormatError(() => publicKeyFromKeyObject(createSecretKey(Buffer.alloc(32))));
    const x25519 = await generateKeyPairAsync('x25519');
    assertKeyFormatError(() => publicKeyFromKeyObject(x25519.publicKey));
    const secp256k1 = await generateKeyPairAsync('ec', { namedCurve: 'secp256k1' });
    assertKeyFormatError(() => publicKeyFromKeyObject(secp256k1.publicKey));
    const small = await generateKeyPairAsync('rsa', { modulusLength: 768 });
    assertKeyFormatError(() => publicKeyFromKeyObject(small.publicKey));
    assertKeyFormatError(() => privateKeyFromKeyObject(secp256k1.publicKey));
  });
});

describe('signature blobs (RFC 4253 §6.6)', () => {
  test('encode and decode', () => {
    const blob = encodeSignatureBlob('ssh-ed25519', Buffer.alloc(64, 1));
    assert.equal(blob.length, 4 + 11 + 4 + 64);
    assert.deepEqual(decodeSignatureBlob(blob), { algorithm: 'ssh-ed25519', signature: Buffer.alloc(64, 1) });
    assert.equal(decodeSignatureBlob(blob.subarray(0, blob.length - 1)), undefined);
    assert.equal(decodeSignatureBlob(Buffer.concat([blob, Buffer.from([0])])), undefined);
    assert.equal(decodeSignatureBlob(Buffer.alloc(0)), undefined);
  });
});

describe('ssh-keygen interop', { skip: skipUnlessPeers('ssh-keygen') }, () => {
  const keyTypes = [
    ['ed25519', []],
    ['ecdsa', ['-b', '256']],
    ['ecdsa', ['-b', '384']],
    ['ecdsa', ['-b', '521']],
    ['rsa', ['-b', '2048']],
  ] as const;

  for (const [type, extra] of keyTypes) {
    test(`ssh-keygen -t ${type} ${extra.join(' ')}: the .pub blob parses to the same key`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'tssh-keygen-'));
      try {
        const file = join(dir, 'key');
        execFileSync(SSH_KEYGEN, ['-q', '-t', type, ...extra, '-N', '', '-C', 'test', '-f', file]);
        const blob = blobOf(readFileSync(`${file}.pub`, 'utf8'));
        const key = parsePublicKeyBlob(blob);
        assert.equal(key.type, readFileSync(`${file}.pub`, 'utf8').split(' ')[0]);
        if (type === 'ed25519') {
          // ssh-keygen cannot export Ed25519 as PKCS#8: compare the raw key with the blob's last 32 bytes.
          assert.deepEqual(Buffer.from(jwk(key.keyObject)['x']!, 'base64url'), blob.subarray(-32));
        } else {
          const pem = execFileSync(SSH_KEYGEN, ['-e', '-m', 'PKCS8', '-f', `${file}.pub`], { encoding: 'utf8' });
          assert.deepEqual(
            key.keyObject.export({ type: 'spki', format: 'der' }),
            createPublicKey(pem).export({ type: 'spki', format: 'der' }),
          );
        }
        assert.deepEqual(publicKeyFromKeyObject(key.keyObject).blob, blob);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
