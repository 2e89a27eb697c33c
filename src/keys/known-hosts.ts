/**
 * known_hosts files (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): reading them, answering "is this the
 * key of this host?", and appending new entries the way ssh(1) does.
 *
 * A line is `[@marker] hosts keytype base64 [comment]`:
 * - the marker is `@revoked` (never accept this key) or `@cert-authority` (a CA for host
 *   certificates; kept but not used yet, tssh does not verify host certificates);
 * - hosts is a comma-separated pattern list (see ./patterns.ts) of names, addresses and
 *   `[name]:port` for servers on other ports than 22, or one hashed name `|1|salt|hash`, the
 *   base64 HMAC-SHA1 of the name keyed with the base64 salt (what HashKnownHosts writes);
 * - `#` comments and blank lines are ignored; a line that does not parse is skipped and reported
 *   with its number, never fatal (ssh(1) does the same).
 *
 * The policy built on top (strict, accept-new, off) lives in ./host-key-verifier.ts, and the
 * file edits of ssh-keygen -H/-F/-R in ./known-hosts-edit.ts.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KeyFormatError } from '../errors.js';
import type { SshPublicKey } from '../algorithms/types.js';
import { asciiLowercase, matchHostname } from './patterns.js';
import { decodeBase64Strict, decodePublicKeyFields, formatOpenSshPublicKey, isKnownKeyTypeName, splitKeyFields } from './public-key-text.js';

export type KnownHostsMarker = 'revoked' | 'cert-authority';

/** The port ssh(1) leaves out of known_hosts names. */
export const DEFAULT_SSH_PORT = 22;

