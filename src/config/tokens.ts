/**
 * What sshd_config(5) and ssh_config(5) share: splitting a line into a keyword and its arguments,
 * the value formats (yes/no, times, sizes, ports), `%` token, `${VAR}` and `~` expansion, and the
 * globbing that `Include` needs (Node 20 has no fs.glob).
 *
 * Line syntax, as OpenSSH reads it:
 * - a keyword, then whitespace and/or one `=`, then the arguments: `Port 22`, `Port=22`, `Port = 22`;
 * - arguments split on spaces and tabs; `"…"` or `'…'` quote spaces (quotes may sit inside a word,
 *   `a"b c"d` is one argument `ab cd`); a backslash escapes a quote, a backslash, or (outside quotes)
 *   a space; any other backslash is kept as written;
 * - a `#` that starts an argument ends the line; a `#` inside an argument is an ordinary character;
 * - keywords are matched without regard to case, values mostly with.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** A configuration file problem, located: `/etc/ssh/sshd_config line 7: Bad yes/no argument: maybe`. */
export class ConfigError extends Error {
  readonly code = 'ERR_TSSH_CONFIG';
  constructor(
    /** The file (or `command-line` for a `-o` option). */
    readonly file: string,
    /** 1-based line number (for `-o` options: which option, 1-based). */
    readonly line: number,
    /** What is wrong, without the location. */
    readonly problem: string,
  ) {
    super(`${file} line ${line}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** One non-blank, non-comment line: its keyword as written and its arguments, quotes removed. */
export interface ConfigLine {
  readonly file: string;
  readonly line: number;
  /** The keyword exactly as written (compare with `keyword.toLowerCase()`). */
  readonly keyword: string;
  readonly args: readonly string[];
  /**
   * The raw text after the keyword and its separator; `rawFrom(line, i)` cuts it at argument i.
   * Commands (ForceCommand, ProxyCommand, Subsystem) keep their quoting for the shell this way.
   */
  readonly rest: string;
  /** For each argument, [start, end) offsets of its raw text in `rest`. */
  readonly spans: readonly (readonly [number, number])[];
}

const BLANKS = ' \t';

/** Split one line; undefined for a blank or comment line. Throws ConfigError for bad quoting. */
export function lexConfigLine(text: string, file: string, lineNumber: number): ConfigLine | undefined {
  // Trailing whitespace (including a CR from a CRLF file and a form feed) is not part of any value.
  const line = text.replace(/[ \t\r\n\f]+$/, '');
  let i = 0;
  while (i < line.length && BLANKS.includes(line[i]!)) i++;
  if (i === line.length || line[i] === '#') return undefined;
  const keywordStart = i;
  while (i < line.length && !BLANKS.includes(line[i]!) && line[i] !== '=') i++;
  const keyword = line.slice(keywordStart, i);
  while (i < line.length && BLANKS.includes(line[i]!)) i++;
  if (line[i] === '=') {
    i++;
    while (i < line.length && BLANKS.includes(line[i]!)) i++;
  }
  const rest = line.slice(i);
  const { args, spans } = splitArguments(rest, file, lineNumber);
  if (args.length === 0) throw new ConfigError(file, lineNumber, `no argument after keyword "${keyword}"`);
  return { file, line: lineNumber, keyword, args, rest, spans };
}

function splitArguments(text: string, file: string, line: number): { args: string[]; spans: [number, number][] } {
  const args: string[] = [];
  const spans: [number, number][] = [];
  let i = 0;
  while (i < text.length) {
    if (BLANKS.includes(text[i]!)) {
      i++;
      continue;
    }
    if (text[i] === '#') break;
    const start = i;
    let quote = '';
    let arg = '';
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\\') {
        const next = text[i + 1];
        if (next === '"' || next === "'" || next === '\\' || (quote === '' && next === ' ')) {
          arg += next;
          i++;
        } else {
          arg += c;
        }
      } else if (quote === '' && BLANKS.includes(c)) {
        break;
      } else if (quote === '' && (c === '"' || c === "'")) {
        quote = c;
      } else if (quote !== '' && c === quote) {
        quote = '';
      } else {
        arg += c;
      }
    }
    if (quote !== '') throw new ConfigError(file, line, 'invalid quotes');
    args.push(arg);
    spans.push([start, i]);
  }
  return { args, spans };
}

/** Every meaningful line of a file's text. */
export function lexConfig(text: string, file: string): ConfigLine[] {
  const lines: ConfigLine[] = [];
  text.split('\n').forEach((raw, index) => {
    const parsed = lexConfigLine(raw, file, index + 1);
    if (parsed) lines.push(parsed);
  });
  return lines;
}

/** The raw text of arguments `from` to the last, as written (quotes kept, trailing comment dropped). */
export function rawFrom(line: ConfigLine, from: number): string {
  const first = line.spans[from];
  const last = line.spans[line.spans.length - 1];
  if (first === undefined || last === undefined) return '';
  return line.rest.slice(first[0], last[1]);
}

/** A ConfigError located at a line. */
export function lineError(line: ConfigLine, problem: string): ConfigError {
  return new ConfigError(line.file, line.line, problem);
}

/** The line's only argument; a second one is an error (OpenSSH refuses trailing garbage). */
export function singleArgument(line: ConfigLine, name: string): string {
  if (line.args.length > 1) throw lineError(line, `extra arguments at end of line for ${name}: ${line.args.slice(1).join(' ')}`);
  return line.args[0]!;
}

export function assertMaxArguments(line: ConfigLine, name: string, max: number): void {
  if (line.args.length > max) throw lineError(line, `extra arguments at end of line for ${name}: ${line.args.slice(max).join(' ')}`);
}

/** A keyword table keyed by lower-case name; a name listed twice is a programming error. */
export function uniqueKeywords<T>(entries: readonly (readonly [string, T])[]): ReadonlyMap<string, T> {
  const table = new Map<string, T>();
  for (const [name, entry] of entries) {
    if (table.has(name)) throw new Error(`config keyword ${name} is listed twice`);
    table.set(name, entry);
  }
  return table;
}

// ---- Values ----------------------------------------------------------------------------------

/**
 * yes/no. ssh_config also takes true/false (readconf.c's flag table); sshd_config only yes/no.
 * Case-insensitive, as both programs compare these with strcasecmp.
 */
export function parseYesNo(line: ConfigLine, name: string, allowTrueFalse: boolean): boolean {
  const value = singleArgument(line, name).toLowerCase();
  if (value === 'yes' || (allowTrueFalse && value === 'true')) return true;
  if (value === 'no' || (allowTrueFalse && value === 'false')) return false;
  throw lineError(line, `Bad yes/no argument: ${line.args[0]}`);
}

/** One of a fixed set of words (case-insensitive); `aliases` map extra spellings to a canonical one. */
export function parseChoice<T extends string>(
  line: ConfigLine,
  name: string,
  choices: readonly T[],
  aliases: Readonly<Record<string, T>> = {},
): T {
  const value = singleArgument(line, name).toLowerCase();
  // hasOwn: a word such as `constructor` must not find Object.prototype's members.
  const found = choices.find((c) => c === value) ?? (Object.hasOwn(aliases, value) ? aliases[value] : undefined);
  if (found === undefined) throw lineError(line, `Bad ${name} argument: ${line.args[0]} (expected ${choices.join(', ')})`);
  return found;
}

const TIME_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/**
 * sshd_config(5) TIME FORMATS: a sequence of number[unit], units s m h d w (either case), summed;
 * a bare number is seconds. `90`, `2m`, `1h30m`. Undefined when malformed.
 */
export function parseTime(text: string): number | undefined {
  if (text === '') return undefined;
  let total = 0;
  const re = /(\d+)([sSmMhHdDwW]?)/y;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (m === null) return undefined;
    total += Number(m[1]) * TIME_UNITS[(m[2] || 's').toLowerCase()]!;
    at = re.lastIndex;
  }
  // OpenSSH keeps times in an int; anything larger is an error there too.
  return total <= 0x7fffffff ? total : undefined;
}

export function timeArgument(line: ConfigLine, name: string, value: string): number {
  const seconds = parseTime(value);
  if (seconds === undefined) throw lineError(line, `Bad time value for ${name}: ${value}`);
  return seconds;
}

const SIZE_UNITS = 'bkmgtpe';

/**
 * A byte count with an optional binary unit: `1G`, `512M`, `1.5K`, `4096` (OpenSSH's
 * scan_scaled(): units B K M G T P E, either case, powers of 1024, a fraction allowed).
 */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)(?:\.(\d+))?([bBkKmMgGtTpPeE])?$/.exec(text);
  if (m === null) return undefined;
  const scale = 1024 ** (m[3] ? SIZE_UNITS.indexOf(m[3].toLowerCase()) : 0);
  return Math.floor(Number(`${m[1]}.${m[2] ?? '0'}`) * scale);
}

/** A whole number in [min, max]. */
export function integerArgument(line: ConfigLine, name: string, value: string, min = 0, max = 0x7fffffff): number {
  if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw lineError(line, `Bad ${name} value: ${value} (expected a whole number from ${min} to ${max})`);
  }
  return Number(value);
}

/** A TCP port, 1-65535 (a2port() also takes 0 where a caller allows it). */
export function parsePort(text: string, allowZero = false): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 && (allowZero || port > 0) ? port : undefined;
}

/**
 * Split `host:port`, `[host]:port`, `host` or `[host]` at the first colon outside brackets
 * (OpenSSH's hpdelim()). Brackets are removed; `port` is absent when no colon follows the host.
 * Undefined for an unbalanced bracket.
 */
export function splitHostPort(text: string): { host: string; port?: string } | undefined {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return undefined;
    const after = text.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) return undefined;
    const host = text.slice(1, close);
    return after === '' ? { host } : { host, port: after.slice(1) };
  }
  const colon = text.indexOf(':');
  return colon < 0 ? { host: text } : { host: text.slice(0, colon), port: text.slice(colon + 1) };
}

/** RekeyLimit: bytes (0 = the cipher's own default) and seconds (0 = no time limit). */
export interface RekeyLimit {
  readonly bytes: number;
  readonly seconds: number;
}

/** `RekeyLimit default none`, `RekeyLimit 1G`, `RekeyLimit 512M 1h` (same in both files). */
export function parseRekeyLimit(line: ConfigLine, name: string): RekeyLimit {
  assertMaxArguments(line, name, 2);
  const [size, time] = line.args as [string, string | undefined];
  let bytes = 0;
  if (size !== 'default') {
    const parsed = parseSize(size);
    if (parsed === undefined) throw lineError(line, `Bad ${name} size: ${size}`);
    // Below 16 bytes the limit would rekey on every packet; OpenSSH refuses it for that reason.
    if (parsed !== 0 && parsed < 16) throw lineError(line, `${name} too small: ${size}`);
    bytes = parsed;
  }
  const seconds = time === undefined || time === 'none' ? 0 : timeArgument(line, name, time);
  return { bytes, seconds };
}

export const LOG_LEVELS = ['QUIET', 'FATAL', 'ERROR', 'INFO', 'VERBOSE', 'DEBUG', 'DEBUG1', 'DEBUG2', 'DEBUG3'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function parseLogLevel(line: ConfigLine, name: string): LogLevel {
  const value = singleArgument(line, name).toUpperCase();
  const level = LOG_LEVELS.find((l) => l === value);
  if (level === undefined) throw lineError(line, `unsupported log level '${line.args[0]}'`);
  return level;
}

export const SYSLOG_FACILITIES = [
  'DAEMON', 'USER', 'AUTH', 'AUTHPRIV',
  'LOCAL0', 'LOCAL1', 'LOCAL2', 'LOCAL3', 'LOCAL4', 'LOCAL5', 'LOCAL6', 'LOCAL7',
] as const;
export type SyslogFacility = (typeof SYSLOG_FACILITIES)[number];

export function parseSyslogFacility(line: ConfigLine, name: string): SyslogFacility {
  const value = singleArgument(line, name).toUpperCase();
  const facility = SYSLOG_FACILITIES.find((f) => f === value);
  if (facility === undefined) throw lineError(line, `unsupported log facility '${line.args[0]}'`);
  return facility;
}

/** A `NAME=value` pair (SetEnv). */
export interface EnvironmentSetting {
  readonly name: string;
  readonly value: string;
}

/** SetEnv's arguments; the first setting of a name wins, as in OpenSSH. */
export function parseSetEnv(line: ConfigLine): EnvironmentSetting[] {
  const out: EnvironmentSetting[] = [];
  for (const arg of line.args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw lineError(line, `Invalid SetEnv: ${arg} (expected NAME=value)`);
    const name = arg.slice(0, eq);
    if (!out.some((s) => s.name === name)) out.push({ name, value: arg.slice(eq + 1) });
  }
  return out;
}

// ---- Expansion -------------------------------------------------------------------------------

/**
 * Replace `%x` tokens from `tokens` (keys are single letters) and `%%` with `%`; with `env`, also
 * `${NAME}` with that environment variable, in the same single pass, so that nothing substituted
 * is expanded again (OpenSSH's percent_dollar_expand()). An unknown token, a `%` at the very end,
 * or an unset or malformed `${…}` is an error: OpenSSH refuses rather than guessing.
 */
export function expandPercent(text: string, tokens: Readonly<Record<string, string>>, env?: NodeJS.ProcessEnv): string {
  return expand(text, tokens, env);
}

/** Replace `${NAME}` with the environment variable (missing ones are an error, as in OpenSSH). */
export function expandEnvironment(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return expand(text, undefined, env);
}

function expand(text: string, tokens: Readonly<Record<string, string>> | undefined, env: NodeJS.ProcessEnv | undefined): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (env !== undefined && c === '$' && text[i + 1] === '{') {
      const close = text.indexOf('}', i + 2);
      if (close < 0) throw new Error(`environment variable in "${text}" is missing its closing }`);
      const name = text.slice(i + 2, close);
      if (name === '') throw new Error(`empty environment variable name in "${text}"`);
      const value = Object.hasOwn(env, name) ? env[name] : undefined;
      if (value === undefined) throw new Error(`environment variable ${name} is not set (in "${text}")`);
      out += value;
      i = close;
    } else if (tokens !== undefined && c === '%') {
      const key = text[++i];
      if (key === '%') out += '%';
      else if (key !== undefined && Object.hasOwn(tokens, key)) out += tokens[key];
      else throw new Error(key === undefined ? `"${text}" ends with a lone %` : `unknown token %${key} in "${text}"`);
    } else {
      out += c;
    }
  }
  return out;
}

/** Where `~user` points: the home directory from /etc/passwd, or undefined. */
export function homeOfUser(user: string, passwdFile = '/etc/passwd'): string | undefined {
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const entry of text.split('\n')) {
    const fields = entry.split(':');
    if (fields[0] === user && fields.length >= 7) return fields[5];
  }
  return undefined;
}

/** `~` and `~/x` become `home`, `~user/x` that user's home; other paths are returned unchanged. */
export function expandTilde(path: string, home: string, homeOf: (user: string) => string | undefined = homeOfUser): string {
  if (!path.startsWith('~')) return path;
  const slash = path.indexOf('/');
  const name = slash < 0 ? path.slice(1) : path.slice(1, slash);
  const tail = slash < 0 ? '' : path.slice(slash);
  const base = name === '' ? home : homeOf(name);
  if (base === undefined) throw new Error(`unknown user in "${path}"`);
  return `${base.replace(/\/+$/, '')}${tail}`;
}

// ---- Include ---------------------------------------------------------------------------------

function globSegmentToRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close < 0) re += '\\[';
      else {
        const body = segment.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const hasGlob = (segment: string): boolean => /[*?[]/.test(segment);

/**
 * The files an absolute glob names, sorted (glob(3) order). `*`, `?` and `[…]` work within one
 * path component and, as in the shell, do not match a leading dot. No match gives [].
 */
export function globFiles(pattern: string): string[] {
  const segments = pattern.split('/').filter((s) => s !== '');
  let paths = [pattern.startsWith('/') ? '/' : '.'];
  for (const segment of segments) {
    const next: string[] = [];
    for (const dir of paths) {
      if (!hasGlob(segment)) {
        next.push(join(dir, segment));
        continue;
      }
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        continue;
      }
      const re = globSegmentToRegExp(segment);
      for (const entry of entries.sort()) {
        if (entry.startsWith('.') && !segment.startsWith('.')) continue;
        if (re.test(entry)) next.push(join(dir, entry));
      }
    }
    paths = next;
  }
  return paths.filter((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
}

/** How deep Include may nest before we assume a loop (OpenSSH's limit is 16). */
export const MAX_INCLUDE_DEPTH = 16;
