/**
 * PEM private keys, the OpenSSL formats `ssh-keygen -m PEM` and `-m PKCS8` write and OpenSSH reads:
 *
 *   RSA PRIVATE KEY        PKCS#1 RSAPrivateKey (RFC 8017 A.1.2)
 *   EC PRIVATE KEY         SEC1 ECPrivateKey (RFC 5915)
 *   PRIVATE KEY            PKCS#8 PrivateKeyInfo (RFC 5208, RFC 5958)
 *   ENCRYPTED PRIVATE KEY  PKCS#8 EncryptedPrivateKeyInfo (PBES2, RFC 8018)
 *
 * The first two are encrypted, if at all, with OpenSSL's legacy scheme: `Proc-Type: 4,ENCRYPTED`
 * and `DEK-Info: AES-128-CBC,<iv>` headers (RFC 1421 §4.6.1). node:crypto's createPrivateKey
 * reads all of these and decrypts them; this module only decides what a failure means, in words
 * a user can act on, and exports keys in the same formats.
 *
 * These formats carry no comment. Ed25519 has no PKCS#1/SEC1-style format (only PKCS#8), and
 * OpenSSH 9.2 does not read Ed25519 PKCS#8 files: ssh-keygen writes Ed25519 keys in its own format
 * whatever -m says.
 */
import { createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { SshPrivateKey } from '../algorithms/types.js';
import { KeyFormatError } from '../errors.js';
import { beginLine, decodeBase64Strict, endLine } from './armor.js';
import { incorrectPassphrase, missingPassphrase, passphraseBytes, PassphraseError, INCORRECT_PASSPHRASE } from './passphrase.js';
import type { Passphrase } from './passphrase.js';
import { pkcs8IterationCount } from './pkcs8-kdf.js';
import { privateKeyFromKeyObject } from './private-key.js';
import { materialFromPrivateKey, privateKeyFromMaterial } from './private-key-material.js';

/** `pem`: PKCS#1 (RSA) or SEC1 (EC), OpenSSL's "traditional" formats; `pkcs8`: PKCS#8. */
export type PemFormat = 'pem' | 'pkcs8';

/** What the armour of a PEM private key says, before any decoding. */
export interface PemPrivateKeyInfo {
  readonly format: PemFormat;
  /** The label between BEGIN and the dashes: `RSA PRIVATE KEY`. */
  readonly label: string;
  readonly encrypted: boolean;
  /** The armoured block alone, begin line to end line, without surrounding text. */
  readonly block: string;
  /** A description for messages: `PKCS#1 RSA`, `SEC1 EC`, `PKCS#8`, `encrypted PKCS#8`. */
  readonly description: string;
}

const LABELS: ReadonlyMap<string, { format: PemFormat; description: string }> = new Map([
  ['RSA PRIVATE KEY', { format: 'pem', description: 'PKCS#1 RSA' }],
  ['EC PRIVATE KEY', { format: 'pem', description: 'SEC1 EC' }],
  ['DSA PRIVATE KEY', { format: 'pem', description: 'OpenSSL DSA' }],
  ['PRIVATE KEY', { format: 'pkcs8', description: 'PKCS#8' }],
  ['ENCRYPTED PRIVATE KEY', { format: 'pkcs8', description: 'encrypted PKCS#8' }],
]);

const BEGIN = /-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----/;

/**
 * Recognise a PEM private key in `text` (undefined if there is none). Throws KeyFormatError when
 * the begin line is there but the end line is not (a truncated file).
 */
export function detectPemPrivateKey(text: string): PemPrivateKeyInfo | undefined {
  const match = BEGIN.exec(text);
  if (match === null) return undefined;
  const label = match[1]!;
  const { format, description } = LABELS.get(label)!;
  const end = text.indexOf(endLine(label), match.index);
  if (end < 0) throw new KeyFormatError(`invalid format: no "${endLine(label)}" line (the file is truncated?)`);
  const block = text.slice(match.index, end + endLine(label).length) + '\n';
  // RFC 1421 §4.6.1.1: legacy encryption is announced by this header; PKCS#8 by its label.
  const encrypted = label === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type:\s*4,\s*ENCRYPTED\s*$/m.test(block);
  return { format, label, encrypted, block, description };
}

/** The base64 body of a block, past any RFC 1421 headers (`Name: value` lines, then a blank line). */
function body(info: PemPrivateKeyInfo): string {
  const inner = info.block.slice(beginLine(info.label).length, info.block.lastIndexOf(endLine(info.label)));
  const blank = inner.search(/\r?\n\r?\n/);
  return /^\s*[A-Za-z-]+:/.test(inner) && blank >= 0 ? inner.slice(blank) : inner;
}

/**
 * PBKDF2 iteration counts above this are refused unless the caller raises the cap: OpenSSL 3 writes
 * 2048, and ten million already costs seconds of native SHA-256.
 */
export const DEFAULT_MAX_PBKDF2_ITERATIONS = 10_000_000;

function der(info: PemPrivateKeyInfo): Buffer {
  // Checked here: OpenSSL's decoder reports a damaged body only as "unsupported".
  const bytes = decodeBase64Strict(body(info), `the ${info.label} body`);
  if (bytes.length === 0) throw new KeyFormatError(`invalid format: the ${info.label} block is empty`);
  return bytes;
}

/** Refuse an encrypted PKCS#8 key whose KDF iteration count is above `maxIterations`, before any passphrase is asked for. */
export function checkPemKdfCost(info: PemPrivateKeyInfo, maxIterations: number = DEFAULT_MAX_PBKDF2_ITERATIONS): void {
  if (info.label !== 'ENCRYPTED PRIVATE KEY') return;
  const iterations = pkcs8IterationCount(der(info));
  if (iterations !== undefined && iterations > maxIterations) {
    throw new KeyFormatError(
      `private key asks for ${iterations} PBKDF2 iterations, more than the limit of ${maxIterations}: refusing to spend that long; ` +
        'if you trust this file, raise maxPbkdf2Iterations',
    );
  }
}

function opensslCode(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
}

/**
 * Decode a PEM private key detected by detectPemPrivateKey. `passphrase` is used only when the
 * block is encrypted: PassphraseError `missing` without one, `incorrect` when decryption fails.
 * An encrypted PKCS#8 key with more than `maxPbkdf2Iterations` KDF iterations is refused.
 * KeyFormatError for a corrupt body or a key type SSH does not use (DSA, X25519, RSA-PSS, …).
 */
export function parsePemPrivateKey(
  info: PemPrivateKeyInfo,
  passphrase?: Passphrase,
  maxPbkdf2Iterations: number = DEFAULT_MAX_PBKDF2_ITERATIONS,
): SshPrivateKey {
  der(info);
  if (info.encrypted && passphrase === undefined) throw missingPassphrase(info.description);
  checkPemKdfCost(info, maxPbkdf2Iterations);
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({
      key: info.block,
      format: 'pem',
      ...(info.encrypted ? { passphrase: passphraseBytes(passphrase!) } : {}),
    });
  } catch (cause) {
    const code = opensslCode(cause);
    if (info.encrypted && code === 'ERR_OSSL_BAD_DECRYPT') throw incorrectPassphrase({ cause });
    if (info.encrypted) {
      // A CBC decryption with the wrong key ends in valid padding about once in 256 tries; the
      // garbage then fails to decode. A damaged file fails the same way, so say both.
      throw new PassphraseError('incorrect', `${INCORRECT_PASSPHRASE} (or the ${info.description} file is corrupt)`, { cause });
    }
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new KeyFormatError(`invalid format: not a valid ${info.description} private key (${detail})`, { cause });
  }
  const type = keyObject.asymmetricKeyType;
  // Checked first: the JWK export privateKeyFromKeyObject relies on throws a plain Error for DSA and others.
  if (type !== 'rsa' && type !== 'ec' && type !== 'ed25519') {
    throw new KeyFormatError(`unsupported key type ${String(type)} in ${info.description} file (tssh reads Ed25519, ECDSA P-256/384/521 and RSA keys)`);
  }
  // Round-trip through the key's numbers so PEM keys get the same consistency checks as the other
  // formats (OpenSSL takes a SEC1 file's stored public point on trust, for one).
  return privateKeyFromMaterial(materialFromPrivateKey(privateKeyFromKeyObject(keyObject)));
}

