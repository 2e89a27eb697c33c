/**
 * authorized_keys files (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"): one key per line,
 * `[options] keytype base64 [comment]`, `#` comments and blank lines ignored. A line that does
 * not parse (bad key, unknown option, open quote) is skipped and reported with its number, never
 * fatal: one typo must not lock out the other keys.
 *
 * findAuthorizedKey() then answers sshd's question for a key the client offered: which line
 * authorises it, or why every line that holds it refused (from= did not match, expired, …).
 * The options of the line found (./authorized-key-options.ts) are for the connection layer to
 * enforce.
 */
import { readFile } from 'node:fs/promises';
import { KeyFormatError } from '../errors.js';
import type { SshPublicKey } from '../algorithms/types.js';
import { matchHostAndAddress } from './patterns.js';
import { decodePublicKeyFields, isKnownKeyTypeName, splitKeyFields } from './public-key-text.js';
import { DEFAULT_KEY_OPTIONS, optionsFieldEnd, parseKeyOptions } from './authorized-key-options.js';
import type { KeyOptions } from './authorized-key-options.js';

export type { KeyOptions, PermitTarget } from './authorized-key-options.js';

export interface AuthorizedKeyEntry {
  /** 1-based line number. */
  readonly line: number;
  readonly keyType: string;
  /** The public key blob (RFC 4253 §6.6), compared byte for byte with the offered key. */
  readonly blob: Buffer;
  /** Undefined for key types tssh cannot verify (ssh-dss, sk-*, …): kept, but they can never log in here. */
  readonly key: SshPublicKey | undefined;
  readonly comment: string;
  readonly options: KeyOptions;
  /** The options field as written, '' when none (for logs). */
  readonly optionsText: string;
}

export interface AuthorizedKeysBadLine {
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

export interface AuthorizedKeysFile {
  /** Where it was read from, for messages ('authorized_keys' for text parsed directly). */
  readonly path: string;
  readonly entries: readonly AuthorizedKeyEntry[];
  readonly invalid: readonly AuthorizedKeysBadLine[];
}

/**
 * Parse one line. Returns undefined for a comment or blank line; throws KeyFormatError with the
 * reason for a line sshd would skip.
 *
 * Like sshd, a line is first read as a bare key; only when it does not start with a key type is
 * the first field taken as options (up to the first blank outside quotes).
 */
export function parseAuthorizedKeysLine(text: string, line = 1): AuthorizedKeyEntry | undefined {
  const rest = text.replace(/\r$/, '').replace(/^[ \t]+/, '');
  if (rest === '' || rest.startsWith('#')) return undefined;
  let optionsText = '';
  let keyPart = rest;
  const first = splitKeyFields(rest);
  if (first === undefined || !isKnownKeyTypeName(first.type)) {
    const end = optionsFieldEnd(rest);
    optionsText = rest.slice(0, end);
    keyPart = rest.slice(end);
  }
  const fields = splitKeyFields(keyPart);
  if (fields === undefined) throw new KeyFormatError('no key on the line');
  const record = decodePublicKeyFields(fields.type, fields.base64);
  const options = optionsText === '' ? DEFAULT_KEY_OPTIONS : parseKeyOptions(optionsText);
  return { line, keyType: record.type, blob: record.blob, key: record.key, comment: fields.comment, options, optionsText };
}

/** Parse an authorized_keys file's text; lines that do not parse are collected in `invalid`. */
export function parseAuthorizedKeys(text: string, path = 'authorized_keys'): AuthorizedKeysFile {
  const entries: AuthorizedKeyEntry[] = [];
  const invalid: AuthorizedKeysBadLine[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, index) => {
    try {
      const entry = parseAuthorizedKeysLine(raw, index + 1);
      if (entry !== undefined) entries.push(entry);
    } catch (error) {
      if (!(error instanceof KeyFormatError)) throw error;
      invalid.push({ line: index + 1, text: raw, reason: error.message });
    }
  });
  return { path, entries, invalid };
}

