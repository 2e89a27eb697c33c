/**
 * Key fingerprints as ssh-keygen prints them (`ssh-keygen -l`, `-E md5`, `-lv`, `-B`), all over the
 * public key blob (RFC 4253 §6.6):
 *
 *   SHA256:<base64 without padding>            the default since OpenSSH 6.8
 *   MD5:<hex bytes separated by colons>        RFC 4716 §4's fingerprint, with OpenSSH's prefix
 *   randomart                                  the "drunken bishop" picture of -lv (sshkey.c,
 *                                              fingerprint_randomart)
 *   bubblebabble                               Antti Huima's Bubble Babble encoding of the SHA-1
 *                                              digest, as -B prints it
 */
import { createHash } from 'node:crypto';
import type { SshPublicKey } from '../algorithms/types.js';
import { KeyFormatError } from '../errors.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';

export type FingerprintHash = 'sha256' | 'md5';

function blobOf(key: SshPublicKey | Buffer): Buffer {
  return Buffer.isBuffer(key) ? key : key.blob;
}

const CERT_SUFFIX = '-cert-v01@openssh.com';

/** How many `string`/`mpint` fields follow the type in a plain key blob of each certifiable type. */
const KEY_FIELDS: ReadonlyMap<string, number> = new Map([
  ['ssh-rsa', 2], // e, n
  ['ssh-dss', 4], // p, q, g, y
  ['ecdsa-sha2-nistp256', 2], // curve, Q
  ['ecdsa-sha2-nistp384', 2],
  ['ecdsa-sha2-nistp521', 2],
  ['ssh-ed25519', 1], // A
  ['sk-ecdsa-sha2-nistp256@openssh.com', 3], // curve, Q, application
  ['sk-ssh-ed25519@openssh.com', 2], // A, application
]);

/** The plain type a certificate type certifies: `ssh-rsa` for `ssh-rsa-cert-v01@openssh.com`. */
function certifiedType(certType: string): string {
  const base = certType.slice(0, -CERT_SUFFIX.length);
  return base.startsWith('sk-') ? `${base}@openssh.com` : base;
}

/**
 * The blob that is fingerprinted: a certificate's fingerprint is its key's (sshkey.c, sshkey_fingerprint_raw
 * serialises certificates as plain keys). PROTOCOL.certkeys: string type, string nonce, then the
 * plain key's fields, then the certificate fields.
 */
function fingerprintedBlob(key: SshPublicKey | Buffer): Buffer {
  const blob = blobOf(key);
  const reader = new Reader(blob, 0, blob.length, 'certificate');
  // Anything that is not a certificate is hashed as it is, the bytes given.
  if (blob.length < 4 || blob.readUInt32BE(0) > blob.length - 4) return blob;
  const type = reader.string().toString('latin1');
  if (!type.endsWith(CERT_SUFFIX)) return blob;
  const plainType = certifiedType(type);
  const fields = KEY_FIELDS.get(plainType);
  if (fields === undefined) return blob;
  try {
    reader.string(); // nonce
    const start = reader.position;
    for (let i = 0; i < fields; i++) reader.string();
    return Buffer.concat([new Writer(plainType.length + 4).string(plainType).finish(), blob.subarray(start, reader.position)]);
  } catch (cause) {
    throw new KeyFormatError('invalid certificate blob', { cause });
  }
}

function digest(key: SshPublicKey | Buffer, hash: FingerprintHash | 'sha1'): Buffer {
  return createHash(hash).update(fingerprintedBlob(key)).digest();
}

/**
 * The fingerprint of a key (or of a raw public key or certificate blob), exactly as
 * `ssh-keygen -l [-E md5]` prints it.
 */
export function fingerprint(key: SshPublicKey | Buffer, hash: FingerprintHash = 'sha256'): string {
  const raw = digest(key, hash);
  if (hash === 'md5') return 'MD5:' + [...raw].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
  return 'SHA256:' + raw.toString('base64').replace(/=+$/, '');
}

// ---- Key type label and size, for randomart's title and -l's line -------------------------------

