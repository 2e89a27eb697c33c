/**
 * The composition of a stream cipher (a long-lived keystream such as AES-CTR, RFC 4344 §4) with a
 * separately negotiated MAC, in both of SSH's orders:
 *
 * - encrypt-and-MAC (RFC 4253 §6.3, §6.4): the whole packet, length included, is encrypted; the MAC
 *   is computed over `uint32 sequence_number || unencrypted packet` and sent in clear after it.
 *   The receiver must decrypt the first block to learn the length, and can only verify the MAC
 *   after decrypting the rest (an inherent weakness of the original design).
 * - encrypt-then-MAC (`*-etm@openssh.com`, OpenSSH PROTOCOL §1.5): the length is sent in clear, the
 *   rest encrypted, and the MAC covers `uint32 sequence_number || uint32 packet_length ||
 *   ciphertext`, so the receiver verifies it before decrypting anything.
 *
 * One cipher object lives for the whole key epoch of a direction: SDCTR's counter simply continues
 * from block to block and packet to packet (RFC 4344 §4: "The counter X is then incremented"),
 * so no per-packet cipher setup is needed. Node's `update()` always allocates its output (there is no
 * in-place API in Node 20), which is the one large allocation per packet.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { MacError, ProtocolError } from '../../errors.js';
import { takeKeyMaterial } from './key-material.js';
import type { HashName, MacKeyed, PacketOpener, PacketSealer } from '../types.js';

/** A keystream that continues across calls: node:crypto's Cipher/Decipher objects in CTR mode. */
export interface StreamTransform {
  update(data: Buffer): Buffer;
}

/** The MAC key cut to the algorithm's key length (RFC 4253 §7.2 derives at least that many bytes). */
function macKey(mac: MacKeyed): Buffer {
  return takeKeyMaterial(mac.algorithm.name, 'key', mac.key, mac.algorithm.keyLength);
}

/** Build the sealer for one direction: `cipher` is the long-lived encrypting keystream. */
export function createStreamSealer(cipher: StreamTransform, blockSize: number, mac: MacKeyed): PacketSealer {
  const hash = mac.algorithm.hash;
  const key = macKey(mac);
  const tagLength = mac.algorithm.digestLength;
  if (mac.algorithm.etm) return new EtmSealer(cipher, blockSize, hash, key, tagLength);
  return new EncryptAndMacSealer(cipher, blockSize, hash, key, tagLength);
}

/** Build the opener for one direction: `decipher` is the long-lived decrypting keystream. */
export function createStreamOpener(decipher: StreamTransform, blockSize: number, mac: MacKeyed): PacketOpener {
  const hash = mac.algorithm.hash;
  const key = macKey(mac);
  const tagLength = mac.algorithm.digestLength;
  if (mac.algorithm.etm) return new EtmOpener(decipher, blockSize, hash, key, tagLength);
  return new EncryptAndMacOpener(decipher, blockSize, hash, key, tagLength);
}

// ---- encrypt-and-MAC (RFC 4253 §6.4) ---------------------------------------------------------

class EncryptAndMacSealer implements PacketSealer {
  readonly lengthExcludedFromPadding = false;
  /** Scratch for the uint32 sequence number; the HMAC copies it into its state at once. */
  private readonly sequenceBytes = Buffer.alloc(4);

  constructor(
    private readonly cipher: StreamTransform,
    readonly blockSize: number,
    private readonly hash: HashName,
    private readonly key: Buffer,
    readonly tagLength: number,
  ) {}

  seal(sequence: number, packet: Buffer): Buffer[] {
    // RFC 4253 §6.4: mac = MAC(key, sequence_number || unencrypted_packet), computed before
    // encryption because it covers the plaintext.
    this.sequenceBytes.writeUInt32BE(sequence, 0);
    const tag = createHmac(this.hash, this.key).update(this.sequenceBytes).update(packet).digest();
    // update() returns a fresh buffer, so the ciphertext never aliases the caller's scratch packet.
    return [this.cipher.update(packet), tag];
  }
}

