/**
 * The SSH File Transfer Protocol, version 3 (draft-ietf-secsh-filexfer-02, the revision OpenSSH
 * speaks) on the wire: packet types, status codes, open flags, the ATTRS structure and the
 * uint32-length framing, with every length a client sends checked against a cap before anything is
 * allocated from it. Nothing here touches a file system; src/sftp/server.ts does.
 */
import { ProtocolError } from '../errors.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';

/** The protocol version we speak (§4). OpenSSH's client and server speak exactly this one. */
export const SFTP_VERSION = 3;

/** Packet types (§3). */
export const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

/** Status codes of SSH_FXP_STATUS (§7). NO_CONNECTION and CONNECTION_LOST are client-side only. */
export const FX = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;
export type FxStatus = (typeof FX)[keyof typeof FX];

/** The default message of each status, the words OpenSSH's sftp-server uses. */
export const FX_MESSAGE: Readonly<Record<number, string>> = {
  [FX.OK]: 'Success',
  [FX.EOF]: 'End of file',
  [FX.NO_SUCH_FILE]: 'No such file',
  [FX.PERMISSION_DENIED]: 'Permission denied',
  [FX.FAILURE]: 'Failure',
  [FX.BAD_MESSAGE]: 'Bad message',
  [FX.OP_UNSUPPORTED]: 'Operation unsupported',
};

/** pflags of SSH_FXP_OPEN (§6.3). */
export const FXF = {
  READ: 0x01,
  WRITE: 0x02,
  APPEND: 0x04,
  CREAT: 0x08,
  TRUNC: 0x10,
  EXCL: 0x20,
} as const;

/** ATTRS flags (§5). Any other bit makes the rest of the structure unreadable: a protocol error. */
export const ATTR = {
  SIZE: 0x00000001,
  UIDGID: 0x00000002,
  PERMISSIONS: 0x00000004,
  ACMODTIME: 0x00000008,
  EXTENDED: 0x80000000,
} as const;
const KNOWN_ATTR_FLAGS = ATTR.SIZE | ATTR.UIDGID | ATTR.PERMISSIONS | ATTR.ACMODTIME | ATTR.EXTENDED;

// ---------------------------------------------------------------------------------------------
// Limits. §3 asks servers to take packets of at least 34000 bytes; OpenSSH's client asks for reads
// and writes of up to 255 KiB once limits@openssh.com says the server takes them, and refuses any
// packet over 256 KiB that a server sends it.

/** Largest data of one READ reply or WRITE we ask for: a DATA reply then fits in 256 KiB. */
export const MAX_READ_LENGTH = 256 * 1024 - 1024;
export const MAX_WRITE_LENGTH = 256 * 1024 - 1024;
/**
 * Largest value of a packet's length field we accept: 256 KiB of payload plus room for the
 * header of a WRITE (type, id, a 256-byte handle, offset, data length). Anything longer ends the
 * session before a byte of it is buffered, as OpenSSH's sftp-server does.
 */
export const MAX_PACKET_LENGTH = 256 * 1024 + 1024;
/** §6: "The file handle strings MUST NOT be longer than 256 bytes." */
export const MAX_HANDLE_LENGTH = 256;
/** Open files and directories per session; OpenSSH's client pipelines at most 64 requests. */
export const MAX_OPEN_HANDLES = 256;
/** Extended attribute pairs accepted in one ATTRS (§5); we ignore them, so a handful is plenty. */
export const MAX_EXTENDED_ATTRS = 64;

// ---------------------------------------------------------------------------------------------
// Errors

/** A request that fails with a status code: becomes SSH_FXP_STATUS with that code. */
export class SftpStatusError extends Error {
  constructor(
    readonly status: FxStatus,
    message: string = FX_MESSAGE[status] ?? 'Failure',
  ) {
    super(message);
    this.name = 'SftpStatusError';
  }
}

/**
 * A Node file-system error as a status (§7): the codes OpenSSH's errno_to_portable() maps, and
 * FAILURE with the system's words for everything else.
 */
export function statusFromError(error: unknown): { status: FxStatus; message: string } {
  if (error instanceof SftpStatusError) return { status: error.status, message: error.message };
  if (error instanceof ProtocolError) return { status: FX.BAD_MESSAGE, message: error.message };
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ELOOP':
    case 'EBADF':
      return { status: FX.NO_SUCH_FILE, message: FX_MESSAGE[FX.NO_SUCH_FILE]! };
    case 'EACCES':
    case 'EPERM':
      return { status: FX.PERMISSION_DENIED, message: FX_MESSAGE[FX.PERMISSION_DENIED]! };
    case 'ENOSYS':
    case 'ENOTSUP':
    case 'EOPNOTSUPP':
      return { status: FX.OP_UNSUPPORTED, message: FX_MESSAGE[FX.OP_UNSUPPORTED]! };
    default:
      return { status: FX.FAILURE, message: systemMessage(error) };
  }
}

