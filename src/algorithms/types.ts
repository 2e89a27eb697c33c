/**
 * The small interfaces every algorithm implements. The transport knows algorithms only through
 * these and the registry (./registry.ts) that maps wire names to them: adding an algorithm is one
 * file and one registry line.
 */
import type { KeyObject } from 'node:crypto';

export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

// ---- Packet protection (cipher + MAC) ---------------------------------------------------------

/**
 * Seals outgoing packets for one direction with one set of keys.
 *
 * The packet layer builds the plaintext packet (uint32 packet_length, byte padding_length,
 * payload, random padding) with the padding chosen so that the encrypted part is a multiple of
 * `blockSize` (RFC 4253 §6): the whole packet, or everything after the length field when
 * `lengthInClear` (AEAD and encrypt-then-MAC modes, whose length is not padded to the block).
 */
export interface PacketSealer {
  readonly blockSize: number;
  /** True when packet_length is excluded from the padding alignment (AES-GCM, chacha20-poly1305, *-etm MACs). */
  readonly lengthExcludedFromPadding: boolean;
  /** Bytes appended after the packet: the MAC or the AEAD tag. */
  readonly tagLength: number;
  /**
   * Encrypt and authenticate one packet. `packet` holds the whole plaintext packet and may be
   * overwritten (it is a scratch buffer the caller reuses once this returns). Returns the wire
   * bytes as one or more chunks, written in order, that do not alias `packet`.
   */
  seal(sequence: number, packet: Buffer): Buffer[];
}

/** Opens incoming packets for one direction with one set of keys. */
export interface PacketOpener {
  readonly blockSize: number;
  readonly lengthExcludedFromPadding: boolean;
  readonly tagLength: number;
  /** How many leading bytes of a packet `readLength` needs (4, or one cipher block when the length is encrypted). */
  readonly headerLength: number;
  /**
   * Learn packet_length from the first `headerLength` bytes of a packet (decrypting them if the
   * length is encrypted). The packet layer checks the value before it waits for or allocates the rest.
   */
  readLength(sequence: number, header: Buffer): number;
  /**
   * Verify and decrypt one whole packet: `packet` is 4 + packet_length + tagLength bytes as
   * received. The MAC or tag is checked (in constant time) before any decrypted byte is returned.
   * Returns the plaintext from padding_length to the end of the padding (packet_length bytes).
   * Throws MacError when authentication fails. May decrypt in place in `packet`.
   */
  open(sequence: number, packet: Buffer): Buffer;
}

/** A cipher as named in KEXINIT (`aes128-gcm@openssh.com`, `aes256-ctr`). */
export interface CipherAlgorithm {
  readonly name: string;
  readonly keyLength: number;
  readonly ivLength: number;
  readonly blockSize: number;
  /** AEAD ciphers carry their own tag: the negotiated MAC is ignored (RFC 5647 §5.1, PROTOCOL.chacha20poly1305). */
  readonly aead: boolean;
  /** RFC 4344 §3.2: rekey after 2^(L/4) blocks for an L-bit block cipher; the byte limit this implies, if lower than our default. */
  readonly rekeyBytes?: number;
  /** `mac` is undefined for AEAD ciphers and required otherwise. */
  createSealer(key: Buffer, iv: Buffer, mac?: MacKeyed): PacketSealer;
  createOpener(key: Buffer, iv: Buffer, mac?: MacKeyed): PacketOpener;
}

/** A MAC algorithm with its key bound. */
export interface MacKeyed {
  readonly algorithm: MacAlgorithm;
  readonly key: Buffer;
}

export interface MacAlgorithm {
  readonly name: string;
  readonly hash: HashName;
  readonly keyLength: number;
  readonly digestLength: number;
  /** Encrypt-then-MAC (`*-etm@openssh.com`): MAC over the ciphertext, length sent in clear. */
  readonly etm: boolean;
}

