/**
 * The two text forms of an SSH public key:
 *
 * - OpenSSH's one line, `type base64 [comment]` (what `.pub` files, authorized_keys and
 *   known_hosts hold; sshd(8) "AUTHORIZED_KEYS FILE FORMAT");
 * - RFC 4716, the "SSH2 public key" block that `ssh-keygen -e` writes and `ssh-keygen -i` reads.
 *
 * Both carry the public key blob of RFC 4253 §6.6. The type written before the base64 must be the
 * type inside the blob: a line that says `ssh-rsa` over an Ed25519 blob is refused, since a reader
 * trusting the first word would be misled about what the key is.
 */
import { createHash } from 'node:crypto';
import { KeyFormatError } from '../errors.js';
import type { SshPublicKey } from '../algorithms/types.js';
import { parsePublicKeyBlob, publicKeyTypeOf, publicKeyTypes } from './public-key.js';

/**
 * Key types OpenSSH reads that tssh cannot decode into a KeyObject (DSA, FIDO security keys, the
 * post-quantum hybrid, certificates). Lines with these types are valid in known_hosts and
 * authorized_keys, so they are kept (and can still be compared blob for blob) instead of being
 * reported as broken.
 */
const OPAQUE_KEY_TYPES: ReadonlySet<string> = new Set([
  'ssh-dss',
  'sk-ecdsa-sha2-nistp256@openssh.com',
  'sk-ssh-ed25519@openssh.com',
  'ssh-mldsa44-ed25519@openssh.com',
  ...[
    'ssh-rsa',
    'ssh-dss',
    'ecdsa-sha2-nistp256',
    'ecdsa-sha2-nistp384',
    'ecdsa-sha2-nistp521',
    'ssh-ed25519',
    'sk-ecdsa-sha2-nistp256@openssh.com',
    'sk-ssh-ed25519@openssh.com',
    'ssh-mldsa44-ed25519@openssh.com',
  ].map((type) => `${type.replace(/@openssh\.com$/, '')}-cert-v01@openssh.com`),
]);

const SUPPORTED_KEY_TYPES: ReadonlySet<string> = new Set(publicKeyTypes);

/** True when OpenSSH would accept `name` as the key type field of a line (whether or not tssh can use it). */
export function isKnownKeyTypeName(name: string): boolean {
  return SUPPORTED_KEY_TYPES.has(name) || OPAQUE_KEY_TYPES.has(name);
}

/**
 * A public key read from text: its type and blob always; `key` (with a KeyObject) when tssh
 * supports the type, undefined for the opaque types above.
 */
