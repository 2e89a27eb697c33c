import { test, describe, before } from 'node:test';
import { skipUnlessPeers } from '../helpers/peers.js';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPair, randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KeyFormatError } from '../../src/errors.js';
import type { HashName, SignatureAlgorithm, SshPrivateKey } from '../../src/algorithms/types.js';
import { sshEd25519 } from '../../src/algorithms/hostkey/ed25519.js';
import { ecdsaSha2Nistp256, ecdsaSha2Nistp384, ecdsaSha2Nistp521 } from '../../src/algorithms/hostkey/ecdsa.js';
import { rsaSha2_256, rsaSha2_512, sshRsa } from '../../src/algorithms/hostkey/rsa.js';
import { parsePublicKeyBlob } from '../../src/keys/public-key.js';
import { generatePrivateKey, privateKeyFromKeyObject } from '../../src/keys/private-key.js';
import type { GeneratedKeyType } from '../../src/keys/private-key.js';
import { Reader } from '../../src/wire/reader.js';
import { Writer } from '../../src/wire/writer.js';

const SSH_KEYGEN = '/usr/bin/ssh-keygen';

const algorithms: readonly SignatureAlgorithm[] = [
  sshEd25519,
  ecdsaSha2Nistp256,
  ecdsaSha2Nistp384,
  ecdsaSha2Nistp521,
  rsaSha2_256,
  rsaSha2_512,
  sshRsa,
];
const byName = new Map(algorithms.map((a) => [a.name, a]));

/** What each algorithm signs with, and how node:crypto computes the same signature. */
const profile: Record<string, { generate: GeneratedKeyType; hash: HashName | null; field?: number }> = {
  'ssh-ed25519': { generate: 'ed25519', hash: null },
  'ecdsa-sha2-nistp256': { generate: 'ecdsa-p256', hash: 'sha256', field: 32 },
  'ecdsa-sha2-nistp384': { generate: 'ecdsa-p384', hash: 'sha384', field: 48 },
  'ecdsa-sha2-nistp521': { generate: 'ecdsa-p521', hash: 'sha512', field: 66 },
  'rsa-sha2-256': { generate: 'rsa', hash: 'sha256' },
  'rsa-sha2-512': { generate: 'rsa', hash: 'sha512' },
  'ssh-rsa': { generate: 'rsa', hash: 'sha1' },
};

const keys = new Map<GeneratedKeyType, SshPrivateKey>();
function keyFor(algorithm: SignatureAlgorithm): SshPrivateKey {
  const key = keys.get(profile[algorithm.name]!.generate);
  assert.ok(key !== undefined);
  return key;
}

function blob(name: string, signature: Uint8Array): Buffer {
  return new Writer().string(name).string(signature).finish();
}

/** Read a DER length at `offset`: [length, offset after it]. */
function derLength(der: Buffer, offset: number): [number, number] {
  const first = der[offset]!;
  if (first < 0x80) return [first, offset + 1];
  let length = 0;
  for (let i = 1; i <= (first & 0x7f); i++) length = length * 256 + der[offset + i]!;
  return [length, offset + 1 + (first & 0x7f)];
}

/**
 * An ECDSA signature from node's default DER form (SEQUENCE { INTEGER r, INTEGER s }) to SSH's
 * mpint r || mpint s: DER INTEGER contents are exactly mpint contents. A route independent of ours.
 */
function ecdsaDerToSsh(der: Buffer): Buffer {
  assert.equal(der[0], 0x30);
  let [, offset] = derLength(der, 1);
  const writer = new Writer();
  for (let i = 0; i < 2; i++) {
    assert.equal(der[offset], 0x02);
    const [length, start] = derLength(der, offset + 1);
    writer.string(der.subarray(start, start + length));
    offset = start + length;
  }
  return writer.finish();
}

before(async () => {
  for (const type of ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'ecdsa-p521'] as const) keys.set(type, await generatePrivateKey(type));
  keys.set('rsa', await generatePrivateKey('rsa', 2048));
});

