/**
 * ecdsa-sha2-nistp256/384/521 signatures (RFC 5656 §3.1.2): string name || string
 * (mpint r || mpint s), hashed with SHA-256/384/512 by curve size (RFC 5656 §6.2.1).
 *
 * node:crypto's `dsaEncoding: 'ieee-p1363'` produces and takes r and s as fixed-length big-endian
 * halves, which converts to and from the two mpints without any DER.
 */
import { sign, verify } from 'node:crypto';
import { KeyFormatError } from '../../errors.js';
import { decodeSignatureBlob, ecdsaCurves, encodeSignatureBlob } from '../../keys/public-key.js';
import type { EcdsaCurve } from '../../keys/public-key.js';
import { Reader } from '../../wire/reader.js';
import { Writer } from '../../wire/writer.js';
import type { SignatureAlgorithm, SshPrivateKey, SshPublicKey } from '../types.js';

/** Decode mpint r || mpint s into r||s of fixed halves; undefined if malformed, zero or too large. */
function rawSignature(curve: EcdsaCurve, inner: Buffer): Buffer | undefined {
  try {
    const reader = new Reader(inner, 0, inner.length, 'ECDSA signature');
    const r = reader.mpintUnsigned(curve.fieldLength);
    const s = reader.mpintUnsigned(curve.fieldLength);
    reader.done();
    if (r.length === 0 || s.length === 0) return undefined;
    const raw = Buffer.alloc(2 * curve.fieldLength);
    r.copy(raw, curve.fieldLength - r.length);
    s.copy(raw, 2 * curve.fieldLength - s.length);
    return raw;
  } catch {
    return undefined;
  }
}

function ecdsa(curve: EcdsaCurve): SignatureAlgorithm {
  const name = curve.keyType;
  return {
    name,
    keyType: name,

    sign(key: SshPrivateKey, data: Buffer): Buffer {
      if (key.type !== name) throw new KeyFormatError(`${name} cannot sign with a ${key.type} key`);
      const raw = sign(curve.hash, data, { key: key.keyObject, dsaEncoding: 'ieee-p1363' });
      const inner = new Writer(2 * curve.fieldLength + 10)
        .mpintUnsigned(raw.subarray(0, curve.fieldLength))
        .mpintUnsigned(raw.subarray(curve.fieldLength))
        .finish();
      return encodeSignatureBlob(name, inner);
    },

    verify(key: SshPublicKey, data: Buffer, signatureBlob: Buffer): boolean {
      if (key.type !== name) return false;
      const decoded = decodeSignatureBlob(signatureBlob);
      if (decoded === undefined || decoded.algorithm !== name) return false;
      const raw = rawSignature(curve, decoded.signature);
      if (raw === undefined) return false;
      try {
        return verify(curve.hash, data, { key: key.keyObject, dsaEncoding: 'ieee-p1363' }, raw);
      } catch {
        return false;
      }
    },
  };
}

function curveFor(keyType: string): EcdsaCurve {
  const curve = ecdsaCurves.get(keyType);
  if (curve === undefined) throw new Error(`no curve for ${keyType}`);
  return curve;
}

export const ecdsaSha2Nistp256: SignatureAlgorithm = ecdsa(curveFor('ecdsa-sha2-nistp256'));
export const ecdsaSha2Nistp384: SignatureAlgorithm = ecdsa(curveFor('ecdsa-sha2-nistp384'));
export const ecdsaSha2Nistp521: SignatureAlgorithm = ecdsa(curveFor('ecdsa-sha2-nistp521'));
