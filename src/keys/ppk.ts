/**
 * PuTTY's private key files (.ppk), versions 2 and 3, as documented in PuTTY's manual
 * (appendix C, "PPK file format") and written by puttygen:
 *
 *   PuTTY-User-Key-File-3: ssh-ed25519
 *   Encryption: aes256-cbc                    (or none)
 *   Comment: text
 *   Public-Lines: 2                           the public key blob, base64, 64 columns
 *   …
 *   Key-Derivation: Argon2id                  v3 and encrypted only: Argon2 parameters
 *   Argon2-Memory: 8192                       (KiB)
 *   Argon2-Passes: 13
 *   Argon2-Parallelism: 1
 *   Argon2-Salt: <hex>
 *   Private-Lines: 1                          the private blob, padded and encrypted
 *   …
 *   Private-MAC: <hex>
 *
 * Keys: v2: cipher key = SHA-1(uint32 0 || passphrase) || SHA-1(uint32 1 || passphrase), first 32
 * bytes, IV zero; MAC = HMAC-SHA-1 keyed with SHA-1("putty-private-key-file-mac-key" ||
 * passphrase). v3: Argon2(passphrase, salt) gives 80 bytes = cipher key (32) || IV (16) || MAC key
 * (32); MAC = HMAC-SHA-256 (keyed with the empty string when unencrypted). The MAC covers
 * string(algorithm) string(encryption) string(comment) string(public blob) string(decrypted,
 * padded private blob), so a wrong passphrase shows up as a MAC mismatch.
 *
 * The private blob holds only what the public blob lacks: ssh-rsa mpint d, p, q, iqmp; ECDSA mpint
 * d; ssh-ed25519 the 32-byte private key as a little-endian integer (PuTTY's put_mp_le_unsigned:
 * trailing zero bytes are dropped, so it can be shorter than 32).
 *
 * Files are handled as bytes (latin1 text): the comment enters the MAC as the bytes on disk,
 * whatever character set the writer used.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SshPrivateKey } from '../algorithms/types.js';
import { KeyFormatError, SshError } from '../errors.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { base64Lines, decodeBase64Strict } from './armor.js';
import { DEFAULT_MAX_KDF_ROUNDS } from './openssh-private.js';
import type { OpenedPrivateKey } from './openssh-private.js';
import { incorrectPassphrase, missingPassphrase, passphraseBytes } from './passphrase.js';
import type { Passphrase } from './passphrase.js';
import { ecdsaCurves } from './public-key.js';
import { fixedScalar, materialFromPrivateKey, privateKeyFromMaterial } from './private-key-material.js';
import type { PrivateKeyMaterial } from './private-key-material.js';

export const PPK_MAGIC = 'PuTTY-User-Key-File-';
const LINE_WIDTH = 64;
const AES_BLOCK = 16;
const MAC_KEY_LABEL = 'putty-private-key-file-mac-key';

export type Argon2Flavour = 'Argon2id' | 'Argon2i' | 'Argon2d';

export interface Argon2Parameters {
  readonly flavour: Argon2Flavour;
  /** KiB. */
  readonly memory: number;
  readonly passes: number;
  readonly parallelism: number;
  readonly salt: Buffer;
}

/** A .ppk file's fields, before decryption. */
export interface PpkFile {
  readonly version: 2 | 3;
  readonly algorithm: string;
  readonly encrypted: boolean;
  /** The comment's bytes as stored (they enter the MAC). */
  readonly commentBytes: Buffer;
  readonly publicBlob: Buffer;
  readonly privateBlob: Buffer;
  readonly mac: Buffer;
  /** v3 encrypted files only. */
  readonly argon2?: Argon2Parameters;
}

/** PuTTY's defaults (puttygen: Argon2id, 8192 KiB, parallelism 1); passes fixed rather than timed. */
export const DEFAULT_ARGON2: Omit<Argon2Parameters, 'salt'> = { flavour: 'Argon2id', memory: 8192, passes: 13, parallelism: 1 };
/** Files asking Argon2 for more memory than this (KiB, 256 MiB) are refused unless the caller raises it. */
export const DEFAULT_MAX_ARGON2_MEMORY = 256 * 1024;

