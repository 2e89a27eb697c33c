/**
 * The options field of an authorized_keys line (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"):
 * comma-separated, case-insensitive keywords, some with a double-quoted value in which `\"` stands
 * for a quote (every other backslash is kept as is). No spaces except inside quotes.
 *
 * Parsing is strict like sshd's: an unknown option, a missing quote, a repeated `command`, `from`
 * or `principals`, a bad value, all make the whole line invalid (sshd then skips the line, so the
 * key cannot be used at all; far safer than ignoring a restriction it does not understand).
 *
 * The result is a plain KeyOptions object that the connection layer enforces.
 */
import { KeyFormatError } from '../errors.js';

/** A permitopen / permitlisten target. */
export interface PermitTarget {
  /** Without the brackets an IPv6 address is written in; `*` for permitlisten's "any address". */
  readonly host: string;
  /** 1-65535, or '*' for any port. */
  readonly port: number | '*';
}

/** What an authorized_keys line allows and imposes. Defaults (no options) allow everything. */
export interface KeyOptions {
  /** `restrict` was given: every permission off unless re-enabled (pty, port-forwarding, …). */
  readonly restrict: boolean;
  /** `command="…"`: run this instead of what the client asks for. */
  readonly command: string | undefined;
  /** `from="…"`: the client's host name or address must match this pattern list (see ./patterns.ts). */
  readonly from: string | undefined;
  readonly pty: boolean;
  readonly portForwarding: boolean;
  readonly agentForwarding: boolean;
  readonly x11Forwarding: boolean;
  readonly userRc: boolean;
  /**
   * `environment="NAME=value"`, in order; the first value of a name wins (later ones are dropped,
   * as sshd does). Only applied when sshd_config PermitUserEnvironment allows it.
   */
  readonly environment: readonly { readonly name: string; readonly value: string }[];
  /** `permitopen="host:port"` (repeatable): the only destinations of local forwarding; empty = any. */
  readonly permitOpen: readonly PermitTarget[];
  /** `permitlisten="[host:]port"` (repeatable): the only remote forwarding listeners; empty = any. */
  readonly permitListen: readonly PermitTarget[];
  /** `expiry-time="…"`: the key is refused after this instant (the earliest if given twice). */
  readonly expiryTime: Date | undefined;
  /** `cert-authority`: the key signs user certificates; it does not log in by itself. */
  readonly certAuthority: boolean;
  /** `principals="a,b"`: on a cert-authority line, the certificate must name one of these. */
  readonly principals: readonly string[] | undefined;
  /** `tunnel="n"`: force tun device n ('any' is accepted as sshd accepts it). */
  readonly tunnel: number | 'any' | undefined;
  /** FIDO keys: `no-touch-required` makes this false. */
  readonly touchRequired: boolean;
  /** FIDO keys: `verify-required`. */
  readonly verifyRequired: boolean;
}

/** The options of a line that has none. */
export const DEFAULT_KEY_OPTIONS: KeyOptions = Object.freeze({
  restrict: false,
  command: undefined,
  from: undefined,
  pty: true,
  portForwarding: true,
  agentForwarding: true,
  x11Forwarding: true,
  userRc: true,
  environment: Object.freeze([]),
  permitOpen: Object.freeze([]),
  permitListen: Object.freeze([]),
  expiryTime: undefined,
  certAuthority: false,
  principals: undefined,
  tunnel: undefined,
  touchRequired: true,
  verifyRequired: false,
});

/** sshd's caps on repeated options (SSH_AUTHOPT_ENV_MAX, SSH_AUTHOPT_PERMIT_MAX). */
const MAX_ENVIRONMENT = 1024;
const MAX_PERMITS = 4096;
/** The largest tun device number sshd accepts (SSH_TUNID_MAX). */
const MAX_TUNNEL = 0x7ffffffd;

/** Options written `name="value"`. */
const VALUE_OPTIONS: ReadonlySet<string> = new Set(['command', 'from', 'principals', 'expiry-time', 'environment', 'permitopen', 'permitlisten', 'tunnel']);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Flags that may also be written `no-<flag>`, and which KeyOptions field each sets. */
const NEGATABLE_FLAGS: ReadonlyMap<string, 'pty' | 'portForwarding' | 'agentForwarding' | 'x11Forwarding' | 'userRc' | 'touchRequired' | 'verifyRequired'> =
  new Map([
    ['pty', 'pty'],
    ['port-forwarding', 'portForwarding'],
    ['agent-forwarding', 'agentForwarding'],
    ['x11-forwarding', 'x11Forwarding'],
    ['user-rc', 'userRc'],
    ['touch-required', 'touchRequired'],
    ['verify-required', 'verifyRequired'],
  ]);