export interface PemWriteOptions {
  readonly format: PemFormat;
  /** Encrypt: legacy AES-128-CBC for `pem` (as ssh-keygen -m PEM), PBES2 AES-256-CBC for `pkcs8`. */
  readonly passphrase?: Passphrase;
}

/** Export a key as PEM text (64-column base64, as OpenSSL and ssh-keygen write it). */
export function encodePemPrivateKey(key: SshPrivateKey, options: PemWriteOptions): string {
  const object = key.keyObject;
  let type: 'pkcs1' | 'sec1' | 'pkcs8';
  if (options.format === 'pkcs8') type = 'pkcs8';
  else if (object.asymmetricKeyType === 'rsa') type = 'pkcs1';
  else if (object.asymmetricKeyType === 'ec') type = 'sec1';
  else {
    throw new KeyFormatError(
      `${key.type} keys have no PEM (PKCS#1/SEC1) form: write them as "openssh" (what ssh-keygen does) or "pkcs8"`,
    );
  }
  if (options.passphrase === undefined) return object.export({ type, format: 'pem' }) as string;
  const secret = passphraseBytes(options.passphrase);
  if (secret.length === 0) throw new KeyFormatError('an empty passphrase cannot encrypt a key: omit it to write the key unencrypted');
  const cipher = type === 'pkcs8' ? 'aes-256-cbc' : 'aes-128-cbc';
  return object.export({ type, format: 'pem', cipher, passphrase: secret }) as string;
}
