import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { KeyFormatError } from '../../src/errors.js';
import { decodePpk, encodePpk } from '../../src/keys/ppk.js';
import { formatPrivateKeyFile, INCORRECT_PASSPHRASE, parsePrivateKeyFile, PassphraseError } from '../../src/keys/private-key-file.js';
import { privateKeyFromKeyObject } from '../../src/keys/private-key.js';
import type { GeneratedKeyType } from '../../src/keys/private-key.js';
import { Reader } from '../../src/wire/reader.js';
import { assertSigns, KEY_TYPES, publicLine, run, runOk, scratchFolder, testKeys, writePrivate } from './key-file-helpers.js';

const PASSPHRASE = 'ppk pass phrase';
/** Few Argon2 passes where the cost is not what is tested (the default, 13, takes ~0.5 s in JavaScript). */
const QUICK = 2;

async function rejectsWith(promise: Promise<unknown>, message: RegExp | string): Promise<KeyFormatError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => (caught = error),
  );
  assert.ok(caught instanceof KeyFormatError, `expected a KeyFormatError, got ${String(caught)}`);
  if (typeof message === 'string') assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  return caught;
}

/** An Ed25519 key whose 32-byte private value ends in a zero byte (PuTTY then stores 31 bytes). */
function ed25519WithTrailingZero() {
  const seed = randomBytes(32);
  seed[31] = 0;
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return privateKeyFromKeyObject(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
}

describe('PuTTY .ppk files written and read by tssh', () => {
  for (const version of [3, 2] as const) {
    test(`v${version}: every key type, plain and encrypted, with a UTF-8 comment`, async () => {
      const keys = await testKeys();
      for (const type of KEY_TYPES) {
        const key = keys.get(type)!;
        for (const passphrase of [undefined, PASSPHRASE]) {
          const text = await formatPrivateKeyFile(key, { format: 'ppk', ppkVersion: version, passphrase, comment: 'héllo ✓', rounds: QUICK });
          assert.ok(text.startsWith(`PuTTY-User-Key-File-${version}: ${key.type}\nEncryption: ${passphrase ? 'aes256-cbc' : 'none'}\n`));
          const parsed = await parsePrivateKeyFile(Buffer.from(text, 'utf8'), { passphrase: passphrase ?? (() => assert.fail('not encrypted')) });
          assert.equal(parsed.format, 'ppk');
          assert.equal(parsed.encrypted, passphrase !== undefined);
          assert.equal(parsed.comment, 'héllo ✓');
          assert.deepEqual(parsed.key.publicKey.blob, key.publicKey.blob, `${type} v${version}`);
          assertSigns(parsed.key);
        }
      }
    });
  }

  test('v3 layout: Argon2id, 8192 KiB, 13 passes, parallelism 1, 16-byte salt, 64-column base64', async (t) => {
    const key = (await testKeys()).get('rsa')!;
    const text = await encodePpk(key, { passphrase: PASSPHRASE });
    const file = decodePpk(text);
    assert.equal(file.version, 3);
    assert.equal(file.argon2?.flavour, 'Argon2id');
    assert.equal(file.argon2?.memory, 8192);
    assert.equal(file.argon2?.passes, 13);
    assert.equal(file.argon2?.parallelism, 1);
    assert.equal(file.argon2?.salt.length, 16);
    assert.equal(file.privateBlob.length % 16, 0);
    assert.ok(text.split('\n').every((line) => line.length <= 64 || line.startsWith('Private-MAC: ')));
    const started = performance.now();
    await parsePrivateKeyFile(text, { passphrase: PASSPHRASE });
    t.diagnostic(`Argon2id 8192 KiB × 13 passes (JavaScript): ${(performance.now() - started).toFixed(0)} ms to read`);
  });

  test('Argon2i and Argon2d files are read too', async () => {
    const key = (await testKeys()).get('ed25519')!;
    for (const flavour of ['Argon2i', 'Argon2d'] as const) {
      const text = await encodePpk(key, { passphrase: PASSPHRASE, argon2: { flavour, passes: 1, memory: 64 } });
      assert.match(text, new RegExp(`^Key-Derivation: ${flavour}$`, 'm'));
      const parsed = await parsePrivateKeyFile(text, { passphrase: PASSPHRASE });
      assert.deepEqual(parsed.key.publicKey.blob, key.publicKey.blob);
    }
  });

  test('an Ed25519 private value ending in zero is stored in 31 bytes, as PuTTY does, and read back', async () => {
    const key = ed25519WithTrailingZero();
    const text = await encodePpk(key, { version: 3 });
    const reader = new Reader(decodePpk(text).privateBlob);
    assert.equal(reader.string().length, 31);
    const parsed = await parsePrivateKeyFile(text);
    assert.deepEqual(parsed.key.publicKey.blob, key.publicKey.blob);
  });

  test('wrong passphrase (v2 and v3): "incorrect passphrase supplied to decrypt private key"', async () => {
    const key = (await testKeys()).get('ecdsa-p256')!;
    for (const ppkVersion of [2, 3] as const) {
      const text = await formatPrivateKeyFile(key, { format: 'ppk', ppkVersion, passphrase: PASSPHRASE, rounds: QUICK });
      const error = await rejectsWith(parsePrivateKeyFile(text, { passphrase: 'not the passphrase' }), INCORRECT_PASSPHRASE);
      assert.ok(error instanceof PassphraseError && error.problem === 'incorrect');
    }
  });

  test('missing passphrase', async () => {
    const key = (await testKeys()).get('ecdsa-p256')!;
    const text = await formatPrivateKeyFile(key, { format: 'ppk', passphrase: PASSPHRASE, rounds: QUICK });
    const error = await rejectsWith(parsePrivateKeyFile(text), 'a passphrase is required: the private key is encrypted (PuTTY key file v3, aes256-cbc)');
    assert.ok(error instanceof PassphraseError && error.problem === 'missing');
  });

  test('an edited unencrypted file fails its MAC', async () => {
    const key = (await testKeys()).get('ed25519')!;
    const text = await formatPrivateKeyFile(key, { format: 'ppk', comment: 'original' });
    await rejectsWith(
      parsePrivateKeyFile(text.replace('Comment: original', 'Comment: edited')),
      'invalid format: the PuTTY key file MAC does not match (the file is damaged or was edited)',
    );
  });

  test('truncated files and version 1 files are refused with their reason', async () => {
    const key = (await testKeys()).get('rsa')!;
    const text = await formatPrivateKeyFile(key, { format: 'ppk' });
    const lines = text.split('\n');
    await rejectsWith(parsePrivateKeyFile(lines.slice(0, 5).join('\n')), /^invalid format: PuTTY key file is truncated in its Public-Lines$/);
    const macAt = lines.findIndex((line) => line.startsWith('Private-MAC'));
    await rejectsWith(parsePrivateKeyFile(lines.slice(0, macAt).join('\n')), 'invalid format: PuTTY key file ends before its "Private-MAC" line (truncated?)');
    await rejectsWith(
      parsePrivateKeyFile(text.replace('PuTTY-User-Key-File-3', 'PuTTY-User-Key-File-1')),
      /^unsupported PuTTY key file version "PuTTY-User-Key-File-1": tssh reads versions 2 and 3/,
    );
  });

  test('absurd Argon2 passes or memory are refused before the passphrase is asked for', async () => {
    const key = (await testKeys()).get('ed25519')!;
    const text = await formatPrivateKeyFile(key, { format: 'ppk', passphrase: PASSPHRASE, rounds: QUICK });
    const never = (): Promise<string> => assert.fail('the passphrase must not be asked for');
    await rejectsWith(
      parsePrivateKeyFile(text.replace(`Argon2-Passes: ${QUICK}`, 'Argon2-Passes: 4000000000'), { passphrase: never }),
      'PuTTY key asks for 4000000000 Argon2 passes, more than the limit of 1024; if you trust this file, raise maxKdfRounds',
    );
    await rejectsWith(
      parsePrivateKeyFile(text.replace('Argon2-Memory: 8192', 'Argon2-Memory: 4194304'), { passphrase: never }),
      'PuTTY key asks for 4194304 KiB of Argon2 memory, more than the limit of 262144 KiB; if you trust this file, raise maxArgon2Memory',
    );
    await rejectsWith(parsePrivateKeyFile(text, { passphrase: never, maxKdfRounds: 1 }), /asks for 2 Argon2 passes, more than the limit of 1;/);
  });
});

// ---- Interoperability with PuTTY's puttygen ---------------------------------------------------------

/**
 * puttygen from PATH. Like the OpenSSH peers (test/helpers/peers.ts), TSSH_HIDE_PEERS=1 hides it
 * and TSSH_PEER_PUTTYGEN names another one ("none": absent).
 */
function findPuttygen(): string | undefined {
  if (process.env.TSSH_HIDE_PEERS === '1') return undefined;
  const override = process.env.TSSH_PEER_PUTTYGEN;
  if (override === 'none') return undefined;
  if (override) return spawnSync(override, ['--version']).status === 0 ? override : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat('/usr/bin')) {
    const path = join(dir, 'puttygen');
    if (spawnSync(path, ['--version'], { encoding: 'utf8' }).status === 0) return path;
  }
  return undefined;
}