/** The salt and HMAC-SHA1 of a hashed host name (`|1|salt|hash`). */
export interface HashedHostName {
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const HASH_MAGIC = '|1|';
const SHA1_LENGTH = 20;

// ---- Names ------------------------------------------------------------------------------------

/**
 * The name a host is filed under: the host name lowercased (ssh(1) lowercases the name it
 * connects to), wrapped as `[host]:port` when the port is not 22.
 */
export function knownHostsName(host: string, port: number = DEFAULT_SSH_PORT): string {
  const name = asciiLowercase(host);
  return port === DEFAULT_SSH_PORT || port === 0 ? name : `[${name}]:${port}`;
}

/** HMAC-SHA1 of the name keyed with the salt: the hash part of `|1|salt|hash`. */
function hostHash(name: string, salt: Buffer): Buffer {
  return createHmac('sha1', salt).update(name, 'utf8').digest();
}

/** The hashed form of a name, `|1|base64(salt)|base64(hmac)`, with a fresh 20-byte salt unless one is given. */
export function hashHostName(name: string, salt: Buffer = randomBytes(SHA1_LENGTH)): string {
  return `${HASH_MAGIC}${salt.toString('base64')}|${hostHash(name, salt).toString('base64')}`;
}

/**
 * Decode a hashed host field. Undefined when the field is not hashed (does not start with `|`);
 * throws KeyFormatError when it is, but malformed (wrong magic, salt or hash not 20 bytes).
 */
export function parseHashedHostName(field: string): HashedHostName | undefined {
  if (!field.startsWith('|')) return undefined;
  const parts = field.split('|');
  if (!field.startsWith(HASH_MAGIC) || parts.length !== 4) throw new KeyFormatError('invalid hashed host name');
  const salt = decodeBase64Strict(parts[2]!, 'hashed host salt');
  const hash = decodeBase64Strict(parts[3]!, 'hashed host hash');
  if (salt.length !== SHA1_LENGTH || hash.length !== SHA1_LENGTH) throw new KeyFormatError('invalid hashed host name length');
  return { salt, hash };
}

/**
 * Does a host field accept `name`? Hashed: the HMAC of the name with the entry's salt equals its
 * hash. Plain: the pattern list matches without a negated match. `name` is compared as given for
 * hashed entries (pass it lowercased, as knownHostsName() returns it).
 */
export function hostFieldMatches(hosts: string, hashed: HashedHostName | undefined, name: string): boolean {
  if (hashed !== undefined) {
    const computed = hostHash(name, hashed.salt);
    return computed.length === hashed.hash.length && timingSafeEqual(computed, hashed.hash);
  }
  return matchHostname(name, hosts) === 'match';
}

// ---- Lines ------------------------------------------------------------------------------------

/** A known_hosts line split into its fields, the key not decoded (all ssh-keygen -H/-R look at). */
export interface KnownHostsFields {
  readonly marker: KnownHostsMarker | undefined;
  readonly hosts: string;
  readonly keyType: string;
  /** The line from the key type to its end: what ssh-keygen -H writes after each hashed name. */
  readonly rawKey: string;
}

export type KnownHostsLineSplit =
  | { readonly kind: 'comment' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'entry'; readonly fields: KnownHostsFields };

/**
 * Split one line (without its newline) into fields: the same checks as ssh-keygen applies before
 * it rewrites a file. At most one marker, which must be known; a hosts field followed by a key
 * type OpenSSH knows and something after it.
 */
export function splitKnownHostsLine(text: string): KnownHostsLineSplit {
  let rest = text.replace(/\r$/, '').replace(/^[ \t]+/, '');
  if (rest === '' || rest.startsWith('#')) return { kind: 'comment' };
  let marker: KnownHostsMarker | undefined;
  if (rest.startsWith('@')) {
    const word = /^\S+/.exec(rest)![0];
    if (word === '@revoked') marker = 'revoked';
    else if (word === '@cert-authority') marker = 'cert-authority';
    else return { kind: 'invalid', reason: `unknown marker ${JSON.stringify(word)}` };
    rest = rest.slice(word.length).replace(/^[ \t]+/, '');
    if (rest.startsWith('@')) return { kind: 'invalid', reason: 'more than one marker' };
  }
  const hostsMatch = /^(\S+)[ \t]+/.exec(rest);
  if (hostsMatch === null) return { kind: 'invalid', reason: 'no key after the host names' };
  const hosts = hostsMatch[1]!;
  const rawKey = rest.slice(hostsMatch[0].length);
  if (rawKey === '' || rawKey.startsWith('#')) return { kind: 'invalid', reason: 'no key after the host names' };
  const keyType = /^\S+/.exec(rawKey)![0];
  if (!isKnownKeyTypeName(keyType)) return { kind: 'invalid', reason: `unknown key type ${JSON.stringify(keyType)}` };
  const afterType = rawKey.slice(keyType.length).replace(/^[ \t]+/, '');
  if (afterType === '' || afterType.startsWith('#')) return { kind: 'invalid', reason: `no key after the key type ${keyType}` };
  return { kind: 'entry', fields: { marker, hosts, keyType, rawKey } };
}

/** One usable known_hosts entry. */
export interface KnownHostEntry {
  /** The file it came from (its path, or a label for text parsed from elsewhere). */
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  readonly marker: KnownHostsMarker | undefined;
  /** The hosts field as written (a pattern list, or the hashed name). */
  readonly hosts: string;
  readonly hashed: HashedHostName | undefined;
  readonly keyType: string;
  readonly blob: Buffer;
  /** Undefined for key types tssh cannot decode (ssh-dss, sk-*, …): those still compare by blob. */
  readonly key: SshPublicKey | undefined;
  readonly comment: string;
}

/** A line that was skipped, with why. */
export interface KnownHostsBadLine {
  readonly file: string;
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

export interface KnownHostsFile {
  readonly path: string;
  readonly entries: readonly KnownHostEntry[];
  readonly invalid: readonly KnownHostsBadLine[];
}

/** The lines of a file as getline() sees them: split on LF, no phantom empty line after a final newline. */
export function splitFileLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Parse a known_hosts file's text; `path` labels entries and bad lines. */
export function parseKnownHosts(text: string, path = 'known_hosts'): KnownHostsFile {
  const entries: KnownHostEntry[] = [];
  const invalid: KnownHostsBadLine[] = [];
  splitFileLines(text).forEach((raw, index) => {
    const line = index + 1;
    const split = splitKnownHostsLine(raw);
    if (split.kind === 'comment') return;
    if (split.kind === 'invalid') {
      invalid.push({ file: path, line, text: raw, reason: split.reason });
      return;
    }
    const { marker, hosts, rawKey } = split.fields;
    try {
      const hashed = parseHashedHostName(hosts);
      const fields = splitKeyFields(rawKey);
      if (fields === undefined) throw new KeyFormatError('no key after the key type');
      const record = decodePublicKeyFields(fields.type, fields.base64);
      entries.push({ file: path, line, marker, hosts, hashed, keyType: record.type, blob: record.blob, key: record.key, comment: fields.comment });
    } catch (error) {
      if (!(error instanceof KeyFormatError)) throw error;
      invalid.push({ file: path, line, text: raw, reason: error.message });
    }
  });
  return { path, entries, invalid };
}

/**
 * Read and parse a known_hosts file. A file that does not exist (or whose folder does not) is an
 * empty one; any other read error is thrown, so an unreadable file is not mistaken for "no keys".
 */
export async function loadKnownHostsFile(path: string): Promise<KnownHostsFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { path, entries: [], invalid: [] };
    throw error;
  }
  return parseKnownHosts(text, path);
}

// ---- Lookup -----------------------------------------------------------------------------------

/**
 * What the known_hosts files say about a host's key:
 * - 'match': an entry for the host has exactly this key;
 * - 'mismatch': the host has entries, none with this key (whatever their type, as ssh(1)
 *   decides: a server that now shows an Ed25519 key where an RSA key was known has changed);
 * - 'revoked': a `@revoked` entry for the host has this key; this wins over a match;
 * - 'unknown': no entry for the host.
 */
