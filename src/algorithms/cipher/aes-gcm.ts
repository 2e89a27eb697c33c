/**
 * AES-GCM as OpenSSH's aes128-gcm@openssh.com / aes256-gcm@openssh.com (RFC 5647 with the
 * negotiation of draft-miller-sshm-aes-gcm §2: an AEAD, so the negotiated MAC is ignored).
 *
 * RFC 5647 §7.1: the 12-byte nonce is a 4-byte fixed field followed by an 8-byte invocation
 * counter, both taken from the derived IV; the counter is a 64-bit big-endian integer incremented
 * after every packet (it is independent of the SSH sequence number, which the counter tracks up
 * to an additive constant, §8.1). §7.3: packet_length is sent in clear as the additional
 * authenticated data; the tag is 16 bytes.
 *
 * GCM needs a new nonce per packet, so a node:crypto cipher object is created per packet (~2 µs;
 * Node has no API to re-IV an existing one). The key is imported once as a KeyObject, which
 * makes each createCipheriv measurably cheaper than passing raw bytes.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type CipherGCMTypes, type KeyObject } from 'node:crypto';
import { MacError, ProtocolError } from '../../errors.js';
import type { CipherAlgorithm, PacketOpener, PacketSealer } from '../types.js';
import { AES_REKEY_BYTES } from './aes-ctr.js';
import { takeKeyMaterial } from './key-material.js';

const BLOCK = 16;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;

/** Add one to the 64-bit big-endian invocation counter in nonce bytes 4..11 (RFC 5647 §7.1), wrapping. */
function incrementInvocationCounter(nonce: Buffer): void {
  for (let i = NONCE_LENGTH - 1; i >= 4; i--) {
    const byte = (nonce[i] + 1) & 0xff;
    nonce[i] = byte;
    if (byte !== 0) return;
  }
}

class GcmSealer implements PacketSealer {
  readonly blockSize = BLOCK;
  readonly lengthExcludedFromPadding = true;
  readonly tagLength = TAG_LENGTH;

  constructor(
    private readonly openssl: CipherGCMTypes,
    private readonly key: KeyObject,
    /** fixed || invocation_counter, advanced in place; createCipheriv copies it. */
    private readonly nonce: Buffer,
  ) {}

  seal(_sequence: number, packet: Buffer): Buffer[] {
    const cipher = createCipheriv(this.openssl, this.key, this.nonce, { authTagLength: TAG_LENGTH });
    incrementInvocationCounter(this.nonce);
    // The clear-text length goes on the wire as its own chunk: it must not alias `packet`.
    const length = Buffer.allocUnsafe(4);
    packet.copy(length, 0, 0, 4);
    cipher.setAAD(length);
    const ciphertext = cipher.update(packet.subarray(4));
    cipher.final(); // GCM has no buffered bytes: this only finishes the tag.
    return [length, ciphertext, cipher.getAuthTag()];
  }
}

class GcmOpener implements PacketOpener {
  readonly blockSize = BLOCK;
  readonly lengthExcludedFromPadding = true;
  readonly tagLength = TAG_LENGTH;
  readonly headerLength = 4;

  constructor(
    private readonly openssl: CipherGCMTypes,
    private readonly key: KeyObject,
    private readonly nonce: Buffer,
  ) {}

  readLength(_sequence: number, header: Buffer): number {
    return header.readUInt32BE(0);
  }

  open(_sequence: number, packet: Buffer): Buffer {
    const end = packet.length - TAG_LENGTH; // 4 + packet_length
    if (end < 4) throw new ProtocolError(`packet of ${packet.length} bytes is shorter than its tag`);
    const decipher = createDecipheriv(this.openssl, this.key, this.nonce, { authTagLength: TAG_LENGTH });
    incrementInvocationCounter(this.nonce);
    decipher.setAAD(packet.subarray(0, 4));
    decipher.setAuthTag(packet.subarray(end));
    const plaintext = decipher.update(packet.subarray(4, end));
    // final() checks the tag (OpenSSL compares in constant time); nothing decrypted is returned
    // unless it passes.
    try {
      decipher.final();
    } catch {
      throw new MacError();
    }
    return plaintext;
  }
}

function aesGcm(bits: 128 | 256): CipherAlgorithm {
  const name = `aes${bits}-gcm@openssh.com`;
  const openssl: CipherGCMTypes = bits === 128 ? 'aes-128-gcm' : 'aes-256-gcm';
  const keyLength = bits / 8;
  const setup = (key: Buffer, iv: Buffer): [KeyObject, Buffer] => [
    createSecretKey(takeKeyMaterial(name, 'key', key, keyLength)),
    takeKeyMaterial(name, 'IV', iv, NONCE_LENGTH),
  ];
  return Object.freeze({
    name,
    keyLength,
    ivLength: NONCE_LENGTH,
    blockSize: BLOCK,
    aead: true,
    // RFC 4344 §3.2 applies to AES whatever the mode: 2^32 blocks.
    rekeyBytes: AES_REKEY_BYTES,
    createSealer(key: Buffer, iv: Buffer) {
      return new GcmSealer(openssl, ...setup(key, iv));
    },
    createOpener(key: Buffer, iv: Buffer) {
      return new GcmOpener(openssl, ...setup(key, iv));
    },
  });
}

export const aes128Gcm: CipherAlgorithm = aesGcm(128);
export const aes256Gcm: CipherAlgorithm = aesGcm(256);
