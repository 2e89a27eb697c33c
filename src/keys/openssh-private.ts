/**
 * OpenSSH's own private key file format, openssh-key-v1 (PROTOCOL.key), what `ssh-keygen` writes
 * by default:
 *
 *   -----BEGIN OPENSSH PRIVATE KEY-----  (base64, 70 columns)
 *   byte[]  "openssh-key-v1\0"
 *   string  ciphername           "none", or e.g. "aes256-ctr"           (§1, §4)
 *   string  kdfname              "none" or "bcrypt"                     (§1, §2, §5)
 *   string  kdfoptions           bcrypt: string salt, uint32 rounds     (§2)
 *   uint32  number of keys N     (ssh-keygen writes and reads only 1)
 *   string  publickey
 *   string  private section, encrypted, followed by the AEAD tag if any
 *
 * The private section (§3): uint32 checkint twice (equal: the wrong-passphrase check), the key in
 * the agent encoding, string comment, then padding bytes 1, 2, 3, … to the cipher's block size.
 *
 * Reading is split in two, so a caller can look at the envelope (is it encrypted? how many KDF
 * rounds?) before asking anybody for a passphrase: decodeOpensshPrivateKey, then
 * openOpensshPrivateKey.
 */
import { randomBytes } from 'node:crypto';
import type { SshPrivateKey } from '../algorithms/types.js';
import { KeyFormatError, SshError } from '../errors.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { armor, unarmor } from './armor.js';
import { bcryptPbkdf } from './bcrypt-pbkdf.js';
import { keyFileCiphers } from './openssh-key-ciphers.js';
import type { KeyFileCipher } from './openssh-key-ciphers.js';
import { incorrectPassphrase, missingPassphrase, passphraseBytes } from './passphrase.js';
import type { Passphrase } from './passphrase.js';
import {
  materialFromPrivateKey,
  materialPublicBlob,
  privateKeyFromMaterial,
  readAgentPrivateKey,
  writeAgentPrivateKey,
} from './private-key-material.js';

export const OPENSSH_PRIVATE_KEY_LABEL = 'OPENSSH PRIVATE KEY';
const AUTH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
/** ssh-keygen's line width for this format (sshkey.c, sshkey_private_to_blob2: sshbuf_dtob64 with 70). */
const LINE_WIDTH = 70;

/** ssh-keygen's defaults today (sshkey.c: DEFAULT_CIPHERNAME, DEFAULT_ROUNDS; BCRYPT_SALT_LEN = 16). */
export const DEFAULT_CIPHER = 'aes256-ctr';
export const DEFAULT_BCRYPT_ROUNDS = 16;
const SALT_LENGTH = 16;
/**
 * Files asking for more bcrypt rounds than this are refused unless the caller raises the cap: each
 * round costs ~15 ms here, so a hostile or corrupt file could otherwise stall a process for hours
 * (a uint32 allows 4 billion rounds). ssh-keygen writes 16 unless told otherwise with -a.
 */
export const DEFAULT_MAX_KDF_ROUNDS = 1024;

/** What the unencrypted header of an openssh-key-v1 file says. */
export interface OpensshKeyEnvelope {
  readonly cipher: KeyFileCipher;
  readonly kdf: { readonly name: 'none' } | { readonly name: 'bcrypt'; readonly salt: Buffer; readonly rounds: number };
  /** The public key blob stored in the clear. */
  readonly publicBlob: Buffer;
  /** The private section as stored (encrypted unless cipher is "none"). */
  readonly privateSection: Buffer;
  /** The AEAD tag that follows it (empty for non-AEAD ciphers). */
  readonly tag: Buffer;
  readonly encrypted: boolean;
}

/** Run `body`, turning wire-level errors (truncation, trailing bytes) into KeyFormatError. */
function asKeyFormat<T>(body: () => T): T {
  try {
    return body();
  } catch (cause) {
    if (cause instanceof KeyFormatError) throw cause;
    if (cause instanceof SshError) throw new KeyFormatError(`invalid format: ${cause.message}`, { cause });
    throw cause;
  }
}

function readKdf(name: string, options: Buffer): OpensshKeyEnvelope['kdf'] {
  if (name === 'none') {
    if (options.length !== 0) throw new KeyFormatError('invalid format: KDF "none" with options');
    return { name };
  }
  if (name !== 'bcrypt') throw new KeyFormatError(`unsupported key derivation function ${JSON.stringify(name)} (tssh reads "bcrypt")`);
  const reader = new Reader(options, 0, options.length, 'bcrypt KDF options');
  const salt = Buffer.from(reader.string());
  const rounds = reader.uint32();
  reader.done();
  if (salt.length === 0 || rounds === 0) throw new KeyFormatError('invalid format: bcrypt KDF with an empty salt or 0 rounds');
  return { name, salt, rounds };
}