export type HostKeyLookup =
  | { readonly status: 'match'; readonly name: string; readonly entry: KnownHostEntry }
  | { readonly status: 'mismatch'; readonly name: string; readonly expected: readonly KnownHostEntry[] }
  | { readonly status: 'revoked'; readonly name: string; readonly entry: KnownHostEntry }
  | { readonly status: 'unknown'; readonly name: string };

function blobOf(key: SshPublicKey | Buffer): Buffer {
  return Buffer.isBuffer(key) ? key : key.blob;
}

/** The entries of several files whose hosts field accepts `name`, in file then line order. */
export function entriesForName(files: readonly KnownHostsFile[], name: string): KnownHostEntry[] {
  return files.flatMap((file) => file.entries.filter((entry) => hostFieldMatches(entry.hosts, entry.hashed, name)));
}

/** Look a key up under a known_hosts name (see knownHostsName()), across files read in order. */
export function lookupHostKeyByName(files: readonly KnownHostsFile[], name: string, key: SshPublicKey | Buffer): HostKeyLookup {
  const blob = blobOf(key);
  const entries = entriesForName(files, name);
  const revoked = entries.find((e) => e.marker === 'revoked' && e.blob.equals(blob));
  if (revoked !== undefined) return { status: 'revoked', name, entry: revoked };
  // @cert-authority lines vouch for certificates only, never for a plain key.
  const plain = entries.filter((e) => e.marker === undefined);
  const match = plain.find((e) => e.blob.equals(blob));
  if (match !== undefined) return { status: 'match', name, entry: match };
  if (plain.length > 0) return { status: 'mismatch', name, expected: plain };
  return { status: 'unknown', name };
}

/** The known_hosts files a client consults: UserKnownHostsFile list then GlobalKnownHostsFile list. */
export class KnownHosts {
  constructor(readonly files: readonly KnownHostsFile[]) {}

  /** Read every file (missing ones count as empty). */
  static async load(paths: readonly string[]): Promise<KnownHosts> {
    return new KnownHosts(await Promise.all(paths.map((path) => loadKnownHostsFile(path))));
  }

  /** Every line that was skipped, for logs. */
  get invalid(): KnownHostsBadLine[] {
    return this.files.flatMap((file) => file.invalid);
  }

  lookup(host: string, port: number, key: SshPublicKey | Buffer): HostKeyLookup {
    return lookupHostKeyByName(this.files, knownHostsName(host, port), key);
  }

  lookupName(name: string, key: SshPublicKey | Buffer): HostKeyLookup {
    return lookupHostKeyByName(this.files, name, key);
  }

  /** All entries for a host, markers included. */
  entriesFor(host: string, port: number): KnownHostEntry[] {
    return entriesForName(this.files, knownHostsName(host, port));
  }

  /**
   * The key types known for a host (plain entries), first seen first: a client offers these host
   * key algorithms first so the server proves a key we can check, as ssh(1) orders HostKeyAlgorithms.
   */
  keyTypesFor(host: string, port: number): string[] {
    const types = this.entriesFor(host, port)
      .filter((e) => e.marker === undefined)
      .map((e) => e.keyType);
    return [...new Set(types)];
  }
}

// ---- Writing ----------------------------------------------------------------------------------

export interface KnownHostsEntryOptions {
  /** HashKnownHosts: write the name hashed with a fresh salt. */
  readonly hash?: boolean;
}

/**
 * One line as ssh(1) appends it (no newline): the name (lowercased; hashed if asked) then
 * `keytype base64`, no comment.
 */
export function formatKnownHostsLine(name: string, key: SshPublicKey | Buffer, options: KnownHostsEntryOptions = {}): string {
  const lower = asciiLowercase(name);
  return `${options.hash === true ? hashHostName(lower) : lower} ${formatOpenSshPublicKey(blobOf(key))}`;
}

/**
 * Append an entry for `name` to a known_hosts file, as ssh(1) does for a new host: the folder is
 * created (0700) and the file too (0600) if missing, a newline is added first if the file does
 * not end with one. Returns the line number of the new entry.
 */
export async function appendKnownHost(
  path: string,
  name: string,
  key: SshPublicKey | Buffer,
  options: KnownHostsEntryOptions = {},
): Promise<number> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const handle = await open(path, 'a+', 0o600);
  try {
    const existing = await handle.readFile();
    const needsNewline = existing.length > 0 && existing[existing.length - 1] !== 0x0a;
    const line = formatKnownHostsLine(name, key, options);
    await handle.appendFile(`${needsNewline ? '\n' : ''}${line}\n`);
    return splitFileLines(existing.toString('utf8')).length + 1;
  } finally {
    await handle.close();
  }
}
