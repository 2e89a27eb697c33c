/**
 * ssh-ed25519 signatures (RFC 8709 §6): string "ssh-ed25519" || string signature (64 bytes, the
 * RFC 8032 encoding). Ed25519 hashes internally, so the data is signed as is.
 */
import { sign, verify } from 'node:crypto';
import { KeyFormatError } from '../../errors.js';
import { decodeSignatureBlob, encodeSignatureBlob } from '../../keys/public-key.js';
import type { SignatureAlgorithm, SshPrivateKey, SshPublicKey } from '../types.js';

const NAME = 'ssh-ed25519';
const SIGNATURE_LENGTH = 64;

export const sshEd25519: SignatureAlgorithm = {
  name: NAME,
  keyType: NAME,

  sign(key: SshPrivateKey, data: Buffer): Buffer {
    if (key.type !== NAME) throw new KeyFormatError(`${NAME} cannot sign with a ${key.type} key`);
    return encodeSignatureBlob(NAME, sign(null, data, key.keyObject));
  },

  verify(key: SshPublicKey, data: Buffer, signatureBlob: Buffer): boolean {
    if (key.type !== NAME) return false;
    const decoded = decodeSignatureBlob(signatureBlob);
    if (decoded === undefined || decoded.algorithm !== NAME || decoded.signature.length !== SIGNATURE_LENGTH) return false;
    try {
      return verify(null, data, key.keyObject, decoded.signature);
    } catch {
      return false;
    }
  },
};
