/**
 * Private keys as SSH signing keys: wrapping a node:crypto KeyObject, and generating new ones.
 *
 * Generation uses the asynchronous `crypto.generateKeyPair` only: in Node 20,
 * `generateKeyPairSync` followed by a JWK export (which publicKeyFromKeyObject does) can deadlock
 * the process (NODE-CRYPTO.md, trap 1).
 */
import { createPublicKey, generateKeyPair } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { KeyFormatError } from '../errors.js';
import type { SshPrivateKey } from '../algorithms/types.js';
import { publicKeyFromKeyObject } from './public-key.js';

/** Key types generatePrivateKey makes. */
export type GeneratedKeyType = 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-p521' | 'rsa';

/** RSA size when none is given: what ssh-keygen uses (3072 bits, ~128-bit strength per NIST SP 800-57). */
export const RSA_DEFAULT_BITS = 3072;
/** Smallest RSA key we generate (NIST SP 800-131A: 2048 bits). Older keys can still be read down to 1024. */
export const RSA_GENERATE_MIN_BITS = 2048;
const RSA_GENERATE_MAX_BITS = 16384;

/**
 * An SSH private key for a node:crypto private KeyObject (Ed25519, ECDSA P-256/384/521, RSA).
 * Throws KeyFormatError for any other kind of key.
 */
export function privateKeyFromKeyObject(key: KeyObject): SshPrivateKey {
  if (key.type !== 'private') throw new KeyFormatError(`expected a private key, got a ${key.type} key`);
  const publicKey = publicKeyFromKeyObject(createPublicKey(key));
  return { type: publicKey.type, publicKey, keyObject: key };
}

interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

function settle(resolve: (pair: KeyPair) => void, reject: (error: Error) => void) {
  return (error: Error | null, publicKey: KeyObject, privateKey: KeyObject): void => {
    if (error) reject(error);
    else resolve({ publicKey, privateKey });
  };
}

function generate(type: GeneratedKeyType, bits: number): Promise<KeyPair> {
  return new Promise<KeyPair>((resolve, reject) => {
    const done = settle(resolve, reject);
    switch (type) {
      case 'ed25519':
        generateKeyPair('ed25519', {}, done);
        break;
      case 'ecdsa-p256':
        generateKeyPair('ec', { namedCurve: 'prime256v1' }, done);
        break;
      case 'ecdsa-p384':
        generateKeyPair('ec', { namedCurve: 'secp384r1' }, done);
        break;
      case 'ecdsa-p521':
        generateKeyPair('ec', { namedCurve: 'secp521r1' }, done);
        break;
      case 'rsa':
        generateKeyPair('rsa', { modulusLength: bits, publicExponent: 65537 }, done);
        break;
      default:
        reject(new RangeError(`unknown key type ${String(type)}`));
    }
  });
}

/**
 * Generate a new private key. `bits` applies to RSA only: default 3072, at least 2048.
 */
export async function generatePrivateKey(type: GeneratedKeyType, bits: number = RSA_DEFAULT_BITS): Promise<SshPrivateKey> {
  if (type === 'rsa' && (!Number.isInteger(bits) || bits < RSA_GENERATE_MIN_BITS || bits > RSA_GENERATE_MAX_BITS)) {
    throw new RangeError(`RSA key size must be an integer from ${RSA_GENERATE_MIN_BITS} to ${RSA_GENERATE_MAX_BITS} bits, got ${bits}`);
  }
  const pair = await generate(type, bits);
  const publicKey = publicKeyFromKeyObject(pair.publicKey);
  return { type: publicKey.type, publicKey, keyObject: pair.privateKey };
}
