/**
 * SSH public key blobs (RFC 4253 §6.6) and their node:crypto KeyObjects, for the key types tssh
 * signs and verifies with:
 *
 *   ssh-ed25519           string "ssh-ed25519", string key (32 bytes)               RFC 8709 §4
 *   ecdsa-sha2-nistp*     string type, string curve identifier, string Q (0x04||x||y) RFC 5656 §3.1
 *   ssh-rsa               string "ssh-rsa", mpint e, mpint n                       RFC 4253 §6.6
 *
 * KeyObjects are built from the raw values without going through OpenSSL's slow DER decoder where
 * a faster route exists (measured, Node 20 / OpenSSL 3.0): JWK for Ed25519 (~6-20 µs), RSA (~4 µs)
 * and P-256 (~70 µs, against ~120 µs by DER). For P-384 and P-521 the JWK import is the slow one
 * (~500 / ~1,300 µs: it runs a full key check with a scalar multiplication by the group order),
 * while a DER SubjectPublicKeyInfo takes ~110-160 µs and still rejects points off the curve (all
 * three curves have cofactor 1, so being on the curve is the whole validity check).
 */
import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { KeyFormatError, SshError } from '../errors.js';
import type { HashName, SshPublicKey } from '../algorithms/types.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';

/** One NIST curve as the ecdsa-sha2-* key types use it (RFC 5656 §6.1, §6.2.1). */
export interface EcdsaCurve {
  /** The key type and signature algorithm name: `ecdsa-sha2-nistp256`. */
  readonly keyType: string;
  /** The curve identifier inside the blob: `nistp256` (RFC 5656 §6.1). */
  readonly identifier: string;
  /** JWK `crv`. */
  readonly jwkCurve: 'P-256' | 'P-384' | 'P-521';
  /** OpenSSL's name, as in `asymmetricKeyDetails.namedCurve`. */
  readonly opensslName: string;
  /** Bytes of a field element (and of the group order): Q is 1 + 2 × this long. */
  readonly fieldLength: number;
  /** The signature hash (RFC 5656 §6.2.1). */
  readonly hash: HashName;
  /** A DER SubjectPublicKeyInfo for this curve up to the BIT STRING contents (the point follows). */
  readonly spkiPrefix: Buffer;
  /** Import the point with JWK (fast for P-256) rather than DER (fast for P-384/P-521). */
  readonly importByJwk: boolean;
}

export const ecdsaCurves: ReadonlyMap<string, EcdsaCurve> = new Map(
  (
    [
      ['ecdsa-sha2-nistp256', 'nistp256', 'P-256', 'prime256v1', 32, 'sha256', '3059301306072a8648ce3d020106082a8648ce3d030107034200', true],
      ['ecdsa-sha2-nistp384', 'nistp384', 'P-384', 'secp384r1', 48, 'sha384', '3076301006072a8648ce3d020106052b81040022036200', false],
      ['ecdsa-sha2-nistp521', 'nistp521', 'P-521', 'secp521r1', 66, 'sha512', '30819b301006072a8648ce3d020106052b8104002303818600', false],
    ] as const
  ).map(([keyType, identifier, jwkCurve, opensslName, fieldLength, hash, prefix, importByJwk]) => [
    keyType,
    { keyType, identifier, jwkCurve, opensslName, fieldLength, hash, spkiPrefix: Buffer.from(prefix, 'hex'), importByJwk },
  ]),
);

/** The public key types this module reads and writes. */
export const publicKeyTypes: readonly string[] = ['ssh-ed25519', ...ecdsaCurves.keys(), 'ssh-rsa'];

/** RSA moduli below this are refused (OpenSSH's SSH_RSA_MINIMUM_MODULUS_SIZE). */
export const RSA_MIN_BITS = 1024;
/** And above this (OpenSSH's SSHBUF_MAX_BIGNUM × 8). */
export const RSA_MAX_BITS = 16384;

const ED25519_KEY_LENGTH = 32;

function bitLength(magnitude: Buffer): number {
  return magnitude.length === 0 ? 0 : (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0]!));
}

function importJwk(jwk: { [key: string]: string }): KeyObject {
  return createPublicKey({ key: jwk, format: 'jwk' });
}