describe('signature algorithms: names and round trips', () => {
  test('names and key types', () => {
    assert.deepEqual(
      algorithms.map((a) => [a.name, a.keyType]),
      [
        ['ssh-ed25519', 'ssh-ed25519'],
        ['ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp256'],
        ['ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp384'],
        ['ecdsa-sha2-nistp521', 'ecdsa-sha2-nistp521'],
        ['rsa-sha2-256', 'ssh-rsa'],
        ['rsa-sha2-512', 'ssh-rsa'],
        ['ssh-rsa', 'ssh-rsa'],
      ],
    );
  });

  for (const algorithm of algorithms) {
    test(`${algorithm.name}: sign, verify, and the blob layout`, () => {
      const key = keyFor(algorithm);
      const data = randomBytes(200);
      const signature = algorithm.sign(key, data);
      assert.equal(algorithm.verify(key.publicKey, data, signature), true);
      const reader = new Reader(signature);
      assert.equal(reader.utf8(), algorithm.name);
      const inner = reader.string();
      reader.done();
      const { hash, field } = profile[algorithm.name]!;
      if (algorithm.name === 'ssh-ed25519') {
        assert.equal(inner.length, 64);
        assert.equal(nodeVerify(null, data, key.publicKey.keyObject, inner), true);
      } else if (field !== undefined) {
        // RFC 5656 §3.1.2: mpint r, mpint s; check node accepts the same r, s.
        const ri = new Reader(inner);
        const r = ri.mpintUnsigned();
        const s = ri.mpintUnsigned();
        ri.done();
        const raw = Buffer.alloc(2 * field);
        r.copy(raw, field - r.length);
        s.copy(raw, 2 * field - s.length);
        assert.equal(nodeVerify(hash, data, { key: key.publicKey.keyObject, dsaEncoding: 'ieee-p1363' }, raw), true);
      } else {
        assert.equal(inner.length, 256);
        assert.equal(nodeVerify(hash, data, key.publicKey.keyObject, inner), true);
      }
      // The public key decoded from its blob verifies too.
      assert.equal(algorithm.verify(parsePublicKeyBlob(key.publicKey.blob), data, signature), true);
    });

    test(`${algorithm.name}: verifies a signature made by node:crypto directly`, () => {
      const key = keyFor(algorithm);
      const data = randomBytes(100);
      const { hash } = profile[algorithm.name]!;
      let signature: Buffer;
      if (algorithm.name === 'ssh-ed25519') signature = nodeSign(null, data, key.keyObject);
      else if (algorithm.name.startsWith('ecdsa')) signature = ecdsaDerToSsh(nodeSign(hash, data, key.keyObject));
      else signature = nodeSign(hash, data, key.keyObject);
      assert.equal(algorithm.verify(key.publicKey, data, blob(algorithm.name, signature)), true);
    });

    test(`${algorithm.name}: rejects tampering, wrong names, wrong keys and garbage`, () => {
      const key = keyFor(algorithm);
      const data = Buffer.from('exchange hash');
      const good = algorithm.sign(key, data);
      const inner = new Reader(good);
      inner.string();
      const sig = Buffer.from(inner.string());

      // Tampered data and tampered signature.
      assert.equal(algorithm.verify(key.publicKey, Buffer.from('exchange hasH'), good), false);
      for (const position of [0, Math.floor(sig.length / 2), sig.length - 1]) {
        const tampered = Buffer.from(sig);
        tampered[position]! ^= 0x01;
        assert.equal(algorithm.verify(key.publicKey, data, blob(algorithm.name, tampered)), false, `byte ${position}`);
      }

      // The right signature under another algorithm's name, and another algorithm verifying it.
      for (const other of algorithms) {
        if (other === algorithm) continue;
        assert.equal(algorithm.verify(key.publicKey, data, blob(other.name, sig)), false, `labelled ${other.name}`);
        assert.equal(other.verify(key.publicKey, data, good), false, `verified by ${other.name}`);
      }
      assert.equal(algorithm.verify(key.publicKey, data, blob(algorithm.name.toUpperCase(), sig)), false);

      // A key of another type.
      for (const [type, otherKey] of keys) {
        if (type === profile[algorithm.name]!.generate) continue;
        assert.equal(algorithm.verify(otherKey.publicKey, data, good), false, `with a ${type} key`);
        assert.throws(() => algorithm.sign(otherKey, data), KeyFormatError, `signing with a ${type} key`);
      }

      // Malformed blobs.
      const garbage: Buffer[] = [
        Buffer.alloc(0),
        randomBytes(3),
        randomBytes(100),
        good.subarray(0, good.length - 1),
        Buffer.concat([good, Buffer.from([0])]),
        blob(algorithm.name, Buffer.alloc(0)),
        blob(algorithm.name, randomBytes(sig.length)),
        blob(algorithm.name, Buffer.concat([sig, Buffer.from([0])])),
        new Writer().string(algorithm.name).finish(),
        new Writer().string(algorithm.name).uint32(0xffffffff).finish(),
      ];
      for (const bad of garbage) assert.equal(algorithm.verify(key.publicKey, data, bad), false);
    });
  }
});

