/**
 * Finding keys in files the ways ssh-keygen does:
 *
 * - a private key ("identity"): the file must not be readable by others (the check OpenSSH makes
 *   before it trusts a private key file), and the passphrase is asked for only if the file turns
 *   out to be encrypted;
 * - a public key for a file name: the file itself if it holds a public key line, else `FILE.pub`,
 *   else the public half an encrypted file keeps in the clear (openssh-key-v1 and PuTTY files do),
 *   so `-l` and `-e` work on an encrypted key without its passphrase.
 */
import { stat, readFile } from 'node:fs/promises';
import { homedir, hostname, userInfo } from 'node:os';
import { KeyFormatError } from '../../errors.js';
import { decodeOpensshPrivateKey, OPENSSH_PRIVATE_KEY_LABEL } from '../../keys/openssh-private.js';
import { decodePpk, isPpk } from '../../keys/ppk.js';
import { parsePrivateKeyFile } from '../../keys/private-key-file.js';
import type { ParsedPrivateKeyFile } from '../../keys/private-key-file.js';
import { decodePublicKeyFields } from '../../keys/public-key-text.js';
import { DEFAULT_KEY_FILES, keyKindOf } from './key-types.js';
import { askLine, askPassphrase, describeError, err, fatal, KeygenExit } from './console.js';

/** A public key as read from text: its blob always; tssh can fingerprint and convert any blob it knows the type of. */
export interface PublicKeyFound {
  readonly blob: Buffer;
  readonly comment: string;
}

/** The user's home folder from the password database, which is where ssh-keygen looks (not $HOME). */
export function userHome(): string {
  try {
    return userInfo().homedir;
  } catch {
    return homedir();
  }
}

/** `user@host`, ssh-keygen's default comment and the signature of its RFC 4716 exports. */
export function userAtHost(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? 'unknown';
  }
  // os.hostname() is gethostname(2), what ssh-keygen uses.
  return `${user}@${hostname()}`;
}

/**
 * Ask which file, proposing ~/.ssh/id_<type> for -t (id_rsa without it, as ssh-keygen); an empty
 * answer takes the proposal, end of input stops the program with status 1 (as ssh-keygen's
 * ask_filename).
 */
export async function askFilename(prompt: string, typeName: string | undefined): Promise<string> {
  const kind = typeName === undefined ? 'rsa' : keyKindOf(typeName)?.kind;
  if (kind === undefined) throw fatal('bad key type');
  const proposed = `${userHome()}/.ssh/${DEFAULT_KEY_FILES[kind]}`;
  const answer = await askLine(`${prompt} (${proposed}): `);
  if (answer === undefined) throw new KeygenExit(1);
  const trimmed = answer.replace(/\r$/, '');
  return trimmed === '' ? proposed : trimmed;
}

/** Throws fatal(`${prefix}: ${strerror}`) when the file cannot be stat()ed, ssh-keygen's first check everywhere. */
export async function mustExist(path: string, prefix: string): Promise<void> {
  try {
    await stat(path);
  } catch (error) {
    throw fatal(`${prefix}${describeError(error)}`);
  }
}

/** True when the text is one of the private key files tssh reads (by its armour or PuTTY's first line). */
export function looksLikePrivateKey(data: Buffer | string): boolean {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  return /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text) || isPpk(data);
}

/**
 * OpenSSH refuses a private key file that group or others may access, when the file is ours: the
 * key may already be compromised and the user should know. Prints ssh's warning and returns false
 * in that case. (Not on Windows, which has no such mode bits.)
 */
export async function privateKeyPermissionsOk(path: string): Promise<boolean> {
  if (process.platform === 'win32' || process.getuid === undefined) return true;
  const info = await stat(path);
  if (info.uid !== process.getuid() || (info.mode & 0o077) === 0) return true;
  const bar = '@'.repeat(59);
  const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
  err(
    `${bar}\n@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @\n${bar}\n` +
      `Permissions ${mode} for '${path}' are too open.\n` +
      'It is required that your private key files are NOT accessible by others.\n' +
      'This private key will be ignored.\n',
  );
  return false;
}

