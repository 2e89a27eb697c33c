import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bubbleBabble,
  bubbleBabbleEncode,
  describeKey,
  fingerprint,
  fingerprintLine,
  randomArt,
} from '../../src/keys/fingerprint.js';
import type { FingerprintHash } from '../../src/keys/fingerprint.js';
import { parsePublicKeyBlob } from '../../src/keys/public-key.js';
import { havePeers, peerPath } from '../helpers/peers.js';
import { FIXTURES, fixtureText, KEY_TYPES, publicLine, runOk, scratchFolder, testKeys } from './key-file-helpers.js';

/** The .pub files among OpenSSH's regress keys: plain keys (with .fp and .fp.bb) and certificates (with .fp). */
const PLAIN = ['rsa_1', 'rsa_2', 'ecdsa_1', 'ecdsa_2', 'ed25519_1', 'ed25519_2'];
const CERTS = ['rsa_1-cert', 'ecdsa_1-cert', 'ed25519_1-cert'];

describe('fingerprints of OpenSSH regress keys', () => {
  for (const name of PLAIN) {
    test(`${name}: SHA256 equals ${name}.fp, bubblebabble equals ${name}.fp.bb`, () => {
      const { blob } = publicLine(fixtureText(`${name}.pub`));
      assert.equal(fingerprint(blob), fixtureText(`${name}.fp`).trim());
      assert.equal(fingerprint(parsePublicKeyBlob(blob)), fixtureText(`${name}.fp`).trim(), 'same from an SshPublicKey');
      assert.equal(bubbleBabble(blob), fixtureText(`${name}.fp.bb`).trim());
    });
  }
  for (const name of CERTS) {
    test(`${name}: a certificate's fingerprint is its key's (${name}.fp)`, () => {
      const { blob } = publicLine(fixtureText(`${name}.pub`));
      assert.equal(fingerprint(blob), fixtureText(`${name}.fp`).trim());
      assert.equal(bubbleBabble(blob), fixtureText(`${name.replace('-cert', '')}.fp.bb`).trim());
    });
  }
});

describe('formats', () => {
  test('SHA256: unpadded base64 of the digest; MD5: lowercase hex pairs joined by colons', () => {
    const { blob } = publicLine(fixtureText('ed25519_1.pub'));
    const sha = createHash('sha256').update(blob).digest('base64');
    assert.equal(fingerprint(blob), `SHA256:${sha.replace(/=+$/, '')}`);
    assert.match(fingerprint(blob, 'md5'), /^MD5:([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    assert.equal(fingerprint(blob, 'md5').slice(4).replace(/:/g, ''), createHash('md5').update(blob).digest('hex'));
  });

  test('Bubble Babble: the test vectors of the encoding\'s specification', () => {
    assert.equal(bubbleBabbleEncode(Buffer.alloc(0)), 'xexax');
    assert.equal(bubbleBabbleEncode(Buffer.from('1234567890')), 'xesef-disof-gytuf-katof-movif-baxux');
    assert.equal(bubbleBabbleEncode(Buffer.from('Pineapple')), 'xigak-nyryk-humil-bosek-sonax');
  });

  test('key descriptions: type label and size as ssh-keygen names them', () => {
    assert.deepEqual(describeKey(publicLine(fixtureText('rsa_1.pub')).blob), { label: 'RSA', bits: 1024 });
    assert.deepEqual(describeKey(publicLine(fixtureText('ecdsa_1.pub')).blob), { label: 'ECDSA', bits: 256 });
    assert.deepEqual(describeKey(publicLine(fixtureText('ed25519_1.pub')).blob), { label: 'ED25519', bits: 256 });
    assert.deepEqual(describeKey(publicLine(fixtureText('rsa_1-cert.pub')).blob), { label: 'RSA-CERT', bits: 1024 });
  });

  test('randomart: 17×9 field in an 11-line box; a title too long for "[TYPE BITS]" falls back to "[TYPE]"', () => {
    const { blob } = publicLine(fixtureText('ed25519_1.pub'));
    const lines = randomArt(blob).split('\n');
    assert.equal(lines.length, 11);
    assert.equal(lines[0], '+--[ED25519 256]--+');
    assert.equal(lines[10], '+----[SHA256]-----+');
    assert.ok(lines.slice(1, 10).every((line) => /^\|.{17}\|$/.test(line)));
    const field = lines.slice(1, 10).join('');
    assert.equal(field.match(/S/g)?.length, 1, 'one start mark');
    assert.equal(field.match(/E/g)?.length, 1, 'one end mark');
    assert.equal(lines[5]![9], 'S', 'the start is the middle cell');
    assert.equal(randomArt(blob, { typeLabel: 'ED25519-CERT' }).split('\n')[0], '+-[ED25519-CERT]--+');
    assert.equal(randomArt(blob, { typeLabel: 'RSA', bits: 16384, hash: 'md5' }).split('\n')[10], '+------[MD5]------+');
  });
});

describe('ssh-keygen agreement', () => {
  /** ssh-keygen -l / -lv / -B outputs for one .pub file, compared with ours. */
  async function compare(keygen: string, file: string): Promise<void> {
    const { blob, comment } = publicLine(readFileSync(file, 'utf8'));
    for (const hash of ['sha256', 'md5'] as FingerprintHash[]) {
      const line = (await runOk(keygen, ['-l', '-E', hash, '-f', file])).trimEnd();
      assert.equal(fingerprintLine(blob, comment, hash), line, `${file} -l -E ${hash}`);
      const [first, ...art] = (await runOk(keygen, ['-lv', '-E', hash, '-f', file])).trimEnd().split('\n');
      assert.equal(first, line);
      assert.equal(randomArt(blob, { hash }), art.join('\n'), `${file} -lv -E ${hash}`);
    }
    const babble = (await runOk(keygen, ['-B', '-f', file])).trim().split(' ')[1];
    assert.equal(bubbleBabble(blob), babble, `${file} -B`);
  }

  test('regress keys and certificates: -l, -E md5, -lv (randomart) and -B are byte-equal', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    for (const name of [...PLAIN, ...CERTS]) await compare(keygen, join(FIXTURES, `${name}.pub`));
  });

  test('fresh keys of every type (and comments with spaces or none): byte-equal too', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    const folder = scratchFolder('tssh-fingerprint-');
    const keys = await testKeys();
    for (const type of KEY_TYPES) {
      const key = keys.get(type)!;
      for (const comment of ['', `a ${type} key`]) {
        const file = join(folder, `${type}-${comment === '' ? 'bare' : 'commented'}.pub`);
        writeFileSync(file, `${key.type} ${key.publicKey.blob.toString('base64')}${comment ? ` ${comment}` : ''}\n`);
        await compare(keygen, file);
      }
    }
  });
});