describe('ECDSA signature encoding edge cases', () => {
  test('r or s zero, negative, oversized or with trailing data is refused', () => {
    const key = keys.get('ecdsa-p256')!;
    const data = Buffer.from('data');
    const good = ecdsaSha2Nistp256.sign(key, data);
    const reader = new Reader(good);
    reader.string();
    const innerReader = new Reader(reader.string());
    const r = Buffer.from(innerReader.mpintUnsigned());
    const s = Buffer.from(innerReader.mpintUnsigned());
    const withRs = (inner: Buffer): Buffer => blob('ecdsa-sha2-nistp256', inner);
    const w = (): Writer => new Writer();
    assert.equal(ecdsaSha2Nistp256.verify(key.publicKey, data, withRs(w().mpintUnsigned(r).mpintUnsigned(s).finish())), true);
    const bad: Buffer[] = [
      w().mpintUnsigned(Buffer.alloc(0)).mpintUnsigned(s).finish(),
      w().mpintUnsigned(r).mpintUnsigned(Buffer.alloc(0)).finish(),
      w().string(Buffer.from([0xff])).mpintUnsigned(s).finish(),
      w().mpintUnsigned(Buffer.concat([Buffer.from([1]), r])).mpintUnsigned(s).finish(),
      w().mpintUnsigned(r).mpintUnsigned(s).byte(0).finish(),
      w().mpintUnsigned(r).finish(),
      w().mpintUnsigned(s).mpintUnsigned(r).finish(),
    ];
    for (const inner of bad) assert.equal(ecdsaSha2Nistp256.verify(key.publicKey, data, withRs(inner)), false);
  });
});

describe('RSA signature length handling', () => {
  test('a signature with its leading zero bytes dropped is left-padded and verifies (as OpenSSH does)', async () => {
    const pair = await promisify(generateKeyPair)('rsa', { modulusLength: 1024 });
    const key = privateKeyFromKeyObject(pair.privateKey);
    let data: Buffer | undefined;
    let signature: Buffer | undefined;
    for (let i = 0; i < 20000 && signature === undefined; i++) {
      const candidate = Buffer.from(`message ${i}`);
      const sig = nodeSign('sha256', candidate, key.keyObject);
      if (sig[0] === 0) {
        data = candidate;
        signature = sig;
      }
    }
    assert.ok(signature !== undefined && data !== undefined, 'found a signature starting with a zero byte');
    assert.equal(signature.length, 128);
    let start = 0;
    while (signature[start] === 0) start++;
    const short = signature.subarray(start);
    assert.equal(rsaSha2_256.verify(key.publicKey, data, blob('rsa-sha2-256', short)), true);
    assert.equal(rsaSha2_256.verify(key.publicKey, data, blob('rsa-sha2-256', signature)), true);
    // Longer than the modulus, even by a leading zero: refused.
    assert.equal(rsaSha2_256.verify(key.publicKey, data, blob('rsa-sha2-256', Buffer.concat([Buffer.from([0]), signature]))), false);
  });
});

// ---- SSHSIG (OpenSSH PROTOCOL.sshsig): signatures made by ssh-keygen -------------------------------

interface Sshsig {
  publicKey: Buffer;
  namespace: Buffer;
  reserved: Buffer;
  hashAlgorithm: string;
  signature: Buffer;
}

function parseSshsig(armored: string): Sshsig {
  const base64 = armored.replace(/-----(BEGIN|END) SSH SIGNATURE-----/g, '').replace(/\s+/g, '');
  const reader = new Reader(Buffer.from(base64, 'base64'));
  assert.equal(reader.bytes(6).toString('latin1'), 'SSHSIG');
  assert.equal(reader.uint32(), 1);
  const sig: Sshsig = {
    publicKey: reader.string(),
    namespace: reader.string(),
    reserved: reader.string(),
    hashAlgorithm: reader.utf8(),
    signature: reader.string(),
  };
  reader.done();
  return sig;
}

/** PROTOCOL.sshsig §3: the data the SSH signature is made over. */
function sshsigSignedData(namespace: Buffer | string, reserved: Buffer, hashAlgorithm: string, message: Buffer): Buffer {
  const digest = createHash(hashAlgorithm).update(message).digest();
  return Buffer.concat([
    Buffer.from('SSHSIG'),
    new Writer().string(namespace).string(reserved).string(hashAlgorithm).string(digest).finish(),
  ]);
}