/**
 * Load a private key file, asking for its passphrase (`passphrase` if given, else `prompt`) only if
 * it is encrypted. Any failure is fatal, as `${failure}: ${reason}`: ssh-keygen's `Load key "F"`
 * for -y and -e, `Failed to load key F` for -p.
 */
export async function loadIdentity(path: string, passphrase: string | undefined, prompt: string, failure: string): Promise<ParsedPrivateKeyFile> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    throw fatal(`${failure}: ${describeError(error)}`);
  }
  // The permission check is for private keys; anything else gets the parser's clearer "this is a public key".
  if (looksLikePrivateKey(data) && !(await privateKeyPermissionsOk(path))) throw fatal(`${failure}: bad permissions`);
  try {
    return await parsePrivateKeyFile(data, { passphrase: async () => passphrase ?? (await askPassphrase(prompt)) });
  } catch (error) {
    if (error instanceof KeyFormatError) throw fatal(`${failure}: ${error.message}`);
    throw error;
  }
}

/**
 * Load a private key without a passphrase: the key, or why not (encrypted, unreadable, too open,
 * not a key), in words that can follow "F is not a key file: ".
 */
export async function tryLoadUnencrypted(path: string): Promise<ParsedPrivateKeyFile | { readonly reason: string }> {
  try {
    const data = await readFile(path);
    if (looksLikePrivateKey(data) && !(await privateKeyPermissionsOk(path))) return { reason: 'bad permissions' };
    return await parsePrivateKeyFile(data);
  } catch (error) {
    if (error instanceof KeyFormatError) return { reason: error.message };
    return { reason: describeError(error) };
  }
}

/**
 * Read `type base64` at the start of `text` (OpenSSH's sshkey_read): the type ends at the first
 * blank, blanks separate it from the base64, which ends at the next blank. Returns the key and the
 * text after it, or undefined when there is no valid key of a known type there.
 */
export function readKeyAt(text: string): { blob: Buffer; rest: string } | undefined {
  const match = /^([^ \t]+)[ \t]+([^ \t]+)/.exec(text);
  if (match === null) return undefined;
  try {
    const record = decodePublicKeyFields(match[1]!, match[2]!.replace(/[\r\n]+$/, ''));
    return { blob: record.blob, rest: text.slice(match[0].length) };
  } catch (error) {
    if (error instanceof KeyFormatError) return undefined;
    throw error;
  }
}

/**
 * The first public key line of a file (sshkey_try_load_public): blank and `#` lines are skipped,
 * reading stops at a private key's armour; the comment is the rest of the line, or the file's
 * name when there is none.
 */
async function publicKeyInFile(path: string): Promise<PublicKeyFound | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('-----BEGIN') || line === 'SSH PRIVATE KEY FILE') return undefined;
    const found = readKeyAt(line.replace(/^[ \t]+/, ''));
    if (found === undefined) continue;
    const comment = found.rest.replace(/^[ \t]+/, '').replace(/[\r\n]+$/, '');
    return { blob: found.blob, comment: comment === '' ? path : comment };
  }
  return undefined;
}

/**
 * The public key kept in the clear by openssh-key-v1 and PuTTY files (encrypted or not). PuTTY
 * keeps the comment in the clear as well; an openssh file's is encrypted with the key (undefined).
 */
async function publicKeyOfPrivateFile(path: string): Promise<{ blob: Buffer; comment: string | undefined } | undefined> {
  try {
    const data = await readFile(path);
    if (isPpk(data)) {
      const file = decodePpk(data);
      return { blob: file.publicBlob, comment: file.commentBytes.toString('utf8') };
    }
    const text = data.toString('utf8');
    if (text.includes(`-----BEGIN ${OPENSSH_PRIVATE_KEY_LABEL}-----`)) return { blob: decodeOpensshPrivateKey(text).publicBlob, comment: undefined };
  } catch {
    // A corrupt file simply has no public key to offer.
  }
  return undefined;
}

/**
 * sshkey_load_public: the file as a public key, else FILE.pub, else the private file's clear
 * public half (whose comment is unknown, undefined, unless it is a PuTTY file).
 */
export async function loadPublic(path: string): Promise<{ blob: Buffer; comment: string | undefined } | undefined> {
  return (await publicKeyInFile(path)) ?? (await publicKeyInFile(`${path}.pub`)) ?? (await publicKeyOfPrivateFile(path));
}
