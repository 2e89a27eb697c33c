/**
 * Finite-field Diffie-Hellman key exchange: diffie-hellman-group{1,14}-sha1 (RFC 4253 §8),
 * diffie-hellman-group14-sha256 and -group16/18-sha512 (RFC 8268), and
 * diffie-hellman-group-exchange-sha256 (RFC 4419, with RFC 8270's 2048-bit floor).
 *
 * e and f travel as mpints (RFC 4253 §8). `clientValue`/`serverValue` hold the mpint's bytes, the
 * contents of the `string` that encodes it, so writing them as a string writes the mpint.
 *
 * Two computation paths, chosen by measurement (Node 20, OpenSSL 3.0):
 * - RFC 3526 groups 14-18, which OpenSSL knows by name: `getDiffieHellman('modpN')`. Key
 *   generation picks a private exponent of twice the group's security strength (224 bits for
 *   group 14, 400 for group 18), which RFC 4419 §6.2 allows; group 14 costs ~550 µs per side.
 * - Any other group (Oakley group 2, or a group-exchange group from a server's moduli file):
 *   `createDiffieHellman(p, g)` would run a full safe-prime test at construction (0.24 s for 2048
 *   bits, 3.5 s for 4096), so instead the private exponent is imported as a PKCS#8 "dhKeyAgreement"
 *   key and `diffieHellman` computes both g^x (with g given as the "peer" key) and the shared
 *   secret (~1.9 ms + 0.7 ms for 2048 bits).
 */
