/**
 * Private key files, whatever their format: one function to read any of them, one to write them.
 *
 *   openssh  -----BEGIN OPENSSH PRIVATE KEY-----   PROTOCOL.key; ssh-keygen's default (./openssh-private.ts)
 *   pem      -----BEGIN RSA|EC PRIVATE KEY-----    PKCS#1 / SEC1; ssh-keygen -m PEM (./pem.ts)
 *   pkcs8    -----BEGIN [ENCRYPTED] PRIVATE KEY--- PKCS#8; ssh-keygen -m PKCS8 (./pem.ts)
 *   ppk      PuTTY-User-Key-File-2/3               PuTTY (./ppk.ts)
 *
 * The passphrase may be a callback: it is called only when the file turns out to be encrypted,
 * and only after the file's KDF cost has been checked against the caps, so a user is never asked
 * for a passphrase to a file that would then be refused.
 *
 * Every failure is a KeyFormatError whose message says what to do; a passphrase problem is its
 * subclass PassphraseError, with `problem` = `missing` or `incorrect` (so a client can prompt
 * again, as ssh does).
 */
import type { SshPrivateKey } from '../algorithms/types.js';
import { KeyFormatError } from '../errors.js';
import {
  checkKdfRounds,
  decodeOpensshPrivateKey,
  DEFAULT_MAX_KDF_ROUNDS,
  encodeOpensshPrivateKey,
  OPENSSH_PRIVATE_KEY_LABEL,
  openOpensshPrivateKey,
} from './openssh-private.js';
import { checkPemKdfCost, DEFAULT_MAX_PBKDF2_ITERATIONS, detectPemPrivateKey, encodePemPrivateKey, parsePemPrivateKey } from './pem.js';
import { missingPassphrase } from './passphrase.js';
import type { Passphrase } from './passphrase.js';
import { checkPpkKdfCost, DEFAULT_MAX_ARGON2_MEMORY, decodePpk, encodePpk, isPpk, openPpk } from './ppk.js';
import type { PpkLimits } from './ppk.js';

export { PassphraseError, INCORRECT_PASSPHRASE } from './passphrase.js';
export type { Passphrase } from './passphrase.js';
export { DEFAULT_MAX_KDF_ROUNDS } from './openssh-private.js';

export type PrivateKeyFileFormat = 'openssh' | 'pem' | 'pkcs8' | 'ppk';

/** A passphrase, or a function asked for one only if the file is encrypted (e.g. a terminal prompt). */
export type PassphraseSource = Passphrase | (() => Promise<Passphrase>);

export interface ParsePrivateKeyFileOptions {
  readonly passphrase?: PassphraseSource;
  /**
   * Most KDF rounds accepted: bcrypt rounds for OpenSSH files, Argon2 passes for PuTTY v3 files
   * (default DEFAULT_MAX_KDF_ROUNDS = 1024). Files asking for more are refused before the
   * passphrase is asked for.
   */
  readonly maxKdfRounds?: number;
  /** Most Argon2 memory accepted for PuTTY v3 files, in KiB (default 256 MiB). */
  readonly maxArgon2Memory?: number;
  /** Most PBKDF2 iterations accepted for encrypted PKCS#8 files (default 10,000,000). */
  readonly maxPbkdf2Iterations?: number;
}

export interface ParsedPrivateKeyFile {
  readonly key: SshPrivateKey;
  /** The comment stored in the file ('' for PEM and PKCS#8, which have none). */
  readonly comment: string;
  readonly format: PrivateKeyFileFormat;
  readonly encrypted: boolean;
}

async function resolvePassphrase(source: PassphraseSource | undefined, what: string): Promise<Passphrase> {
  if (source === undefined) throw missingPassphrase(what);
  return typeof source === 'function' ? source() : source;
}

/** A clear refusal for the things people mistake for a private key file. */
function notAPrivateKey(text: string): KeyFormatError {
  const start = text.trimStart();
  if (start === '') return new KeyFormatError('invalid format: the private key file is empty');
  if (start.includes('---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----')) {
    return new KeyFormatError('unsupported private key format: ssh.com (SSH2); convert it with `puttygen FILE -O private-openssh-new -o NEWFILE`');
  }
  if (
    /^(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/]/.test(start) ||
    start.startsWith('---- BEGIN SSH2 PUBLIC KEY ----') ||
    /^-----BEGIN (RSA |EC )?PUBLIC KEY-----/.test(start)
  ) {
    return new KeyFormatError('invalid format: this is a public key; a private key file is needed');
  }
  return new KeyFormatError('invalid format: not a private key file (expected an OpenSSH, PEM, PKCS#8 or PuTTY .ppk private key)');
}