/**
 * Decode the armour and the clear header of an openssh-key-v1 file, without decrypting anything.
 * Throws KeyFormatError (`invalid format: …`) for a corrupt or truncated file, an unsupported
 * cipher or KDF, or a file with more than one key.
 */
export function decodeOpensshPrivateKey(text: string): OpensshKeyEnvelope {
  const data = unarmor(text, OPENSSH_PRIVATE_KEY_LABEL);
  return asKeyFormat(() => {
    if (data.length < AUTH_MAGIC.length || !data.subarray(0, AUTH_MAGIC.length).equals(AUTH_MAGIC)) {
      throw new KeyFormatError('invalid format: not an openssh-key-v1 key (bad magic)');
    }
    const reader = new Reader(data, AUTH_MAGIC.length, data.length, 'openssh-key-v1 file');
    const cipherName = reader.string().toString('latin1');
    const kdfName = reader.string().toString('latin1');
    const kdfOptions = reader.string();
    const count = reader.uint32();
    // sshkey.c (sshkey_parse_private2) accepts exactly one key per file; so do we.
    if (count !== 1) throw new KeyFormatError(`invalid format: the file holds ${count} keys; only files with one key are supported`);
    const publicBlob = Buffer.from(reader.string());
    const cipher = keyFileCiphers.get(cipherName);
    if (cipher === undefined) throw new KeyFormatError(`unsupported cipher ${JSON.stringify(cipherName)} in private key file`);
    const kdf = readKdf(kdfName, kdfOptions);
    const encrypted = cipher.name !== 'none';
    if (encrypted !== (kdf.name !== 'none')) throw new KeyFormatError(`invalid format: cipher ${cipherName} with KDF ${kdfName}`);
    const privateSection = Buffer.from(reader.string());
    const tag = Buffer.from(reader.bytes(cipher.tagLength));
    reader.done();
    if (privateSection.length === 0 || privateSection.length % cipher.blockSize !== 0) {
      throw new KeyFormatError(`invalid format: private section of ${privateSection.length} bytes is not a multiple of the ${cipher.blockSize}-byte block`);
    }
    return { cipher, kdf, publicBlob, privateSection, tag, encrypted };
  });
}

/** Refuse a KDF cost above the cap before spending it, saying how to proceed. */
export function checkKdfRounds(rounds: number, maxRounds: number): void {
  if (rounds > maxRounds) {
    throw new KeyFormatError(
      `private key asks for ${rounds} KDF rounds, more than the limit of ${maxRounds}: refusing to spend that long; ` +
        'if you trust this file, raise maxKdfRounds (or re-encrypt it with fewer rounds)',
    );
  }
}

function checkPadding(padding: Buffer): void {
  // §3: bytes 1, 2, 3, … (sshkey.c, private2_check_padding, wraps at 255 the same way).
  for (let i = 0; i < padding.length; i++) {
    if (padding[i] !== ((i + 1) & 0xff)) throw new KeyFormatError('invalid format: bad padding after the private key');
  }
}

export interface OpenedPrivateKey {
  readonly key: SshPrivateKey;
  readonly comment: string;
}

/**
 * Decrypt (when encrypted) and decode the private key of an envelope. `passphrase` is needed
 * only for an encrypted file: without one, a PassphraseError with problem `missing`; with a wrong
 * one, problem `incorrect` (`incorrect passphrase supplied to decrypt private key`). Refuses more
 * than `maxKdfRounds` bcrypt rounds (default DEFAULT_MAX_KDF_ROUNDS).
 */