/** True when `data` starts like a .ppk file (any version). */
export function isPpk(data: Buffer | string): boolean {
  const head = typeof data === 'string' ? data.slice(0, 64) : data.subarray(0, 64).toString('latin1');
  return head.trimStart().startsWith(PPK_MAGIC);
}

/** Reads `Name: value` lines in the fixed order PuTTY writes them. */
class Lines {
  private index = 0;
  constructor(private readonly lines: readonly string[]) {}

  peekName(): string | undefined {
    const line = this.lines[this.index];
    return line === undefined ? undefined : line.slice(0, line.indexOf(':'));
  }

  header(name: string): string {
    const line = this.lines[this.index];
    const prefix = `${name}: `;
    if (line === undefined) throw new KeyFormatError(`invalid format: PuTTY key file ends before its "${name}" line (truncated?)`);
    this.index++;
    if (line.startsWith(prefix)) return line.slice(prefix.length);
    // An empty comment is written "Comment: "; tolerate editors that strip the trailing space.
    if (line === `${name}:`) return '';
    throw new KeyFormatError(`invalid format: PuTTY key file has "${line.slice(0, 40)}" where "${name}:" belongs`);
  }

  count(name: string, max: number): number {
    const value = this.header(name);
    if (!/^\d{1,15}$/.test(value) || Number(value) > max) throw new KeyFormatError(`invalid format: bad ${name} value "${value}"`);
    return Number(value);
  }

  base64(name: string): Buffer {
    const count = this.count(name, 4096);
    if (this.index + count > this.lines.length) throw new KeyFormatError(`invalid format: PuTTY key file is truncated in its ${name}`);
    const text = this.lines.slice(this.index, this.index + count).join('');
    this.index += count;
    return decodeBase64Strict(text, `the ${name.replace('-Lines', '').toLowerCase()} key data`);
  }
}

function readArgon2(lines: Lines): Argon2Parameters {
  const flavour = lines.header('Key-Derivation');
  if (flavour !== 'Argon2id' && flavour !== 'Argon2i' && flavour !== 'Argon2d') {
    throw new KeyFormatError(`unsupported PuTTY key derivation ${JSON.stringify(flavour)}`);
  }
  const memory = lines.count('Argon2-Memory', 0xffffffff);
  const passes = lines.count('Argon2-Passes', 0xffffffff);
  const parallelism = lines.count('Argon2-Parallelism', 0xffffff);
  const saltHex = lines.header('Argon2-Salt');
  if (!/^([0-9a-fA-F]{2})+$/.test(saltHex)) throw new KeyFormatError('invalid format: bad Argon2-Salt');
  return { flavour, memory, passes, parallelism, salt: Buffer.from(saltHex, 'hex') };
}

/**
 * Parse a .ppk file's text (v2 or v3) without decrypting it. KeyFormatError for v1 files, unknown
 * encryption, missing or out-of-order lines, bad base64.
 */
export function decodePpk(data: Buffer | string): PpkFile {
  const text = typeof data === 'string' ? Buffer.from(data, 'utf8').toString('latin1') : data.toString('latin1');
  const lines = new Lines(text.trimStart().split(/\r?\n/));
  const first = lines.peekName() ?? '';
  const version = first === `${PPK_MAGIC}3` ? 3 : first === `${PPK_MAGIC}2` ? 2 : undefined;
  if (version === undefined) {
    throw new KeyFormatError(`unsupported PuTTY key file version "${first}": tssh reads versions 2 and 3 (re-save it with a current puttygen)`);
  }
  const algorithm = lines.header(first);
  const encryption = lines.header('Encryption');
  if (encryption !== 'none' && encryption !== 'aes256-cbc') throw new KeyFormatError(`unsupported PuTTY key encryption ${JSON.stringify(encryption)}`);
  const encrypted = encryption === 'aes256-cbc';
  const commentBytes = Buffer.from(lines.header('Comment'), 'latin1');
  const publicBlob = lines.base64('Public-Lines');
  const argon2 = version === 3 && encrypted ? readArgon2(lines) : undefined;
  const privateBlob = lines.base64('Private-Lines');
  const macHex = lines.header('Private-MAC');
  const macLength = version === 3 ? 32 : 20;
  if (!new RegExp(`^[0-9a-fA-F]{${2 * macLength}}$`).test(macHex)) throw new KeyFormatError('invalid format: bad Private-MAC line');
  if (encrypted && (privateBlob.length === 0 || privateBlob.length % AES_BLOCK !== 0)) {
    throw new KeyFormatError('invalid format: encrypted private data is not a whole number of AES blocks');
  }
  return { version, algorithm, encrypted, commentBytes, publicBlob, privateBlob, mac: Buffer.from(macHex, 'hex'), ...(argon2 ? { argon2 } : {}) };
}

