/**
 * mlkem768x25519-sha256: the ML-KEM-768 + X25519 post-quantum/traditional hybrid
 * (draft-ietf-sshm-mlkem-hybrid-kex-10 §2.3.3). ML-KEM is @noble/post-quantum's pure-JS FIPS 203
 * implementation (node:crypto has none in Node 20), loaded when the method is negotiated (`prepare`:
 * with @noble/curves, which it pulls in, about 20 ms of a program's start that most connections,
 * to servers older than OpenSSH 9.9, never need); X25519 is node:crypto, as in curve25519.ts.
 *
 *   C_INIT  = C_PK2 || C_PK1  = ML-KEM-768 encapsulation key (1184) || X25519 public (32)   (§2.1)
 *   S_REPLY = S_CT2 || S_PK1  = ML-KEM-768 ciphertext (1088)        || X25519 public (32)   (§2.1)
 *   K       = SHA-256(K_PQ || K_CL), encoded as a `string`, not an mpint                     (§2.4, §2.5)
 */
import { createHash } from 'node:crypto';
import { KexError } from '../../errors.js';
import { encodeString } from '../../wire/writer.js';
import type { KexAlgorithm, KexClientExchange, KexServerResult } from '../types.js';
import { X25519_LENGTH, x25519KeyPair, x25519SharedSecret } from './curve25519.js';

/** FIPS 203 Table 3, ML-KEM-768: encapsulation key and ciphertext sizes. */
export const MLKEM768_PUBLIC_KEY_LENGTH = 1184;
export const MLKEM768_CIPHERTEXT_LENGTH = 1088;
export const C_INIT_LENGTH = MLKEM768_PUBLIC_KEY_LENGTH + X25519_LENGTH;
export const S_REPLY_LENGTH = MLKEM768_CIPHERTEXT_LENGTH + X25519_LENGTH;

type MlKem768 = (typeof import('@noble/post-quantum/ml-kem.js'))['ml_kem768'];
let loadedKem: MlKem768 | undefined;
let loadingKem: Promise<void> | undefined;

function kem(): MlKem768 {
  if (!loadedKem) throw new KexError('ML-KEM-768 used before mlkem768x25519Sha256.prepare() finished');
  return loadedKem;
}

/** A plain Uint8Array view of a Buffer's bytes (no copy), the type @noble documents. */
function view(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

/**
 * K = HASH(K_PQ || K_CL) as a string (§2.4, §2.5). K_CL is the X25519 output as the fixed 32-byte
 * string it already is (the standalone method's mpint re-encoded at fixed length is those same bytes).
 */
function combine(kPq: Uint8Array, kCl: Buffer): Buffer {
  return encodeString(createHash('sha256').update(kPq).update(kCl).digest());
}

export const mlkem768x25519Sha256: KexAlgorithm = {
  name: 'mlkem768x25519-sha256',
  hash: 'sha256',
  groupExchange: false,

  prepare(): Promise<void> | undefined {
    if (loadedKem) return undefined;
    loadingKem ??= import('@noble/post-quantum/ml-kem.js').then(
      (module) => {
        loadedKem = module.ml_kem768;
      },
      (error: unknown) => {
        loadingKem = undefined; // a later exchange may try again
        throw new KexError('could not load ML-KEM-768', { cause: error });
      },
    );
    return loadingKem;
  },

  startClient(): KexClientExchange {
    const mlkem = kem();
    const keys = mlkem.keygen();
    const x25519 = x25519KeyPair();
    const clientValue = Buffer.concat([keys.publicKey, x25519.publicValue]);
    return {
      clientValue,
      finish(serverValue: Buffer): Buffer {
        // §2.1: check S_REPLY's length is exactly ciphertext + X25519 key before decapsulating.
        if (serverValue.length !== S_REPLY_LENGTH) {
          throw new KexError(`invalid mlkem768x25519 S_REPLY: ${serverValue.length} bytes, expected ${S_REPLY_LENGTH}`);
        }
        const cipherText = view(serverValue.subarray(0, MLKEM768_CIPHERTEXT_LENGTH));
        const kCl = x25519SharedSecret(x25519.privateKey, serverValue.subarray(MLKEM768_CIPHERTEXT_LENGTH));
        let kPq: Uint8Array;
        try {
          // ML-KEM decapsulation never fails on a well-sized ciphertext (implicit rejection, FIPS 203 §6.3).
          kPq = mlkem.decapsulate(cipherText, keys.secretKey);
        } catch (cause) {
          throw new KexError('ML-KEM-768 decapsulation failed', { cause });
        }
        return combine(kPq, kCl);
      },
    };
  },

  respondServer(clientValue: Buffer): KexServerResult {
    const mlkem = kem();
    // §2.1: check C_INIT's length is exactly encapsulation key + X25519 key before encapsulating.
    if (clientValue.length !== C_INIT_LENGTH) {
      throw new KexError(`invalid mlkem768x25519 C_INIT: ${clientValue.length} bytes, expected ${C_INIT_LENGTH}`);
    }
    const encapsulationKey = view(clientValue.subarray(0, MLKEM768_PUBLIC_KEY_LENGTH));
    const x25519 = x25519KeyPair();
    const kCl = x25519SharedSecret(x25519.privateKey, clientValue.subarray(MLKEM768_PUBLIC_KEY_LENGTH));
    let encapsulated: { cipherText: Uint8Array; sharedSecret: Uint8Array };
    try {
      // @noble performs FIPS 203 §7.2's encapsulation key modulus check, which §2.1 requires.
      encapsulated = mlkem.encapsulate(encapsulationKey);
    } catch (cause) {
      throw new KexError('invalid ML-KEM-768 encapsulation key', { cause });
    }
    return {
      serverValue: Buffer.concat([encapsulated.cipherText, x25519.publicValue]),
      sharedSecret: combine(encapsulated.sharedSecret, kCl),
    };
  },
};
