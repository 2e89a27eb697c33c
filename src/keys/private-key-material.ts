/**
 * The numbers that make up a private key, independent of any file format, and the conversions
 * between them, node:crypto KeyObjects and the SSH agent's private key encoding (the one
 * openssh-key-v1 files embed, PROTOCOL.key §3: "each private key is encoded using the same rules
 * as used for SSH agent"; draft-miller-ssh-agent §4.2.3-4.2.5):
 *
 *   ssh-ed25519        string "ssh-ed25519", string ENC(A) (32 bytes), string k || ENC(A) (64 bytes)
 *   ecdsa-sha2-nistp*  string type, string curve identifier, string Q, mpint d
 *   ssh-rsa            string "ssh-rsa", mpint n, mpint e, mpint d, mpint iqmp, mpint p, mpint q
 *
 * Building a key checks that its private and public halves belong together (a file whose halves
 * disagree would sign with one key while advertising another): Ed25519 and ECDSA public keys are
 * recomputed from the private scalar, RSA's n = p·q and the CRT values are checked with bigints.
 * KeyObjects are imported through JWK, the fast route (NODE-CRYPTO.md, trap 4).
 */
import { createECDH, createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { SshPrivateKey } from '../algorithms/types.js';
import { KeyFormatError } from '../errors.js';
import { Reader, bytesToBigInt } from '../wire/reader.js';
import { Writer, bigIntToBytes } from '../wire/writer.js';
import { ecdsaCurves, publicKeyFromKeyObject, RSA_MAX_BITS } from './public-key.js';
import type { EcdsaCurve } from './public-key.js';

export interface Ed25519Material {
  readonly kind: 'ed25519';
  /** The 32-byte private key k (RFC 8032 §5.1.5), what JWK calls `d`. */
  readonly seed: Buffer;
  /** ENC(A), 32 bytes. */
  readonly publicKey: Buffer;
}

export interface EcdsaMaterial {
  readonly kind: 'ecdsa';
  readonly curve: EcdsaCurve;
  /** The private scalar, unsigned big-endian, exactly curve.fieldLength bytes. */
  readonly d: Buffer;
  /** The public point, 0x04 || x || y. */
  readonly q: Buffer;
}

/** RSA values as unsigned big-endian magnitudes without leading zeros. iqmp = q⁻¹ mod p. */
export interface RsaMaterial {
  readonly kind: 'rsa';
  readonly n: Buffer;
  readonly e: Buffer;
  readonly d: Buffer;
  readonly iqmp: Buffer;
  readonly p: Buffer;
  readonly q: Buffer;
}

export type PrivateKeyMaterial = Ed25519Material | EcdsaMaterial | RsaMaterial;

const ED25519_LENGTH = 32;
const RSA_MAX_BYTES = RSA_MAX_BITS / 8 + 1;

/** The SSH key type of some material: `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`. */
export function materialKeyType(material: PrivateKeyMaterial): string {
  switch (material.kind) {
    case 'ed25519':
      return 'ssh-ed25519';
    case 'ecdsa':
      return material.curve.keyType;
    case 'rsa':
      return 'ssh-rsa';
  }
}

/** The public key blob (RFC 4253 §6.6) of some material. */
export function materialPublicBlob(material: PrivateKeyMaterial): Buffer {
  const writer = new Writer(128);
  switch (material.kind) {
    case 'ed25519':
      writer.string('ssh-ed25519').string(material.publicKey);
      break;
    case 'ecdsa':
      writer.string(material.curve.keyType).string(material.curve.identifier).string(material.q);
      break;
    case 'rsa':
      writer.string('ssh-rsa').mpintUnsigned(material.e).mpintUnsigned(material.n);
      break;
  }
  return Buffer.from(writer.finish());
}

/** An EC scalar as exactly `length` bytes (an mpint drops leading zeros; JWK and ECDH want them). */
export function fixedScalar(value: Buffer, length: number, what: string): Buffer {
  if (value.length > length) throw new KeyFormatError(`${what} is longer than the curve's ${length} bytes`);
  if (value.length === length) return Buffer.from(value);
  const out = Buffer.alloc(length);
  value.copy(out, length - value.length);
  return out;
}

/** The ECDSA curve for a key type or curve identifier; KeyFormatError if it is not one we support. */
export function curveFor(keyType: string): EcdsaCurve {
  const curve = ecdsaCurves.get(keyType);
  if (curve === undefined) throw new KeyFormatError(`unsupported key type ${JSON.stringify(keyType)}`);
  return curve;
}

/**
 * Read one private key in the agent encoding (the layouts in the header above). Leaves the reader
 * after the key (an openssh-key-v1 comment follows). Throws KeyFormatError for unsupported types.
 */
export function readAgentPrivateKey(reader: Reader): PrivateKeyMaterial {
  const type = reader.string().toString('latin1');
  if (type === 'ssh-ed25519') {
    const publicKey = reader.string();
    const secret = reader.string();
    if (publicKey.length !== ED25519_LENGTH || secret.length !== 2 * ED25519_LENGTH) {
      throw new KeyFormatError('ssh-ed25519 private key has wrong lengths (expected 32-byte public, 64-byte private)');
    }
    // The 64-byte value is k || ENC(A), as in the reference implementation's secret key.
    if (!secret.subarray(ED25519_LENGTH).equals(publicKey)) {
      throw new KeyFormatError('ssh-ed25519 private key does not contain its own public key');
    }
    return { kind: 'ed25519', seed: Buffer.from(secret.subarray(0, ED25519_LENGTH)), publicKey: Buffer.from(publicKey) };
  }
  const curve = ecdsaCurves.get(type);
  if (curve !== undefined) {
    const identifier = reader.string().toString('latin1');
    if (identifier !== curve.identifier) throw new KeyFormatError(`${type} private key names curve ${JSON.stringify(identifier)}`);
    const q = Buffer.from(reader.string());
    const d = fixedScalar(reader.mpintUnsigned(curve.fieldLength), curve.fieldLength, `${type} private scalar`);
    return { kind: 'ecdsa', curve, d, q };
  }
  if (type === 'ssh-rsa') {
    const n = Buffer.from(reader.mpintUnsigned(RSA_MAX_BYTES));
    const e = Buffer.from(reader.mpintUnsigned(RSA_MAX_BYTES));
    const d = Buffer.from(reader.mpintUnsigned(RSA_MAX_BYTES));
    const iqmp = Buffer.from(reader.mpintUnsigned(RSA_MAX_BYTES));
    const p = Buffer.from(reader.mpintUnsigned(RSA_MAX_BYTES));
    const q = Buffer.from(reader.mpintUnsigned(RSA_MAX_BYTES));
    return { kind: 'rsa', n, e, d, iqmp, p, q };
  }
  throw new KeyFormatError(`unsupported private key type ${JSON.stringify(type)} (tssh reads ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa)`);
}

/** Append one private key in the agent encoding. */
export function writeAgentPrivateKey(writer: Writer, material: PrivateKeyMaterial): void {
  switch (material.kind) {
    case 'ed25519':
      writer.string('ssh-ed25519').string(material.publicKey).string(Buffer.concat([material.seed, material.publicKey]));
      break;
    case 'ecdsa':
      writer.string(material.curve.keyType).string(material.curve.identifier).string(material.q).mpintUnsigned(material.d);
      break;
    case 'rsa':
      writer
        .string('ssh-rsa')
        .mpintUnsigned(material.n)
        .mpintUnsigned(material.e)
        .mpintUnsigned(material.d)
        .mpintUnsigned(material.iqmp)
        .mpintUnsigned(material.p)
        .mpintUnsigned(material.q);
      break;
  }
}

function b64u(value: Buffer): string {
  return value.toString('base64url');
}

function importPrivateJwk(jwk: { [name: string]: string }): KeyObject {
  try {
    return createPrivateKey({ key: jwk, format: 'jwk' });
  } catch (cause) {
    throw new KeyFormatError(`invalid ${jwk.kty ?? ''} private key: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

function modInverse(a: bigint, m: bigint): bigint | undefined {
  let [oldR, r] = [((a % m) + m) % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const quotient = oldR / r;
    [oldR, r] = [r, oldR - quotient * r];
    [oldS, s] = [s, oldS - quotient * s];
  }
  return oldR === 1n ? ((oldS % m) + m) % m : undefined;
}

/**
 * RSA keys: the file stores n, e, d, iqmp, p, q; JWK also wants dp = d mod (p-1) and dq = d mod
 * (q-1) (RFC 7518 §6.3.2), computed here. Checks n = p·q, iqmp·q ≡ 1 (mod p) and e·d ≡ 1 modulo
 * p-1 and q-1, i.e. that d really inverts e for this modulus.
 */
function rsaKeyObject(material: RsaMaterial): KeyObject {
  const [n, e, d, iqmp, p, q] = [material.n, material.e, material.d, material.iqmp, material.p, material.q].map(bytesToBigInt) as [
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
  ];
  if (p < 3n || q < 3n || p * q !== n) throw new KeyFormatError('ssh-rsa private key: n is not p·q');
  if (d === 0n || (e * d) % (p - 1n) !== 1n || (e * d) % (q - 1n) !== 1n) {
    throw new KeyFormatError('ssh-rsa private key: d is not the private exponent for e');
  }
  // iqmp only speeds up signing (CRT), but OpenSSL trusts it: a wrong one would make bad signatures.
  // Everything else checked out, so use the right value rather than refuse the key.
  const qi = (iqmp * q) % p === 1n ? iqmp : modInverse(q, p);
  if (qi === undefined) throw new KeyFormatError('ssh-rsa private key: q has no inverse modulo p');
  return importPrivateJwk({
    kty: 'RSA',
    n: b64u(material.n),
    e: b64u(material.e),
    d: b64u(material.d),
    p: b64u(material.p),
    q: b64u(material.q),
    dp: b64u(bigIntToBytes(d % (p - 1n))),
    dq: b64u(bigIntToBytes(d % (q - 1n))),
    qi: b64u(bigIntToBytes(qi)),
  });
}

function ecdsaKeyObject(material: EcdsaMaterial): KeyObject {
  const { curve } = material;
  // A JWK import does not check that (x, y) = d·G; recompute the point from d with ECDH, which also
  // refuses d = 0 and d ≥ the group order, and compare it with the stored Q.
  let derived: Buffer;
  try {
    const ecdh = createECDH(curve.opensslName);
    ecdh.setPrivateKey(material.d);
    derived = ecdh.getPublicKey();
  } catch (cause) {
    throw new KeyFormatError(`${curve.keyType} private key: the private scalar is not valid for ${curve.identifier}`, { cause });
  }
  if (!derived.equals(material.q)) throw new KeyFormatError(`${curve.keyType} private key does not match its public key`);
  const length = curve.fieldLength;
  return importPrivateJwk({
    kty: 'EC',
    crv: curve.jwkCurve,
    d: b64u(material.d),
    x: b64u(derived.subarray(1, 1 + length)),
    y: b64u(derived.subarray(1 + length)),
  });
}

/**
 * Build a signing key from its material, checking that the public half matches the private one.
 * Throws KeyFormatError if the values are inconsistent or not a valid key.
 */
export function privateKeyFromMaterial(material: PrivateKeyMaterial): SshPrivateKey {
  let keyObject: KeyObject;
  switch (material.kind) {
    case 'ed25519':
      if (material.seed.length !== ED25519_LENGTH) throw new KeyFormatError('ssh-ed25519 private key must be 32 bytes');
      // Node derives the public key from d alone (x is not checked); the blob comparison below does.
      keyObject = importPrivateJwk({ kty: 'OKP', crv: 'Ed25519', d: b64u(material.seed), x: b64u(material.publicKey) });
      break;
    case 'ecdsa':
      keyObject = ecdsaKeyObject(material);
      break;
    case 'rsa':
      keyObject = rsaKeyObject(material);
      break;
  }
  const publicKey = publicKeyFromKeyObject(createPublicKey(keyObject));
  if (!publicKey.blob.equals(materialPublicBlob(material))) {
    throw new KeyFormatError(`${materialKeyType(material)} private key does not match its public key`);
  }
  return { type: publicKey.type, publicKey, keyObject };
}

function jwkValue(jwk: { [name: string]: unknown }, name: string): Buffer {
  const value = jwk[name];
  if (typeof value !== 'string') throw new KeyFormatError(`private key has no ${name} component`);
  return Buffer.from(value, 'base64url');
}

/** Strip leading zero bytes (JWK values are already minimal, but be safe for mpints). */
function magnitude(value: Buffer): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  return value.subarray(start);
}

/**
 * The material of a signing key, read back from its KeyObject through a JWK export (safe for keys
 * from generatePrivateKey or any import; not for generateKeyPairSync keys, NODE-CRYPTO.md trap 1).
 */
export function materialFromPrivateKey(key: SshPrivateKey): PrivateKeyMaterial {
  if (key.keyObject.type !== 'private') throw new KeyFormatError('not a private key');
  const jwk = key.keyObject.export({ format: 'jwk' }) as { [name: string]: unknown };
  if (key.type === 'ssh-ed25519') {
    return { kind: 'ed25519', seed: jwkValue(jwk, 'd'), publicKey: jwkValue(jwk, 'x') };
  }
  const curve = ecdsaCurves.get(key.type);
  if (curve !== undefined) {
    const length = curve.fieldLength;
    const q = Buffer.concat([
      Buffer.from([0x04]),
      fixedScalar(jwkValue(jwk, 'x'), length, 'x'),
      fixedScalar(jwkValue(jwk, 'y'), length, 'y'),
    ]);
    return { kind: 'ecdsa', curve, d: fixedScalar(jwkValue(jwk, 'd'), length, 'd'), q };
  }
  if (key.type === 'ssh-rsa') {
    const [n, e, d, p, q, qi] = ['n', 'e', 'd', 'p', 'q', 'qi'].map((name) => magnitude(jwkValue(jwk, name))) as [
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
    ];
    return { kind: 'rsa', n, e, d, iqmp: qi, p, q };
  }
  throw new KeyFormatError(`unsupported key type ${JSON.stringify(key.type)}`);
}