/** "file already exists" out of Node's "EEXIST: file already exists, mkdir '/x'". */
function systemMessage(error: unknown): string {
  if (!(error instanceof Error)) return FX_MESSAGE[FX.FAILURE]!;
  const match = /^[A-Z0-9_]+: (.*?), [a-z_]+(?: '.*)?$/s.exec(error.message);
  return match ? match[1]! : error.message;
}

// ---------------------------------------------------------------------------------------------
// ATTRS (§5)

export interface ExtendedAttr {
  readonly type: Buffer;
  readonly data: Buffer;
}

/** File attributes; an absent field was not sent (or is not to be changed). */
export interface Attrs {
  size?: bigint;
  uid?: number;
  gid?: number;
  /** st_mode: the file type bits as well as the permissions, as OpenSSH sends them. */
  permissions?: number;
  /** Seconds since 1970 (uint32 on the wire); atime and mtime travel together. */
  atime?: number;
  mtime?: number;
  extended?: ExtendedAttr[];
}

/** Decodes one ATTRS; unknown flag bits and too many extended pairs are protocol errors. */
export function decodeAttrs(reader: Reader): Attrs {
  const flags = reader.uint32();
  if ((flags & ~KNOWN_ATTR_FLAGS) !== 0) {
    throw new ProtocolError(`ATTRS with unsupported flag bits 0x${(flags >>> 0).toString(16)}`);
  }
  const attrs: Attrs = {};
  if (flags & ATTR.SIZE) attrs.size = reader.uint64();
  if (flags & ATTR.UIDGID) {
    attrs.uid = reader.uint32();
    attrs.gid = reader.uint32();
  }
  if (flags & ATTR.PERMISSIONS) attrs.permissions = reader.uint32();
  if (flags & ATTR.ACMODTIME) {
    attrs.atime = reader.uint32();
    attrs.mtime = reader.uint32();
  }
  if (flags & ATTR.EXTENDED) {
    const count = reader.uint32();
    // Checked before the loop: each pair takes at least 8 bytes, and we keep at most a few.
    if (count > MAX_EXTENDED_ATTRS || count * 8 > reader.remaining) {
      throw new ProtocolError(`ATTRS with ${count} extended attributes (at most ${MAX_EXTENDED_ATTRS})`);
    }
    attrs.extended = [];
    for (let i = 0; i < count; i++) {
      attrs.extended.push({ type: Buffer.from(reader.string()), data: Buffer.from(reader.string()) });
    }
  }
  return attrs;
}

/** Encodes ATTRS with a flag for each field present. */
export function encodeAttrs(writer: Writer, attrs: Attrs): Writer {
  let flags = 0;
  if (attrs.size !== undefined) flags |= ATTR.SIZE;
  if (attrs.uid !== undefined && attrs.gid !== undefined) flags |= ATTR.UIDGID;
  if (attrs.permissions !== undefined) flags |= ATTR.PERMISSIONS;
  if (attrs.atime !== undefined && attrs.mtime !== undefined) flags |= ATTR.ACMODTIME;
  if (attrs.extended && attrs.extended.length > 0) flags |= ATTR.EXTENDED;
  writer.uint32(flags);
  if (flags & ATTR.SIZE) writer.uint64(attrs.size!);
  if (flags & ATTR.UIDGID) writer.uint32(attrs.uid!).uint32(attrs.gid!);
  if (flags & ATTR.PERMISSIONS) writer.uint32(attrs.permissions!);
  if (flags & ATTR.ACMODTIME) writer.uint32(attrs.atime!).uint32(attrs.mtime!);
  if (flags & ATTR.EXTENDED) {
    writer.uint32(attrs.extended!.length);
    for (const { type, data } of attrs.extended!) writer.string(type).string(data);
  }
  return writer;
}

/** What fs.stat() gives, as the attributes a server returns: all four standard groups. */
export interface StatLike {
  readonly size: number | bigint;
  readonly uid: number | bigint;
  readonly gid: number | bigint;
  readonly mode: number | bigint;
  readonly atimeMs: number | bigint;
  readonly mtimeMs: number | bigint;
}

export function attrsFromStats(stats: StatLike): Attrs {
  return {
    size: BigInt(stats.size),
    uid: Number(stats.uid) >>> 0,
    gid: Number(stats.gid) >>> 0,
    permissions: Number(stats.mode) >>> 0,
    // uint32 seconds, as OpenSSH sends them (the cast wraps times outside 1970..2106).
    atime: Math.floor(Number(stats.atimeMs) / 1000) >>> 0,
    mtime: Math.floor(Number(stats.mtimeMs) / 1000) >>> 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Packets (§3): uint32 length, byte type, then the type's data.

/**
 * A Writer for one packet, the length left to fill in by `finishPacket`. `capacity` is a hint for
 * the payload size.
 */
export function packetWriter(type: number, capacity = 64): Writer {
  // Headroom of 4 bytes: the length goes in front without copying the payload.
  return new Writer(capacity, 4).byte(type);
}

/** The whole packet, length prefix included. */
export function finishPacket(writer: Writer): Buffer {
  const packet = writer.finish(true);
  packet.writeUInt32BE(packet.length - 4, 0);
  return packet;
}

export function statusPacket(id: number, status: FxStatus, message: string = FX_MESSAGE[status] ?? ''): Buffer {
  // Language tag: empty, as OpenSSH sends ("" is allowed by RFC 1766's grammar for "none").
  return finishPacket(packetWriter(FXP.STATUS, 32 + message.length).uint32(id).uint32(status).string(message).string(''));
}

export function handlePacket(id: number, handle: Buffer): Buffer {
  return finishPacket(packetWriter(FXP.HANDLE, 8 + handle.length).uint32(id).string(handle));
}

export function attrsPacket(id: number, attrs: Attrs): Buffer {
  return finishPacket(encodeAttrs(packetWriter(FXP.ATTRS, 48).uint32(id), attrs));
}

export interface NameEntry {
  readonly filename: Buffer | string;
  readonly longname: Buffer | string;
  readonly attrs: Attrs;
}

export function namePacket(id: number, entries: readonly NameEntry[]): Buffer {
  const writer = packetWriter(FXP.NAME, 64 + entries.length * 128).uint32(id).uint32(entries.length);
  for (const entry of entries) {
    writer.string(entry.filename).string(entry.longname);
    encodeAttrs(writer, entry.attrs);
  }
  return finishPacket(writer);
}

/** §4: the version and our extensions, each name with its version as an ASCII number. */
export function versionPacket(extensions: readonly (readonly [string, string])[]): Buffer {
  const writer = packetWriter(FXP.VERSION, 512).uint32(SFTP_VERSION);
  for (const [name, data] of extensions) writer.string(name).string(data);
  return finishPacket(writer);
}

/** Header size of a DATA reply: length, type, id, data length. The data follows it. */
export const DATA_HEADER_LENGTH = 13;

/**
 * Fills in the header of a DATA reply whose data was read in place at DATA_HEADER_LENGTH, and
 * returns the packet (no copy of the data).
 */
export function finishDataPacket(buffer: Buffer, id: number, dataLength: number): Buffer {
  buffer.writeUInt32BE(DATA_HEADER_LENGTH - 4 + dataLength, 0);
  buffer[4] = FXP.DATA;
  buffer.writeUInt32BE(id, 5);
  buffer.writeUInt32BE(dataLength, 9);
  return buffer.subarray(0, DATA_HEADER_LENGTH + dataLength);
}

// ---------------------------------------------------------------------------------------------
// Framing

/**
 * Splits a byte stream into packets (§3). A length above MAX_PACKET_LENGTH, or of zero (no type
 * byte), is refused as soon as the four length bytes arrive, so a client cannot make us buffer
 * more than one packet's worth. Frames are returned without their length: type byte first.
 * A frame that arrived in one chunk is a view of it; one that spans chunks is copied once, unless
 * the chunks lie next to each other in one ArrayBuffer (reads into consecutive parts of one
 * buffer, as the SFTP child does: see child.ts), which are joined into one view instead.
 */
export class PacketFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the packet whose header was read, or -1 when waiting for a header. */
  private expected = -1;

  constructor(private readonly maxPacketLength = MAX_PACKET_LENGTH) {}

  /** Bytes held that do not yet make a whole packet. */
  get bufferedLength(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.buffered += chunk.length;
    const last = this.chunks[this.chunks.length - 1];
    if (last !== undefined && last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset) {
      this.chunks[this.chunks.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + chunk.length);
      return;
    }
    this.chunks.push(chunk);
  }

  /** The next whole packet, or undefined until more bytes arrive. Throws ProtocolError on a bad length. */
  next(): Buffer | undefined {
    if (this.expected < 0) {
      if (this.buffered < 4) return undefined;
      const length = this.peekLength();
      if (length === 0) throw new ProtocolError('SFTP packet of length 0 (no type)');
      if (length > this.maxPacketLength) {
        throw new ProtocolError(`SFTP packet of ${length} bytes exceeds the limit of ${this.maxPacketLength}`);
      }
      this.take(4);
      this.expected = length;
    }
    if (this.buffered < this.expected) return undefined;
    const frame = this.take(this.expected);
    this.expected = -1;
    return frame;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    const head = Buffer.allocUnsafe(4);
    let filled = 0;
    for (const chunk of this.chunks) {
      const n = Math.min(4 - filled, chunk.length);
      chunk.copy(head, filled, 0, n);
      filled += n;
      if (filled === 4) break;
    }
    return head.readUInt32BE(0);
  }

  /** Removes `n` buffered bytes (n ≤ buffered). */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const count = Math.min(n - filled, chunk.length);
      chunk.copy(out, filled, 0, count);
      filled += count;
      if (count === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(count);
    }
    return out;
  }
}

/** A request's reader over one frame, positioned after the type byte. */
export function frameReader(frame: Buffer, what: string): Reader {
  return new Reader(frame, 1, frame.length, what);
}

const PACKET_TYPE_NAMES = new Map<number, string>(Object.entries(FXP).map(([name, value]) => [value, `SSH_FXP_${name}`]));

/** The name of a packet type, for logs and messages (every request's reader carries one). */
export function packetTypeName(type: number): string {
  return PACKET_TYPE_NAMES.get(type) ?? `type ${type}`;
}
