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

/**
 * Where each packet's nonce is written for createCipheriv/createDecipheriv, which copy it: one
 * buffer for every connection and direction (a Buffer of its own would cost an idle connection
 * about 300 bytes of JS and native memory per direction).
 */
const nonceScratch = Buffer.allocUnsafeSlow(NONCE_LENGTH);

/** One direction's key and nonce: fixed || invocation_counter (RFC 5647 §7.1), kept as numbers. */
abstract class GcmDirection {
  readonly blockSize = BLOCK;
  readonly lengthExcludedFromPadding = true;
  readonly tagLength = TAG_LENGTH;
  private readonly fixed: number;
  /** The 64-bit big-endian invocation counter, as two uint32 halves. */
  private counterHigh: number;
  private counterLow: number;

  constructor(
    protected readonly openssl: CipherGCMTypes,
    protected readonly key: KeyObject,
    iv: Buffer,
  ) {
    this.fixed = iv.readUInt32BE(0);
    this.counterHigh = iv.readUInt32BE(4);
    this.counterLow = iv.readUInt32BE(8);
  }

  /** This packet's nonce (valid until the next call), after which the counter advances by one, wrapping at 2^64. */
  protected nextNonce(): Buffer {
    nonceScratch.writeUInt32BE(this.fixed, 0);
    nonceScratch.writeUInt32BE(this.counterHigh, 4);
    nonceScratch.writeUInt32BE(this.counterLow, 8);
    this.counterLow = (this.counterLow + 1) >>> 0;
    if (this.counterLow === 0) this.counterHigh = (this.counterHigh + 1) >>> 0;
    return nonceScratch;
  }
}

class GcmSealer extends GcmDirection implements PacketSealer {
  seal(_sequence: number, packet: Buffer): Buffer[] {
    const cipher = createCipheriv(this.openssl, this.key, this.nextNonce(), { authTagLength: TAG_LENGTH });
    // The clear-text length goes on the wire as its own chunk: it must not alias `packet`.
    const length = Buffer.allocUnsafe(4);
    packet.copy(length, 0, 0, 4);
    cipher.setAAD(length);
    const ciphertext = cipher.update(packet.subarray(4));
    cipher.final(); // GCM has no buffered bytes: this only finishes the tag.
    return [length, ciphertext, cipher.getAuthTag()];
  }
}

class GcmOpener extends GcmDirection implements PacketOpener {
  readonly headerLength = 4;

  readLength(_sequence: number, header: Buffer): number {
    return header.readUInt32BE(0);
  }

  open(_sequence: number, packet: Buffer): Buffer {
    const end = packet.length - TAG_LENGTH; // 4 + packet_length
    if (end < 4) throw new ProtocolError(`packet of ${packet.length} bytes is shorter than its tag`);
    const decipher = createDecipheriv(this.openssl, this.key, this.nextNonce(), { authTagLength: TAG_LENGTH });
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

/** The IV as derived: only read (into numbers), so no copy is needed, but it must be long enough. */
function checkedIv(name: string, iv: Buffer): Buffer {
  if (iv.length < NONCE_LENGTH) throw new RangeError(`${name} needs a ${NONCE_LENGTH}-byte IV, got ${iv.length} bytes`);
  return iv;
}

function aesGcm(bits: 128 | 256): CipherAlgorithm {
  const name = `aes${bits}-gcm@openssh.com`;
  const openssl: CipherGCMTypes = bits === 128 ? 'aes-128-gcm' : 'aes-256-gcm';
  const keyLength = bits / 8;
  const setup = (key: Buffer, iv: Buffer): [KeyObject, Buffer] => [
    createSecretKey(takeKeyMaterial(name, 'key', key, keyLength)),
    checkedIv(name, iv),
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