interface PpkKeys {
  readonly cipherKey: Buffer;
  readonly iv: Buffer;
  readonly macKey: Buffer;
}

function sha1(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha1');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function v2Keys(secret: Buffer, encrypted: boolean): PpkKeys {
  const macKey = sha1(Buffer.from(MAC_KEY_LABEL, 'latin1'), encrypted ? secret : Buffer.alloc(0));
  if (!encrypted) return { cipherKey: Buffer.alloc(0), iv: Buffer.alloc(0), macKey };
  const counter = (n: number): Buffer => Buffer.from([0, 0, 0, n]);
  const cipherKey = Buffer.concat([sha1(counter(0), secret), sha1(counter(1), secret)]).subarray(0, 32);
  return { cipherKey, iv: Buffer.alloc(AES_BLOCK), macKey };
}

async function v3Keys(secret: Buffer, argon2: Argon2Parameters | undefined): Promise<PpkKeys> {
  if (argon2 === undefined) return { cipherKey: Buffer.alloc(0), iv: Buffer.alloc(0), macKey: Buffer.alloc(0) };
  // Loaded here, not at start: only PPK v3 files need Argon2 (about 10 ms of every program's start).
  const { argon2dAsync, argon2iAsync, argon2idAsync } = await import('@noble/hashes/argon2.js');
  const derive = argon2.flavour === 'Argon2id' ? argon2idAsync : argon2.flavour === 'Argon2i' ? argon2iAsync : argon2dAsync;
  const options = { t: argon2.passes, m: argon2.memory, p: argon2.parallelism, dkLen: 80, maxmem: (argon2.memory + 1024) * 1024 };
  let out: Uint8Array;
  try {
    out = await derive(secret, argon2.salt, options);
  } catch (cause) {
    throw new KeyFormatError(`invalid format: unusable Argon2 parameters (${cause instanceof Error ? cause.message : String(cause)})`, { cause });
  }
  const bytes = Buffer.from(out);
  return { cipherKey: bytes.subarray(0, 32), iv: bytes.subarray(32, 48), macKey: bytes.subarray(48, 80) };
}

function computeMac(version: 2 | 3, macKey: Buffer, file: Omit<PpkFile, 'mac' | 'privateBlob' | 'version'>, plainPrivate: Buffer): Buffer {
  const data = new Writer(512)
    .string(file.algorithm)
    .string(file.encrypted ? 'aes256-cbc' : 'none')
    .string(file.commentBytes)
    .string(file.publicBlob)
    .string(plainPrivate)
    .finish();
  return createHmac(version === 3 ? 'sha256' : 'sha1', macKey).update(data).digest();
}