export interface PublicKeyRecord {
  readonly type: string;
  readonly blob: Buffer;
  readonly key: SshPublicKey | undefined;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/** Strict base64 (RFC 4648 alphabet, padding optional but not misplaced), unlike Buffer.from's lenient decoder. */
export function decodeBase64Strict(text: string, what: string): Buffer {
  if (text.length === 0 || !BASE64.test(text)) {
    throw new KeyFormatError(`${what} is not valid base64`);
  }
  return Buffer.from(text, 'base64');
}

/**
 * Decode the `type base64` pair of a line. Throws KeyFormatError when the base64 is bad, the blob
 * names another type than `type`, the type is unknown, or a supported key is malformed.
 */
export function decodePublicKeyFields(type: string, base64: string): PublicKeyRecord {
  if (!isKnownKeyTypeName(type)) throw new KeyFormatError(`unknown key type ${JSON.stringify(type)}`);
  const blob = decodeBase64Strict(base64, `${type} key`);
  const inner = publicKeyTypeOf(blob);
  if (inner !== type) {
    const shown = /^[\x21-\x7e]{1,64}$/.test(inner) ? JSON.stringify(inner) : 'something else';
    throw new KeyFormatError(`key type mismatch: the line says ${JSON.stringify(type)}, the key is ${shown}`);
  }
  if (!SUPPORTED_KEY_TYPES.has(type)) return { type, blob, key: undefined };
  const key = parsePublicKeyBlob(blob);
  return { type, blob: key.blob, key };
}

/** A whole `.pub` line: the key (a type tssh supports) and its comment ('' when none). */
export interface OpenSshPublicKey {
  readonly key: SshPublicKey;
  readonly comment: string;
}

/** Split `type base64 comment…` at the first two runs of blanks; the comment keeps inner spaces. */
export function splitKeyFields(line: string): { type: string; base64: string; comment: string } | undefined {
  const match = /^[ \t]*(\S+)[ \t]+(\S+)(?:[ \t]+(.*?))?[ \t\r]*$/.exec(line);
  if (match === null) return undefined;
  return { type: match[1]!, base64: match[2]!, comment: match[3] ?? '' };
}

/**
 * Parse OpenSSH's one-line public key (`ssh-ed25519 AAAA… user@host`). Only the first non-blank,
 * non-comment line is read. Throws KeyFormatError for anything else, including key types tssh
 * cannot use.
 */
export function parseOpenSshPublicKey(text: string): OpenSshPublicKey {
  const line = text.split(/\r\n|\r|\n/).find((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  if (line === undefined) throw new KeyFormatError('no public key found');
  const fields = splitKeyFields(line);
  if (fields === undefined) throw new KeyFormatError('public key line has no base64 key after the type');
  const record = decodePublicKeyFields(fields.type, fields.base64);
  if (record.key === undefined) throw new KeyFormatError(`unsupported public key type ${JSON.stringify(record.type)}`);
  return { key: record.key, comment: fields.comment };
}

/** OpenSSH's one-line form of a key (no trailing newline): `type base64[ comment]`. */
export function formatOpenSshPublicKey(key: SshPublicKey | Buffer, comment = ''): string {
  const blob = Buffer.isBuffer(key) ? key : key.blob;
  const type = Buffer.isBuffer(key) ? publicKeyTypeOf(key) : key.type;
  const text = `${type} ${blob.toString('base64')}`;
  return comment === '' ? text : `${text} ${comment}`;
}

// ---- RFC 4716 ---------------------------------------------------------------------------------

const BEGIN_MARKER = '---- BEGIN SSH2 PUBLIC KEY ----';
const END_MARKER = '---- END SSH2 PUBLIC KEY ----';
/** RFC 4716 §3: no line longer than 72 bytes; header tags up to 64 bytes, values up to 1024. */
const MAX_LINE = 72;
const MAX_TAG = 64;
const MAX_VALUE = 1024;
/** ssh-keygen -e wraps the base64 body at 70 characters; we do the same so outputs compare equal. */
const BODY_WIDTH = 70;

export interface Rfc4716Header {
  /** As written; compare case-insensitively (RFC 4716 §3.3). */
  readonly tag: string;
  readonly value: string;
}

export interface Rfc4716PublicKey {
  readonly key: SshPublicKey;
  /** The Comment header with one pair of surrounding quotes removed (RFC 4716 §3.3.2), '' when absent. */
  readonly comment: string;
  /** Every header in order, Comment included, so a rewriting tool can keep unknown ones (§3.3). */
  readonly headers: readonly Rfc4716Header[];
}

/**
 * Parse an RFC 4716 public key file. Lines may end in CR, LF or CRLF (§3.1); headers continue
 * onto the next line when they end in a backslash (§3.3); the first line without a colon starts
 * the base64 body (§3.3), which runs to the end marker (§3.2). Unknown headers are kept, not
 * refused (§3.3). Length limits of §3 are not enforced on input: being liberal costs nothing here.
 */
export function parseRfc4716PublicKey(text: string): Rfc4716PublicKey {
  const lines = text.split(/\r\n|\r|\n/).map((l) => l.trim());
  let index = lines.findIndex((l) => l !== '');
  if (index < 0 || lines[index] !== BEGIN_MARKER) throw new KeyFormatError(`RFC 4716 key must start with "${BEGIN_MARKER}"`);
  index++;
  const headers: Rfc4716Header[] = [];
  for (; index < lines.length; index++) {
    let line = lines[index]!;
    if (line === END_MARKER || !line.includes(':')) break;
    while (line.endsWith('\\')) {
      index++;
      if (index >= lines.length) throw new KeyFormatError('RFC 4716 header continues past the end of the file');
      line = line.slice(0, -1) + lines[index]!;
    }
    const colon = line.indexOf(':');
    const tag = line.slice(0, colon);
    // "Header-tag ':' ' ' Header-value": the space is required by the grammar but tolerated if missing.
    const value = line.slice(colon + 1).replace(/^ /, '');
    if (tag === '' || tag.length > MAX_TAG || !/^[\x21-\x7e]+$/.test(tag)) {
      throw new KeyFormatError(`invalid RFC 4716 header tag ${JSON.stringify(tag)}`);
    }
    headers.push({ tag, value });
  }
  const body: string[] = [];
  for (; index < lines.length && lines[index] !== END_MARKER; index++) body.push(lines[index]!);
  if (index >= lines.length) throw new KeyFormatError(`RFC 4716 key has no "${END_MARKER}" line`);
  const base64 = body.join('');
  const blob = decodeBase64Strict(base64, 'RFC 4716 key body');
  const key = parsePublicKeyBlob(blob);
  const commentHeader = headers.find((h) => h.tag.toLowerCase() === 'comment');
  return { key, comment: commentHeader === undefined ? '' : unquote(commentHeader.value), headers };
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}

/** Break one logical header line into physical lines of at most 72 bytes joined by `\` (§3.3). */
function wrapHeader(line: string): string[] {
  const out: string[] = [];
  let rest = line;
  while (Buffer.byteLength(rest, 'utf8') > MAX_LINE) {
    // Leave room for the backslash; never split a UTF-8 character.
    let cut = 0;
    let bytes = 0;
    for (const char of rest) {
      const size = Buffer.byteLength(char, 'utf8');
      if (bytes + size > MAX_LINE - 1) break;
      bytes += size;
      cut += char.length;
    }
    out.push(`${rest.slice(0, cut)}\\`);
    rest = rest.slice(cut);
  }
  out.push(rest);
  return out;
}

export interface Rfc4716FormatOptions {
  /** Written quoted as the Comment header, as ssh-keygen -e does (§3.3.2). */
  readonly comment?: string;
  /** More headers, after Comment (e.g. Subject, x-…). */
  readonly headers?: readonly Rfc4716Header[];
}

/** Write a key in RFC 4716 form, ending with a newline. */
export function formatRfc4716PublicKey(key: SshPublicKey | Buffer, options: Rfc4716FormatOptions = {}): string {
  const blob = Buffer.isBuffer(key) ? key : key.blob;
  const headers: Rfc4716Header[] = [];
  if (options.comment !== undefined) headers.push({ tag: 'Comment', value: `"${options.comment}"` });
  headers.push(...(options.headers ?? []));
  const lines = [BEGIN_MARKER];
  for (const { tag, value } of headers) {
    if (tag === '' || tag.length > MAX_TAG || !/^[\x21-\x39\x3b-\x7e]+$/.test(tag)) {
      throw new KeyFormatError(`invalid RFC 4716 header tag ${JSON.stringify(tag)}`);
    }
    if (Buffer.byteLength(value, 'utf8') > MAX_VALUE) throw new KeyFormatError(`RFC 4716 header ${tag} is longer than ${MAX_VALUE} bytes`);
    if (/[\r\n]/.test(value)) throw new KeyFormatError(`RFC 4716 header ${tag} contains a line break`);
    lines.push(...wrapHeader(`${tag}: ${value}`));
  }
  const base64 = blob.toString('base64');
  for (let i = 0; i < base64.length; i += BODY_WIDTH) lines.push(base64.slice(i, i + BODY_WIDTH));
  lines.push(END_MARKER);
  return `${lines.join('\n')}\n`;
}

// ---- Either form ------------------------------------------------------------------------------

export type PublicKeyTextFormat = 'openssh' | 'rfc4716';

/** Which text form `text` is in, judged by its first non-blank line; undefined when neither. */
export function detectPublicKeyFormat(text: string): PublicKeyTextFormat | undefined {
  const first = text.split(/\r\n|\r|\n/).find((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  if (first === undefined) return undefined;
  if (first.trim() === BEGIN_MARKER) return 'rfc4716';
  const fields = splitKeyFields(first);
  return fields !== undefined && isKnownKeyTypeName(fields.type) ? 'openssh' : undefined;
}

/** Parse a public key in either text form. */
export function parsePublicKeyText(text: string): OpenSshPublicKey & { readonly format: PublicKeyTextFormat } {
  const format = detectPublicKeyFormat(text);
  if (format === 'rfc4716') {
    const { key, comment } = parseRfc4716PublicKey(text);
    return { key, comment, format };
  }
  if (format === 'openssh') return { ...parseOpenSshPublicKey(text), format };
  throw new KeyFormatError('not an OpenSSH or RFC 4716 public key');
}

/** `SHA256:` and the unpadded base64 SHA-256 of a key blob, as OpenSSH prints fingerprints. */
export function sha256Fingerprint(key: SshPublicKey | Buffer): string {
  const blob = Buffer.isBuffer(key) ? key : key.blob;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