/**
 * Read a private key file of any supported format: detect the format, check the KDF cost, ask for
 * the passphrase (only if the file is encrypted), decrypt and decode, and check that the key's
 * halves agree. Rejects with KeyFormatError (PassphraseError for a missing or wrong passphrase).
 */
export async function parsePrivateKeyFile(
  data: Buffer | string,
  options: ParsePrivateKeyFileOptions = {},
): Promise<ParsedPrivateKeyFile> {
  const maxKdfRounds = options.maxKdfRounds ?? DEFAULT_MAX_KDF_ROUNDS;
  const text = typeof data === 'string' ? data : data.toString('utf8');

  // PuTTY first: its files must start with their magic line, while the armoured formats are
  // searched for anywhere in the text (and a .ppk comment could contain anything).
  if (isPpk(data)) {
    const file = decodePpk(data);
    const limits: PpkLimits = { maxPasses: maxKdfRounds, maxMemory: options.maxArgon2Memory ?? DEFAULT_MAX_ARGON2_MEMORY };
    let passphrase: Passphrase | undefined;
    if (file.encrypted) {
      checkPpkKdfCost(file, limits);
      passphrase = await resolvePassphrase(options.passphrase, `PuTTY key file v${file.version}, aes256-cbc`);
    }
    const { key, comment } = await openPpk(file, passphrase, limits);
    return { key, comment, format: 'ppk', encrypted: file.encrypted };
  }

  if (text.includes(`-----BEGIN ${OPENSSH_PRIVATE_KEY_LABEL}-----`)) {
    const envelope = decodeOpensshPrivateKey(text);
    let passphrase: Passphrase | undefined;
    if (envelope.kdf.name === 'bcrypt') {
      checkKdfRounds(envelope.kdf.rounds, maxKdfRounds);
      passphrase = await resolvePassphrase(options.passphrase, `openssh-key-v1, ${envelope.cipher.name}`);
    }
    const { key, comment } = openOpensshPrivateKey(envelope, passphrase, maxKdfRounds);
    return { key, comment, format: 'openssh', encrypted: envelope.encrypted };
  }

  const pem = detectPemPrivateKey(text);
  if (pem !== undefined) {
    const maxIterations = options.maxPbkdf2Iterations ?? DEFAULT_MAX_PBKDF2_ITERATIONS;
    let passphrase: Passphrase | undefined;
    if (pem.encrypted) {
      checkPemKdfCost(pem, maxIterations);
      passphrase = await resolvePassphrase(options.passphrase, pem.description);
    }
    const key = parsePemPrivateKey(pem, passphrase, maxIterations);
    return { key, comment: '', format: pem.format, encrypted: pem.encrypted };
  }

  throw notAPrivateKey(text);
}

export interface FormatPrivateKeyFileOptions {
  readonly format: PrivateKeyFileFormat;
  /** Encrypt with this passphrase; unencrypted when absent. */
  readonly passphrase?: Passphrase;
  /** Stored by openssh and ppk; PEM and PKCS#8 have no place for one (ignored). */
  readonly comment?: string;
  /** KDF cost: bcrypt rounds for openssh (default 16), Argon2 passes for ppk v3 (default 13). */
  readonly rounds?: number;
  /** openssh only: the cipher (default aes256-ctr, as ssh-keygen). */
  readonly cipher?: string;
  /** ppk only: file version 3 (default) or 2. */
  readonly ppkVersion?: 2 | 3;
}

/**
 * Write a private key file. Defaults follow what the reference tools write today: openssh with
 * bcrypt (16 rounds) + aes256-ctr and a random salt, 70-column lines; PEM with AES-128-CBC; PKCS#8
 * with PBES2 (PBKDF2 + AES-256-CBC); PuTTY v3 with Argon2id.
 */
export async function formatPrivateKeyFile(key: SshPrivateKey, options: FormatPrivateKeyFileOptions): Promise<string> {
  const { passphrase, comment } = options;
  switch (options.format) {
    case 'openssh':
      return encodeOpensshPrivateKey(key, { passphrase, comment, rounds: options.rounds, cipher: options.cipher });
    case 'pem':
    case 'pkcs8':
      return encodePemPrivateKey(key, { format: options.format, passphrase });
    case 'ppk':
      return encodePpk(key, {
        passphrase,
        comment,
        version: options.ppkVersion,
        ...(options.rounds !== undefined ? { argon2: { passes: options.rounds } } : {}),
      });
    default:
      throw new KeyFormatError(`unknown private key file format ${JSON.stringify(String(options.format))}`);
  }
}