function verifySshsig(armored: string, message: Buffer): boolean {
  const sig = parseSshsig(armored);
  const algorithmName = new Reader(sig.signature).utf8();
  const algorithm = byName.get(algorithmName);
  assert.ok(algorithm !== undefined, `known algorithm ${algorithmName}`);
  const publicKey = parsePublicKeyBlob(sig.publicKey);
  return algorithm.verify(publicKey, sshsigSignedData(sig.namespace, sig.reserved, sig.hashAlgorithm, message), sig.signature);
}

describe('OpenSSH sshsig test vectors (regress/unittests/sshsig/testdata)', () => {
  const message = Buffer.from('This is a test, this is only a test');
  const vectors: Record<string, string> = {
    ed25519: `-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgiWLNIg3cNBXvxU82NW+/COB/4/
keps9gJi7cE4x2MAQAAAAIdW5pdHRlc3QAAAAAAAAABnNoYTUxMgAAAFMAAAALc3NoLWVk
MjU1MTkAAABAihQsbUzuNEFflk5Tw1+H9aLS7tZQk0RG8KW1DtOmDYYnWe3D3UKiG3fcJa
DNg4vBWp1j1gLRiBMOF+gwYNegDg==
-----END SSH SIGNATURE-----`,
    ecdsa: `-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAAGgAAAATZWNkc2Etc2hhMi1uaXN0cDI1NgAAAAhuaXN0cDI1NgAAAE
EE3sud88FV0N8FPspZSV7LWqj6uPPLRZiSsenNuEYAteWPyDgrZsWbLzXBuUJucepaCNuW
/QWgHBRbrjWj3ERm3AAAAAh1bml0dGVzdAAAAAAAAAAGc2hhNTEyAAAAZQAAABNlY2RzYS
1zaGEyLW5pc3RwMjU2AAAASgAAACEAycVNsTlE+XEZYyYiDxWZlliruf/pPMhEEMR/XLdQ
a4MAAAAhALQt+5gES7L3uKGptHB6UZQMuZ2WyI0C6FJs4v6AtMIU
-----END SSH SIGNATURE-----`,
    rsa: `-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAAZcAAAAHc3NoLXJzYQAAAAMBAAEAAAGBAN/OpZo0R7Saco/Owa0vrL
DJrb3P9UjzdIF0z7PY2dYWAKvfD3Gt/0WFTOB2krugjs7UCdmZ2Q903v13gZyFNpn7r0BJ
fg4sIrBnjYJVckQou+/O3zxRX3Mc2Xw2uxAdqmPEt6GkhmSvEKs7hsJhgCJo5UF8+ifhwn
f3g/+fBqAkkoqyBAhVggLfrjazgvxJoAM7G33H2iG21cwONLZYFN4TtieNpHXc/AorA07Q
ykAARXDmkGcnEn5+xwz/loFy11wVCPcFTNU4n9X/vTF9PMSLLwrxs6O8i4G20xS0hq+UpA
PrTq2LqAO1fH4HtInf96Z1bRtVItyO73o3gMH9B2arRXgRJzsJCCRZmXjLRXjlX/uJIuId
aw6gL0rHDbzLS6ejl6WwAEwEwLhFhJCEAZda54JxHtIgvYlPYrSjFuqieBbSG+AAh9RKFN
cfL6qxXnINob6n5OQmQSSG1dvCRbho2nNzsQWdexam/JY6JlIq9RqxE9s+ujTIG+U4ww+w
VQAAAAh1bml0dGVzdAAAAAAAAAAGc2hhNTEyAAABlAAAAAxyc2Etc2hhMi01MTIAAAGACi
nEpBrQxZi0yOrrT6h98JFfZh0XXioih4fzmvtoV0yOReWClS+otGgXoJyZHcbaKNOjDwSM
rIkUoX6OUJmtHYP0HRELnKw35m33LdBPXpFGS4tRS7NeSpvc04KtjT6jYXY9FjWy5hcn17
Sxc/3DnJqLgJBur8acY7FeIzpWmKixPd/dGkEjdWoD9gO6szLczGuQgrOdYmSRL4yKadTJ
lVjz5OSeKSYYGQy33US2XQassRRNYf4e9byTA3DKvHa/OcTt7lFerea0kZdDpAboqffz7T
Yaw/hFskAYLIEdTW3aoXBGHSOvu8AkDOtb7qwuxGSQ27pjkDLDNsp1ceCFaCaQ6X83RZuK
ACv9JUBI5KaSf81e0bs0KezJKkhB9czeZ6dk96qISbgayEBnvhYgXvUDKtHn7HzNlCJKfK
5ABhNxfGG2CD+NKqcrndwFgS1sQO3hbA84zPQb26ShBovT8ytHBmW1F8ZK4O9Bz61Q6EZK
vs/u6xP6LUean/so5daa
-----END SSH SIGNATURE-----`,
  };
  for (const [type, armored] of Object.entries(vectors)) {
    test(`${type}: verifies, and fails for another message`, () => {
      assert.equal(parseSshsig(armored).namespace.toString(), 'unittest');
      assert.equal(verifySshsig(armored, message), true);
      assert.equal(verifySshsig(armored, Buffer.from('This is a test, this is only a tesT')), false);
    });
  }
});

