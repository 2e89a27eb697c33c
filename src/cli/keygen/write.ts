/**
 * Writing key files, and choosing their format.
 *
 * A private key file is written beside its final name and renamed over it, so that an interrupted
 * write never leaves a half key in place of a good one, and it is created 0600 whatever the
 * umask or the mode of the file it replaces (OpenSSH refuses to use a private key others can read).
 */
import { randomBytes } from 'node:crypto';
import { chmod, rename, unlink, writeFile } from 'node:fs/promises';
import type { SshPrivateKey } from '../../algorithms/types.js';
import { formatPrivateKeyFile } from '../../keys/private-key-file.js';
import type { PrivateKeyFileFormat } from '../../keys/private-key-file.js';
import type { KeyFormatName } from './options.js';

export async function writePrivateKeyFile(path: string, text: string): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, text, { mode: 0o600, flag: 'wx' });
  try {
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/** A public key file: readable by all, as ssh-keygen leaves it (mode 0644 under the usual umask). */
export async function writePublicKeyFile(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o644 });
}

/**
 * The private key format `-m` asks for. Ed25519 has no PEM form, and OpenSSH 9.2 reads no Ed25519
 * PKCS#8 file, so ssh-keygen writes those in its own format whatever -m says; so do we. RFC4716 is
 * a public key format: for a private key it means the default.
 */
export function privateFormatFor(key: SshPrivateKey, requested: KeyFormatName | undefined, otherwise: PrivateKeyFileFormat): PrivateKeyFileFormat {
  if (requested === undefined) return otherwise;
  if (requested === 'RFC4716' || key.type === 'ssh-ed25519') return 'openssh';
  return requested === 'PEM' ? 'pem' : 'pkcs8';
}

/** OpenSSH's minimum for a passphrase that encrypts a PEM or PKCS#8 file (sshkey.c), which OpenSSL's prompts also enforce. */
const PEM_MIN_PASSPHRASE = 5;

export interface PrivateKeyWriteOptions {
  readonly format: PrivateKeyFileFormat;
  /** '' = unencrypted. */
  readonly passphrase: string;
  readonly comment: string;
  readonly rounds: number | undefined;
  readonly cipher: string | undefined;
}

/** The file's text; throws an Error whose message completes `Saving key "F" failed: …`. */
export async function privateKeyText(key: SshPrivateKey, options: PrivateKeyWriteOptions): Promise<string> {
  const { format, passphrase } = options;
  if ((format === 'pem' || format === 'pkcs8') && passphrase.length > 0 && passphrase.length < PEM_MIN_PASSPHRASE) {
    throw new Error('passphrase is too short (minimum five characters)');
  }
  return formatPrivateKeyFile(key, {
    format,
    passphrase: passphrase === '' ? undefined : passphrase,
    comment: options.comment,
    // -a and -Z are bcrypt rounds and a cipher of the openssh format; PuTTY's Argon2 passes are another matter.
    ...(format === 'openssh' ? { rounds: options.rounds, cipher: options.cipher } : {}),
  });
}
