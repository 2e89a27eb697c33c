/**
 * `-e` and `-i`: a public key out of OpenSSH's one-line form and back into it.
 *
 *   -m RFC4716 (default)  the "SSH2 PUBLIC KEY" block of RFC 4716 (ssh.com, many appliances)
 *   -m PKCS8              an X.509 SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----" (OpenSSL)
 *   -m PEM                PKCS#1 "-----BEGIN RSA PUBLIC KEY-----" for RSA; ECDSA keys as PKCS8
 *
 * Like ssh-keygen, -e exports RSA and ECDSA keys to PKCS8/PEM but not Ed25519 (OpenSSH 9.2 has no
 * such form); -i reads either PEM label whichever of PKCS8/PEM is named, since the label already
 * says which it is.
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KeyFormatError } from '../../errors.js';
import { describeKey } from '../../keys/fingerprint.js';
import { parsePublicKeyBlob, publicKeyFromKeyObject } from '../../keys/public-key.js';
import { formatOpenSshPublicKey, formatRfc4716PublicKey, parseRfc4716PublicKey } from '../../keys/public-key-text.js';
import { describeError, fatal, out, PROGRAM } from './console.js';
import { askFilename, loadIdentity, loadPublic, mustExist, userAtHost } from './load.js';
import type { KeygenOptions } from './options.js';

/** RFC 4716 §3.3: the Comment header, quotes and all, must fit a 72-byte line; ssh-keygen keeps it to 60 characters. */
const EXPORT_COMMENT_LENGTH = 60;

async function inputFile(options: KeygenOptions): Promise<string> {
  const path = options.file ?? (await askFilename('Enter file in which the key is', options.keyType));
  await mustExist(path, `${PROGRAM}: ${path}: `);
  return path;
}

/** The Comment ssh-keygen writes: what the key is and who converted it, not the key's own comment. */
function exportComment(blob: Buffer): string {
  const { label, bits } = describeKey(blob);
  return `${bits}-bit ${label}, converted by ${userAtHost()} from OpenSSH`.slice(0, EXPORT_COMMENT_LENGTH);
}

/** An OpenSSL PEM export of an RSA or ECDSA key; Ed25519 and others are refused as ssh-keygen refuses them. */
function pemExport(blob: Buffer, format: 'PKCS8' | 'PEM'): string {
  const { label } = describeKey(blob);
  if (label !== 'RSA' && label !== 'ECDSA') {
    throw fatal(`unsupported key type ${label} for -m ${format}: only RSA and ECDSA keys can be exported this way`);
  }
  const { keyObject } = parsePublicKeyBlob(blob);
  const type = format === 'PEM' && label === 'RSA' ? 'pkcs1' : 'spki';
  return keyObject.export({ type, format: 'pem' }).toString();
}

export async function exportCommand(options: KeygenOptions): Promise<void> {
  const path = await inputFile(options);
  // The public key if one can be found without a passphrase; only then the private key, asking for it.
  const blob =
    (await loadPublic(path))?.blob ?? (await loadIdentity(path, options.passphrase, 'Enter passphrase: ', `Load key "${path}"`)).key.publicKey.blob;
  const format = options.format ?? 'RFC4716';
  if (format === 'RFC4716') out(formatRfc4716PublicKey(blob, { comment: exportComment(blob) }));
  else out(pemExport(blob, format));
}

/** The public key in a PEM block: SubjectPublicKeyInfo or PKCS#1 RSAPublicKey, which node:crypto tells apart by label. */
function pemImport(path: string, text: string): Buffer {
  const block = /-----BEGIN (RSA )?PUBLIC KEY-----[\s\S]*?-----END (RSA )?PUBLIC KEY-----/.exec(text);
  if (block === null) throw fatal(`${path} is not a recognised public key format (no "BEGIN PUBLIC KEY" or "BEGIN RSA PUBLIC KEY" block)`);
  try {
    return publicKeyFromKeyObject(createPublicKey({ key: block[0], format: 'pem' })).blob;
  } catch (error) {
    throw fatal(`${path} is not a recognised public key format: ${describeError(error)}`);
  }
}

function rfc4716Import(path: string, text: string): Buffer {
  if (text.includes('---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----')) {
    throw fatal(`${path} is an ssh.com private key, which ${PROGRAM} does not convert`);
  }
  try {
    return parseRfc4716PublicKey(text).key.blob;
  } catch (error) {
    if (error instanceof KeyFormatError) throw fatal(`${path} is not an RFC 4716 public key: ${error.message}`);
    throw error;
  }
}

/** -i: the key as an OpenSSH line, without a comment (as ssh-keygen prints it). */
export async function importCommand(options: KeygenOptions): Promise<void> {
  const path = await inputFile(options);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw fatal(`${PROGRAM}: ${path}: ${describeError(error)}`);
  }
  const blob = (options.format ?? 'RFC4716') === 'RFC4716' ? rfc4716Import(path, text) : pemImport(path, text);
  out(`${formatOpenSshPublicKey(blob)}\n`);
}
