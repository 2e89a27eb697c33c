/**
 * Text armour shared by the key file formats: base64 bodies between `-----BEGIN X-----` and
 * `-----END X-----` lines (RFC 7468 §2, which OpenSSH's own format follows), wrapped at a fixed
 * width, and strict base64 decoding (Buffer.from(…, 'base64') silently skips bad characters, which
 * would turn a corrupt file into a confusing error further on).
 */
import { KeyFormatError } from '../errors.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decode base64 with all whitespace removed; KeyFormatError for any other stray character or a bad length. */
export function decodeBase64Strict(text: string, what: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (!BASE64.test(compact) || compact.length % 4 === 1) throw new KeyFormatError(`invalid format: ${what} is not valid base64`);
  return Buffer.from(compact, 'base64');
}

/** Base64 of `data` in lines of `width` characters, each ending with a newline. */
export function base64Lines(data: Uint8Array, width: number): string {
  const encoded = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  let out = '';
  for (let i = 0; i < encoded.length; i += width) out += encoded.slice(i, i + width) + '\n';
  return out;
}

export function beginLine(label: string): string {
  return `-----BEGIN ${label}-----`;
}

export function endLine(label: string): string {
  return `-----END ${label}-----`;
}

/** A whole armoured block, as ssh-keygen writes it: begin line, body, end line, final newline. */
export function armor(label: string, data: Uint8Array, width: number): string {
  return `${beginLine(label)}\n${base64Lines(data, width)}${endLine(label)}\n`;
}

/**
 * The base64 body between the begin and end lines of `label`, decoded. Text before the begin line
 * and after the end line is ignored; a missing end line is reported as a truncated file.
 */
export function unarmor(text: string, label: string): Buffer {
  const begin = text.indexOf(beginLine(label));
  if (begin < 0) throw new KeyFormatError(`invalid format: no "${beginLine(label)}" line`);
  const bodyStart = begin + beginLine(label).length;
  const end = text.indexOf(endLine(label), bodyStart);
  if (end < 0) throw new KeyFormatError(`invalid format: no "${endLine(label)}" line (the file is truncated?)`);
  return decodeBase64Strict(text.slice(bodyStart, end), `the ${label} body`);
}
