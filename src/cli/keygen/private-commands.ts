/**
 * The operations on a private key file: `-y` prints its public key, `-p` changes its passphrase.
 */
import { formatOpenSshPublicKey } from '../../keys/public-key-text.js';
import { askPassphrase, describeError, KeygenExit, out } from './console.js';
import { askFilename, loadIdentity, mustExist } from './load.js';
import type { KeygenOptions } from './options.js';
import { privateFormatFor, privateKeyText, writePrivateKeyFile } from './write.js';

async function keyFile(options: KeygenOptions): Promise<string> {
  return options.file ?? (await askFilename('Enter file in which the key is', options.keyType));
}

/** -y: the OpenSSH public key line, with the comment the private key file holds. */
export async function printPublicCommand(options: KeygenOptions): Promise<void> {
  const path = await keyFile(options);
  await mustExist(path, `${path}: `);
  const opened = await loadIdentity(path, options.passphrase, 'Enter passphrase: ', `Load key "${path}"`);
  out(`${formatOpenSshPublicKey(opened.key.publicKey, opened.comment)}\n`);
}

/**
 * -p: open the key (with -P, or asking only if it is encrypted), then write it back with the new
 * passphrase (-N, or asked twice), keeping its comment and its format unless -m names another.
 * (ssh-keygen rewrites PEM and PKCS#8 files in its own format unless -m is given; we keep a file in
 * the form its user chose.)
 */
export async function changePassphraseCommand(options: KeygenOptions): Promise<void> {
  const path = await keyFile(options);
  await mustExist(path, `${path}: `);
  const opened = await loadIdentity(path, options.passphrase, 'Enter old passphrase: ', `Failed to load key ${path}`);
  // Only formats that store a comment have one to show.
  if (opened.format === 'openssh' || opened.format === 'ppk') out(`Key has comment '${opened.comment}'\n`);

  let passphrase = options.newPassphrase;
  if (passphrase === undefined) {
    const first = await askPassphrase('Enter new passphrase (empty for no passphrase): ');
    const second = await askPassphrase('Enter same passphrase again: ');
    if (first !== second) {
      out('Pass phrases do not match.  Try again.\n');
      throw new KeygenExit(1);
    }
    passphrase = first;
  }

  try {
    const text = await privateKeyText(opened.key, {
      format: privateFormatFor(opened.key, options.format, opened.format),
      passphrase,
      comment: opened.comment,
      rounds: options.rounds,
      cipher: options.cipher,
    });
    await writePrivateKeyFile(path, text);
  } catch (error) {
    throw new KeygenExit(1, `Saving key "${path}" failed: ${describeError(error)}`);
  }
  out('Your identification has been saved with the new passphrase.\n');
}