function aes(decrypt: boolean, keys: PpkKeys, data: Buffer): Buffer {
  const cipher = (decrypt ? createDecipheriv : createCipheriv)('aes-256-cbc', keys.cipherKey, keys.iv).setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** The key material from the public blob plus PuTTY's private blob (layouts in the header). */
function readMaterial(algorithm: string, publicBlob: Buffer, privateBlob: Buffer): PrivateKeyMaterial {
  const pub = new Reader(publicBlob, 0, publicBlob.length, 'PuTTY public key');
  const priv = new Reader(privateBlob, 0, privateBlob.length, 'PuTTY private key');
  const type = pub.string().toString('latin1');
  if (type !== algorithm) throw new KeyFormatError(`invalid format: the file says ${algorithm} but holds a ${type} key`);
  if (type === 'ssh-ed25519') {
    const publicKey = Buffer.from(pub.string());
    const little = priv.string();
    if (little.length > 32) throw new KeyFormatError('invalid format: ssh-ed25519 private key longer than 32 bytes');
    const seed = Buffer.alloc(32);
    little.copy(seed); // little-endian: the dropped zero bytes were at the end
    return { kind: 'ed25519', seed, publicKey };
  }
  const curve = ecdsaCurves.get(type);
  if (curve !== undefined) {
    pub.string(); // curve identifier, checked with the whole blob by parsePublicKeyBlob
    const q = Buffer.from(pub.string());
    const d = fixedScalar(priv.mpintUnsigned(curve.fieldLength), curve.fieldLength, 'ECDSA private scalar');
    return { kind: 'ecdsa', curve, d, q };
  }
  if (type === 'ssh-rsa') {
    const e = Buffer.from(pub.mpintUnsigned());
    const n = Buffer.from(pub.mpintUnsigned());
    const [d, p, q, iqmp] = [0, 1, 2, 3].map(() => Buffer.from(priv.mpintUnsigned())) as [Buffer, Buffer, Buffer, Buffer];
    return { kind: 'rsa', n, e, d, iqmp, p, q };
  }
  throw new KeyFormatError(`unsupported key type ${JSON.stringify(type)} in PuTTY key file (tssh reads ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa)`);
}

function writePrivateBlob(material: PrivateKeyMaterial): Buffer {
  const writer = new Writer(256);
  switch (material.kind) {
    case 'ed25519': {
      let length = material.seed.length;
      while (length > 0 && material.seed[length - 1] === 0) length--;
      writer.string(material.seed.subarray(0, length));
      break;
    }
    case 'ecdsa':
      writer.mpintUnsigned(material.d);
      break;
    case 'rsa':
      writer.mpintUnsigned(material.d).mpintUnsigned(material.p).mpintUnsigned(material.q).mpintUnsigned(material.iqmp);
      break;
  }
  return Buffer.from(writer.finish());
}

export interface PpkLimits {
  /** Most Argon2 passes accepted (default: openssh-private's DEFAULT_MAX_KDF_ROUNDS, 1024). */
  readonly maxPasses?: number;
  /** Most Argon2 memory accepted, KiB (default DEFAULT_MAX_ARGON2_MEMORY). */
  readonly maxMemory?: number;
}

/** Refuse a v3 file whose Argon2 cost is above the limits, before any passphrase is asked for. */
export function checkPpkKdfCost(file: PpkFile, limits: PpkLimits = {}): void {
  const argon2 = file.argon2;
  if (argon2 === undefined) return;
  const maxPasses = limits.maxPasses ?? DEFAULT_MAX_KDF_ROUNDS;
  const maxMemory = limits.maxMemory ?? DEFAULT_MAX_ARGON2_MEMORY;
  if (argon2.passes > maxPasses) {
    throw new KeyFormatError(
      `PuTTY key asks for ${argon2.passes} Argon2 passes, more than the limit of ${maxPasses}; if you trust this file, raise maxKdfRounds`,
    );
  }
  if (argon2.memory > maxMemory) {
    throw new KeyFormatError(
      `PuTTY key asks for ${argon2.memory} KiB of Argon2 memory, more than the limit of ${maxMemory} KiB; if you trust this file, raise maxArgon2Memory`,
    );
  }
}

/**
 * Verify and decode a parsed .ppk file. PassphraseError `missing` when it is encrypted and no
 * passphrase is given, `incorrect` when the MAC does not verify under the given one; for an
 * unencrypted file a MAC mismatch means the file was damaged or edited (KeyFormatError).
 */
export async function openPpk(file: PpkFile, passphrase?: Passphrase, limits: PpkLimits = {}): Promise<OpenedPrivateKey> {
  if (file.encrypted && passphrase === undefined) {
    throw missingPassphrase(`PuTTY key file v${file.version}, aes256-cbc${file.argon2 ? `, ${file.argon2.flavour}` : ''}`);
  }
  checkPpkKdfCost(file, limits);
  const secret = file.encrypted ? passphraseBytes(passphrase!) : Buffer.alloc(0);
  const keys = file.version === 3 ? await v3Keys(secret, file.argon2) : v2Keys(secret, file.encrypted);
  const plainPrivate = file.encrypted ? aes(true, keys, file.privateBlob) : file.privateBlob;
  const expected = computeMac(file.version, keys.macKey, file, plainPrivate);
  if (!timingSafeEqual(expected, file.mac)) {
    if (file.encrypted) throw incorrectPassphrase();
    throw new KeyFormatError('invalid format: the PuTTY key file MAC does not match (the file is damaged or was edited)');
  }
  const comment = file.commentBytes.toString('utf8');
  try {
    const key = privateKeyFromMaterial(readMaterial(file.algorithm, file.publicBlob, plainPrivate));
    if (!key.publicKey.blob.equals(file.publicBlob)) throw new KeyFormatError('invalid format: the public key in the file does not match its private key');
    return { key, comment };
  } catch (cause) {
    if (cause instanceof KeyFormatError || !(cause instanceof SshError)) throw cause;
    throw new KeyFormatError(`invalid format: ${cause.message}`, { cause });
  }
}

export interface PpkWriteOptions {
  readonly comment?: string;
  readonly passphrase?: Passphrase;
  /** 3 (default, what puttygen writes today) or 2 (for PuTTY before 0.75). */
  readonly version?: 2 | 3;
  /** v3 encrypted: Argon2 settings (default DEFAULT_ARGON2, random 16-byte salt). */
  readonly argon2?: Partial<Omit<Argon2Parameters, 'salt'>>;
}

/** Write a key as a .ppk file. */
export async function encodePpk(key: SshPrivateKey, options: PpkWriteOptions = {}): Promise<string> {
  const version = options.version ?? 3;
  const comment = options.comment ?? '';
  if (/[\r\n]/.test(comment)) throw new KeyFormatError('a PuTTY key comment cannot contain a line break');
  const encrypted = options.passphrase !== undefined;
  const secret = encrypted ? passphraseBytes(options.passphrase!) : Buffer.alloc(0);
  if (encrypted && secret.length === 0) throw new KeyFormatError('an empty passphrase cannot encrypt a key: omit it to write the key unencrypted');
  const material = materialFromPrivateKey(key);
  const argon2 = version === 3 && encrypted ? { ...DEFAULT_ARGON2, ...options.argon2, salt: randomBytes(16) } : undefined;
  const keys = version === 3 ? await v3Keys(secret, argon2) : v2Keys(secret, encrypted);

  let plainPrivate = writePrivateBlob(material);
  if (encrypted) {
    const padLength = (AES_BLOCK - (plainPrivate.length % AES_BLOCK)) % AES_BLOCK;
    // puttygen pads v2 with the start of SHA-1(blob) and v3 with random bytes; the MAC covers either.
    const padding = version === 2 ? sha1(plainPrivate).subarray(0, padLength) : randomBytes(padLength);
    plainPrivate = Buffer.concat([plainPrivate, padding]);
  }
  const header = { algorithm: key.type, encrypted, commentBytes: Buffer.from(comment, 'utf8'), publicBlob: key.publicKey.blob };
  const mac = computeMac(version, keys.macKey, header, plainPrivate);
  const storedPrivate = encrypted ? aes(false, keys, plainPrivate) : plainPrivate;

  const count = (data: Buffer): number => Math.ceil(data.toString('base64').length / LINE_WIDTH);
  let out = `${PPK_MAGIC}${version}: ${key.type}\nEncryption: ${encrypted ? 'aes256-cbc' : 'none'}\nComment: ${comment}\n`;
  out += `Public-Lines: ${count(key.publicKey.blob)}\n${base64Lines(key.publicKey.blob, LINE_WIDTH)}`;
  if (argon2) {
    out += `Key-Derivation: ${argon2.flavour}\nArgon2-Memory: ${argon2.memory}\nArgon2-Passes: ${argon2.passes}\n`;
    out += `Argon2-Parallelism: ${argon2.parallelism}\nArgon2-Salt: ${argon2.salt.toString('hex')}\n`;
  }
  out += `Private-Lines: ${count(storedPrivate)}\n${base64Lines(storedPrivate, LINE_WIDTH)}`;
  out += `Private-MAC: ${mac.toString('hex')}\n`;
  return out;
}