export function openOpensshPrivateKey(
  envelope: OpensshKeyEnvelope,
  passphrase?: Passphrase,
  maxKdfRounds: number = DEFAULT_MAX_KDF_ROUNDS,
): OpenedPrivateKey {
  const { cipher, kdf } = envelope;
  let plaintext: Buffer | undefined;
  if (kdf.name === 'none') {
    plaintext = envelope.privateSection;
  } else {
    if (passphrase === undefined) throw missingPassphrase(`openssh-key-v1, ${cipher.name}, bcrypt ${kdf.rounds} rounds`);
    checkKdfRounds(kdf.rounds, maxKdfRounds);
    const secret = passphraseBytes(passphrase);
    // sshkey.c refuses an empty passphrase for an encrypted key as a wrong passphrase; so do we.
    if (secret.length === 0) throw incorrectPassphrase();
    const derived = bcryptPbkdf(secret, kdf.salt, cipher.keyLength + cipher.ivLength, kdf.rounds);
    plaintext = cipher.decrypt(
      derived.subarray(0, cipher.keyLength),
      derived.subarray(cipher.keyLength),
      envelope.privateSection,
      envelope.tag,
    );
    // An AEAD tag that does not verify means the derived key is wrong, i.e. the passphrase is.
    if (plaintext === undefined) throw incorrectPassphrase();
  }
  const section = plaintext;
  return asKeyFormat(() => {
    const reader = new Reader(section, 0, section.length, 'private key section');
    const check1 = reader.uint32();
    const check2 = reader.uint32();
    if (check1 !== check2) {
      if (envelope.encrypted) throw incorrectPassphrase();
      throw new KeyFormatError('invalid format: the check integers of the private section differ');
    }
    const material = readAgentPrivateKey(reader);
    const comment = reader.utf8();
    checkPadding(reader.rest());
    // sshkey.c checks the public key in the clear matches the private one; a swapped header
    // would make us offer one key and sign with another.
    if (!materialPublicBlob(material).equals(envelope.publicBlob)) {
      throw new KeyFormatError('invalid format: the public key in the file does not match its private key');
    }
    return { key: privateKeyFromMaterial(material), comment };
  });
}

export interface OpensshWriteOptions {
  readonly comment?: string;
  /** Encrypt with this passphrase (non-empty); unencrypted when absent. */
  readonly passphrase?: Passphrase;
  /** bcrypt rounds; ssh-keygen's default 16 (`ssh-keygen -a`). */
  readonly rounds?: number;
  /** A cipher from openssh-key-ciphers (`ssh-keygen -Z`); default aes256-ctr. */
  readonly cipher?: string;
}

/** Write a key as an openssh-key-v1 file, byte-for-byte in the layout ssh-keygen produces. */
export function encodeOpensshPrivateKey(key: SshPrivateKey, options: OpensshWriteOptions = {}): string {
  const encrypt = options.passphrase !== undefined;
  const cipherName = encrypt ? (options.cipher ?? DEFAULT_CIPHER) : 'none';
  const cipher = keyFileCiphers.get(cipherName);
  if (cipher === undefined) throw new KeyFormatError(`unsupported cipher ${JSON.stringify(cipherName)}`);
  if (encrypt && cipher.name === 'none') throw new KeyFormatError('a passphrase needs a cipher other than "none"');
  const rounds = options.rounds ?? DEFAULT_BCRYPT_ROUNDS;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 0xffffffff) throw new RangeError(`bcrypt rounds must be a positive integer, got ${rounds}`);

  const material = materialFromPrivateKey(key);
  const section = new Writer(256);
  const check = randomBytes(4).readUInt32BE(0);
  section.uint32(check).uint32(check);
  writeAgentPrivateKey(section, material);
  section.string(options.comment ?? '');
  for (let pad = 1; section.length % cipher.blockSize !== 0; pad++) section.byte(pad & 0xff);

  let kdfName = 'none';
  let kdfOptions: Buffer = Buffer.alloc(0);
  let sealed: { ciphertext: Buffer; tag: Buffer } = { ciphertext: Buffer.from(section.finish()), tag: Buffer.alloc(0) };
  if (encrypt) {
    const secret = passphraseBytes(options.passphrase!);
    if (secret.length === 0) throw new KeyFormatError('an empty passphrase cannot encrypt a key: omit it to write the key unencrypted');
    const salt = randomBytes(SALT_LENGTH);
    kdfName = 'bcrypt';
    kdfOptions = new Writer(32).string(salt).uint32(rounds).finish();
    const derived = bcryptPbkdf(secret, salt, cipher.keyLength + cipher.ivLength, rounds);
    sealed = cipher.encrypt(derived.subarray(0, cipher.keyLength), derived.subarray(cipher.keyLength), section.finish());
  }

  const file = new Writer(512)
    .bytes(AUTH_MAGIC)
    .string(cipher.name)
    .string(kdfName)
    .string(kdfOptions)
    .uint32(1)
    .string(materialPublicBlob(material))
    .string(sealed.ciphertext)
    .bytes(sealed.tag);
  return armor(OPENSSH_PRIVATE_KEY_LABEL, file.finish(), LINE_WIDTH);
}
