/**
 * The ciphers an openssh-key-v1 file's private section can be encrypted with: the ones OpenSSH's
 * cipher.c offers (`ssh-keygen -Z`), with its key, IV, block and tag lengths. PROTOCOL.key §4:
 * the KDF yields key || IV (and nothing else: no MAC key), and the whole private section is
 * encrypted in one call with sequence number 0 and no additional data. AEAD ciphers append their
 * tag after the section's `string`, outside its length (sshkey.c, private2_decrypt).
 */
import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto';
import type { Cipher } from 'node:crypto';
import { poly1305 } from '@noble/ciphers/_poly1305.js';

export interface KeyFileCipher {
  readonly name: string;
  readonly keyLength: number;
  readonly ivLength: number;
  /** The private section is padded to a multiple of this (8 for "none", as ssh-keygen does). */
  readonly blockSize: number;
  /** Bytes of AEAD tag after the encrypted section (0 for CTR/CBC). */
  readonly tagLength: number;
  encrypt(key: Buffer, iv: Buffer, plaintext: Buffer): { ciphertext: Buffer; tag: Buffer };
  /** Undefined when the tag does not verify (for an encrypted key file: a wrong passphrase). */
  decrypt(key: Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer): Buffer | undefined;
}

/** CTR and CBC: no tag; CBC without padding because the section is already block-aligned. */
function plainCipher(name: string, nodeName: string, keyLength: number, ivLength: number, blockSize: number): KeyFileCipher {
  return {
    name,
    keyLength,
    ivLength,
    blockSize,
    tagLength: 0,
    encrypt(key, iv, plaintext) {
      const cipher = createCipheriv(nodeName, key, iv).setAutoPadding(false);
      return { ciphertext: Buffer.concat([cipher.update(plaintext), cipher.final()]), tag: Buffer.alloc(0) };
    },
    decrypt(key, iv, ciphertext) {
      const decipher = createDecipheriv(nodeName, key, iv).setAutoPadding(false);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    },
  };
}

/**
 * aes*-gcm@openssh.com: a 12-byte IV from the KDF used as the whole GCM nonce (the first invocation
 * counter value, RFC 5647 §7.1), no AAD, 16-byte tag.
 */
function gcmCipher(name: string, nodeName: 'aes-128-gcm' | 'aes-256-gcm', keyLength: number): KeyFileCipher {
  return {
    name,
    keyLength,
    ivLength: 12,
    blockSize: 16,
    tagLength: 16,
    encrypt(key, iv, plaintext) {
      const cipher = createCipheriv(nodeName, key, iv);
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return { ciphertext, tag: cipher.getAuthTag() };
    },
    decrypt(key, iv, ciphertext, tag) {
      const decipher = createDecipheriv(nodeName, key, iv);
      decipher.setAuthTag(tag);
      const plaintext = decipher.update(ciphertext);
      try {
        return Buffer.concat([plaintext, decipher.final()]);
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * chacha20-poly1305@openssh.com at sequence number 0 with no AAD (PROTOCOL.chacha20poly1305): the
 * 64 derived key bytes are the main key (first 32, used here) and the length key (unused, as there
 * is no length to encrypt). Poly1305 key = main-key keystream block 0; data from block 1; the tag
 * covers the ciphertext. node's `chacha20` with IV = 64-bit LE counter || 64-bit nonce is the
 * original ChaCha20 this construction uses (NODE-CRYPTO.md).
 */
const chachaPoly: KeyFileCipher = {
  name: 'chacha20-poly1305@openssh.com',
  keyLength: 64,
  ivLength: 0,
  blockSize: 8,
  tagLength: 16,
  encrypt(key, _iv, plaintext) {
    const { polyKey, stream } = chachaMainStream(key);
    const ciphertext = stream.update(plaintext);
    return { ciphertext, tag: Buffer.from(poly1305(ciphertext, polyKey)) };
  },
  decrypt(key, _iv, ciphertext, tag) {
    const { polyKey, stream } = chachaMainStream(key);
    const expected = Buffer.from(poly1305(ciphertext, polyKey));
    if (tag.length !== expected.length || !timingSafeEqual(tag, expected)) return undefined;
    return stream.update(ciphertext);
  },
};

/** The main key's stream at nonce 0 (sequence number 0), advanced past block 0, which became the Poly1305 key. */
function chachaMainStream(key: Buffer): { polyKey: Buffer; stream: Cipher } {
  const stream = createCipheriv('chacha20', key.subarray(0, 32), Buffer.alloc(16));
  const polyKey = stream.update(Buffer.alloc(64)).subarray(0, 32);
  return { polyKey, stream };
}

const none: KeyFileCipher = {
  name: 'none',
  keyLength: 0,
  ivLength: 0,
  blockSize: 8,
  tagLength: 0,
  encrypt: (_key, _iv, plaintext) => ({ ciphertext: Buffer.from(plaintext), tag: Buffer.alloc(0) }),
  decrypt: (_key, _iv, ciphertext) => Buffer.from(ciphertext),
};

export const keyFileCiphers: ReadonlyMap<string, KeyFileCipher> = new Map(
  [
    none,
    plainCipher('aes128-ctr', 'aes-128-ctr', 16, 16, 16),
    plainCipher('aes192-ctr', 'aes-192-ctr', 24, 16, 16),
    plainCipher('aes256-ctr', 'aes-256-ctr', 32, 16, 16),
    plainCipher('aes128-cbc', 'aes-128-cbc', 16, 16, 16),
    plainCipher('aes192-cbc', 'aes-192-cbc', 24, 16, 16),
    plainCipher('aes256-cbc', 'aes-256-cbc', 32, 16, 16),
    plainCipher('3des-cbc', 'des-ede3-cbc', 24, 8, 8),
    gcmCipher('aes128-gcm@openssh.com', 'aes-128-gcm', 16),
    gcmCipher('aes256-gcm@openssh.com', 'aes-256-gcm', 32),
    chachaPoly,
  ].map((cipher) => [cipher.name, cipher]),
);
