/**
 * `-l` and `-B`: the fingerprint of every key in a file, one line each, as ssh-keygen prints them:
 *
 *   256 SHA256:… comment (ED25519)
 *
 * The file may be a private key (its public half is found without the passphrase when the file
 * keeps it in the clear), a public key, or a list of keys as in authorized_keys (options before
 * the key) and known_hosts (host names before it). `-v` adds the randomart picture; `-B` prints
 * the Bubble Babble digest instead of the fingerprint.
 */
import { readFile } from 'node:fs/promises';
import { bubbleBabble, describeKey, fingerprint, randomArt } from '../../keys/fingerprint.js';
import { PPK_MAGIC } from '../../keys/ppk.js';
import { parseRfc4716PublicKey } from '../../keys/public-key-text.js';
import { KeyFormatError } from '../../errors.js';
import { describeError, fatal, out, PROGRAM, readAllStdin } from './console.js';
import { askFilename, loadPublic, readKeyAt, tryLoadUnencrypted } from './load.js';
import type { KeygenOptions } from './options.js';

/** One key's line (and picture, with -v); `comment` undefined prints as `no comment`. */
export function printKey(options: KeygenOptions, blob: Buffer, comment: string | undefined): void {
  const { label, bits } = describeKey(blob);
  const shown = options.bubbleBabble ? bubbleBabble(blob) : fingerprint(blob, options.hash);
  out(`${bits} ${shown} ${comment ?? 'no comment'} (${label})\n`);
  if (options.verbose) out(`${randomArt(blob, { hash: options.hash })}\n`);
}

/**
 * A private key file: the public key from FILE.pub or the file's clear half; the comment from
 * FILE.pub, or else from the file itself when it opens without a passphrase.
 */
async function fingerprintPrivate(options: KeygenOptions, path: string): Promise<void> {
  const found = await loadPublic(path);
  let blob = found?.blob;
  let comment = found?.comment;
  if (blob === undefined || comment === undefined || comment === '') {
    const opened = await tryLoadUnencrypted(path);
    if ('reason' in opened) {
      comment = undefined;
      // ssh-keygen stops at "F is not a key file."; the reason says what is wrong with it.
      if (blob === undefined) throw fatal(`${path} is not a key file: ${opened.reason}`);
    } else {
      // PEM and PKCS#8 files have no comment; an openssh file's may be empty, which prints as such.
      comment = opened.format === 'openssh' || opened.format === 'ppk' ? opened.comment : undefined;
      blob ??= opened.key.publicKey.blob;
    }
  }
  printKey(options, blob, comment);
}

/**
 * Skip what may stand before a key on an authorized_keys or known_hosts line: one field, in which
 * double quotes protect blanks (options such as command="a b"). ssh-keygen does not skip a leading
 * number followed by a blank (an SSH-1 key's bit count), so neither do we. Undefined when nothing
 * follows the field.
 */
function skipLeadingField(text: string): { field: string; rest: string } | undefined {
  const number = /^[+-]?\d+/.exec(text);
  if (number !== null && Number(number[0]) !== 0 && /^[ \t]/.test(text.slice(number[0].length))) return { field: '', rest: text };
  let quoted = false;
  let at = 0;
  for (; at < text.length && (quoted || (text[at] !== ' ' && text[at] !== '\t')); at++) {
    if (text[at] === '\\' && text[at + 1] === '"') at++;
    else if (text[at] === '"') quoted = !quoted;
  }
  if (at >= text.length) return undefined;
  return { field: text.slice(0, at), rest: text.slice(at + 1) };
}

export async function fingerprintCommand(options: KeygenOptions): Promise<void> {
  const path = options.file ?? (await askFilename('Enter file in which the key is', options.keyType));
  const fromStdin = path === '-';
  const label = fromStdin ? '(stdin)' : path;
  let text: string;
  if (fromStdin) {
    text = await readAllStdin();
  } else {
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw fatal(`${PROGRAM}: ${path}: ${describeError(error)}`);
    }
  }

  let valid = false;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let index = 0; index < lines.length; index++) {
    let line = lines[index]!.replace(/^[ \t]+/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (index === 0 && !fromStdin && (line.includes('PRIVATE KEY') || line.startsWith(PPK_MAGIC))) {
      await fingerprintPrivate(options, path);
      return;
    }
    // Not something ssh-keygen -l reads, but `-e` writes it, so reading it back costs nothing.
    if (line.trimEnd() === '---- BEGIN SSH2 PUBLIC KEY ----') {
      try {
        const { key, comment } = parseRfc4716PublicKey(lines.slice(index).join('\n'));
        printKey(options, key.blob, comment === '' ? undefined : comment);
        return;
      } catch (error) {
        if (!(error instanceof KeyFormatError)) throw error;
        throw fatal(`${label} is not a valid RFC 4716 public key: ${error.message}`);
      }
    }
    let comment: string | undefined;
    let key = readKeyAt(line);
    if (key === undefined) {
      const skipped = skipLeadingField(line);
      if (skipped === undefined) continue;
      if (skipped.field !== '') comment = skipped.field;
      line = skipped.rest;
      key = readKeyAt(line);
      if (key === undefined) continue;
    }
    // A comment after the key wins over the host names or options before it.
    const trailing = key.rest.replace(/^[ \t]+/, '');
    if (trailing !== '' && !trailing.startsWith('#')) comment = trailing;
    printKey(options, key.blob, comment);
    valid = true;
  }
  if (!valid) throw fatal(`${label} is not a public key file.`);
}