import { createPrivateKey, createPublicKey, diffieHellman, getDiffieHellman, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { KexError } from '../../errors.js';
import { encodeMpint } from '../../wire/writer.js';
import type { DhGroup, HashName, KexAlgorithm, KexClientExchange, KexServerResult } from '../types.js';
import {
  GEX_MAX_BITS,
  GEX_MIN_BITS,
  bitLength,
  findNamedGroup,
  modpGroup1,
  modpGroup14,
  modpGroup16,
  modpGroup18,
} from './groups.js';

// ---- mpint value handling ----------------------------------------------------------------------

/** The bytes of an mpint for a non-negative magnitude (RFC 4251 §5): no leading zeros, 0x00 before a set top bit. */
function mpintContents(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  if (trimmed.length > 0 && (trimmed[0]! & 0x80) !== 0) return Buffer.concat([Buffer.from([0]), trimmed]);
  return trimmed;
}

/**
 * Validate a peer's e or f and return its magnitude. RFC 4251 §5 makes the encoding canonical
 * (no superfluous leading 0x00) and RFC 4253 §8 requires 1 < value < p-1: 0, 1 and p-1 would force
 * the shared secret into {0, 1, ±1}, and anything ≥ p is not a group element.
 */
export function parseDhValue(value: Buffer, prime: Buffer): Buffer {
  if (value.length === 0) throw new KexError('invalid Diffie-Hellman value: zero');
  if ((value[0]! & 0x80) !== 0) throw new KexError('invalid Diffie-Hellman value: negative');
  if (value[0] === 0 && (value.length === 1 || (value[1]! & 0x80) === 0)) {
    throw new KexError('invalid Diffie-Hellman value: mpint has a superfluous leading zero byte');
  }
  const magnitude = value[0] === 0 ? value.subarray(1) : value;
  if (magnitude.length === 1 && magnitude[0]! <= 1) throw new KexError('invalid Diffie-Hellman value: must be greater than 1');
  if (magnitude.length > prime.length) throw new KexError('invalid Diffie-Hellman value: larger than the prime');
  if (magnitude.length === prime.length) {
    // p is odd, so p-1 is p with its last byte decremented: no borrow.
    const primeMinusOne = Buffer.from(prime);
    primeMinusOne[primeMinusOne.length - 1]! -= 1;
    if (Buffer.compare(magnitude, primeMinusOne) >= 0) throw new KexError('invalid Diffie-Hellman value: must be less than p-1');
  }
  return magnitude;
}

// ---- DER encoding for the generic path (ITU-T X.690, PKCS #3, RFC 5208, RFC 5280) --------------

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

/** A DER INTEGER of a non-negative magnitude: the same minimal two's-complement bytes as an mpint. */
function derUnsigned(magnitude: Buffer): Buffer {
  const contents = mpintContents(magnitude);
  return der(0x02, contents.length === 0 ? Buffer.from([0]) : contents);
}

/** OID 1.2.840.113549.1.3.1, PKCS #3 dhKeyAgreement. */
const DH_KEY_AGREEMENT_OID: Buffer = Buffer.from('06092a864886f70d010301', 'hex');

/** AlgorithmIdentifier { dhKeyAgreement, DHParameter { prime, base } } (PKCS #3 §9). */
function dhAlgorithmIdentifier(group: DhGroup): Buffer {
  return der(0x30, DH_KEY_AGREEMENT_OID, der(0x30, derUnsigned(group.prime), derUnsigned(group.generator)));
}

function dhPublicKey(algorithm: Buffer, y: Buffer): KeyObject {
  // SubjectPublicKeyInfo: BIT STRING (no unused bits) wrapping INTEGER y.
  const spki = der(0x30, algorithm, der(0x03, Buffer.from([0]), derUnsigned(y)));
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}

// ---- key pairs -----------------------------------------------------------------------------------

/** One side's ephemeral DH key: its public value (magnitude) and the derivation of K (magnitude). */
interface DhKeyPair {
  readonly publicValue: Buffer;
  derive(peerMagnitude: Buffer): Buffer;
}

function generateKeyPair(group: DhGroup, exponentBits: number): DhKeyPair {
  const named = findNamedGroup(group.prime);
  if (named !== undefined && group.generator.equals(named.generator)) {
    const dh = getDiffieHellman(named.nodeName);
    const publicValue = dh.generateKeys();
    return { publicValue, derive: (peer) => dh.computeSecret(peer) };
  }
  // RFC 4419 §6.2: the private exponent may be short, at least twice as long as the key material
  // derived; it must also stay below p-1 (prime sizes here are at least 1024 bits).
  let x = randomBytes(exponentBits / 8);
  while (bitLength(x) < 2) x = randomBytes(exponentBits / 8);
  const algorithm = dhAlgorithmIdentifier(group);
  const pkcs8 = der(0x30, der(0x02, Buffer.from([0])), algorithm, der(0x04, derUnsigned(x)));
  const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  // g^x mod p: the "shared secret" with g as the peer's public value.
  const publicValue = diffieHellman({ privateKey, publicKey: dhPublicKey(algorithm, group.generator) });
  return {
    publicValue,
    derive: (peer) => diffieHellman({ privateKey, publicKey: dhPublicKey(algorithm, peer) }),
  };
}

/** Twice the hash's output, at least 512 bits: above twice any session key's length (RFC 4419 §6.2). */
function exponentBitsFor(hash: HashName): number {
  return hash === 'sha512' || hash === 'sha384' ? 1024 : 512;
}

function computeShared(pair: DhKeyPair, peerValue: Buffer, group: DhGroup): Buffer {
  const peer = parseDhValue(peerValue, group.prime);
  let secret: Buffer;
  try {
    secret = pair.derive(peer);
  } catch (cause) {
    throw new KexError('Diffie-Hellman key agreement failed: invalid peer value', { cause });
  }
  // K is an mpint (RFC 4253 §8); encodeMpint drops the leading zeros node pads the secret with.
  return encodeMpint(secret);
}

function startClient(group: DhGroup, hash: HashName): KexClientExchange {
  const pair = generateKeyPair(group, exponentBitsFor(hash));
  return {
    clientValue: mpintContents(pair.publicValue),
    finish: (serverValue) => computeShared(pair, serverValue, group),
  };
}

function respondServer(clientValue: Buffer, group: DhGroup, hash: HashName): KexServerResult {
  // Validate e before spending a key generation on it.
  parseDhValue(clientValue, group.prime);
  const pair = generateKeyPair(group, exponentBitsFor(hash));
  return { serverValue: mpintContents(pair.publicValue), sharedSecret: computeShared(pair, clientValue, group) };
}

function fixedGroup(name: string, hash: HashName, group: DhGroup): KexAlgorithm {
  return {
    name,
    hash,
    groupExchange: false,
    startClient: () => startClient(group, hash),
    respondServer: (clientValue) => respondServer(clientValue, group, hash),
  };
}

/** RFC 8268 §3: group 14 (2048 bits) with SHA-256. */
export const dhGroup14Sha256: KexAlgorithm = fixedGroup('diffie-hellman-group14-sha256', 'sha256', modpGroup14);
/** RFC 8268 §3: group 16 (4096 bits) with SHA-512. */
export const dhGroup16Sha512: KexAlgorithm = fixedGroup('diffie-hellman-group16-sha512', 'sha512', modpGroup16);
/** RFC 8268 §3: group 18 (8192 bits) with SHA-512. */
export const dhGroup18Sha512: KexAlgorithm = fixedGroup('diffie-hellman-group18-sha512', 'sha512', modpGroup18);
/** RFC 4253 §8.2: group 14 with SHA-1 (opt-in only: SHA-1). */
export const dhGroup14Sha1: KexAlgorithm = fixedGroup('diffie-hellman-group14-sha1', 'sha1', modpGroup14);
/** RFC 4253 §8.1: Oakley group 2 (1024 bits) with SHA-1 (opt-in only: weak group and hash). */
export const dhGroup1Sha1: KexAlgorithm = fixedGroup('diffie-hellman-group1-sha1', 'sha1', modpGroup1);

/**
 * Sanity checks on a group-exchange group (RFC 4419 §3, RFC 8270 §3): a 2048- to 8192-bit odd
 * modulus and 1 < g < p-1. The client gets the group from the server; whether its size lies within
 * what the client asked for is checked by the transport, which knows the request.
 */
function checkGexGroup(group: DhGroup | undefined): DhGroup {
  if (group === undefined) throw new KexError('diffie-hellman-group-exchange needs a group');
  let prime = group.prime;
  while (prime.length > 0 && prime[0] === 0) prime = prime.subarray(1);
  const bits = bitLength(prime);
  if (bits < GEX_MIN_BITS || bits > GEX_MAX_BITS) {
    throw new KexError(`group exchange modulus of ${bits} bits is outside ${GEX_MIN_BITS}-${GEX_MAX_BITS} bits`);
  }
  if ((prime[prime.length - 1]! & 1) === 0) throw new KexError('group exchange modulus is even');
  let generator = group.generator;
  while (generator.length > 0 && generator[0] === 0) generator = generator.subarray(1);
  try {
    parseDhValue(mpintContents(generator), prime);
  } catch (cause) {
    throw new KexError('group exchange generator is not within 1 < g < p-1', { cause });
  }
  return prime === group.prime && generator === group.generator ? group : { prime, generator };
}

/** RFC 4419: diffie-hellman-group-exchange-sha256; the group is negotiated first. */
export const dhGexSha256: KexAlgorithm = {
  name: 'diffie-hellman-group-exchange-sha256',
  hash: 'sha256',
  groupExchange: true,
  startClient: (group) => startClient(checkGexGroup(group), 'sha256'),
  respondServer: (clientValue, group) => respondServer(clientValue, checkGexGroup(group), 'sha256'),
};
