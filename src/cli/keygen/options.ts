/**
 * tssh-keygen's command line: ssh-keygen's options, parsed as its getopt does (OpenSSH ships the
 * BSD one): flags may be grouped (`-lvf file`), an option's argument may be attached (`-ffile`) or
 * be the next word even when that starts with a dash (`-N -secret`), and parsing stops at `--` or
 * at the first word that is not an option. Nothing may follow the options.
 */
import type { FingerprintHash } from '../../keys/fingerprint.js';
import { keyFileCiphers } from '../../keys/openssh-key-ciphers.js';
import { fatal, KeygenExit, PROGRAM } from './console.js';

/** `-m`: ssh-keygen's three names (RFC4716, alias ssh2; PKCS8; PEM), any case. */
export type KeyFormatName = 'RFC4716' | 'PKCS8' | 'PEM';

export interface KeygenOptions {
  // What to do (none of these: generate a key).
  readonly fingerprint: boolean; // -l
  readonly bubbleBabble: boolean; // -B
  readonly printPublic: boolean; // -y
  readonly changePassphrase: boolean; // -p
  readonly exportKey: boolean; // -e
  readonly importKey: boolean; // -i (or -X)
  readonly hashHosts: boolean; // -H
  readonly findHost: string | undefined; // -F
  readonly removeHost: string | undefined; // -R
  // How.
  readonly file: string | undefined; // -f
  readonly keyType: string | undefined; // -t
  readonly bits: number | undefined; // -b
  readonly comment: string | undefined; // -C
  readonly passphrase: string | undefined; // -P
  readonly newPassphrase: string | undefined; // -N
  readonly format: KeyFormatName | undefined; // -m
  readonly hash: FingerprintHash; // -E
  readonly verbose: boolean; // -v
  readonly quiet: boolean; // -q
  readonly rounds: number | undefined; // -a
  readonly cipher: string | undefined; // -Z
}

const USAGE = `usage: ${PROGRAM} [-q] [-a rounds] [-b bits] [-C comment] [-f output_keyfile]
                   [-m format] [-N new_passphrase] [-t ecdsa | ed25519 | rsa]
                   [-Z cipher]
       ${PROGRAM} -p [-a rounds] [-f keyfile] [-m format] [-N new_passphrase]
                   [-P old_passphrase] [-Z cipher]
       ${PROGRAM} -i [-f input_keyfile] [-m key_format]
       ${PROGRAM} -e [-f input_keyfile] [-m key_format]
       ${PROGRAM} -y [-f input_keyfile] [-P passphrase]
       ${PROGRAM} -l [-v] [-E fingerprint_hash] [-f input_keyfile]
       ${PROGRAM} -B [-f input_keyfile]
       ${PROGRAM} -F hostname [-lv] [-f known_hosts_file]
       ${PROGRAM} -H [-f known_hosts_file]
       ${PROGRAM} -R hostname [-f known_hosts_file]
`;

/** Usage goes to stderr with status 1, after the reason when there is one (as ssh-keygen). */
export function usage(reason?: string): KeygenExit {
  return new KeygenExit(1, `${reason === undefined ? '' : `${reason}\n`}${USAGE.trimEnd()}`);
}

/** Flags without an argument that we implement. */
const FLAGS = new Set('BHXeilpqvyo');
/** Options with an argument that we implement. */
const WITH_ARGUMENT = new Set('CEFNPRZabfmt');
/**
 * ssh-keygen's other options (certificates, KRLs, signatures, FIDO, moduli, PKCS#11, -c, -A, -r):
 * recognised so that they are refused by name rather than reported as unknown.
 */
const UNSUPPORTED_FLAGS = new Set('AKLQUcghku');
const UNSUPPORTED_WITH_ARGUMENT = new Set('DIMOVYnrswz');

/** strtonum(3)'s verdict on a decimal number within [min, max]. */
function parseBoundedInteger(text: string, min: number, max: number): { value: number } | { error: string } {
  if (!/^[ \t]*[+-]?\d+$/.test(text)) return { error: 'invalid' };
  const value = Number(text.trim());
  if (value < min) return { error: 'too small' };
  if (value > max) return { error: 'too large' };
  return { value };
}

function parseFormat(text: string): KeyFormatName {
  switch (text.toLowerCase()) {
    case 'rfc4716':
    case 'ssh2':
      return 'RFC4716';
    case 'pkcs8':
      return 'PKCS8';
    case 'pem':
      return 'PEM';
    default:
      throw fatal(`Unsupported conversion format "${text}"`);
  }
}

