/**
 * The WebAssembly Poly1305 (src/algorithms/cipher/chacha20-poly1305.c, compiled into
 * chacha20-poly1305-wasm.ts; its ChaCha20 is tested with the cipher in cipher.test.ts):
 * RFC 8439's test vectors (Appendix A.3 holds the edge cases of the reduction modulo 2^130 - 5),
 * agreement with @noble/ciphers' audited implementation on many messages, and a committed module
 * that is what its source compiles to.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { poly1305, poly1305Js, poly1305Parts, poly1305Implementation } from '../../src/algorithms/cipher/poly1305.js';
import { CHACHA20_POLY1305_SOURCE_SHA256 } from '../../src/algorithms/cipher/chacha20-poly1305-wasm.js';
import { havePeers, peerPath } from '../helpers/peers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Vector {
  readonly vector: number;
  readonly key: string;
  readonly message: string;
  readonly tag: string;
}
const { vectors } = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/rfc8439-poly1305.json'), 'utf8')) as { vectors: Vector[] };

describe('Poly1305 in WebAssembly', () => {
  test('is the implementation in use', () => {
    assert.equal(poly1305Implementation(), process.env.TSSH_WASM === '0' ? 'js' : 'wasm');
  });

  test("RFC 8439 Appendix A.3's eleven test vectors, in both implementations", () => {
    assert.equal(vectors.length, 11);
    for (const v of vectors) {
      const key = Buffer.from(v.key, 'hex');
      const message = Buffer.from(v.message, 'hex');
      assert.equal(poly1305(message, key).toString('hex'), v.tag, `vector #${v.vector}`);
      assert.equal(poly1305Js(message, key).toString('hex'), v.tag, `vector #${v.vector} (@noble)`);
    }
  });

  test('agrees with @noble/ciphers on every length to 2 KiB, on long messages and on all-ones inputs', () => {
    const check = (message: Buffer, key: Buffer, what: string): void => {
      assert.equal(poly1305(message, key).toString('hex'), poly1305Js(message, key).toString('hex'), what);
    };
    for (let length = 0; length <= 2048; length++) check(randomBytes(length), randomBytes(32), `length ${length}`);
    for (const length of [32768, 32788, 35000, 65536 + 7, 256 * 1024 + 64]) check(randomBytes(length), randomBytes(32), `length ${length}`);
    // All ones: the largest limbs and carries the reduction has to handle.
    for (const length of [16, 17, 31, 32, 33, 64, 1000]) {
      check(Buffer.alloc(length, 0xff), Buffer.alloc(32, 0xff), `all ones, length ${length}`);
      check(Buffer.alloc(length, 0xff), Buffer.concat([Buffer.alloc(16, 0xff), Buffer.alloc(16)]), `all-ones r, zero s, length ${length}`);
    }
  });

  test('a message given in parts gets the tag of the whole; one longer than the module holds falls back to @noble', () => {
    for (let i = 0; i < 200; i++) {
      const message = randomBytes(1 + Math.floor(Math.random() * 40000));
      const cut = Math.floor(Math.random() * message.length);
      const key = randomBytes(32);
      assert.deepEqual(poly1305Parts([message.subarray(0, cut), message.subarray(cut)], key), poly1305Js(message, key));
    }
    const huge = randomBytes(256 * 1024 + 65);
    const key = randomBytes(32);
    assert.deepEqual(poly1305Parts([huge.subarray(0, 4), huge.subarray(4)], key), poly1305Js(huge, key));
  });

  test('the committed module records the hash of chacha20-poly1305.c as it is', () => {
    const source = readFileSync(join(ROOT, 'src/algorithms/cipher/chacha20-poly1305.c'));
    assert.equal(
      createHash('sha256').update(source).digest('hex'),
      CHACHA20_POLY1305_SOURCE_SHA256,
      'chacha20-poly1305.c changed without rebuilding: run node scripts/build-wasm.mjs',
    );
  });

  test('compiling chacha20-poly1305.c again gives the committed module, byte for byte', (t) => {
    if (!havePeers(t, 'clang')) return;
    const result = spawnSync(process.execPath, [join(ROOT, 'scripts/build-wasm.mjs'), '--check'], {
      env: { ...process.env, CLANG: peerPath('clang') },
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr + result.stdout);
  });
});