const PUTTYGEN = findPuttygen();

/** puttygen's path; or undefined after skipping the test with a message naming it (it is optional even in CI). */
function needPuttygen(t: TestContext): string | undefined {
  if (PUTTYGEN === undefined) t.skip('needs puttygen (Debian package putty-tools)');
  return PUTTYGEN;
}

const PUTTYGEN_TYPES: Record<GeneratedKeyType, string[]> = {
  ed25519: ['-t', 'ed25519'],
  'ecdsa-p256': ['-t', 'ecdsa', '-b', '256'],
  'ecdsa-p384': ['-t', 'ecdsa', '-b', '384'],
  'ecdsa-p521': ['-t', 'ecdsa', '-b', '521'],
  rsa: ['-t', 'rsa', '-b', '2048'],
};

describe('puttygen interop', () => {
  test('keys puttygen writes (every type; v3 and v2; plain and encrypted) are read', async (t) => {
    const puttygen = needPuttygen(t);
    if (puttygen === undefined) return;
    const folder = scratchFolder('tssh-puttygen-write-');
    const passFile = join(folder, 'pass');
    const emptyFile = join(folder, 'empty');
    writeFileSync(passFile, PASSPHRASE);
    writeFileSync(emptyFile, '');
    const cases = KEY_TYPES.flatMap((type) =>
      [
        { version: 3, encrypted: true, params: `version=3,passes=${QUICK}` },
        { version: 3, encrypted: false, params: 'version=3' },
        { version: 2, encrypted: true, params: 'version=2' },
        { version: 2, encrypted: false, params: 'version=2' },
      ].map((c) => ({ type, ...c })),
    );
    // One file with puttygen's own timed Argon2 cost (passes chosen to take ~100 ms in C).
    cases.push({ type: 'ed25519', version: 3, encrypted: true, params: 'version=3' });
    await Promise.all(
      cases.map(async (c, index) => {
        const file = join(folder, `${index}.ppk`);
        const comment = `puttygen ${c.type} v${c.version}`;
        const args = ['-q', ...PUTTYGEN_TYPES[c.type], '-C', comment, '--ppk-param', c.params];
        await runOk(puttygen, [...args, '--new-passphrase', c.encrypted ? passFile : emptyFile, '-o', file]);
        const expected = publicLine(await runOk(puttygen, [file, '-L']));
        const parsed = await parsePrivateKeyFile(readFileSync(file), { passphrase: PASSPHRASE });
        const label = `${c.type} ${c.params}${c.encrypted ? ' encrypted' : ''}`;
        assert.deepEqual(parsed.key.publicKey.blob, expected.blob, label);
        assert.equal(parsed.comment, comment, label);
        assert.equal(parsed.encrypted, c.encrypted, label);
        assert.equal(decodePpk(readFileSync(file)).version, c.version, label);
        assertSigns(parsed.key);
      }),
    );
  });

  test('keys tssh writes are decrypted by puttygen (converted to OpenSSH and compared), and a wrong passphrase fails there', async (t) => {
    const puttygen = needPuttygen(t);
    if (puttygen === undefined) return;
    const folder = scratchFolder('tssh-puttygen-read-');
    const passFile = join(folder, 'pass');
    const wrongFile = join(folder, 'wrong');
    const emptyFile = join(folder, 'empty');
    writeFileSync(passFile, PASSPHRASE);
    writeFileSync(wrongFile, 'something else');
    writeFileSync(emptyFile, '');
    const keys = await testKeys();
    const all = [...KEY_TYPES.map((type) => ({ name: type as string, key: keys.get(type)! })), { name: 'ed25519-trailing-zero', key: ed25519WithTrailingZero() }];
    const jobs: Promise<void>[] = [];
    for (const { name, key } of all) {
      for (const ppkVersion of [3, 2] as const) {
        for (const passphrase of [undefined, PASSPHRASE]) {
          const file = join(folder, `${name}-v${ppkVersion}-${passphrase ? 'enc' : 'plain'}.ppk`);
          writePrivate(file, await formatPrivateKeyFile(key, { format: 'ppk', ppkVersion, passphrase, comment: `tssh ${name}`, rounds: QUICK }));
          jobs.push(
            (async () => {
              // Converting to an OpenSSH private key makes puttygen verify the MAC and decrypt.
              const out = `${file}.openssh`;
              const old = passphrase ? passFile : emptyFile;
              await runOk(puttygen, [file, '--old-passphrase', old, '--new-passphrase', emptyFile, '-O', 'private-openssh-new', '-o', out]);
              const converted = await parsePrivateKeyFile(readFileSync(out));
              assert.deepEqual(converted.key.publicKey.blob, key.publicKey.blob, `${name} v${ppkVersion}`);
              assert.equal(converted.comment, `tssh ${name}`);
              if (name === 'rsa') {
                // puttygen's dump of our file names each RSA value; iqmp must be q⁻¹ mod p, as PuTTY defines it.
                const dump = await runOk(puttygen, [file, '--old-passphrase', old, '-O', 'text']);
                const values = new Map(dump.trim().split('\n').map((line) => line.split('=') as [string, string]));
                const jwk = key.keyObject.export({ format: 'jwk' }) as { [name: string]: string };
                const hex = (member: string): string => BigInt('0x' + Buffer.from(jwk[member]!, 'base64url').toString('hex')).toString(16);
                assert.equal(values.get('private_exponent'), `0x${hex('d')}`);
                assert.equal(values.get('private_p'), `0x${hex('p')}`);
                assert.equal(values.get('private_q'), `0x${hex('q')}`);
                assert.equal(values.get('private_inverse_q_mod_p'), `0x${hex('qi')}`);
              }
              if (passphrase) {
                const wrong = await run(puttygen, [file, '--old-passphrase', wrongFile, '--new-passphrase', emptyFile, '-O', 'private-openssh-new', '-o', `${out}.wrong`]);
                assert.notEqual(wrong.code, 0, `puttygen must refuse ${file} with a wrong passphrase`);
              }
            })(),
          );
        }
      }
    }
    await Promise.all(jobs);
  });

  test('key types tssh does not handle (DSA, Ed448) are named', async (t) => {
    const puttygen = needPuttygen(t);
    if (puttygen === undefined) return;
    const folder = scratchFolder('tssh-puttygen-types-');
    const emptyFile = join(folder, 'empty');
    writeFileSync(emptyFile, '');
    for (const [args, type] of [
      [['-t', 'dsa', '-b', '1024'], 'ssh-dss'],
      [['-t', 'ed448'], 'ssh-ed448'],
    ] as const) {
      const file = join(folder, `${type}.ppk`);
      await runOk(puttygen, ['-q', ...args, '--new-passphrase', emptyFile, '-o', file]);
      await rejectsWith(parsePrivateKeyFile(readFileSync(file)), new RegExp(`^unsupported key type "${type}" in PuTTY key file`));
    }
  });
});