describe('ssh-keygen -Y interop', { skip: skipUnlessPeers('ssh-keygen') }, () => {
  const types = [
    ['ed25519', []],
    ['ecdsa', ['-b', '256']],
    ['ecdsa', ['-b', '384']],
    ['ecdsa', ['-b', '521']],
    ['rsa', ['-b', '2048']],
  ] as const;

  for (const [type, extra] of types) {
    test(`ssh-keygen -Y sign with ${type} ${extra.join(' ')}: we verify`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'tssh-sshsig-'));
      try {
        const keyFile = join(dir, 'key');
        const messageFile = join(dir, 'message');
        const message = randomBytes(300);
        writeFileSync(messageFile, message);
        execFileSync(SSH_KEYGEN, ['-q', '-t', type, ...extra, '-N', '', '-C', '', '-f', keyFile]);
        execFileSync(SSH_KEYGEN, ['-Y', 'sign', '-n', 'tssh-test', '-f', keyFile, messageFile], { stdio: 'ignore' });
        const armored = readFileSync(`${messageFile}.sig`, 'utf8');
        assert.equal(verifySshsig(armored, message), true);
        message[0]! ^= 1;
        assert.equal(verifySshsig(armored, message), false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  const ours: Array<[GeneratedKeyType, SignatureAlgorithm]> = [
    ['ed25519', sshEd25519],
    ['ecdsa-p256', ecdsaSha2Nistp256],
    ['ecdsa-p384', ecdsaSha2Nistp384],
    ['ecdsa-p521', ecdsaSha2Nistp521],
    ['rsa', rsaSha2_512],
    ['rsa', rsaSha2_256],
  ];
  for (const [type, algorithm] of ours) {
    test(`our ${algorithm.name} signature passes ssh-keygen -Y check-novalidate`, () => {
      const key = keys.get(type)!;
      const message = randomBytes(300);
      const namespace = 'tssh-test';
      const signature = algorithm.sign(key, sshsigSignedData(namespace, Buffer.alloc(0), 'sha512', message));
      const sshsig = Buffer.concat([
        Buffer.from('SSHSIG'),
        new Writer().uint32(1).string(key.publicKey.blob).string(namespace).string('').string('sha512').string(signature).finish(),
      ]);
      const lines = sshsig.toString('base64').match(/.{1,76}/g) ?? [];
      const armored = ['-----BEGIN SSH SIGNATURE-----', ...lines, '-----END SSH SIGNATURE-----', ''].join('\n');
      const dir = mkdtempSync(join(tmpdir(), 'tssh-sshsig-'));
      try {
        const sigFile = join(dir, 'message.sig');
        writeFileSync(sigFile, armored);
        const check = (input: Buffer): number | null =>
          spawnSync(SSH_KEYGEN, ['-Y', 'check-novalidate', '-n', namespace, '-s', sigFile], { input, stdio: ['pipe', 'ignore', 'ignore'] }).status;
        assert.equal(check(message), 0);
        message[0]! ^= 1;
        assert.notEqual(check(message), 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('a PEM private key converted by ssh-keygen signs for the matching .pub key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tssh-pem-'));
    try {
      const keyFile = join(dir, 'key');
      execFileSync(SSH_KEYGEN, ['-q', '-t', 'ecdsa', '-b', '384', '-m', 'PEM', '-N', '', '-C', '', '-f', keyFile]);
      const key = privateKeyFromKeyObject(createPrivateKey(readFileSync(keyFile)));
      const pubBlob = Buffer.from(readFileSync(`${keyFile}.pub`, 'utf8').split(' ')[1]!, 'base64');
      assert.deepEqual(key.publicKey.blob, pubBlob);
      const data = Buffer.from('hello');
      assert.equal(ecdsaSha2Nistp384.verify(parsePublicKeyBlob(pubBlob), data, ecdsaSha2Nistp384.sign(key, data)), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