/** Read and parse a file; one that does not exist has no keys. */
export async function loadAuthorizedKeysFile(path: string): Promise<AuthorizedKeysFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { path, entries: [], invalid: [] };
    throw error;
  }
  return parseAuthorizedKeys(text, path);
}

// ---- Authorising a key ------------------------------------------------------------------------

export interface AuthorizedKeyContext {
  /** The client's IP address (an IPv4-mapped IPv6 address counts as IPv4). */
  readonly remoteAddress: string;
  /** Its canonical host name when sshd resolves names (UseDNS); the address otherwise, the default. */
  readonly remoteHost?: string;
  /** Default: now. */
  readonly now?: Date;
}

/** Why a line holding the offered key did not authorise it. */
export interface AuthorizedKeyRefusal {
  readonly line: number;
  readonly reason: 'expired' | 'from' | 'from-invalid' | 'principals-without-ca';
  /** For sshd's log, e.g. `authorized_keys:3: key expired at 2020-01-01T00:00:00.000Z`. */
  readonly message: string;
}

export type AuthorizedKeyResult =
  | { readonly found: true; readonly entry: AuthorizedKeyEntry }
  /** `refused` is empty when no line holds the key at all. */
  | { readonly found: false; readonly refused: readonly AuthorizedKeyRefusal[] };

/** The first check an entry fails, or undefined (sshd's auth_authorise_keyopts() order). */
function refusal(entry: AuthorizedKeyEntry, path: string, context: AuthorizedKeyContext): AuthorizedKeyRefusal | undefined {
  const where = `${path}:${entry.line}`;
  const { expiryTime, principals, certAuthority, from } = entry.options;
  const now = context.now ?? new Date();
  // sshd compares whole seconds: the key is still good during the second it expires.
  if (expiryTime !== undefined && Math.floor(expiryTime.getTime() / 1000) < Math.floor(now.getTime() / 1000)) {
    return { line: entry.line, reason: 'expired', message: `${where}: key expired at ${expiryTime.toISOString()}` };
  }
  if (principals !== undefined && !certAuthority) {
    return { line: entry.line, reason: 'principals-without-ca', message: `${where}: principals="…" on a key that is not a cert-authority` };
  }
  if (from !== undefined) {
    const host = context.remoteHost ?? context.remoteAddress;
    const verdict = matchHostAndAddress(host, context.remoteAddress, from);
    if (verdict === 'invalid') {
      return { line: entry.line, reason: 'from-invalid', message: `${where}: invalid from="${from}": refusing the key` };
    }
    if (!verdict) {
      return {
        line: entry.line,
        reason: 'from',
        message: `${where}: key not allowed from host ${host} (address ${context.remoteAddress}); from="${from}"`,
      };
    }
  }
  return undefined;
}

function isFile(keys: AuthorizedKeysFile | readonly AuthorizedKeyEntry[]): keys is AuthorizedKeysFile {
  return !Array.isArray(keys);
}

/**
 * The line that authorises a plain public key offered by a client, or every refusal met on the way.
 * Lines are tried in order and the first that passes wins; a line whose key matches but whose
 * options refuse does not stop the search (the key may be listed again with other options).
 * `cert-authority` lines never authorise a key by itself (they vouch for certificates).
 */
export function findAuthorizedKey(
  keys: AuthorizedKeysFile | readonly AuthorizedKeyEntry[] | string,
  keyBlob: Buffer,
  context: AuthorizedKeyContext,
): AuthorizedKeyResult {
  const file = typeof keys === 'string' ? parseAuthorizedKeys(keys) : isFile(keys) ? keys : { path: 'authorized_keys', entries: keys };
  const refused: AuthorizedKeyRefusal[] = [];
  for (const entry of file.entries) {
    if (entry.options.certAuthority || !entry.blob.equals(keyBlob)) continue;
    const refusedBy = refusal(entry, file.path, context);
    if (refusedBy === undefined) return { found: true, entry };
    refused.push(refusedBy);
  }
  return { found: false, refused };
}