// ---- Compression ------------------------------------------------------------------------------

export interface Compressor {
  /** Compress one payload (a partial flush ends every packet, as zlib@openssh.com needs). */
  compress(payload: Buffer): Buffer;
}

export interface Decompressor {
  /** Inflate one payload; throws CompressionError if it is invalid or exceeds `maxLength`. */
  decompress(payload: Buffer, maxLength: number): Buffer;
}

export interface CompressionAlgorithm {
  readonly name: string;
  /** `zlib@openssh.com`: compression starts only after authentication succeeds. */
  readonly delayed: boolean;
  /** `none` returns undefined: no transformation at all. */
  createCompressor(): Compressor | undefined;
  createDecompressor(): Decompressor | undefined;
}

// ---- Key exchange -----------------------------------------------------------------------------

/** A Diffie-Hellman group: prime p and generator g, unsigned big-endian bytes. */
export interface DhGroup {
  readonly prime: Buffer;
  readonly generator: Buffer;
}

/** The client's half of one exchange. */
export interface KexClientExchange {
  /**
   * The client's value as the contents of its message field: e (as an mpint's bytes, i.e. what a
   * `string` field carries), Q_C, or C_INIT. The exchange hash takes it as a `string` of these bytes.
   */
  readonly clientValue: Buffer;
  /**
   * Validate the server's value (same encoding) and compute the shared secret K, returned already
   * encoded as it enters the exchange hash and key derivation: an mpint (with its length prefix)
   * for DH/ECDH, a string for the post-quantum hybrids. Throws KexError for an invalid value.
   */
  finish(serverValue: Buffer): Buffer;
}

/** The server's half: validate the client's value, make ours, derive K (encoded as above). */
export interface KexServerResult {
  readonly serverValue: Buffer;
  readonly sharedSecret: Buffer;
}

export interface KexAlgorithm {
  readonly name: string;
  readonly hash: HashName;
  /** diffie-hellman-group-exchange-*: the group is negotiated first (RFC 4419). */
  readonly groupExchange: boolean;
  /**
   * Code this method needs that is loaded on first use: a promise while it loads, undefined once it
   * is ready (or for methods that need nothing). The transport waits for it, taking no input,
   * before startClient or respondServer; a program whose connections never negotiate the method
   * never loads it.
   */
  prepare?(): Promise<void> | undefined;
  /** For group exchange the group must be given; others ignore it. */
  startClient(group?: DhGroup): KexClientExchange;
  respondServer(clientValue: Buffer, group?: DhGroup): KexServerResult;
}

// ---- Host keys and signatures -----------------------------------------------------------------

/**
 * A public key decoded from its SSH blob (RFC 4253 §6.6): key type (`ssh-ed25519`,
 * `ecdsa-sha2-nistp256`, `ssh-rsa`), the blob itself, and a node:crypto KeyObject.
 */
export interface SshPublicKey {
  readonly type: string;
  readonly blob: Buffer;
  readonly keyObject: KeyObject;
}

/** A private key that can sign: the public half plus the private KeyObject. */
export interface SshPrivateKey {
  readonly type: string;
  readonly publicKey: SshPublicKey;
  readonly keyObject: KeyObject;
}

/**
 * A signature algorithm as named in KEXINIT's host key list and in publickey auth
 * (`ssh-ed25519`, `rsa-sha2-256`, `ecdsa-sha2-nistp384`).
 */
export interface SignatureAlgorithm {
  readonly name: string;
  /** The key type this algorithm signs with (`ssh-rsa` for rsa-sha2-256). */
  readonly keyType: string;
  /** Sign `data`; returns the signature blob: string(algorithm name) || string(signature). */
  sign(key: SshPrivateKey, data: Buffer): Buffer;
  /** Verify a signature blob over `data`; false (never a throw) for any malformed or wrong signature. */
  verify(key: SshPublicKey, data: Buffer, signatureBlob: Buffer): boolean;
}
