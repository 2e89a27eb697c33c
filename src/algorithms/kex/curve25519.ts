/**
 * curve25519-sha256 and its pre-standard name curve25519-sha256@libssh.org (RFC 8731), plus the
 * X25519 primitive the post-quantum hybrid reuses.
 *
 * X25519 runs on node:crypto without any key-generation job and without exporting a key: Node 20
 * can deadlock when a key made by generateKeyPairSync is exported as JWK (see NODE-CRYPTO.md).
 * Instead a private key is 32 random bytes imported as a JWK (RFC 7748 §5 clamps any 32 bytes into
 * a valid scalar); OpenSSL computes the public value X25519(k, 9) while importing it, and we read it
 * back from the imported key's own JWK export (about 40 µs less per exchange than a second scalar
 * multiplication as a key agreement with the base point). The shared secret is a key agreement with
 * the peer's value imported as a JWK public key.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { KexError } from '../../errors.js';
import { encodeMpint } from '../../wire/writer.js';
import type { KexAlgorithm, KexClientExchange, KexServerResult } from '../types.js';

/** Length of an X25519 public value, private scalar and shared secret (RFC 7748 §5). */
export const X25519_LENGTH = 32;

/** The u-coordinate 9 of the Curve25519 base point (RFC 7748 §4.1), little-endian. */
const BASE_POINT_U: Buffer = Buffer.alloc(X25519_LENGTH);
BASE_POINT_U[0] = 9;
const BASE_POINT_B64 = BASE_POINT_U.toString('base64url');

/** An X25519 key pair: the private KeyObject and the 32-byte public value. */
export interface X25519KeyPair {
  readonly privateKey: KeyObject;
  readonly publicValue: Buffer;
}

/**
 * Make an X25519 key pair from a 32-byte scalar (random unless given: tests pass RFC 7748's).
 * Node's JWK import requires an `x` member for a private OKP key but derives the public key from
 * `d` (the `x` given is ignored), so any 32-byte value may stand in for it; the export then
 * carries the derived one.
 */
export function x25519KeyPair(scalar: Buffer = randomBytes(X25519_LENGTH)): X25519KeyPair {
  if (scalar.length !== X25519_LENGTH) throw new RangeError('an X25519 private key is 32 bytes');
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: scalar.toString('base64url'), x: BASE_POINT_B64 },
    format: 'jwk',
  });
  const publicValue = Buffer.from(privateKey.export({ format: 'jwk' }).x!, 'base64url');
  return { privateKey, publicValue };
}

/**
 * X25519(our scalar, the peer's value): the raw 32-byte shared secret. A peer value of the wrong
 * length (RFC 8731 §3) or one that makes the result all zero (a low-order point, RFC 7748 §6.1)
 * is a KexError.
 */
export function x25519SharedSecret(privateKey: KeyObject, peerValue: Buffer): Buffer {
  if (peerValue.length !== X25519_LENGTH) {
    throw new KexError(`invalid X25519 public value: ${peerValue.length} bytes, expected ${X25519_LENGTH}`);
  }
  let secret: Buffer;
  try {
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerValue.toString('base64url') }, format: 'jwk' });
    secret = diffieHellman({ privateKey, publicKey });
  } catch (cause) {
    // OpenSSL refuses an all-zero result itself (ERR_OSSL_FAILED_DURING_DERIVATION).
    throw new KexError('X25519 key agreement failed: the peer sent a low-order or invalid point', { cause });
  }
  // RFC 8731 §3 requires the all-zero check; do it here too rather than rely on OpenSSL alone.
  let accumulated = 0;
  for (const byte of secret) accumulated |= byte;
  if (accumulated === 0) throw new KexError('X25519 key agreement failed: the shared secret is all zero');
  return secret;
}

/** K for curve25519-sha256: the 32 bytes read as a big-endian unsigned integer, as an mpint (RFC 8731 §3.1). */
function encodeSharedSecret(secret: Buffer): Buffer {
  return encodeMpint(secret);
}

function curve25519(name: string): KexAlgorithm {
  return {
    name,
    hash: 'sha256',
    groupExchange: false,
    startClient(): KexClientExchange {
      const pair = x25519KeyPair();
      return {
        clientValue: pair.publicValue,
        finish: (serverValue) => encodeSharedSecret(x25519SharedSecret(pair.privateKey, serverValue)),
      };
    },
    respondServer(clientValue: Buffer): KexServerResult {
      if (clientValue.length !== X25519_LENGTH) {
        throw new KexError(`invalid X25519 public value: ${clientValue.length} bytes, expected ${X25519_LENGTH}`);
      }
      const pair = x25519KeyPair();
      return {
        serverValue: pair.publicValue,
        sharedSecret: encodeSharedSecret(x25519SharedSecret(pair.privateKey, clientValue)),
      };
    },
  };
}

/** RFC 8731: curve25519-sha256. */
export const curve25519Sha256: KexAlgorithm = curve25519('curve25519-sha256');
/** The same method under the name libssh and OpenSSH used before RFC 8731 (RFC 8731 §2). */
export const curve25519Sha256Libssh: KexAlgorithm = curve25519('curve25519-sha256@libssh.org');
