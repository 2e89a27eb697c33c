/**
 * Making a key pair (tssh-keygen with no operation flag), in ssh-keygen's order: check the type and
 * size, generate, ask for the file name if -f is absent, ask before overwriting, ask for the
 * passphrase, write FILE (0600) and FILE.pub, and show the fingerprint and randomart unless -q.
 */
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fingerprint, randomArt } from '../../keys/fingerprint.js';
import { generatePrivateKey, RSA_GENERATE_MIN_BITS, RSA_DEFAULT_BITS } from '../../keys/private-key.js';
import type { GeneratedKeyType } from '../../keys/private-key.js';
import { RSA_MAX_BITS } from '../../keys/public-key.js';
import { formatOpenSshPublicKey } from '../../keys/public-key-text.js';
import { askLine, askPassphrase, describeError, err, fatal, KeygenExit, out, PROGRAM } from './console.js';
import { keyKindOf } from './key-types.js';
import { askFilename, userAtHost, userHome } from './load.js';
import type { KeygenOptions } from './options.js';
import { privateFormatFor, privateKeyText, writePrivateKeyFile, writePublicKeyFile } from './write.js';

/** The type ssh-keygen makes without -t since OpenSSH 9.5 (9.2 still made RSA). */
export const DEFAULT_KEY_TYPE = 'ed25519';

const ECDSA_BITS: ReadonlyMap<number, GeneratedKeyType> = new Map([
  [256, 'ecdsa-p256'],
  [384, 'ecdsa-p384'],
  [521, 'ecdsa-p521'],
]);

/** The generator's type for -t/-b, or a fatal error worded as ssh-keygen's. */
function chooseType(name: string, bits: number | undefined): { type: GeneratedKeyType; bits: number } {
  const kind = keyKindOf(name);
  if (kind === undefined) throw fatal(`unknown key type ${name}`);
  switch (kind.kind) {
    case 'ed25519':
      return { type: 'ed25519', bits: 256 };
    case 'ecdsa': {
      const size = bits ?? kind.impliedBits ?? 256;
      const type = ECDSA_BITS.get(size);
      if (type === undefined) throw fatal('Invalid ECDSA key length: valid lengths are 256, 384 or 521 bits');
      return { type, bits: size };
    }
    case 'rsa': {
      const size = bits ?? RSA_DEFAULT_BITS;
      // 2048 rather than OpenSSH's 1024: NIST SP 800-131A retired smaller RSA keys.
      if (size < RSA_GENERATE_MIN_BITS) throw fatal(`Invalid RSA key length: minimum is ${RSA_GENERATE_MIN_BITS} bits`);
      if (size > RSA_MAX_BITS) throw fatal(`Invalid RSA key length: maximum is ${RSA_MAX_BITS} bits`);
      return { type: 'rsa', bits: size };
    }
    default:
      throw fatal(`${PROGRAM} cannot generate ${name} keys: it makes ed25519, ecdsa and rsa keys`);
  }
}

/** ssh-keygen creates ~/.ssh (0700) when the key goes straight into it and it does not exist yet. */
async function createUserSshDir(path: string, notify: boolean): Promise<void> {
  if (!path.includes('/')) return;
  const sshDir = `${userHome()}/.ssh`;
  if (dirname(path) !== sshDir) return;
  try {
    await stat(sshDir);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      err(`Could not stat ${sshDir}: ${describeError(error)}\n`);
      return;
    }
  }
  try {
    await mkdir(sshDir, { mode: 0o700 });
    if (notify) err(`Created directory '${sshDir}'.\n`);
  } catch (error) {
    err(`Could not create directory '${sshDir}' (${describeError(error)}).\n`);
  }
}

/**
 * The new passphrase: -P, then -N (ssh-keygen's order), else asked twice until both agree. End of
 * input answers '' to both, an unencrypted key, as with ssh-keygen.
 */
async function newPassphrase(options: KeygenOptions): Promise<string> {
  if (options.passphrase !== undefined) return options.passphrase;
  if (options.newPassphrase !== undefined) return options.newPassphrase;
  for (;;) {
    const first = await askPassphrase('Enter passphrase (empty for no passphrase): ');
    const second = await askPassphrase('Enter same passphrase again: ');
    if (first === second) return first;
    out('Passphrases do not match.  Try again.\n');
  }
}

export async function generateCommand(options: KeygenOptions): Promise<void> {
  const typeName = options.keyType ?? DEFAULT_KEY_TYPE;
  const { type, bits } = chooseType(typeName, options.bits);
  if (!options.quiet) out(`Generating public/private ${typeName} key pair.\n`);
  const key = await generatePrivateKey(type, bits);

  const path = options.file ?? (await askFilename('Enter file in which to save the key', typeName));
  await createUserSshDir(path, !options.quiet);
  if (existsSync(path)) {
    const answer = await askLine(`${path} already exists.\nOverwrite (y/n)? `);
    // No answer (no terminal, nothing piped in) is a no: an existing key is never replaced silently.
    if (answer === undefined || !/^[yY]/.test(answer)) throw new KeygenExit(1);
  }
  const passphrase = await newPassphrase(options);
  const comment = options.comment ?? userAtHost();

  try {
    const text = await privateKeyText(key, {
      format: privateFormatFor(key, options.format, 'openssh'),
      passphrase,
      comment,
      rounds: options.rounds,
      cipher: options.cipher,
    });
    await writePrivateKeyFile(path, text);
  } catch (error) {
    throw new KeygenExit(1, `Saving key "${path}" failed: ${describeError(error)}`);
  }
  if (!options.quiet) out(`Your identification has been saved in ${path}\n`);

  const publicPath = `${path}.pub`;
  // Always a blank before the comment, even an empty one, as ssh-keygen writes it.
  try {
    await writePublicKeyFile(publicPath, `${formatOpenSshPublicKey(key.publicKey)} ${comment}\n`);
  } catch (error) {
    throw fatal(`Unable to save public key to ${publicPath}: ${describeError(error)}`);
  }
  if (!options.quiet) {
    out(`Your public key has been saved in ${publicPath}\n`);
    out('The key fingerprint is:\n');
    out(`${fingerprint(key.publicKey, options.hash)} ${comment}\n`);
    out("The key's randomart image is:\n");
    out(`${randomArt(key.publicKey, { hash: options.hash })}\n`);
  }
}