/**
 * Where the options field of a line ends: the first blank outside double quotes (`\"` inside
 * quotes does not close them). Throws when a quote is left open.
 */
export function optionsFieldEnd(line: string, start = 0): number {
  let quoted = false;
  let i = start;
  for (; i < line.length; i++) {
    const c = line[i];
    if (!quoted && (c === ' ' || c === '\t')) break;
    if (c === '\\' && line[i + 1] === '"') i++;
    else if (c === '"') quoted = !quoted;
  }
  if (quoted) throw new KeyFormatError('unterminated quote in key options');
  return i;
}

/** Read `"…"` at `start`: the value with `\"` unescaped, and the index after the closing quote. */
function readQuoted(text: string, start: number, option: string): { value: string; end: number } {
  if (text[start] !== '"') throw new KeyFormatError(`option ${option} needs a double-quoted value`);
  let value = '';
  let i = start + 1;
  for (; i < text.length && text[i] !== '"'; i++) {
    if (text[i] === '\\' && text[i + 1] === '"') i++;
    value += text[i];
  }
  if (i >= text.length) throw new KeyFormatError(`option ${option} has no closing quote`);
  return { value, end: i + 1 };
}

/**
 * `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, in local time, or UTC with a `Z` (or `UTC`)
 * suffix (sshd(8) expiry-time). Fields out of range are refused; a day past the month's end rolls
 * over as mktime() does. Exported for ssh-keygen's validity intervals.
 */
export function parseExpiryTime(text: string): Date {
  let digits = text;
  let utc = false;
  if (/z$/i.test(digits) && digits.length > 1) {
    utc = true;
    digits = digits.slice(0, -1);
  } else if (/utc$/i.test(digits) && digits.length > 3) {
    utc = true;
    digits = digits.slice(0, -3);
  }
  if (!/^\d+$/.test(digits) || ![8, 12, 14].includes(digits.length)) {
    throw new KeyFormatError(`invalid expiry-time ${JSON.stringify(text)}: expected YYYYMMDD[HHMM[SS]][Z]`);
  }
  const field = (from: number, to: number): number => (digits.length >= to ? Number(digits.slice(from, to)) : 0);
  const [year, month, day, hour, minute, second] = [field(0, 4), field(4, 6), field(6, 8), field(8, 10), field(10, 12), field(12, 14)];
  // The ranges strptime(3) allows for %m %d %H %M %S.
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    throw new KeyFormatError(`invalid expiry-time ${JSON.stringify(text)}: a field is out of range`);
  }
  const date = utc
    ? new Date(Date.UTC(year, month - 1, day, hour, minute, second))
    : new Date(year, month - 1, day, hour, minute, second);
  // sshd refuses a time that is the epoch itself (its "unset" value) or before it.
  if (!(date.getTime() > 0)) throw new KeyFormatError(`invalid expiry-time ${JSON.stringify(text)}`);
  return date;
}

