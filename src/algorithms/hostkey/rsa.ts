/**
 * RSA signatures with ssh-rsa keys: rsa-sha2-256 and rsa-sha2-512 (RFC 8332 §3) and the legacy
 * ssh-rsa with SHA-1 (RFC 4253 §6.6, opt-in only). All are RSASSA-PKCS1-v1_5 (RFC 8017 §8.2):
 * string name || string signature, the signature as long as the modulus.
 */
import { sign, verify } from 'node:crypto';
import { KeyFormatError } from '../../errors.js';
import { decodeSignatureBlob, encodeSignatureBlob } from '../../keys/public-key.js';
import type { HashName, SignatureAlgorithm, SshPrivateKey, SshPublicKey } from '../types.js';

const KEY_TYPE = 'ssh-rsa';

function rsa(name: string, hash: HashName): SignatureAlgorithm {
  return {
    name,
    keyType: KEY_TYPE,

    sign(key: SshPrivateKey, data: Buffer): Buffer {
      if (key.type !== KEY_TYPE) throw new KeyFormatError(`${name} cannot sign with a ${key.type} key`);
      return encodeSignatureBlob(name, sign(hash, data, key.keyObject));
    },

    verify(key: SshPublicKey, data: Buffer, signatureBlob: Buffer): boolean {
      if (key.type !== KEY_TYPE || key.keyObject.asymmetricKeyType !== 'rsa') return false;
      const decoded = decodeSignatureBlob(signatureBlob);
      // RFC 8332 §3: the name in the blob must be the algorithm negotiated, not just any RSA one.
      if (decoded === undefined || decoded.algorithm !== name) return false;
      const modulusBits = key.keyObject.asymmetricKeyDetails?.modulusLength;
      if (modulusBits === undefined) return false;
      const modulusLength = Math.ceil(modulusBits / 8);
      let signature = decoded.signature;
      if (signature.length === 0 || signature.length > modulusLength) return false;
      if (signature.length < modulusLength) {
        // Some signers drop leading zero bytes of the signature; OpenSSH accepts that, so do we
        // (RFC 8017 §8.2.2 wants exactly k bytes, so restore them).
        const padded = Buffer.alloc(modulusLength);
        signature.copy(padded, modulusLength - signature.length);
        signature = padded;
      }
      try {
        return verify(hash, data, key.keyObject, signature);
      } catch {
        return false;
      }
    },
  };
}

/** RFC 8332 §3: RSASSA-PKCS1-v1_5 with SHA-256. */
export const rsaSha2_256: SignatureAlgorithm = rsa('rsa-sha2-256', 'sha256');
/** RFC 8332 §3: RSASSA-PKCS1-v1_5 with SHA-512. */
export const rsaSha2_512: SignatureAlgorithm = rsa('rsa-sha2-512', 'sha512');
/** RFC 4253 §6.6: ssh-rsa, RSASSA-PKCS1-v1_5 with SHA-1 (deprecated by RFC 8332 §5; opt-in only). */
export const sshRsa: SignatureAlgorithm = rsa('ssh-rsa', 'sha1');
