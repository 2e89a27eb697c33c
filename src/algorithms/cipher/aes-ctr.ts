/**
 * AES in SDCTR mode (RFC 4344 §4): aes128-ctr, aes192-ctr, aes256-ctr. The 16-byte IV from key
 * derivation is the initial counter, a 128-bit big-endian integer incremented once per block,
 * continuing from one packet to the next; OpenSSL's CTR mode counts the same way, so one
 * node:crypto cipher object serves a whole key epoch. These ciphers carry no integrity of their
 * own: each is composed with the negotiated MAC, encrypt-and-MAC or encrypt-then-MAC
 * (./stream-with-mac.ts).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { CipherAlgorithm, MacKeyed } from '../types.js';
import { takeKeyMaterial } from './key-material.js';
import { createStreamOpener, createStreamSealer } from './stream-with-mac.js';

const AES_BLOCK = 16;

/**
 * RFC 4344 §3.2: with an L-bit block cipher (L >= 128) rekey before 2^(L/4) blocks. For AES,
 * L = 128: 2^32 blocks of 16 bytes = 2^36 bytes (64 GiB).
 */
export const AES_REKEY_BYTES = 2 ** (128 / 4) * AES_BLOCK;

function requireMac(name: string, mac: MacKeyed | undefined): MacKeyed {
  if (mac === undefined) throw new TypeError(`${name} is not an AEAD cipher: a MAC is required`);
  return mac;
}

function aesCtr(bits: 128 | 192 | 256): CipherAlgorithm {
  const name = `aes${bits}-ctr`;
  const openssl = `aes-${bits}-ctr`;
  const keyLength = bits / 8;
  return Object.freeze({
    name,
    keyLength,
    ivLength: AES_BLOCK,
    blockSize: AES_BLOCK,
    aead: false,
    rekeyBytes: AES_REKEY_BYTES,
    createSealer(key: Buffer, iv: Buffer, mac?: MacKeyed) {
      const cipher = createCipheriv(openssl, takeKeyMaterial(name, 'key', key, keyLength), takeKeyMaterial(name, 'IV', iv, AES_BLOCK));
      return createStreamSealer(cipher, AES_BLOCK, requireMac(name, mac));
    },
    createOpener(key: Buffer, iv: Buffer, mac?: MacKeyed) {
      const decipher = createDecipheriv(openssl, takeKeyMaterial(name, 'key', key, keyLength), takeKeyMaterial(name, 'IV', iv, AES_BLOCK));
      return createStreamOpener(decipher, AES_BLOCK, requireMac(name, mac));
    },
  });
}

export const aes128Ctr: CipherAlgorithm = aesCtr(128);
export const aes192Ctr: CipherAlgorithm = aesCtr(192);
export const aes256Ctr: CipherAlgorithm = aesCtr(256);