function parseHash(text: string): FingerprintHash {
  switch (text.toLowerCase()) {
    case 'sha256':
      return 'sha256';
    case 'md5':
      return 'md5';
    case 'sha1':
    case 'sha384':
    case 'sha512':
      // Valid for ssh-keygen, but randomart and the library speak only the two hashes fingerprints use today.
      throw fatal(`Unsupported hash algorithm "${text}": ${PROGRAM} shows sha256 and md5 fingerprints`);
    default:
      throw fatal(`Invalid hash algorithm "${text}"`);
  }
}

/** The options while they are being parsed. */
type MutableOptions = { -readonly [K in keyof KeygenOptions]: KeygenOptions[K] };

export function parseOptions(argv: readonly string[]): KeygenOptions {
  const options: MutableOptions = {
    fingerprint: false,
    bubbleBabble: false,
    printPublic: false,
    changePassphrase: false,
    exportKey: false,
    importKey: false,
    hashHosts: false,
    findHost: undefined,
    removeHost: undefined,
    file: undefined,
    keyType: undefined,
    bits: undefined,
    comment: undefined,
    passphrase: undefined,
    newPassphrase: undefined,
    format: undefined,
    hash: 'sha256',
    verbose: false,
    quiet: false,
    rounds: undefined,
    cipher: undefined,
  };
  let index = 0;
  for (; index < argv.length; index++) {
    const word = argv[index]!;
    if (word === '--') {
      index++;
      break;
    }
    if (!word.startsWith('-') || word === '-') break;
    for (let at = 1; at < word.length; at++) {
      const letter = word[at]!;
      if (FLAGS.has(letter) || UNSUPPORTED_FLAGS.has(letter)) {
        applyFlag(options, letter);
        continue;
      }
      if (!WITH_ARGUMENT.has(letter) && !UNSUPPORTED_WITH_ARGUMENT.has(letter)) throw usage(`unknown option -- ${letter}`);
      let value: string;
      if (at + 1 < word.length) value = word.slice(at + 1);
      else if (index + 1 < argv.length) value = argv[++index]!;
      else throw usage(`option requires an argument -- ${letter}`);
      applyArgument(options, letter, value);
      break;
    }
  }
  if (index < argv.length) throw usage('Too many arguments.');
  if (options.fingerprint && (options.hashHosts || options.removeHost !== undefined)) throw usage('Cannot use -l with -H or -R.');
  if (options.findHost !== undefined && options.removeHost !== undefined) throw usage('Cannot use -F with -R.');
  return options;
}

function applyFlag(options: MutableOptions, letter: string): void {
  switch (letter) {
    case 'B':
      options.bubbleBabble = true;
      break;
    case 'H':
      options.hashHosts = true;
      break;
    case 'X':
    case 'i':
      options.importKey = true;
      break;
    case 'e':
      options.exportKey = true;
      break;
    case 'l':
      options.fingerprint = true;
      break;
    case 'p':
      options.changePassphrase = true;
      break;
    case 'q':
      options.quiet = true;
      break;
    case 'v':
      options.verbose = true;
      break;
    case 'y':
      options.printPublic = true;
      break;
    case 'o':
      // ssh-keygen keeps -o as a no-op: the OpenSSH format it once selected is the default.
      break;
    default:
      throw unsupported(letter);
  }
}

function applyArgument(options: MutableOptions, letter: string, value: string): void {
  switch (letter) {
    case 'C':
      options.comment = value;
      break;
    case 'E':
      options.hash = parseHash(value);
      break;
    case 'F':
      options.findHost = value;
      break;
    case 'R':
      options.removeHost = value;
      break;
    case 'N':
      options.newPassphrase = value;
      break;
    case 'P':
      options.passphrase = value;
      break;
    case 'Z':
      if (!keyFileCiphers.has(value) || value === 'none') throw fatal(`Invalid OpenSSH-format cipher '${value}'`);
      options.cipher = value;
      break;
    case 'a': {
      const parsed = parseBoundedInteger(value, 1, 0x7fffffff);
      if ('error' in parsed) throw fatal(`Invalid number: ${value} (${parsed.error})`);
      options.rounds = parsed.value;
      break;
    }
    case 'b': {
      const parsed = parseBoundedInteger(value, 1, 0xffffffff);
      if ('error' in parsed) throw fatal(`Bits has bad value ${value} (${parsed.error})`);
      options.bits = parsed.value;
      break;
    }
    case 'f':
      options.file = value;
      break;
    case 'm':
      options.format = parseFormat(value);
      break;
    case 't':
      options.keyType = value;
      break;
    default:
      throw unsupported(letter);
  }
}

function unsupported(letter: string): KeygenExit {
  return usage(`option -${letter} is not supported by ${PROGRAM}`);
}