class EncryptAndMacOpener implements PacketOpener {
  readonly lengthExcludedFromPadding = false;
  /** The length is encrypted: one whole cipher block must arrive before it can be read. */
  readonly headerLength: number;
  private readonly sequenceBytes = Buffer.alloc(4);
  /** The decrypted first block, kept between readLength() and open(): the keystream cannot rewind. */
  private firstBlock: Buffer | undefined;

  constructor(
    private readonly decipher: StreamTransform,
    readonly blockSize: number,
    private readonly hash: HashName,
    private readonly key: Buffer,
    readonly tagLength: number,
  ) {
    this.headerLength = blockSize;
  }

  readLength(_sequence: number, header: Buffer): number {
    const first = this.decipher.update(header.subarray(0, this.blockSize));
    this.firstBlock = first;
    return first.readUInt32BE(0);
  }

  open(sequence: number, packet: Buffer): Buffer {
    const first = this.firstBlock;
    this.firstBlock = undefined;
    if (first === undefined) throw new ProtocolError('packet opened before its length was read');
    // 4 + packet_length. The decrypted length field itself is not compared with it: it is covered
    // by the MAC below, so a tampered length fails as a MacError like any other tampering.
    const end = packet.length - this.tagLength;
    if (end < this.blockSize) throw new ProtocolError(`packet of ${packet.length} bytes is shorter than one cipher block and its MAC`);
    // Decrypt the rest and assemble the plaintext packet in place (the caller allows it): the MAC
    // covers the whole plaintext packet and the result must be contiguous anyway.
    const rest = this.decipher.update(packet.subarray(this.blockSize, end));
    first.copy(packet, 0);
    rest.copy(packet, this.blockSize);
    this.sequenceBytes.writeUInt32BE(sequence, 0);
    const expected = createHmac(this.hash, this.key).update(this.sequenceBytes).update(packet.subarray(0, end)).digest();
    // Constant-time comparison: an early-exit comparison would leak how many tag bytes were right.
    if (!timingSafeEqual(expected, packet.subarray(end))) throw new MacError();
    return packet.subarray(4, end);
  }
}

// ---- encrypt-then-MAC (OpenSSH PROTOCOL §1.5) -------------------------------------------------

class EtmSealer implements PacketSealer {
  /** The length travels in clear, so only padding_length..padding is aligned to the block. */
  readonly lengthExcludedFromPadding = true;

  constructor(
    private readonly cipher: StreamTransform,
    readonly blockSize: number,
    private readonly hash: HashName,
    private readonly key: Buffer,
    readonly tagLength: number,
  ) {}

  seal(sequence: number, packet: Buffer): Buffer[] {
    // One small (pooled) buffer holds sequence_number || packet_length: the first 8 bytes of the
    // MAC input, whose last 4 bytes are also the clear-text length sent on the wire.
    const prefix = Buffer.allocUnsafe(8);
    prefix.writeUInt32BE(sequence, 0);
    packet.copy(prefix, 4, 0, 4);
    const ciphertext = this.cipher.update(packet.subarray(4));
    const tag = createHmac(this.hash, this.key).update(prefix).update(ciphertext).digest();
    return [prefix.subarray(4), ciphertext, tag];
  }
}

class EtmOpener implements PacketOpener {
  readonly lengthExcludedFromPadding = true;
  readonly headerLength = 4;
  private readonly sequenceBytes = Buffer.alloc(4);

  constructor(
    private readonly decipher: StreamTransform,
    readonly blockSize: number,
    private readonly hash: HashName,
    private readonly key: Buffer,
    readonly tagLength: number,
  ) {}

  readLength(_sequence: number, header: Buffer): number {
    return header.readUInt32BE(0);
  }

  open(sequence: number, packet: Buffer): Buffer {
    const end = packet.length - this.tagLength; // 4 + packet_length
    if (end < 4) throw new ProtocolError(`packet of ${packet.length} bytes is shorter than its MAC`);
    // Verify before decrypting (the point of EtM): a forged packet never reaches the cipher, so
    // the long-lived keystream is not advanced by it either.
    this.sequenceBytes.writeUInt32BE(sequence, 0);
    const expected = createHmac(this.hash, this.key).update(this.sequenceBytes).update(packet.subarray(0, end)).digest();
    if (!timingSafeEqual(expected, packet.subarray(end))) throw new MacError();
    return this.decipher.update(packet.subarray(4, end));
  }
}