function readBlob(blob: Buffer): { type: string; keyObject: KeyObject } {
  const reader = new Reader(blob, 0, blob.length, 'public key blob');
  const type = reader.string().toString('latin1');
  if (type === 'ssh-ed25519') {
    const key = reader.string();
    reader.done();
    if (key.length !== ED25519_KEY_LENGTH) throw new KeyFormatError(`ssh-ed25519 key is ${key.length} bytes, expected 32`);
    return { type, keyObject: importJwk({ kty: 'OKP', crv: 'Ed25519', x: key.toString('base64url') }) };
  }
  const curve = ecdsaCurves.get(type);
  if (curve !== undefined) {
    const identifier = reader.string().toString('latin1');
    const q = reader.string();
    reader.done();
    // RFC 5656 §3.1: the identifier must name the key type's own curve.
    if (identifier !== curve.identifier) throw new KeyFormatError(`${type} key names curve ${JSON.stringify(identifier)}`);
    if (q.length !== 1 + 2 * curve.fieldLength || q[0] !== 0x04) {
      throw new KeyFormatError(`${type} key is not an uncompressed ${curve.identifier} point`);
    }
    const keyObject = curve.importByJwk
      ? importJwk({
          kty: 'EC',
          crv: curve.jwkCurve,
          x: q.subarray(1, 1 + curve.fieldLength).toString('base64url'),
          y: q.subarray(1 + curve.fieldLength).toString('base64url'),
        })
      : createPublicKey({ key: Buffer.concat([curve.spkiPrefix, q]), format: 'der', type: 'spki' });
    return { type, keyObject };
  }
  if (type === 'ssh-rsa') {
    const e = reader.mpintUnsigned();
    const n = reader.mpintUnsigned(RSA_MAX_BITS / 8 + 1);
    reader.done();
    const bits = bitLength(n);
    if (bits < RSA_MIN_BITS) throw new KeyFormatError(`ssh-rsa key of ${bits} bits is too small (at least ${RSA_MIN_BITS})`);
    if (bits > RSA_MAX_BITS) throw new KeyFormatError(`ssh-rsa key of ${bits} bits is too large (at most ${RSA_MAX_BITS})`);
    if ((n[n.length - 1]! & 1) === 0) throw new KeyFormatError('ssh-rsa modulus is even');
    if ((e.length === 1 && e[0]! < 3) || e.length === 0 || (e[e.length - 1]! & 1) === 0 || e.length > n.length) {
      throw new KeyFormatError('ssh-rsa public exponent is not an odd number between 3 and n');
    }
    return { type, keyObject: importJwk({ kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }) };
  }
  throw new KeyFormatError(`unsupported public key type ${JSON.stringify(type)}`);
}

/**
 * Decode a public key blob into its type and KeyObject. Throws KeyFormatError for anything
 * malformed, truncated, with trailing bytes, invalid (an EC point off its curve, a short RSA
 * modulus) or of an unsupported type. The returned blob is a copy, safe to keep.
 */
export function parsePublicKeyBlob(blob: Buffer): SshPublicKey {
  const id = blob.toString('latin1');
  let parsed = recentlyParsed.get(id);
  if (parsed === undefined) {
    try {
      parsed = readBlob(blob);
    } catch (cause) {
      if (cause instanceof KeyFormatError) throw cause;
      const detail = cause instanceof SshError || cause instanceof Error ? cause.message : String(cause);
      throw new KeyFormatError(`invalid public key blob: ${detail}`, { cause });
    }
    if (recentlyParsed.size >= RECENTLY_PARSED_LIMIT) recentlyParsed.delete(recentlyParsed.keys().next().value!);
    recentlyParsed.set(id, parsed);
  }
  return { type: parsed.type, blob: Buffer.from(blob), keyObject: parsed.keyObject };
}

/**
 * The last blobs decoded, by their bytes: a server sees the same user keys again and again, a
 * client the same host keys, and importing a key into node:crypto costs more than the rest of
 * decoding it (about 80 us for an Ed25519 key inside a login, against a map lookup). KeyObjects
 * are immutable, so sharing one is safe; each caller still gets its own SshPublicKey and blob.
 * Only valid blobs are kept, at most RECENTLY_PARSED_LIMIT (the oldest goes first).
 */