const CURVE_BITS: ReadonlyMap<string, number> = new Map([
  ['nistp256', 256],
  ['nistp384', 384],
  ['nistp521', 521],
]);

/** ssh-keygen's short name of a key type (sshkey.c, keytypes[].shortname). */
const TYPE_LABELS: ReadonlyMap<string, string> = new Map([
  ['ssh-rsa', 'RSA'],
  ['ssh-dss', 'DSA'],
  ['ssh-ed25519', 'ED25519'],
  ['ecdsa-sha2-nistp256', 'ECDSA'],
  ['ecdsa-sha2-nistp384', 'ECDSA'],
  ['ecdsa-sha2-nistp521', 'ECDSA'],
  ['sk-ecdsa-sha2-nistp256@openssh.com', 'ECDSA-SK'],
  ['sk-ssh-ed25519@openssh.com', 'ED25519-SK'],
]);

function bitLength(magnitude: Buffer): number {
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  if (start === magnitude.length) return 0;
  return (magnitude.length - start - 1) * 8 + (32 - Math.clz32(magnitude[start]!));
}

/** What ssh-keygen calls a key: its short type name (`ED25519`, `RSA-CERT`) and size in bits. */
export function describeKey(key: SshPublicKey | Buffer): { label: string; bits: number } {
  const blob = blobOf(key);
  try {
    const reader = new Reader(blob, 0, blob.length, 'public key blob');
    const type = reader.string().toString('latin1');
    const cert = type.endsWith(CERT_SUFFIX);
    const base = cert ? certifiedType(type) : type;
    const label = TYPE_LABELS.get(base);
    if (label === undefined) throw new KeyFormatError(`unknown key type ${JSON.stringify(type)}`);
    if (cert) reader.string(); // the certificate nonce comes before the key fields (PROTOCOL.certkeys)
    let bits: number;
    if (base === 'ssh-rsa') {
      reader.string(); // e
      bits = bitLength(reader.string());
    } else if (base === 'ssh-dss') {
      bits = bitLength(reader.string()); // p
    } else if (label.startsWith('ECDSA')) {
      bits = CURVE_BITS.get(reader.string().toString('latin1')) ?? 0;
    } else {
      bits = 256;
    }
    return { label: cert ? `${label}-CERT` : label, bits };
  } catch (cause) {
    if (cause instanceof KeyFormatError) throw cause;
    throw new KeyFormatError('invalid public key blob', { cause });
  }
}

/**
 * One line of `ssh-keygen -l`: `256 SHA256:… comment (ED25519)`; an empty comment prints as
 * `no comment`, as ssh-keygen does.
 */
export function fingerprintLine(key: SshPublicKey | Buffer, comment: string, hash: FingerprintHash = 'sha256'): string {
  const { label, bits } = describeKey(key);
  return `${bits} ${fingerprint(key, hash)} ${comment === '' ? 'no comment' : comment} (${label})`;
}

// ---- Randomart ------------------------------------------------------------------------------------

/** The field is (2·8+1) × (8+1) cells; the bishop starts in the middle. */
const FIELD_WIDTH = 17;
const FIELD_HEIGHT = 9;
/** Symbols by visit count; the last two mark the start and the end. */
const SYMBOLS = ' .o+=*BOX@%&#/^SE';
const START = SYMBOLS.length - 2;
const END = SYMBOLS.length - 1;

export interface RandomArtOptions {
  readonly hash?: FingerprintHash;
  /** Override the key size in the title (default: from the key). */
  readonly bits?: number;
  /** Override the type in the title (default: ssh-keygen's short name, `ED25519`). */
  readonly typeLabel?: string;
}

/** `+` then `text` centred in dashes across the field width (left-biased, as ssh-keygen), then `+`. */
function border(text: string): string {
  const left = Math.floor((FIELD_WIDTH - text.length) / 2);
  return '+' + '-'.repeat(left) + text + '-'.repeat(FIELD_WIDTH - left - text.length) + '+';
}

/**
 * The randomart picture `ssh-keygen -lv` prints under the fingerprint line, 11 lines joined by
 * `\n` without a final newline. Each digest byte is four moves, low bits first: bit 0 moves
 * right (1) or left (0), bit 1 down (1) or up (0), clamped at the walls; each visit raises a
 * cell's count (up to the symbol before `^`).
 */