/** Parse a port: '*' or 1-65535 in decimal. */
function parsePort(text: string, option: string): number | '*' {
  if (text === '*') return '*';
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new KeyFormatError(`option ${option}: invalid port ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/**
 * Split `host:port` (or `host/port`, or `[v6addr]:port`). For permitlisten a bare port means any
 * host (`*`), as sshd(8) allows.
 */
export function parsePermitTarget(text: string, option: 'permitopen' | 'permitlisten'): PermitTarget {
  let spec = text;
  if (option === 'permitlisten' && !spec.includes(':')) spec = `*:${spec}`;
  let host: string;
  let rest: string;
  if (spec.startsWith('[')) {
    const close = spec.indexOf(']');
    if (close < 0 || (spec[close + 1] !== ':' && spec[close + 1] !== '/')) {
      throw new KeyFormatError(`option ${option}: invalid host in ${JSON.stringify(text)}`);
    }
    host = spec.slice(1, close);
    rest = spec.slice(close + 2);
  } else {
    const delimiter = spec.search(/[:/]/);
    if (delimiter < 0) throw new KeyFormatError(`option ${option}: ${JSON.stringify(text)} has no port`);
    host = spec.slice(0, delimiter);
    rest = spec.slice(delimiter + 1);
  }
  // NI_MAXHOST is 1025 including the terminating NUL.
  if (host.length >= 1025) throw new KeyFormatError(`option ${option}: host name too long`);
  return { host, port: parsePort(rest, option) };
}

function parseEnvironment(value: string): { name: string; value: string } {
  const equals = value.indexOf('=');
  const name = equals < 0 ? '' : value.slice(0, equals);
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new KeyFormatError(`invalid environment string ${JSON.stringify(value)}`);
  return { name, value: value.slice(equals + 1) };
}

function parseTunnel(value: string): number | 'any' {
  if (value === 'any') return 'any';
  if (!/^\d+$/.test(value) || Number(value) > MAX_TUNNEL) throw new KeyFormatError(`invalid tunnel device ${JSON.stringify(value)}`);
  return Number(value);
}

/**
 * Parse an options field (everything before the key type, without surrounding blanks). Throws
 * KeyFormatError with sshd's reason when the line must be refused.
 */
export function parseKeyOptions(field: string): KeyOptions {
  const options: Mutable<KeyOptions> = { ...DEFAULT_KEY_OPTIONS };
  const environment: { name: string; value: string }[] = [];
  const permitOpen: PermitTarget[] = [];
  const permitListen: PermitTarget[] = [];
  let i = 0;
  while (i < field.length) {
    const start = i;
    const nameMatch = /^[^=,]*/.exec(field.slice(i))![0];
    const name = nameMatch.toLowerCase();
    i += nameMatch.length;
    const hasValue = field[i] === '=';
    let value: string | undefined;
    if (hasValue) {
      if (!VALUE_OPTIONS.has(name)) throw new KeyFormatError(`unknown key option ${JSON.stringify(nameMatch)}`);
      const quoted = readQuoted(field, i + 1, name);
      value = quoted.value;
      i = quoted.end;
    }
    const negated = name.startsWith('no-') ? NEGATABLE_FLAGS.get(name.slice(3)) : undefined;
    const flag = NEGATABLE_FLAGS.get(name);
    if (!hasValue && name === 'restrict') {
      Object.assign(options, { restrict: true, pty: false, portForwarding: false, agentForwarding: false, x11Forwarding: false, userRc: false });
    } else if (!hasValue && name === 'cert-authority') {
      options.certAuthority = true;
    } else if (!hasValue && flag !== undefined) {
      options[flag] = true;
    } else if (!hasValue && negated !== undefined) {
      options[negated] = false;
    } else if (value !== undefined && name === 'command') {
      if (options.command !== undefined) throw new KeyFormatError('multiple "command" clauses');
      options.command = value;
    } else if (value !== undefined && name === 'from') {
      if (options.from !== undefined) throw new KeyFormatError('multiple "from" clauses');
      options.from = value;
    } else if (value !== undefined && name === 'principals') {
      if (options.principals !== undefined) throw new KeyFormatError('multiple "principals" clauses');
      options.principals = value.split(',');
    } else if (value !== undefined && name === 'expiry-time') {
      const time = parseExpiryTime(value);
      if (options.expiryTime === undefined || time < options.expiryTime) options.expiryTime = time;
    } else if (value !== undefined && name === 'environment') {
      if (environment.length >= MAX_ENVIRONMENT) throw new KeyFormatError('too many environment strings');
      const entry = parseEnvironment(value);
      if (!environment.some((e) => e.name === entry.name)) environment.push(entry);
    } else if (value !== undefined && (name === 'permitopen' || name === 'permitlisten')) {
      const list = name === 'permitopen' ? permitOpen : permitListen;
      if (list.length >= MAX_PERMITS) throw new KeyFormatError('too many permission directives');
      list.push(parsePermitTarget(value, name));
    } else if (value !== undefined && name === 'tunnel') {
      options.tunnel = parseTunnel(value);
    } else {
      throw new KeyFormatError(`unknown key option ${JSON.stringify(field.slice(start, i))}`);
    }
    if (i >= field.length) break;
    if (field[i] !== ',') throw new KeyFormatError(`unexpected ${JSON.stringify(field[i])} after option ${name}`);
    i++;
    if (i >= field.length) throw new KeyFormatError('unexpected end of options after a comma');
  }
  options.environment = environment;
  options.permitOpen = permitOpen;
  options.permitListen = permitListen;
  return options;
}