const recentlyParsed = new Map<string, { readonly type: string; readonly keyObject: KeyObject }>();
const RECENTLY_PARSED_LIMIT = 256;

/** The key type named at the start of a blob (`ssh-ed25519`), without decoding the key. */
export function publicKeyTypeOf(blob: Buffer): string {
  try {
    return new Reader(blob, 0, blob.length, 'public key blob').string().toString('latin1');
  } catch (cause) {
    throw new KeyFormatError('invalid public key blob: no key type', { cause });
  }
}

/** Left-pad a JWK coordinate to the field length (defensive: node already exports them fixed-size). */
function fixedLength(value: Buffer, length: number): Buffer {
  if (value.length === length) return value;
  if (value.length > length) throw new KeyFormatError('EC coordinate longer than the field');
  const out = Buffer.alloc(length);
  value.copy(out, length - value.length);
  return out;
}

function jwkMember(jwk: { [key: string]: unknown }, name: string): Buffer {
  const value = jwk[name];
  if (typeof value !== 'string') throw new KeyFormatError(`key has no JWK member ${name}`);
  return Buffer.from(value, 'base64url');
}

/**
 * The SSH public key for a node:crypto key (public, or private: its public half is used). Supports
 * Ed25519, ECDSA on P-256/P-384/P-521 and RSA (not RSA-PSS); throws KeyFormatError otherwise.
 * Uses a JWK export of the public key; do not pass keys made by generateKeyPairSync (see
 * NODE-CRYPTO.md: that combination can deadlock Node 20). generatePrivateKey is safe.
 */
export function publicKeyFromKeyObject(key: KeyObject): SshPublicKey {
  if (key.type === 'secret') throw new KeyFormatError('a secret key has no SSH public key');
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const keyType = publicKey.asymmetricKeyType;
  const jwk = publicKey.export({ format: 'jwk' }) as { [key: string]: unknown };
  const writer = new Writer(64);
  let type: string;
  if (keyType === 'ed25519') {
    type = 'ssh-ed25519';
    writer.string(type).string(jwkMember(jwk, 'x'));
  } else if (keyType === 'ec') {
    const namedCurve = publicKey.asymmetricKeyDetails?.namedCurve;
    const curve = [...ecdsaCurves.values()].find((c) => c.opensslName === namedCurve);
    if (curve === undefined) throw new KeyFormatError(`unsupported EC curve ${String(namedCurve)}`);
    type = curve.keyType;
    const q = Buffer.concat([
      Buffer.from([0x04]),
      fixedLength(jwkMember(jwk, 'x'), curve.fieldLength),
      fixedLength(jwkMember(jwk, 'y'), curve.fieldLength),
    ]);
    writer.string(type).string(curve.identifier).string(q);
  } else if (keyType === 'rsa') {
    type = 'ssh-rsa';
    const n = jwkMember(jwk, 'n');
    const bits = bitLength(n);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      throw new KeyFormatError(`RSA key of ${bits} bits is outside ${RSA_MIN_BITS}-${RSA_MAX_BITS} bits`);
    }
    writer.string(type).mpintUnsigned(jwkMember(jwk, 'e')).mpintUnsigned(n);
  } else {
    throw new KeyFormatError(`unsupported key type ${String(keyType)}`);
  }
  return { type, blob: Buffer.from(writer.finish()), keyObject: publicKey };
}

// ---- Signature blobs (RFC 4253 §6.6) -------------------------------------------------------------

/** string(algorithm name) || string(signature): the format every SSH signature travels in. */
export function encodeSignatureBlob(algorithm: string, signature: Uint8Array): Buffer {
  return new Writer(signature.length + algorithm.length + 8).string(algorithm).string(signature).finish();
}

/** Split a signature blob into its algorithm name and signature; undefined if it is malformed or has trailing bytes. */
export function decodeSignatureBlob(blob: Buffer): { algorithm: string; signature: Buffer } | undefined {
  try {
    const reader = new Reader(blob, 0, blob.length, 'signature blob');
    const algorithm = reader.string().toString('latin1');
    const signature = reader.string();
    reader.done();
    return { algorithm, signature };
  } catch {
    return undefined;
  }
}