export function randomArt(key: SshPublicKey | Buffer, options: RandomArtOptions = {}): string {
  const hash = options.hash ?? 'sha256';
  const described = options.bits === undefined || options.typeLabel === undefined ? describeKey(key) : undefined;
  const bits = options.bits ?? described!.bits;
  const typeLabel = options.typeLabel ?? described!.label;

  const field: number[][] = Array.from({ length: FIELD_WIDTH }, () => new Array<number>(FIELD_HEIGHT).fill(0));
  let x = Math.floor(FIELD_WIDTH / 2);
  let y = Math.floor(FIELD_HEIGHT / 2);
  for (const byte of digest(key, hash)) {
    let input = byte;
    for (let step = 0; step < 4; step++, input >>= 2) {
      x = Math.min(Math.max(x + (input & 1 ? 1 : -1), 0), FIELD_WIDTH - 1);
      y = Math.min(Math.max(y + (input & 2 ? 1 : -1), 0), FIELD_HEIGHT - 1);
      if (field[x]![y]! < START - 1) field[x]![y]!++;
    }
  }
  field[Math.floor(FIELD_WIDTH / 2)]![Math.floor(FIELD_HEIGHT / 2)] = START;
  field[x]![y] = END;

  // The title buffer holds 16 characters: "[TYPE BITS]" falls back to "[TYPE]" when it would not
  // fit, and is cut to 16 characters either way (sshkey.c, fingerprint_randomart).
  let title = `[${typeLabel} ${bits}]`;
  if (title.length > FIELD_WIDTH) title = `[${typeLabel}]`;
  title = title.slice(0, FIELD_WIDTH - 1);
  const footer = `[${hash === 'md5' ? 'MD5' : 'SHA256'}]`;

  const rows = [border(title)];
  for (let row = 0; row < FIELD_HEIGHT; row++) {
    let line = '|';
    for (let column = 0; column < FIELD_WIDTH; column++) line += SYMBOLS[field[column]![row]!];
    rows.push(line + '|');
  }
  rows.push(border(footer));
  return rows.join('\n');
}

// ---- Bubble Babble --------------------------------------------------------------------------------

const VOWELS = 'aeiouy';
const CONSONANTS = 'bcdfghklmnprstvzx';

/**
 * The Bubble Babble encoding of a digest: `x`, then per pair of bytes a vowel-consonant-vowel
 * tuple for the first byte (its vowels shifted by a running checksum) and consonant-dash-consonant
 * for the second, the checksum updated as seed = (seed·5 + b1·7 + b2) mod 36; a final
 * vowel-`x`-vowel (or the last byte's tuple when the length is odd), then `x`.
 */
export function bubbleBabbleEncode(data: Uint8Array): string {
  let out = 'x';
  let seed = 1;
  const rounds = Math.floor(data.length / 2) + 1;
  for (let i = 0; i < rounds; i++) {
    const last = i + 1 === rounds;
    if (last && data.length % 2 === 0) {
      out += VOWELS[seed % 6]! + CONSONANTS[16]! + VOWELS[Math.floor(seed / 6)]!;
      break;
    }
    const byte1 = data[2 * i]!;
    out += VOWELS[(((byte1 >> 6) & 3) + seed) % 6]!;
    out += CONSONANTS[(byte1 >> 2) & 15]!;
    out += VOWELS[((byte1 & 3) + Math.floor(seed / 6)) % 6]!;
    if (last) break;
    const byte2 = data[2 * i + 1]!;
    out += CONSONANTS[(byte2 >> 4) & 15]! + '-' + CONSONANTS[byte2 & 15]!;
    seed = (seed * 5 + byte1 * 7 + byte2) % 36;
  }
  return out + 'x';
}

/** The Bubble Babble fingerprint `ssh-keygen -B` prints (over the SHA-1 digest of the blob). */
export function bubbleBabble(key: SshPublicKey | Buffer): string {
  return bubbleBabbleEncode(digest(key, 'sha1'));
}
