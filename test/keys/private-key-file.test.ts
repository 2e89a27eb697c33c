import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KeyFormatError } from '../../src/errors.js';
import { bubbleBabble, fingerprint } from '../../src/keys/fingerprint.js';
import { keyFileCiphers } from '../../src/keys/openssh-key-ciphers.js';
import { decodeOpensshPrivateKey } from '../../src/keys/openssh-private.js';
import {
  formatPrivateKeyFile,
  INCORRECT_PASSPHRASE,
  parsePrivateKeyFile,
  PassphraseError,
} from '../../src/keys/private-key-file.js';
import type { PrivateKeyFileFormat } from '../../src/keys/private-key-file.js';
import { privateKeyFromKeyObject } from '../../src/keys/private-key.js';
import type { GeneratedKeyType } from '../../src/keys/private-key.js';
import { Reader } from '../../src/wire/reader.js';
import { Writer } from '../../src/wire/writer.js';
import { havePeers, peerPath } from '../helpers/peers.js';
import {
  assertSigns,
  fixture,
  FIXTURE_PASSPHRASE,
  fixtureText,
  KEY_TYPES,
  publicLine,
  run,
  runOk,
  scratchFolder,
  testKeys,
  writePrivate,
} from './key-file-helpers.js';

/** Every private key among OpenSSH's regress keys, with the format it is in. */
const FIXTURE_KEYS: readonly { file: string; pub: string; format: PrivateKeyFileFormat; encrypted: boolean }[] = [
  { file: 'rsa_1', pub: 'rsa_1', format: 'pem', encrypted: false },
  { file: 'rsa_1_pw', pub: 'rsa_1', format: 'pem', encrypted: true },
  { file: 'rsa_2', pub: 'rsa_2', format: 'pem', encrypted: false },
  { file: 'rsa_n', pub: 'rsa_1', format: 'openssh', encrypted: false },
  { file: 'rsa_n_pw', pub: 'rsa_1', format: 'openssh', encrypted: true },
  { file: 'ecdsa_1', pub: 'ecdsa_1', format: 'pem', encrypted: false },
  { file: 'ecdsa_1_pw', pub: 'ecdsa_1', format: 'pem', encrypted: true },
  { file: 'ecdsa_2', pub: 'ecdsa_2', format: 'pem', encrypted: false },
  { file: 'ecdsa_n', pub: 'ecdsa_1', format: 'openssh', encrypted: false },
  { file: 'ecdsa_n_pw', pub: 'ecdsa_1', format: 'openssh', encrypted: true },
  { file: 'ed25519_1', pub: 'ed25519_1', format: 'openssh', encrypted: false },
  { file: 'ed25519_1_pw', pub: 'ed25519_1', format: 'openssh', encrypted: true },
  { file: 'ed25519_2', pub: 'ed25519_2', format: 'openssh', encrypted: false },
];

/** Assert a promise rejects with a KeyFormatError whose message matches. */
async function rejectsWith(
  promise: Promise<unknown>,
  message: RegExp | string,
  kind: abstract new (...args: never[]) => KeyFormatError = KeyFormatError,
): Promise<KeyFormatError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => (caught = error),
  );
  assert.ok(caught instanceof kind, `expected ${kind.name}, got ${String(caught)}`);
  const error = caught as KeyFormatError;
  assert.equal(error.code, 'ERR_SSH_KEY_FORMAT');
  if (typeof message === 'string') assert.equal(error.message, message);
  else assert.match(error.message, message);
  return error;
}

