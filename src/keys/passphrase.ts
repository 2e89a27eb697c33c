/**
 * Passphrases for private key files, and the errors every key file reader throws about them.
 *
 * A passphrase is bytes: a string is taken as its UTF-8 encoding, which is what ssh-keygen and
 * PuTTY hash when a user types it in a UTF-8 terminal.
 */
import { KeyFormatError } from '../errors.js';

export type Passphrase = string | Uint8Array;

/** OpenSSH's wording for SSH_ERR_KEY_WRONG_PASSPHRASE (ssherr.c), so users see the familiar text. */
export const INCORRECT_PASSPHRASE = 'incorrect passphrase supplied to decrypt private key';

/** A key file is encrypted and no passphrase was given, or the one given was wrong. */
export class PassphraseError extends KeyFormatError {
  constructor(
    /** `missing`: ask the user for one; `incorrect`: ask again. */
    readonly problem: 'missing' | 'incorrect',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function incorrectPassphrase(options?: ErrorOptions): PassphraseError {
  return new PassphraseError('incorrect', INCORRECT_PASSPHRASE, options);
}

/** `what` says which file format and cipher, so the user knows what the passphrase is for. */
export function missingPassphrase(what: string): PassphraseError {
  return new PassphraseError('missing', `a passphrase is required: the private key is encrypted (${what})`);
}

export function passphraseBytes(passphrase: Passphrase): Buffer {
  return typeof passphrase === 'string' ? Buffer.from(passphrase, 'utf8') : Buffer.from(passphrase);
}
