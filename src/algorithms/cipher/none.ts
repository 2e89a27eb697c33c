/**
 * The protection in force before the first SSH_MSG_NEWKEYS (RFC 4253 §6.3 "none"; §6: block size
 * 8 when no cipher is in effect): no encryption, no MAC. Never negotiated, only installed at the
 * start of a connection, so it takes no key, IV or MAC.
 */
import type { CipherAlgorithm, PacketOpener, PacketSealer } from '../types.js';

const noneSealer: PacketSealer = Object.freeze({
  blockSize: 8,
  lengthExcludedFromPadding: false,
  tagLength: 0,
  seal(_sequence: number, packet: Buffer): Buffer[] {
    // A copy: the caller reuses `packet` as scratch once this returns. Only the handshake's few
    // packets take this path.
    return [Buffer.from(packet)];
  },
});

const noneOpener: PacketOpener = Object.freeze({
  blockSize: 8,
  lengthExcludedFromPadding: false,
  tagLength: 0,
  headerLength: 4,
  readLength(_sequence: number, header: Buffer): number {
    return header.readUInt32BE(0);
  },
  open(_sequence: number, packet: Buffer): Buffer {
    return packet.subarray(4);
  },
});

export const noneCipher: CipherAlgorithm = Object.freeze({
  name: 'none',
  keyLength: 0,
  ivLength: 0,
  blockSize: 8,
  // Not an AEAD, but it needs no MAC either: createSealer/createOpener ignore every argument.
  aead: false,
  createSealer(): PacketSealer {
    return noneSealer;
  },
  createOpener(): PacketOpener {
    return noneOpener;
  },
});