/** Re-armour an openssh-key-v1 file after changing its binary contents. */
function rewriteOpenssh(text: string, edit: (data: Buffer) => Buffer): string {
  const body = text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const data = edit(Buffer.from(body, 'base64'));
  const lines = data.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** The offset of the bcrypt rounds field in an encrypted openssh-key-v1 file. */
function roundsOffset(data: Buffer): number {
  const reader = new Reader(data, 15);
  reader.string(); // cipher
  reader.string(); // kdf name
  reader.uint32(); // kdfoptions length
  reader.string(); // salt
  return reader.position;
}

describe('OpenSSH regress keys', () => {
  for (const { file, pub, format, encrypted } of FIXTURE_KEYS) {
    test(`${file}: ${format}${encrypted ? ', encrypted' : ''}; public key, fingerprint and bubblebabble match ${pub}.pub`, async () => {
      let asked = 0;
      const parsed = await parsePrivateKeyFile(fixture(file), {
        passphrase: async () => {
          asked++;
          return FIXTURE_PASSPHRASE;
        },
      });
      assert.equal(parsed.format, format);
      assert.equal(parsed.encrypted, encrypted);
      assert.equal(asked, encrypted ? 1 : 0, 'the passphrase callback is called exactly when the file is encrypted');
      const expected = publicLine(fixtureText(`${pub}.pub`));
      assert.equal(parsed.key.type, expected.type);
      assert.deepEqual(parsed.key.publicKey.blob, expected.blob);
      assert.equal(fingerprint(parsed.key.publicKey), fixtureText(`${pub}.fp`).trim());
      assert.equal(bubbleBabble(parsed.key.publicKey), fixtureText(`${pub}.fp.bb`).trim());
      // openssh-key-v1 keeps the comment; these fixtures' comments are the .pub's (ed25519) or empty.
      if (file.startsWith('ed25519_1')) assert.equal(parsed.comment, expected.comment);
      if (format === 'pem') assert.equal(parsed.comment, '');
      assertSigns(parsed.key);
    });
  }

  test('a string passphrase and a Buffer passphrase work alike', async () => {
    const fromString = await parsePrivateKeyFile(fixtureText('ed25519_1_pw'), { passphrase: FIXTURE_PASSPHRASE });
    const fromBuffer = await parsePrivateKeyFile(fixture('ecdsa_1_pw'), { passphrase: Buffer.from(FIXTURE_PASSPHRASE) });
    assert.equal(fromString.key.type, 'ssh-ed25519');
    assert.equal(fromBuffer.key.type, 'ecdsa-sha2-nistp256');
  });
});

describe('errors a user can act on', () => {
  test('wrong passphrase, openssh-key-v1: "incorrect passphrase supplied to decrypt private key"', async () => {
    const error = await rejectsWith(parsePrivateKeyFile(fixture('ed25519_1_pw'), { passphrase: 'wrong' }), INCORRECT_PASSPHRASE, PassphraseError);
    assert.equal((error as PassphraseError).problem, 'incorrect');
    await rejectsWith(parsePrivateKeyFile(fixture('rsa_n_pw'), { passphrase: '' }), INCORRECT_PASSPHRASE, PassphraseError);
  });

  test('wrong passphrase, PEM and PKCS#8', async () => {
    const pem = await rejectsWith(parsePrivateKeyFile(fixture('rsa_1_pw'), { passphrase: 'wrong' }), /^incorrect passphrase supplied to decrypt private key/, PassphraseError);
    assert.equal((pem as PassphraseError).problem, 'incorrect');
    const key = (await testKeys()).get('ecdsa-p256')!;
    const pkcs8 = await formatPrivateKeyFile(key, { format: 'pkcs8', passphrase: 'right passphrase' });
    await rejectsWith(parsePrivateKeyFile(pkcs8, { passphrase: 'wrong passphrase' }), /^incorrect passphrase supplied to decrypt private key/, PassphraseError);
  });

  test('missing passphrase: says the key is encrypted, for every format', async () => {
    for (const file of ['ed25519_1_pw', 'rsa_1_pw', 'ecdsa_n_pw']) {
      const error = await rejectsWith(parsePrivateKeyFile(fixture(file)), /^a passphrase is required: the private key is encrypted \(/, PassphraseError);
      assert.equal((error as PassphraseError).problem, 'missing');
    }
    const key = (await testKeys()).get('ed25519')!;
    const pkcs8 = await formatPrivateKeyFile(key, { format: 'pkcs8', passphrase: 'secret' });
    await rejectsWith(parsePrivateKeyFile(pkcs8), /passphrase is required.*encrypted PKCS#8/, PassphraseError);
  });

  test('a passphrase callback that rejects (the user cancelled) passes its error through', async () => {
    const cancelled = new Error('cancelled by user');
    await assert.rejects(parsePrivateKeyFile(fixture('ed25519_1_pw'), { passphrase: () => Promise.reject(cancelled) }), cancelled);
  });

  test('corrupt file: bad base64, bad magic, damaged private section', async () => {
    const text = fixtureText('ed25519_1');
    const lines = text.split('\n');
    lines[2] = lines[2]!.slice(0, 10) + '!' + lines[2]!.slice(11);
    await rejectsWith(parsePrivateKeyFile(lines.join('\n')), /^invalid format: .* is not valid base64$/);
    const badMagic = rewriteOpenssh(text, (data) => Buffer.concat([Buffer.from('openssh-key-v2'), data.subarray(14)]));
    await rejectsWith(parsePrivateKeyFile(badMagic), 'invalid format: not an openssh-key-v1 key (bad magic)');
    // Flip a byte of the first check integer: the two no longer agree.
    const damaged = rewriteOpenssh(text, (data) => {
      const copy = Buffer.from(data);
      const section = decodeOpensshPrivateKey(text).privateSection;
      const at = copy.indexOf(section);
      copy[at] = copy[at]! ^ 0xff;
      return copy;
    });
    await rejectsWith(parsePrivateKeyFile(damaged), 'invalid format: the check integers of the private section differ');
    await rejectsWith(parsePrivateKeyFile(Buffer.from('just some text\n')), /^invalid format: not a private key file/);
    await rejectsWith(parsePrivateKeyFile(''), 'invalid format: the private key file is empty');
    await rejectsWith(parsePrivateKeyFile(fixtureText('ed25519_1.pub')), 'invalid format: this is a public key; a private key file is needed');
    const pem = fixtureText('rsa_1').replace(/^MIIC/m, 'MIID');
    await rejectsWith(parsePrivateKeyFile(pem), /^invalid format: not a valid PKCS#1 RSA private key/);
  });

  test('bad padding bytes and a public key that does not match the private one', async () => {
    const key = (await testKeys()).get('ed25519')!;
    const other = (await testKeys()).get('ecdsa-p256')!;
    // A comment of 1 byte leaves padding; rewrite its last byte.
    const text = await formatPrivateKeyFile(key, { format: 'openssh', comment: 'x' });
    const envelope = decodeOpensshPrivateKey(text);
    const badPadding = rewriteOpenssh(text, (data) => {
      const copy = Buffer.from(data);
      const end = copy.indexOf(envelope.privateSection) + envelope.privateSection.length;
      copy[end - 1] = 0x7f;
      return copy;
    });
    await rejectsWith(parsePrivateKeyFile(badPadding), 'invalid format: bad padding after the private key');
    const swapped = rewriteOpenssh(text, (data) => {
      const at = data.indexOf(key.publicKey.blob) - 4;
      const tail = data.subarray(at + 4 + key.publicKey.blob.length);
      return Buffer.concat([data.subarray(0, at), new Writer(128).string(other.publicKey.blob).finish(), tail]);
    });
    await rejectsWith(parsePrivateKeyFile(swapped), 'invalid format: the public key in the file does not match its private key');
  });

  test('truncated file: cut base64 and a missing END line', async () => {
    const text = fixtureText('rsa_n');
    const lines = text.trimEnd().split('\n');
    const half = [...lines.slice(0, Math.floor(lines.length / 2)), lines[lines.length - 1]!].join('\n');
    await rejectsWith(parsePrivateKeyFile(half), /^invalid format: truncated /);
    await rejectsWith(parsePrivateKeyFile(lines.slice(0, 5).join('\n')), /^invalid format: no "-----END OPENSSH PRIVATE KEY-----" line \(the file is truncated\?\)$/);
    const pem = fixtureText('ecdsa_1').split('\n').slice(0, 2).join('\n');
    await rejectsWith(parsePrivateKeyFile(pem), /^invalid format: no "-----END EC PRIVATE KEY-----" line/);
  });

  test('absurd KDF rounds are refused before the passphrase is asked for; the cap can be lowered or raised', async () => {
    const absurd = rewriteOpenssh(fixtureText('ed25519_1_pw'), (data) => {
      const copy = Buffer.from(data);
      copy.writeUInt32BE(4_000_000_000, roundsOffset(copy));
      return copy;
    });
    let asked = false;
    const passphrase = async (): Promise<string> => {
      asked = true;
      return FIXTURE_PASSPHRASE;
    };
    await rejectsWith(
      parsePrivateKeyFile(absurd, { passphrase }),
      'private key asks for 4000000000 KDF rounds, more than the limit of 1024: refusing to spend that long; ' +
        'if you trust this file, raise maxKdfRounds (or re-encrypt it with fewer rounds)',
    );
    assert.equal(asked, false);
    // The fixture itself has 16 rounds: a cap of 8 refuses it, a cap of 16 reads it.
    await rejectsWith(parsePrivateKeyFile(fixture('ed25519_1_pw'), { passphrase, maxKdfRounds: 8 }), /asks for 16 KDF rounds, more than the limit of 8/);
    const parsed = await parsePrivateKeyFile(fixture('ed25519_1_pw'), { passphrase, maxKdfRounds: 16 });
    assert.equal(parsed.key.type, 'ssh-ed25519');
  });

  test('absurd PBKDF2 iterations in a PKCS#8 file are refused before the passphrase is asked for', async () => {
    const key = (await testKeys()).get('ecdsa-p256')!;
    const pkcs8 = await formatPrivateKeyFile(key, { format: 'pkcs8', passphrase: 'secret' });
    const parsed = await parsePrivateKeyFile(pkcs8, { passphrase: 'secret' });
    assert.deepEqual(parsed.key.publicKey.blob, key.publicKey.blob);
    // OpenSSL writes 2048 iterations: a cap of 1000 refuses the file.
    await rejectsWith(
      parsePrivateKeyFile(pkcs8, { passphrase: () => assert.fail('must not ask'), maxPbkdf2Iterations: 1000 }),
      /^private key asks for 2048 PBKDF2 iterations, more than the limit of 1000/,
    );
  });

  test('unsupported key types and ciphers are named', async () => {
    const x25519 = await promisify(generateKeyPair)('x25519', {});
    const pkcs8 = x25519.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await rejectsWith(parsePrivateKeyFile(pkcs8), /unsupported key type x25519/);
    const dsa = await promisify(generateKeyPair)('dsa', { modulusLength: 1024, divisorLength: 160 });
    await rejectsWith(parsePrivateKeyFile(dsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), /unsupported key type dsa/);
    const oddCipher = rewriteOpenssh(fixtureText('ed25519_1_pw'), (data) => {
      const at = data.indexOf('aes256-ctr');
      const copy = Buffer.from(data);
      copy.write('aes256-xyz', at, 'latin1');
      return copy;
    });
    await rejectsWith(parsePrivateKeyFile(oddCipher, { passphrase: 'x' }), 'unsupported cipher "aes256-xyz" in private key file');
    await rejectsWith(parsePrivateKeyFile('---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nAAAA\n'), /^unsupported private key format: ssh\.com/);
  });
});

describe('round trips through our own writer', () => {
  for (const type of KEY_TYPES) {
    for (const format of ['openssh', 'pem', 'pkcs8', 'ppk'] as const) {
      if (type === 'ed25519' && format === 'pem') continue; // no such format; tested below
      test(`${type} as ${format}, plain and encrypted`, async () => {
        const key = (await testKeys()).get(type)!;
        for (const passphrase of [undefined, 'correct horse']) {
          const text = await formatPrivateKeyFile(key, { format, passphrase, comment: 'me@host', rounds: 4 });
          const parsed = await parsePrivateKeyFile(text, { passphrase: passphrase ?? (() => assert.fail('not encrypted')) });
          assert.equal(parsed.format, format);
          assert.equal(parsed.encrypted, passphrase !== undefined);
          assert.deepEqual(parsed.key.publicKey.blob, key.publicKey.blob);
          assert.equal(parsed.comment, format === 'openssh' || format === 'ppk' ? 'me@host' : '');
          assertSigns(parsed.key);
        }
      });
    }
  }

  test('ed25519 has no PEM (PKCS#1/SEC1) form: the error says which formats to use', async () => {
    const key = (await testKeys()).get('ed25519')!;
    await rejectsWith(formatPrivateKeyFile(key, { format: 'pem' }), /ssh-ed25519 keys have no PEM \(PKCS#1\/SEC1\) form: write them as "openssh"/);
  });

  test('openssh-key-v1 layout: magic, aes256-ctr + bcrypt 16 rounds with a 16-byte random salt, 70-column lines', async (t) => {
    const key = (await testKeys()).get('ed25519')!;
    const started = performance.now();
    const text = await formatPrivateKeyFile(key, { format: 'openssh', passphrase: 'pass phrase' });
    const writeMs = performance.now() - started;
    const lines = text.trimEnd().split('\n');
    assert.equal(lines[0], '-----BEGIN OPENSSH PRIVATE KEY-----');
    assert.equal(lines[lines.length - 1], '-----END OPENSSH PRIVATE KEY-----');
    assert.ok(lines.slice(1, -2).every((line) => line.length === 70));
    assert.ok(lines[lines.length - 2]!.length <= 70);
    const envelope = decodeOpensshPrivateKey(text);
    assert.equal(envelope.cipher.name, 'aes256-ctr');
    assert.ok(envelope.kdf.name === 'bcrypt' && envelope.kdf.rounds === 16 && envelope.kdf.salt.length === 16);
    const again = decodeOpensshPrivateKey(await formatPrivateKeyFile(key, { format: 'openssh', passphrase: 'pass phrase', rounds: 1 }));
    assert.ok(again.kdf.name === 'bcrypt' && !again.kdf.salt.equals(envelope.kdf.salt), 'a fresh salt each time');
    const readStarted = performance.now();
    await parsePrivateKeyFile(text, { passphrase: 'pass phrase' });
    t.diagnostic(`bcrypt-pbkdf 16 rounds: write ${writeMs.toFixed(0)} ms, read ${(performance.now() - readStarted).toFixed(0)} ms`);
    const plain = decodeOpensshPrivateKey(await formatPrivateKeyFile(key, { format: 'openssh' }));
    assert.equal(plain.cipher.name, 'none');
    assert.equal(plain.kdf.name, 'none');
    assert.equal(plain.privateSection.length % 8, 0);
  });

  test('every openssh-key-v1 cipher round-trips, and a wrong passphrase is detected by each', async () => {
    const key = (await testKeys()).get('ecdsa-p256')!;
    for (const cipher of keyFileCiphers.keys()) {
      if (cipher === 'none') continue;
      const text = await formatPrivateKeyFile(key, { format: 'openssh', passphrase: 'pw', cipher, rounds: 1 });
      const parsed = await parsePrivateKeyFile(text, { passphrase: 'pw' });
      assert.deepEqual(parsed.key.publicKey.blob, key.publicKey.blob, cipher);
      await rejectsWith(parsePrivateKeyFile(text, { passphrase: 'pW' }), INCORRECT_PASSPHRASE, PassphraseError);
    }
  });

  test('an ECDSA key whose stored public point is not d·G is refused (openssh-key-v1 and SEC1 PEM)', async () => {
    const key = (await testKeys()).get('ecdsa-p256')!;
    const other = privateKeyFromKeyObject((await promisify(generateKeyPair)('ec', { namedCurve: 'prime256v1' })).privateKey);
    const text = await formatPrivateKeyFile(key, { format: 'openssh' });
    // Replace the point inside the private section (and the header) with another key's point.
    const q = (blob: Buffer): Buffer => {
      const reader = new Reader(blob);
      reader.string();
      reader.string();
      return reader.string();
    };
    const forged = rewriteOpenssh(text, (data) => {
      const copy = Buffer.from(data);
      let at = copy.indexOf(q(key.publicKey.blob));
      while (at >= 0) {
        q(other.publicKey.blob).copy(copy, at);
        at = copy.indexOf(q(key.publicKey.blob), at + 1);
      }
      return copy;
    });
    await rejectsWith(parsePrivateKeyFile(forged), /ecdsa-sha2-nistp256 private key does not match its public key/);
    // The same in a SEC1 PEM file (RFC 5915: version, d, [0] curve, [1] Q), which OpenSSL takes on trust.
    const d = Buffer.from((key.keyObject.export({ format: 'jwk' }) as { d: string }).d, 'base64url');
    const sec1 = Buffer.concat([
      Buffer.from('30770201010420', 'hex'),
      d,
      Buffer.from('a00a06082a8648ce3d030107a144034200', 'hex'),
      q(other.publicKey.blob),
    ]);
    const pem = `-----BEGIN EC PRIVATE KEY-----\n${sec1.toString('base64')}\n-----END EC PRIVATE KEY-----\n`;
    await rejectsWith(parsePrivateKeyFile(pem), /ecdsa-sha2-nistp256 private key does not match its public key/);
  });
});

// ---- Interoperability with OpenSSH's ssh-keygen -----------------------------------------------------

const KEYGEN_ARGS: Record<GeneratedKeyType, string[]> = {
  ed25519: ['-t', 'ed25519'],
  'ecdsa-p256': ['-t', 'ecdsa', '-b', '256'],
  'ecdsa-p384': ['-t', 'ecdsa', '-b', '384'],
  'ecdsa-p521': ['-t', 'ecdsa', '-b', '521'],
  rsa: ['-t', 'rsa', '-b', '2048'],
};

const KEYGEN_PASSPHRASE = 'interop passphrase';

describe('ssh-keygen interop', () => {
  test('keys written by ssh-keygen (every type; openssh, PEM, PKCS8, RFC4716; plain and encrypted) are read', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    const folder = scratchFolder('tssh-keygen-write-');
    const cases = KEY_TYPES.flatMap((type) =>
      (['default', 'PEM', 'PKCS8', 'RFC4716'] as const).flatMap((mode) => [false, true].map((encrypted) => ({ type, mode, encrypted }))),
    );
    // ssh-keygen runs in parallel (RSA generation and bcrypt dominate); our reads follow.
    const made = await Promise.all(
      cases.map(async ({ type, mode, encrypted }) => {
        const file = join(folder, `${type}-${mode}-${encrypted ? 'enc' : 'plain'}`);
        const comment = `${type} ${mode} comment`;
        const modeArgs = mode === 'default' ? [] : ['-m', mode];
        // Ed25519 files keep ssh-keygen's default 16 bcrypt rounds; the others use 4 to keep the test quick.
        const roundArgs = type === 'ed25519' ? [] : ['-a', '4'];
        const passphrase = encrypted ? KEYGEN_PASSPHRASE : '';
        await runOk(keygen, ['-q', ...KEYGEN_ARGS[type], ...modeArgs, ...roundArgs, '-N', passphrase, '-C', comment, '-f', file]);
        return { type, mode, encrypted, file, comment };
      }),
    );
    for (const { type, mode, encrypted, file, comment } of made) {
      const parsed = await parsePrivateKeyFile(readFileSync(file), { passphrase: KEYGEN_PASSPHRASE });
      const expected = publicLine(readFileSync(`${file}.pub`, 'utf8'));
      const label = `${type} -m ${mode}${encrypted ? ' -N' : ''}`;
      assert.deepEqual(parsed.key.publicKey.blob, expected.blob, label);
      assert.equal(parsed.encrypted, encrypted, label);
      // ssh-keygen writes Ed25519 (and -m RFC4716 keys) in its own format whatever -m says.
      const format = type === 'ed25519' || mode === 'default' || mode === 'RFC4716' ? 'openssh' : mode === 'PEM' ? 'pem' : 'pkcs8';
      assert.equal(parsed.format, format, label);
      assert.equal(parsed.comment, format === 'openssh' ? comment : '', label);
      assertSigns(parsed.key);
    }
    t.diagnostic(`${made.length} ssh-keygen keys read`);
  });

  test('keys written by ssh-keygen -Z with every cipher are read', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    const folder = scratchFolder('tssh-keygen-ciphers-');
    const ciphers = [...keyFileCiphers.keys()].filter((c) => c !== 'none');
    await Promise.all(
      ciphers.map((cipher) => runOk(keygen, ['-q', '-t', 'ed25519', '-a', '2', '-Z', cipher, '-N', KEYGEN_PASSPHRASE, '-f', join(folder, cipher)])),
    );
    for (const cipher of ciphers) {
      const text = readFileSync(join(folder, cipher), 'utf8');
      assert.equal(decodeOpensshPrivateKey(text).cipher.name, cipher);
      const parsed = await parsePrivateKeyFile(text, { passphrase: KEYGEN_PASSPHRASE });
      assert.deepEqual(parsed.key.publicKey.blob, publicLine(readFileSync(join(folder, `${cipher}.pub`), 'utf8')).blob, cipher);
      await rejectsWith(parsePrivateKeyFile(text, { passphrase: 'not it' }), INCORRECT_PASSPHRASE, PassphraseError);
    }
  });

  test('keys we write are read by ssh-keygen -y (every type; openssh, PEM, PKCS8; plain and encrypted)', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    const folder = scratchFolder('tssh-keygen-read-');
    const keys = await testKeys();
    const jobs: Promise<void>[] = [];
    for (const type of KEY_TYPES) {
      // OpenSSH 9.2 reads Ed25519 only in its own format (PEM has none; its PKCS#8 reader lacks Ed25519).
      const formats = type === 'ed25519' ? (['openssh'] as const) : (['openssh', 'pem', 'pkcs8'] as const);
      for (const format of formats) {
        for (const passphrase of [undefined, KEYGEN_PASSPHRASE]) {
          const key = keys.get(type)!;
          const file = join(folder, `${type}-${format}-${passphrase ? 'enc' : 'plain'}`);
          writePrivate(file, await formatPrivateKeyFile(key, { format, passphrase, comment: 'written by tssh' }));
          jobs.push(
            (async () => {
              const out = await runOk(keygen, ['-y', '-P', passphrase ?? '', '-f', file]);
              const printed = publicLine(out);
              assert.deepEqual(printed.blob, key.publicKey.blob, `${type} ${format}`);
              if (format === 'openssh') assert.equal(printed.comment, 'written by tssh');
              if (passphrase !== undefined) {
                const wrong = await run(keygen, ['-y', '-P', 'wrong passphrase', '-f', file]);
                assert.notEqual(wrong.code, 0, `ssh-keygen must refuse ${file} with a wrong passphrase`);
              }
            })(),
          );
        }
      }
    }
    await Promise.all(jobs);
  });

  test('keys we write with every openssh-key-v1 cipher are read by ssh-keygen', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    const folder = scratchFolder('tssh-keygen-read-ciphers-');
    const key = (await testKeys()).get('rsa')!;
    await Promise.all(
      [...keyFileCiphers.keys()]
        .filter((c) => c !== 'none')
        .map(async (cipher) => {
          const file = join(folder, cipher);
          writePrivate(file, await formatPrivateKeyFile(key, { format: 'openssh', passphrase: KEYGEN_PASSPHRASE, cipher, rounds: 2 }));
          const printed = publicLine(await runOk(keygen, ['-y', '-P', KEYGEN_PASSPHRASE, '-f', file]));
          assert.deepEqual(printed.blob, key.publicKey.blob, cipher);
        }),
    );
  });
});
