/**
 * ssh_config(5) for tssh and the library's ~/.ssh/config support: parse files once
 * (parseSshConfig), then work out the options for one destination (resolveHost).
 *
 * OpenSSH's rules, kept here:
 * - a `Host` line (whitespace-separated patterns, `*` `?`, `!` to exclude) or a `Match` line starts
 *   a block that lasts until the next Host or Match; lines before any are for every host;
 * - the FIRST value obtained for an option wins, across all matching blocks in file order, across
 *   the files (command-line `-o` first, then ~/.ssh/config, then /etc/ssh/ssh_config); a few
 *   options add up instead (IdentityFile, CertificateFile, LocalForward, RemoteForward,
 *   DynamicForward, SendEnv);
 * - `Match` criteria are tested in order as the file is read, against what is known so far
 *   (`Match user` sees a User set earlier); `Match final` asks for a second pass once the host
 *   name is final; `Match exec` runs a command with /bin/sh, exit status 0 meaning a match;
 * - `Include` globs; relative paths live in ~/.ssh (user files) or /etc/ssh (system files);
 * - every keyword OpenSSH 9.x knows but tssh does not implement is accepted and noted (for -v);
 *   an unknown keyword is an error unless an earlier `IgnoreUnknown` pattern covers it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir, hostname, networkInterfaces, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';
import {
  applyAlgorithmSetting,
  cipherAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
  type AlgorithmFamily,
} from '../algorithms/registry.js';
import { asciiLowercase, matchCidrList, matchHostname, matchPattern, matchPatternList } from '../keys/patterns.js';
import {
  ConfigError,
  MAX_INCLUDE_DEPTH,
  assertMaxArguments,
  expandEnvironment,
  expandPercent,
  expandTilde,
  globFiles,
  integerArgument,
  lexConfig,
  lexConfigLine,
  lineError,
  parseChoice,
  parseLogLevel,
  parsePort,
  parseRekeyLimit,
  parseSetEnv,
  parseTime,
  parseYesNo,
  rawFrom,
  singleArgument,
  splitHostPort,
  timeArgument,
  uniqueKeywords,
  type ConfigLine,
  type EnvironmentSetting,
  type LogLevel,
  type RekeyLimit,
} from './tokens.js';

/** One end of a forwarding: a TCP address (host null: the default bind address) or a Unix socket. */
export type ForwardEndpoint = { readonly host: string | null; readonly port: number } | { readonly path: string };

export interface Forward {
  readonly listen: ForwardEndpoint;
  /** null for a dynamic (SOCKS) forward. */
  readonly connect: ForwardEndpoint | null;
}

/** One ProxyJump hop, in the order they are connected through. */
export interface JumpHost {
  readonly user: string | null;
  readonly host: string;
  readonly port: number | null;
}

export type StrictHostKeyChecking = 'yes' | 'no' | 'ask' | 'accept-new';
export type RequestTTY = 'yes' | 'no' | 'force' | 'auto';
export type PubkeyAuthentication = 'yes' | 'no' | 'unbound' | 'host-bound';

export interface AddKeysToAgent {
  readonly mode: 'yes' | 'no' | 'ask' | 'confirm';
  /** Seconds the agent keeps the key; null = until removed. */
  readonly lifetime: number | null;
}

/** Who and where the client runs, as used by `%` tokens. */
export interface LocalContext {
  readonly user: string;
  readonly home: string;
  readonly hostname: string;
  readonly uid: number;
}

/** The effective options for one destination. Paths keep their `~` and `%` tokens; see expandClientPath(). */
export interface SshOptions {
  /** The destination as given (%n). */
  readonly host: string;
  /** HostName with %h expanded, lower-cased unless an address (%h). */
  readonly hostName: string;
  readonly port: number;
  readonly user: string;
  readonly identityFile: readonly string[];
  readonly identitiesOnly: boolean;
  /** null: $SSH_AUTH_SOCK; `none` disables the agent. */
  readonly identityAgent: string | null;
  readonly certificateFile: readonly string[];
  readonly proxyJump: readonly JumpHost[] | null;
  readonly proxyCommand: string | null;
  readonly localForward: readonly Forward[];
  readonly remoteForward: readonly Forward[];
  readonly dynamicForward: readonly Forward[];
  readonly clearAllForwardings: boolean;
  readonly gatewayPorts: boolean;
  readonly exitOnForwardFailure: boolean;
  /** The `~C` command line (off by default since OpenSSH 9.2). */
  readonly enableEscapeCommandline: boolean;
  readonly strictHostKeyChecking: StrictHostKeyChecking;
  readonly userKnownHostsFile: readonly string[];
  readonly globalKnownHostsFile: readonly string[];
  readonly hashKnownHosts: boolean;
  readonly hostKeyAlias: string | null;
  readonly revokedHostKeys: string | null;
  /** Seconds; 0 = off. */
  readonly serverAliveInterval: number;
  readonly serverAliveCountMax: number;
  /** Seconds; null = the system's TCP timeout. */
  readonly connectTimeout: number | null;
  readonly connectionAttempts: number;
  readonly ciphers: readonly string[];
  readonly macs: readonly string[];
  readonly kexAlgorithms: readonly string[];
  readonly hostKeyAlgorithms: readonly string[];
  readonly pubkeyAcceptedAlgorithms: readonly string[];
  readonly requiredRSASize: number;
  readonly preferredAuthentications: readonly string[];
  readonly passwordAuthentication: boolean;
  readonly kbdInteractiveAuthentication: boolean;
  readonly pubkeyAuthentication: PubkeyAuthentication;
  readonly numberOfPasswordPrompts: number;
  readonly addKeysToAgent: AddKeysToAgent;
  /** yes/no, or an agent socket path or `$VARIABLE` to forward instead of the usual agent. */
  readonly forwardAgent: boolean | string;
  readonly setEnv: readonly EnvironmentSetting[];
  readonly sendEnv: readonly string[];
  readonly requestTTY: RequestTTY;
  readonly remoteCommand: string | null;
  readonly batchMode: boolean;
  readonly logLevel: LogLevel;
  readonly compression: boolean;
  readonly rekeyLimit: RekeyLimit;
  readonly tag: string | null;
  /** Lines that applied but that tssh does not act on, for -v: `file line 3: tssh does not implement ForwardX11`. */
  readonly notes: readonly string[];
  /** The local facts used for tokens (%u %d %l …). */
  readonly local: LocalContext;
}

type Mutable<T> = { -readonly [K in keyof T]?: T[K] };
/** What the files have set so far; `undefined` = not yet set. */
type Draft = Mutable<Omit<SshOptions, 'notes' | 'local' | 'host'>> & { ignoreUnknown?: string };
type Apply = (draft: Draft) => void;

// ---- Parsed form -----------------------------------------------------------------------------

export type SshMatchCriterion =
  | { readonly kind: 'all' | 'canonical' | 'final'; readonly negated: boolean }
  | {
      readonly kind: 'host' | 'originalhost' | 'user' | 'localuser' | 'localnetwork' | 'tagged' | 'exec';
      readonly negated: boolean;
      readonly argument: string;
    };

interface IncludedFile {
  readonly path: string;
  readonly statements: readonly Statement[];
}

type Statement =
  | { readonly kind: 'host'; readonly line: ConfigLine; readonly patterns: readonly string[] }
  | { readonly kind: 'match'; readonly line: ConfigLine; readonly criteria: readonly SshMatchCriterion[] }
  /** `files` is filled at parse time unless the path has `%` tokens, which need the destination. */
  | { readonly kind: 'include'; readonly line: ConfigLine; readonly files: readonly IncludedFile[] | null }
  /** `apply` undefined: known to OpenSSH, not implemented here (noted when it applies). */
  | { readonly kind: 'option'; readonly line: ConfigLine; readonly name: string; readonly apply: Apply | undefined }
  | { readonly kind: 'unknown'; readonly line: ConfigLine };

export interface SshConfig {
  readonly file: string;
  readonly statements: readonly Statement[];
  /** Every file read (this one, then its includes). */
  readonly files: readonly string[];
  /** ~/.ssh/config (or -F) rather than /etc/ssh/ssh_config: decides where relative includes live. */
  readonly userConfig: boolean;
  readonly home: string;
  /** How it was parsed, for includes whose paths are only known per destination. */
  readonly parseOptions: ParseSshConfigOptions;
}

export interface ParseSshConfigOptions {
  /** True for /etc/ssh/ssh_config: relative includes live in /etc/ssh and `~` is refused. */
  readonly system?: boolean;
  /** The user's home directory (default os.homedir()). */
  readonly home?: string;
  /** The file name in messages when the input is text. */
  readonly file?: string;
  /** Where a system config's relative includes live (default /etc/ssh). */
  readonly systemDir?: string;
}

// ---- Keyword table ---------------------------------------------------------------------------

function setOnce<K extends keyof Draft>(draft: Draft, key: K, value: Exclude<Draft[K], undefined>): void {
  if (draft[key] === undefined) draft[key] = value;
}

/** The option keys that can hold a value of type V (so a parser can only set a field of its type). */
type DraftKeysOf<V> = { [K in keyof Draft]-?: [V] extends [Exclude<Draft[K], undefined>] ? K : never }[keyof Draft];

type Parser = (line: ConfigLine, name: string) => Apply;

const flag =
  (key: DraftKeysOf<boolean>): Parser =>
  (line, name) => {
    const value = parseYesNo(line, name, true);
    return (d) => setOnce(d, key, value);
  };

const choice =
  <K extends keyof Draft, T extends Exclude<Draft[K], undefined> & string>(key: K, choices: readonly T[], aliases: Record<string, T> = {}): Parser =>
  (line, name) => {
    const value = parseChoice(line, name, choices, aliases);
    return (d) => setOnce(d, key, value);
  };

const integer =
  (key: DraftKeysOf<number>): Parser =>
  (line, name) => {
    const value = integerArgument(line, name, singleArgument(line, name));
    return (d) => setOnce(d, key, value);
  };

const time =
  (key: DraftKeysOf<number>): Parser =>
  (line, name) => {
    const value = timeArgument(line, name, singleArgument(line, name));
    return (d) => setOnce(d, key, value);
  };

const text =
  (key: DraftKeysOf<string>): Parser =>
  (line, name) => {
    const value = singleArgument(line, name);
    return (d) => setOnce(d, key, value);
  };

/** A value or `none` (null). */
const textOrNone =
  (key: DraftKeysOf<string | null>): Parser =>
  (line, name) => {
    const arg = singleArgument(line, name);
    const value = arg.toLowerCase() === 'none' ? null : arg;
    return (d) => setOnce(d, key, value);
  };

const algorithms =
  <T extends { readonly name: string }>(key: DraftKeysOf<readonly string[]>, fam: AlgorithmFamily<T>): Parser =>
  (line, name) => {
    let names: string[];
    try {
      names = applyAlgorithmSetting(fam, singleArgument(line, name));
    } catch (e) {
      if (e instanceof RangeError) throw lineError(line, `Bad ${name}: ${e.message}`);
      throw e;
    }
    return (d) => setOnce(d, key, names);
  };

/** A path list whose first line wins: UserKnownHostsFile, GlobalKnownHostsFile. */
const pathList =
  (key: 'userKnownHostsFile' | 'globalKnownHostsFile'): Parser =>
  (line, name) => {
    if (line.args.some((a) => a.toLowerCase() === 'none') && line.args.length > 1) {
      throw lineError(line, `${name} "none" argument must appear alone`);
    }
    const paths = [...line.args];
    return (d) => setOnce(d, key, paths);
  };

/** IdentityFile, CertificateFile: every line adds one (duplicates dropped). */
const addPath =
  (key: 'identityFile' | 'certificateFile'): Parser =>
  (line, name) => {
    const path = singleArgument(line, name);
    return (d) => {
      const current = d[key] ?? [];
      if (!current.includes(path)) d[key] = [...current, path];
    };
  };

/** A command: the rest of the line as written (quotes kept for the shell). */
const command =
  (key: 'remoteCommand'): Parser =>
  (line) => {
    const raw = rawFrom(line, 0);
    const value = raw.toLowerCase() === 'none' ? null : raw;
    return (d) => setOnce(d, key, value);
  };

function parsePortLine(line: ConfigLine, name: string): Apply {
  const port = parsePort(singleArgument(line, name));
  if (port === undefined) throw lineError(line, `Bad port '${line.args[0]}'`);
  return (d) => setOnce(d, 'port', port);
}

function parseConnectTimeout(line: ConfigLine, name: string): Apply {
  const arg = singleArgument(line, name);
  const value = arg === 'none' ? null : timeArgument(line, name, arg);
  return (d) => setOnce(d, 'connectTimeout', value);
}

/** ProxyCommand and ProxyJump exclude each other: whichever is obtained first wins, `none` included. */
function parseProxyCommand(line: ConfigLine): Apply {
  const raw = rawFrom(line, 0);
  const value = raw.toLowerCase() === 'none' ? null : raw;
  return (d) => {
    if (d.proxyCommand !== undefined || d.proxyJump !== undefined) return;
    d.proxyCommand = value;
  };
}

function parseProxyJump(line: ConfigLine): Apply {
  const raw = rawFrom(line, 0);
  let hops: JumpHost[] | null = null;
  if (raw.toLowerCase() !== 'none') {
    hops = raw.split(',').map((spec) => {
      const hop = parseJumpHost(spec);
      if (hop === undefined) throw lineError(line, `Invalid ProxyJump "${raw}"`);
      return hop;
    });
  }
  return (d) => {
    if (d.proxyCommand !== undefined || d.proxyJump !== undefined) return;
    d.proxyJump = hops;
    d.proxyCommand = null;
  };
}

/** `[user@]host[:port]` or `ssh://[user@]host[:port]` (the user part ends at the last `@`). */
export function parseJumpHost(spec: string): JumpHost | undefined {
  const body = spec.startsWith('ssh://') ? spec.slice(6).replace(/\/$/, '') : spec;
  if (body === '' || body.includes('/')) return undefined;
  const at = body.lastIndexOf('@');
  const user = at >= 0 ? body.slice(0, at) : null;
  if (user === '') return undefined;
  const split = splitHostPort(at >= 0 ? body.slice(at + 1) : body);
  if (split === undefined || split.host === '') return undefined;
  let port: number | null = null;
  if (split.port !== undefined) {
    const parsed = parsePort(split.port);
    if (parsed === undefined) return undefined;
    port = parsed;
  }
  return { user, host: split.host, port };
}

/**
 * Split a forwarding spec into its colon-separated fields. `[…]` makes a field literal (IPv6
 * addresses); a backslash escapes the next character; a field containing `/` is a socket path.
 */
function forwardFields(spec: string): { value: string; isPath: boolean }[] | undefined {
  const fields: { value: string; isPath: boolean }[] = [];
  let i = 0;
  while (i < spec.length && fields.length < 4) {
    if (spec[i] === '[') {
      const close = spec.indexOf(']', i);
      if (close < 0 || (spec[close + 1] !== ':' && close + 1 !== spec.length)) return undefined;
      const value = spec.slice(i + 1, close);
      fields.push({ value, isPath: value.includes('/') });
      i = close + 2;
      continue;
    }
    let value = '';
    let isPath = false;
    for (; i < spec.length && spec[i] !== ':'; i++) {
      if (spec[i] === '\\') {
        i++;
        if (i >= spec.length) return undefined;
      }
      if (spec[i] === '/') isPath = true;
      value += spec[i];
    }
    i++; // past the colon
    fields.push({ value, isPath });
  }
  return i < spec.length ? undefined : fields;
}

/** `remote-dynamic`: `-R [bind:]port` alone, a SOCKS proxy listening on the server. */
export type ForwardKind = 'local' | 'remote' | 'dynamic' | 'remote-dynamic';

/**
 * A forwarding specification, as on the command line (`-L`, `-R`, `-D`) or in the config with its
 * two arguments joined by a colon: `[bind:]port:host:hostport`, `[bind:]port:/socket`,
 * `/socket:host:hostport`, `/socket:/socket`; dynamic: `[bind:]port`. Undefined when malformed.
 */
export function parseForwardSpec(spec: string, kind: ForwardKind): Forward | undefined {
  const fields = forwardFields(spec.trimStart());
  if (fields === undefined) return undefined;
  const port = (f: { value: string } | undefined): number | undefined => (f === undefined ? undefined : parsePort(f.value, true));
  const [a, b, c, d] = fields;
  let listen: ForwardEndpoint | undefined;
  let connect: ForwardEndpoint | null | undefined;
  if (kind === 'dynamic' || kind === 'remote-dynamic') {
    if (fields.length === 1) listen = a!.isPath ? { path: a!.value } : tcp(null, port(a));
    else if (fields.length === 2) listen = tcp(a!.value, port(b));
    connect = null;
  } else if (fields.length === 2) {
    if (a!.isPath && b!.isPath) [listen, connect] = [{ path: a!.value }, { path: b!.value }];
    else if (b!.isPath) [listen, connect] = [tcp(null, port(a)), { path: b!.value }];
  } else if (fields.length === 3) {
    if (a!.isPath) [listen, connect] = [{ path: a!.value }, tcp(b!.value, port(c))];
    else if (c!.isPath) [listen, connect] = [tcp(a!.value, port(b)), { path: c!.value }];
    else [listen, connect] = [tcp(null, port(a)), tcp(b!.value, port(c))];
  } else if (fields.length === 4) {
    [listen, connect] = [tcp(a!.value, port(b)), tcp(c!.value, port(d))];
  }
  if (listen === undefined || connect === undefined) return undefined;
  // Port 0 means "let the server choose", which only a remote listener can do.
  if ('port' in listen && listen.port === 0 && kind !== 'remote' && kind !== 'remote-dynamic') return undefined;
  if (connect !== null && 'port' in connect && connect.port === 0) return undefined;
  return { listen, connect };
}

function tcp(host: string | null, port: number | undefined): ForwardEndpoint | undefined {
  return port === undefined ? undefined : { host: host === '' ? null : host, port };
}

const sameEndpoint = (x: ForwardEndpoint | null, y: ForwardEndpoint | null): boolean => JSON.stringify(x) === JSON.stringify(y);

const forwardLine =
  (keyword: 'local' | 'remote' | 'dynamic'): Parser =>
  (line, name) => {
    assertMaxArguments(line, name, keyword === 'dynamic' ? 1 : 2);
    // One argument is the command line's form (`-L 8080:host:80`, `-R /remote.sock:/local.sock`);
    // `RemoteForward [bind:]port` alone, with no target, is a SOCKS proxy on the server side.
    const spec = expandEnvironment(line.args.join(':')); // variables first, so `${SOCKET}` can name a path
    let forward: Forward | undefined;
    try {
      forward = parseForwardSpec(spec, keyword);
      if (forward === undefined && keyword === 'remote' && line.args.length === 1) forward = parseForwardSpec(spec, 'remote-dynamic');
      if (forward === undefined && keyword === 'local' && line.args.length < 2 && !spec.includes(':')) {
        throw lineError(line, `Missing target argument for ${name}`);
      }
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw lineError(line, `Bad forwarding specification: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (forward === undefined) throw lineError(line, `Bad forwarding specification: ${line.args.join(' ')}`);
    const found = forward;
    const key = keyword === 'local' ? 'localForward' : keyword === 'remote' ? 'remoteForward' : 'dynamicForward';
    return (d) => {
      const current = d[key] ?? [];
      // ssh drops a forward it already has (the final pass reads the files again).
      if (!current.some((f) => sameEndpoint(f.listen, found.listen) && sameEndpoint(f.connect, found.connect))) {
        d[key] = [...current, found];
      }
    };
  };

function parseSendEnv(line: ConfigLine, name: string): Apply {
  for (const arg of line.args) if (arg === '' || arg.includes('=')) throw lineError(line, `${name}: invalid environment name ${arg}`);
  const args = [...line.args];
  return (d) => {
    let current = d.sendEnv ?? [];
    for (const arg of args) {
      // `-PATTERN` takes back names sent by earlier lines.
      current = arg.startsWith('-') ? current.filter((n) => !matchPattern(n, arg.slice(1))) : [...current, arg];
    }
    d.sendEnv = current;
  };
}

function parseSetEnvLine(line: ConfigLine): Apply {
  const settings = parseSetEnv(line);
  return (d) => setOnce(d, 'setEnv', settings);
}

/** `$NAME` must name a valid variable; `${NAME}` must be well formed. */
function checkAgentPath(line: ConfigLine, value: string): void {
  if (value.startsWith('$') && !value.startsWith('${') && !/^\$[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
    throw lineError(line, `Invalid environment name ${value}`);
  }
  if (/\$\{[^}]*$/.test(value)) throw lineError(line, `Invalid environment expansion ${value}`);
}

function parseForwardAgent(line: ConfigLine, name: string): Apply {
  const arg = singleArgument(line, name);
  const lower = arg.toLowerCase();
  let value: boolean | string;
  if (lower === 'yes' || lower === 'true') value = true;
  else if (lower === 'no' || lower === 'false') value = false;
  else {
    checkAgentPath(line, arg);
    value = arg;
  }
  return (d) => setOnce(d, 'forwardAgent', value);
}

function parseIdentityAgent(line: ConfigLine, name: string): Apply {
  const arg = singleArgument(line, name);
  checkAgentPath(line, arg);
  return (d) => setOnce(d, 'identityAgent', arg);
}

function parseAddKeysToAgent(line: ConfigLine, name: string): Apply {
  assertMaxArguments(line, name, 2);
  const [first, second] = line.args as [string, string?];
  const modes: Record<string, AddKeysToAgent['mode']> = { yes: 'yes', true: 'yes', no: 'no', false: 'no', ask: 'ask', confirm: 'confirm' };
  let mode = Object.hasOwn(modes, first.toLowerCase()) ? modes[first.toLowerCase()] : undefined;
  let lifetime: number | null = null;
  if (mode === 'confirm' && second !== undefined) lifetime = timeArgument(line, name, second);
  else if (mode === undefined && second === undefined && parseTime(first) !== undefined) {
    // A bare time means "yes, for this long".
    mode = 'yes';
    lifetime = parseTime(first)!;
  } else if (mode === undefined || second !== undefined) {
    throw lineError(line, `Bad ${name} argument: ${line.args.join(' ')}`);
  }
  const value: AddKeysToAgent = { mode, lifetime };
  return (d) => setOnce(d, 'addKeysToAgent', value);
}

function parsePreferredAuthentications(line: ConfigLine, name: string): Apply {
  const methods = singleArgument(line, name).split(',').filter((m) => m !== '');
  return (d) => setOnce(d, 'preferredAuthentications', methods);
}

/** Compression takes only yes/no in OpenSSH (not true/false). */
function parseCompression(line: ConfigLine, name: string): Apply {
  const value = parseChoice(line, name, ['yes', 'no']) === 'yes';
  return (d) => setOnce(d, 'compression', value);
}

function parseRekey(line: ConfigLine, name: string): Apply {
  const value = parseRekeyLimit(line, name);
  return (d) => setOnce(d, 'rekeyLimit', value);
}

function parseLogLevelLine(line: ConfigLine, name: string): Apply {
  const value = parseLogLevel(line, name);
  return (d) => setOnce(d, 'logLevel', value);
}

const TYPED: readonly [string, Parser][] = [
  ['HostName', text('hostName')],
  ['Port', parsePortLine],
  ['User', text('user')],
  ['IdentityFile', addPath('identityFile')],
  ['IdentityFile2', addPath('identityFile')],
  ['IdentitiesOnly', flag('identitiesOnly')],
  ['IdentityAgent', parseIdentityAgent],
  ['CertificateFile', addPath('certificateFile')],
  ['ProxyJump', parseProxyJump],
  ['ProxyCommand', parseProxyCommand],
  ['LocalForward', forwardLine('local')],
  ['RemoteForward', forwardLine('remote')],
  ['DynamicForward', forwardLine('dynamic')],
  ['ClearAllForwardings', flag('clearAllForwardings')],
  ['GatewayPorts', flag('gatewayPorts')],
  ['ExitOnForwardFailure', flag('exitOnForwardFailure')],
  ['EnableEscapeCommandline', flag('enableEscapeCommandline')],
  ['StrictHostKeyChecking', choice('strictHostKeyChecking', ['yes', 'no', 'ask', 'accept-new'], { true: 'yes', false: 'no', off: 'no' })],
  ['UserKnownHostsFile', pathList('userKnownHostsFile')],
  ['GlobalKnownHostsFile', pathList('globalKnownHostsFile')],
  ['HashKnownHosts', flag('hashKnownHosts')],
  ['HostKeyAlias', text('hostKeyAlias')],
  ['RevokedHostKeys', textOrNone('revokedHostKeys')],
  ['ServerAliveInterval', time('serverAliveInterval')],
  ['ServerAliveCountMax', integer('serverAliveCountMax')],
  ['ConnectTimeout', parseConnectTimeout],
  ['ConnectionAttempts', integer('connectionAttempts')],
  ['Ciphers', algorithms('ciphers', cipherAlgorithms)],
  ['MACs', algorithms('macs', macAlgorithms)],
  ['KexAlgorithms', algorithms('kexAlgorithms', kexAlgorithms)],
  ['HostKeyAlgorithms', algorithms('hostKeyAlgorithms', signatureAlgorithms)],
  ['PubkeyAcceptedAlgorithms', algorithms('pubkeyAcceptedAlgorithms', signatureAlgorithms)],
  ['PubkeyAcceptedKeyTypes', algorithms('pubkeyAcceptedAlgorithms', signatureAlgorithms)],
  ['RequiredRSASize', integer('requiredRSASize')],
  ['PreferredAuthentications', parsePreferredAuthentications],
  ['PasswordAuthentication', flag('passwordAuthentication')],
  ['KbdInteractiveAuthentication', flag('kbdInteractiveAuthentication')],
  ['ChallengeResponseAuthentication', flag('kbdInteractiveAuthentication')],
  ['SkeyAuthentication', flag('kbdInteractiveAuthentication')],
  ['TISAuthentication', flag('kbdInteractiveAuthentication')],
  ['PubkeyAuthentication', choice('pubkeyAuthentication', ['yes', 'no', 'unbound', 'host-bound'], { true: 'yes', false: 'no' })],
  ['DSAAuthentication', choice('pubkeyAuthentication', ['yes', 'no', 'unbound', 'host-bound'], { true: 'yes', false: 'no' })],
  ['NumberOfPasswordPrompts', integer('numberOfPasswordPrompts')],
  ['AddKeysToAgent', parseAddKeysToAgent],
  ['ForwardAgent', parseForwardAgent],
  ['SetEnv', parseSetEnvLine],
  ['SendEnv', parseSendEnv],
  ['RequestTTY', choice('requestTTY', ['yes', 'no', 'force', 'auto'], { true: 'yes', false: 'no' })],
  ['RemoteCommand', command('remoteCommand')],
  ['BatchMode', flag('batchMode')],
  ['LogLevel', parseLogLevelLine],
  ['Compression', parseCompression],
  ['RekeyLimit', parseRekey],
  ['Tag', text('tag')],
  ['IgnoreUnknown', text('ignoreUnknown')],
];

/**
 * Everything else ssh 9.x knows (readconf.c's keyword table, with 10.x's additions and Debian's
 * GSSAPI patches): accepted, and noted when it applies. `Protocol` is silently ignored, as there.
 */
const NOT_IMPLEMENTED = [
  'AddressFamily', 'AFSTokenPassing', 'BindAddress', 'BindInterface', 'CanonicalDomains',
  'CanonicalizeFallbackLocal', 'CanonicalizeHostname', 'CanonicalizeMaxDots', 'CanonicalizePermittedCNAMEs',
  'CASignatureAlgorithms', 'ChannelTimeout', 'CheckHostIP', 'Cipher', 'CompressionLevel', 'ControlMaster',
  'ControlPath', 'ControlPersist', 'EnableSSHKeysign', 'EscapeChar',
  'FallBackToRsh', 'FingerprintHash', 'ForkAfterAuthentication', 'ForwardX11', 'ForwardX11Timeout',
  'ForwardX11Trusted', 'GlobalKnownHostsFile2', 'GSSAPIAuthentication', 'GSSAPIClientIdentity',
  'GSSAPIDelegateCredentials', 'GSSAPIKexAlgorithms', 'GSSAPIKeyExchange', 'GSSAPIRenewalForcesRekey',
  'GSSAPIServerIdentity', 'GSSAPITrustDNS', 'HostbasedAcceptedAlgorithms', 'HostbasedAuthentication',
  'HostbasedKeyTypes', 'IPQoS', 'KbdInteractiveDevices', 'KeepAlive', 'KerberosAuthentication',
  'KerberosTGTPassing', 'KnownHostsCommand', 'LocalCommand', 'LogVerbose', 'NoHostAuthenticationForLocalhost',
  'ObscureKeystrokeTiming', 'PermitLocalCommand', 'PermitRemoteOpen', 'PKCS11Provider', 'ProxyUseFdpass',
  'RefuseConnection', 'RhostsAuthentication', 'RhostsRSAAuthentication', 'RSAAuthentication',
  'SecurityKeyProvider', 'SessionType', 'SmartcardDevice', 'StdinNull', 'StreamLocalBindMask',
  'StreamLocalBindUnlink', 'SyslogFacility', 'TCPKeepAlive', 'Tunnel', 'TunnelDevice', 'UpdateHostKeys',
  'UsePrivilegedPort', 'UserKnownHostsFile2', 'UseRoaming', 'UseRsh', 'VerifyHostKeyDNS', 'VersionAddendum',
  'VisualHostKey', 'WarnWeakCrypto', 'XAuthLocation',
];
const SILENTLY_IGNORED = new Set(['protocol']);

interface Keyword {
  readonly name: string;
  readonly parse?: Parser;
}

const KEYWORDS: ReadonlyMap<string, Keyword> = uniqueKeywords([
  ...TYPED.map(([name, parse]): [string, Keyword] => [name.toLowerCase(), { name, parse }]),
  ...[...NOT_IMPLEMENTED, 'Protocol'].map((name): [string, Keyword] => [name.toLowerCase(), { name }]),
]);

/** Every keyword tssh accepts (typed or noted), lower-case, plus Host, Match and Include. */
export function knownSshKeywords(): string[] {
  return [...KEYWORDS.keys(), 'host', 'match', 'include'].sort();
}

// ---- Parsing ---------------------------------------------------------------------------------

const ARGUMENT_CRITERIA = ['host', 'originalhost', 'user', 'localuser', 'localnetwork', 'tagged', 'exec'] as const;

function parseMatchLine(line: ConfigLine): SshMatchCriterion[] {
  const criteria: SshMatchCriterion[] = [];
  const args = [...line.args];
  while (args.length > 0) {
    let attribute = args.shift()!;
    const negated = attribute.startsWith('!');
    if (negated) attribute = attribute.slice(1);
    const lower = attribute.toLowerCase();
    if (lower === 'all') {
      // `all` stands alone, or right after canonical/final ("Match canonical all").
      if (args.length > 0 || criteria.some((c) => c.kind !== 'canonical' && c.kind !== 'final')) {
        throw lineError(line, `'${attribute}' cannot be combined with other Match attributes`);
      }
      criteria.push({ kind: 'all', negated });
      break;
    }
    if (lower === 'canonical' || lower === 'final') {
      criteria.push({ kind: lower, negated });
      continue;
    }
    let argument: string | undefined;
    const eq = attribute.indexOf('=');
    if (eq > 0) {
      argument = attribute.slice(eq + 1);
      attribute = attribute.slice(0, eq);
    } else {
      argument = args.shift();
    }
    const kind = ARGUMENT_CRITERIA.find((k) => k === attribute.toLowerCase());
    if (kind === undefined) throw lineError(line, `Unsupported Match attribute ${attribute}`);
    if (argument === undefined || argument === '') throw lineError(line, `Missing Match criteria for ${attribute}`);
    if (kind === 'localnetwork' && matchCidrList('127.0.0.1', argument) === 'invalid') {
      throw lineError(line, `Invalid Match localnetwork list '${argument}'`);
    }
    criteria.push({ kind, negated, argument });
  }
  if (criteria.length === 0) throw lineError(line, 'One or more attributes required for Match');
  return criteria;
}

interface ParseState {
  readonly options: ParseSshConfigOptions;
  readonly home: string;
  readonly files: string[];
  /** IgnoreUnknown values seen so far, to refuse unknown keywords early when nothing could cover them. */
  readonly ignoreUnknown: string[];
}

function readFileOrThrow(path: string, from?: ConfigLine): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    if (from) throw lineError(from, `Can't open included file ${path}: ${reason}`);
    throw new ConfigError(path, 0, `Can't open config file: ${reason}`);
  }
}

/** Where an Include path points: absolute, `~` (user files only), or relative to ~/.ssh or /etc/ssh. */
function includePattern(state: ParseState, line: ConfigLine, path: string): string {
  if (path.startsWith('~')) {
    if (state.options.system) throw lineError(line, `bad include path ${path} (a system file may not use ~)`);
    return expandTilde(path, state.home);
  }
  if (isAbsolute(path)) return path;
  return state.options.system ? join(state.options.systemDir ?? '/etc/ssh', path) : join(state.home, '.ssh', path);
}

/** Expand an Include line's paths (tokens and/or `${VAR}`), naming the line when that fails. */
function expandIncludePaths(line: ConfigLine, expand: (path: string) => string): string[] {
  try {
    return line.args.map(expand);
  } catch (e) {
    throw lineError(line, `Unable to expand include path: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Read and parse the files that already-expanded Include paths name. */
function includeFiles(state: ParseState, line: ConfigLine, paths: readonly string[], depth: number): IncludedFile[] {
  if (depth + 1 > MAX_INCLUDE_DEPTH) throw lineError(line, `Include nested too deeply (more than ${MAX_INCLUDE_DEPTH} levels)`);
  const out: IncludedFile[] = [];
  for (const path of paths) {
    for (const file of globFiles(includePattern(state, line, path))) {
      out.push({ path: file, statements: parseStatements(state, readFileOrThrow(file, line), file, depth + 1) });
    }
  }
  return out;
}

function parseStatement(state: ParseState, line: ConfigLine, depth: number, commandLine: boolean): Statement {
  const lower = line.keyword.toLowerCase();
  if (lower === 'host' || lower === 'match' || lower === 'include') {
    if (commandLine) throw lineError(line, `${line.keyword} directive not supported as a command-line option`);
    if (lower === 'host') return { kind: 'host', line, patterns: line.args };
    if (lower === 'match') return { kind: 'match', line, criteria: parseMatchLine(line) };
    // Paths with % tokens depend on the destination: globbed when resolving.
    const deferred = line.args.some((a) => a.includes('%'));
    if (deferred) return { kind: 'include', line, files: null };
    return { kind: 'include', line, files: includeFiles(state, line, expandIncludePaths(line, (p) => expandEnvironment(p)), depth) };
  }
  const keyword = KEYWORDS.get(lower);
  if (keyword === undefined) {
    if (!state.ignoreUnknown.some((list) => matchPatternList(lower, list, { caseInsensitive: true }) === 'match')) {
      throw lineError(line, `unsupported option "${line.keyword}"`);
    }
    return { kind: 'unknown', line };
  }
  if (lower === 'ignoreunknown') state.ignoreUnknown.push(line.args[0]!);
  return { kind: 'option', line, name: keyword.name, apply: keyword.parse?.(line, keyword.name) };
}

function parseStatements(state: ParseState, text: string, file: string, depth: number): Statement[] {
  state.files.push(file);
  return lexConfig(text, file).map((line) => parseStatement(state, line, depth, false));
}

export type SshConfigInput = string | { readonly path: string } | { readonly text: string; readonly path?: string };

/**
 * Parse ssh_config text (or `{ path }` to read a file), including its Includes. Throws
 * ConfigError for bad syntax, bad values, and unknown keywords no IgnoreUnknown could cover.
 */
export function parseSshConfig(input: SshConfigInput, options: ParseSshConfigOptions = {}): SshConfig {
  const file = typeof input === 'string' ? (options.file ?? 'ssh_config') : (input.path ?? options.file ?? 'ssh_config');
  const source = typeof input === 'string' ? input : 'text' in input ? input.text : readFileOrThrow(input.path);
  const home = options.home ?? homedir();
  const state: ParseState = { options, home, files: [], ignoreUnknown: [] };
  const statements = parseStatements(state, source, file, 0);
  return { file, statements, files: state.files, userConfig: options.system !== true, home, parseOptions: options };
}

/** Read and parse a config file; with `optional`, a missing file gives an empty config. */
export function loadSshConfig(path: string, options: ParseSshConfigOptions & { optional?: boolean } = {}): SshConfig {
  if (options.optional) {
    try {
      readFileSync(path);
    } catch {
      return { file: path, statements: [], files: [], userConfig: options.system !== true, home: options.home ?? homedir(), parseOptions: options };
    }
  }
  return parseSshConfig({ path }, options);
}

// ---- Resolving -------------------------------------------------------------------------------

export interface ResolveHostOptions {
  /** `-l user` or `user@host`: wins over the files (and is what `Match user` sees). */
  readonly user?: string;
  /** `-p port`: wins over the files. */
  readonly port?: number;
  /** `-i file` options: tried before the files' IdentityFile lines. */
  readonly identityFiles?: readonly string[];
  /** `-o "Keyword value"` options, read before any file. */
  readonly overrides?: readonly string[];
  /** The local user (default: the process's). */
  readonly localUser?: string;
  readonly home?: string;
  /** This machine's name, for %l %L and %C (default os.hostname()). */
  readonly localHostname?: string;
  readonly uid?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Runs a `Match exec` command; true when it exits 0. Default: /bin/sh -c. */
  readonly exec?: (command: string) => boolean;
}

interface ResolveState {
  readonly draft: Draft;
  readonly notes: string[];
  readonly hostArg: string;
  readonly local: LocalContext;
  readonly options: ResolveHostOptions;
  /** What Host lines match against: the destination, or in the final pass the final host name. */
  hostForHostLines: string;
  finalPass: boolean;
  wantFinalPass: boolean;
}

/** The host name as known so far: HostName (with %h) or the destination. */
function currentHostName(state: ResolveState): string {
  if (state.finalPass && state.draft.hostName !== undefined) return state.draft.hostName;
  return state.draft.hostName === undefined ? state.hostArg : expandPercent(state.draft.hostName, { h: state.hostArg });
}

/** SHA-1 of %l%h%p%r%j: the connection hash %C (OpenSSH's ssh_connection_hash()). */
function connectionHash(localHost: string, host: string, port: string, user: string, jump: string): string {
  return createHash('sha1').update(`${localHost}${host}${port}${user}${jump}`).digest('hex');
}

function jumpHostToken(hops: readonly JumpHost[] | null | undefined): string {
  const last = hops?.[hops.length - 1];
  return last === undefined ? '' : last.host;
}

/** The tokens `Match exec` and Include see while the files are still being read. */
function tokensSoFar(state: ResolveState): Record<string, string> {
  const host = currentHostName(state);
  const port = String(state.draft.port ?? 22);
  const user = state.draft.user ?? state.local.user;
  const jump = jumpHostToken(state.draft.proxyJump);
  return baseTokens(state.local, { host, port, user, jump, original: state.hostArg, alias: state.draft.hostKeyAlias ?? host });
}

function baseTokens(
  local: LocalContext,
  remote: { host: string; port: string; user: string; jump: string; original: string; alias: string },
): Record<string, string> {
  return {
    C: connectionHash(local.hostname, remote.host, remote.port, remote.user, remote.jump),
    L: local.hostname.split('.')[0]!,
    d: local.home,
    h: remote.host,
    i: String(local.uid),
    j: remote.jump,
    k: remote.alias,
    l: local.hostname,
    n: remote.original,
    p: remote.port,
    r: remote.user,
    u: local.user,
  };
}

function runInShell(command: string): boolean {
  const result = spawnSync('/bin/sh', ['-c', command], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (result.error !== undefined || result.status === null) {
    throw new Error(`command '${command}' did not run to completion${result.error ? `: ${result.error.message}` : ''}`);
  }
  return result.status === 0;
}

function localNetworkMatches(list: string): boolean {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (matchCidrList(a.address, list) === true) return true;
  }
  return false;
}

function evaluateMatch(state: ResolveState, line: ConfigLine, criteria: readonly SshMatchCriterion[]): boolean {
  let result = true;
  for (const criterion of criteria) {
    let hit: boolean;
    switch (criterion.kind) {
      case 'all':
        return result && !criterion.negated;
      case 'canonical':
      case 'final':
        if (criterion.kind === 'final') state.wantFinalPass = true;
        hit = state.finalPass;
        break;
      case 'host':
        hit = matchHostname(currentHostName(state), criterion.argument) === 'match';
        break;
      case 'originalhost':
        hit = matchHostname(state.hostArg, criterion.argument) === 'match';
        break;
      case 'user':
        hit = matchPatternList(state.draft.user ?? state.local.user, criterion.argument) === 'match';
        break;
      case 'localuser':
        hit = matchPatternList(state.local.user, criterion.argument) === 'match';
        break;
      case 'localnetwork':
        hit = localNetworkMatches(criterion.argument);
        break;
      case 'tagged':
        hit = matchPatternList(state.draft.tag ?? '', criterion.argument) === 'match';
        break;
      case 'exec': {
        // Like ssh, a command is not run once an earlier criterion has failed.
        if (!result) continue;
        let command: string;
        try {
          command = expandPercent(criterion.argument, tokensSoFar(state));
          hit = (state.options.exec ?? runInShell)(command);
        } catch (e) {
          throw lineError(line, `match exec: ${e instanceof Error ? e.message : String(e)}`);
        }
        break;
      }
    }
    if (hit === criterion.negated) result = false;
  }
  return result;
}

function hostLineMatches(state: ResolveState, patterns: readonly string[]): boolean {
  let matched = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    if (!matchPattern(state.hostForHostLines, negated ? raw.slice(1) : raw)) continue;
    // A matching negated pattern rules the block out, whatever else matches.
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function note(state: ResolveState, message: string): void {
  if (!state.notes.includes(message)) state.notes.push(message);
}

/**
 * Read statements in order, applying those in blocks that match. `neverMatch`: this text is
 * inside a block that did not apply, so nothing in it can (Host and Match lines included).
 */
function walk(
  state: ResolveState,
  config: SshConfig,
  statements: readonly Statement[],
  startActive: boolean,
  neverMatch: boolean,
  depth: number,
): void {
  let active = startActive;
  for (const statement of statements) {
    const { line } = statement;
    switch (statement.kind) {
      case 'host':
        active = !neverMatch && hostLineMatches(state, statement.patterns);
        break;
      case 'match': {
        if (neverMatch) {
          if (statement.criteria.some((c) => c.kind === 'final')) state.wantFinalPass = true;
          active = false;
        } else {
          active = evaluateMatch(state, line, statement.criteria);
        }
        break;
      }
      case 'include': {
        const files = statement.files ?? resolveDeferredInclude(state, config, line, depth);
        // Host and Match lines inside an included file do not leak out of it.
        for (const file of files) walk(state, config, file.statements, active, neverMatch || !active, depth + 1);
        break;
      }
      case 'unknown': {
        const lower = line.keyword.toLowerCase();
        const ignore = state.draft.ignoreUnknown;
        if (ignore === undefined || matchPatternList(lower, ignore, { caseInsensitive: true }) !== 'match') {
          throw lineError(line, `unsupported option "${line.keyword}"`);
        }
        if (active) note(state, `${line.file} line ${line.line}: ignored unknown option "${line.keyword}"`);
        break;
      }
      case 'option':
        if (!active) break;
        if (statement.apply) statement.apply(state.draft);
        else if (!SILENTLY_IGNORED.has(line.keyword.toLowerCase())) note(state, `${line.file} line ${line.line}: tssh does not implement ${statement.name}`);
        break;
    }
  }
}

function resolveDeferredInclude(state: ResolveState, config: SshConfig, line: ConfigLine, depth: number): IncludedFile[] {
  const tokens = tokensSoFar(state);
  const paths = expandIncludePaths(line, (p) => expandPercent(p, tokens, state.options.env ?? process.env));
  const parseState: ParseState = {
    options: config.parseOptions,
    home: config.home,
    files: [],
    ignoreUnknown: state.draft.ignoreUnknown === undefined ? [] : [state.draft.ignoreUnknown],
  };
  return includeFiles(parseState, line, paths, depth);
}

const DEFAULT_IDENTITY_FILES = ['~/.ssh/id_rsa', '~/.ssh/id_ecdsa', '~/.ssh/id_ecdsa_sk', '~/.ssh/id_ed25519', '~/.ssh/id_ed25519_sk'];
const DEFAULT_PREFERRED_AUTHENTICATIONS = ['publickey', 'keyboard-interactive', 'password'];

function localContext(options: ResolveHostOptions): LocalContext {
  // userInfo() throws when the uid has no passwd entry (some containers): ask only if needed.
  const info = options.localUser === undefined || options.uid === undefined ? userInfo() : undefined;
  return {
    user: options.localUser ?? info!.username,
    home: options.home ?? homedir(),
    hostname: options.localHostname ?? hostname(),
    uid: options.uid ?? info!.uid,
  };
}

/** The final host name: %h expanded, lower-cased unless it is an address. */
function finalHostName(draftHostName: string | undefined, hostArg: string): string {
  const name = draftHostName === undefined ? hostArg : expandPercent(draftHostName, { h: hostArg });
  return isIP(name) === 0 ? asciiLowercase(name) : name;
}

/**
 * The options for connecting to `host`, reading the configs in order (command-line overrides,
 * then e.g. [user config, system config]). Throws ConfigError for an unknown keyword not covered
 * by IgnoreUnknown or a failing `Match exec`.
 */
export function resolveHost(configs: SshConfig | readonly SshConfig[], host: string, options: ResolveHostOptions = {}): SshOptions {
  const list: readonly SshConfig[] = Array.isArray(configs) ? configs : [configs as SshConfig];
  const draft: Draft = {};
  if (options.user !== undefined) draft.user = options.user;
  if (options.port !== undefined) draft.port = options.port;
  if (options.identityFiles !== undefined) draft.identityFile = [...options.identityFiles];
  const local = localContext(options);
  // `-o` lines: Host, Match and Include are refused; unknown keywords are checked as the lines
  // are applied (an earlier `-o IgnoreUnknown=…` may cover them), hence the catch-all here.
  const parseState: ParseState = { options: {}, home: local.home, files: [], ignoreUnknown: ['*'] };
  const commandLine: SshConfig = {
    file: 'command-line',
    statements: (options.overrides ?? []).flatMap((text, index) => {
      const line = lexConfigLine(text, 'command-line', index + 1);
      return line === undefined ? [] : [parseStatement(parseState, line, 0, true)];
    }),
    files: [],
    userConfig: true,
    home: local.home,
    parseOptions: {},
  };
  const state: ResolveState = {
    draft,
    notes: [],
    hostArg: host,
    local,
    options,
    hostForHostLines: host,
    finalPass: false,
    wantFinalPass: false,
  };
  const readAll = (): void => {
    for (const config of [commandLine, ...list]) walk(state, config, config.statements, true, false, 0);
  };
  readAll();
  if (state.wantFinalPass) {
    // `Match final`: read everything again with the host name settled (as ssh.c does).
    const name = finalHostName(draft.hostName, host);
    draft.hostName = name;
    state.hostForHostLines = name;
    state.finalPass = true;
    readAll();
  }
  // After a final pass the name is already expanded; expanding twice would misread a literal %.
  const hostName = state.finalPass ? (draft.hostName ?? host) : finalHostName(draft.hostName, host);
  return fillDefaults(draft, host, hostName, local, state.notes);
}

function fillDefaults(draft: Draft, host: string, hostName: string, local: LocalContext, notes: readonly string[]): SshOptions {
  const clear = draft.clearAllForwardings === true;
  return {
    host,
    hostName,
    port: draft.port ?? 22,
    user: draft.user ?? local.user,
    identityFile: draft.identityFile && draft.identityFile.length > 0 ? draft.identityFile : DEFAULT_IDENTITY_FILES,
    identitiesOnly: draft.identitiesOnly ?? false,
    identityAgent: draft.identityAgent ?? null,
    certificateFile: draft.certificateFile ?? [],
    proxyJump: draft.proxyJump ?? null,
    proxyCommand: draft.proxyCommand ?? null,
    localForward: clear ? [] : (draft.localForward ?? []),
    remoteForward: clear ? [] : (draft.remoteForward ?? []),
    dynamicForward: clear ? [] : (draft.dynamicForward ?? []),
    clearAllForwardings: clear,
    gatewayPorts: draft.gatewayPorts ?? false,
    exitOnForwardFailure: draft.exitOnForwardFailure ?? false,
    enableEscapeCommandline: draft.enableEscapeCommandline ?? false,
    strictHostKeyChecking: draft.strictHostKeyChecking ?? 'ask',
    userKnownHostsFile: draft.userKnownHostsFile ?? ['~/.ssh/known_hosts', '~/.ssh/known_hosts2'],
    globalKnownHostsFile: draft.globalKnownHostsFile ?? ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    hashKnownHosts: draft.hashKnownHosts ?? false,
    hostKeyAlias: draft.hostKeyAlias ?? null,
    revokedHostKeys: draft.revokedHostKeys ?? null,
    serverAliveInterval: draft.serverAliveInterval ?? 0,
    serverAliveCountMax: draft.serverAliveCountMax ?? 3,
    connectTimeout: draft.connectTimeout ?? null,
    connectionAttempts: draft.connectionAttempts ?? 1,
    ciphers: draft.ciphers ?? [...cipherAlgorithms.defaults],
    macs: draft.macs ?? [...macAlgorithms.defaults],
    kexAlgorithms: draft.kexAlgorithms ?? [...kexAlgorithms.defaults],
    hostKeyAlgorithms: draft.hostKeyAlgorithms ?? [...signatureAlgorithms.defaults],
    pubkeyAcceptedAlgorithms: draft.pubkeyAcceptedAlgorithms ?? [...signatureAlgorithms.defaults],
    requiredRSASize: draft.requiredRSASize ?? 1024,
    preferredAuthentications: draft.preferredAuthentications ?? DEFAULT_PREFERRED_AUTHENTICATIONS,
    passwordAuthentication: draft.passwordAuthentication ?? true,
    kbdInteractiveAuthentication: draft.kbdInteractiveAuthentication ?? true,
    pubkeyAuthentication: draft.pubkeyAuthentication ?? 'yes',
    numberOfPasswordPrompts: draft.numberOfPasswordPrompts ?? 3,
    addKeysToAgent: draft.addKeysToAgent ?? { mode: 'no', lifetime: null },
    forwardAgent: draft.forwardAgent ?? false,
    setEnv: draft.setEnv ?? [],
    sendEnv: draft.sendEnv ?? [],
    requestTTY: draft.requestTTY ?? 'auto',
    remoteCommand: draft.remoteCommand ?? null,
    batchMode: draft.batchMode ?? false,
    logLevel: draft.logLevel ?? 'INFO',
    compression: draft.compression ?? false,
    rekeyLimit: draft.rekeyLimit ?? { bytes: 0, seconds: 0 },
    tag: draft.tag ?? null,
    notes,
    local,
  };
}

// ---- Using the result ------------------------------------------------------------------------

/** The `%` tokens for a resolved destination (ssh_config(5) TOKENS): %C %L %d %h %i %j %k %l %n %p %r %u. */
export function clientTokens(options: SshOptions): Record<string, string> {
  return baseTokens(options.local, {
    host: options.hostName,
    port: String(options.port),
    user: options.user,
    jump: jumpHostToken(options.proxyJump),
    original: options.host,
    alias: options.hostKeyAlias ?? options.host,
  });
}

/**
 * A path option (IdentityFile, CertificateFile, UserKnownHostsFile, IdentityAgent, …) ready to
 * open: `~` expanded, then `%` tokens, then `${VAR}` environment variables, as ssh does.
 */
export function expandClientPath(path: string, options: SshOptions, env: NodeJS.ProcessEnv = process.env): string {
  return expandPercent(expandTilde(path, options.local.home), clientTokens(options), env);
}

function formatEndpoint(endpoint: ForwardEndpoint, listen: boolean): string {
  if ('path' in endpoint) return endpoint.path;
  if (endpoint.host === null) return listen ? String(endpoint.port) : `${endpoint.port}`;
  return `[${endpoint.host}]:${endpoint.port}`;
}

function formatJumpHost(hop: JumpHost): string {
  // Addresses are bracketed so their colons are not read as a port separator.
  const host = hop.host.includes(':') || /^[0-9.]+$/.test(hop.host) ? `[${hop.host}]` : hop.host;
  return `${hop.user === null ? '' : `${hop.user}@`}${host}${hop.port === null ? '' : `:${hop.port}`}`;
}

const yesNo = (value: boolean): string => (value ? 'yes' : 'no');

/** The options as `ssh -G` prints them: lower-case keywords, one per line (lists one per line or joined). */
export function formatSshConfig(options: SshOptions): string {
  const out: string[] = [];
  const put = (keyword: string, value: string | number): void => void out.push(`${keyword} ${value}`);
  put('host', options.host);
  put('user', options.user);
  put('hostname', options.hostName);
  put('port', options.port);
  put('batchmode', yesNo(options.batchMode));
  put('compression', yesNo(options.compression));
  put('clearallforwardings', yesNo(options.clearAllForwardings));
  put('exitonforwardfailure', yesNo(options.exitOnForwardFailure));
  put('enableescapecommandline', yesNo(options.enableEscapeCommandline));
  put('gatewayports', yesNo(options.gatewayPorts));
  put('hashknownhosts', yesNo(options.hashKnownHosts));
  put('identitiesonly', yesNo(options.identitiesOnly));
  put('kbdinteractiveauthentication', yesNo(options.kbdInteractiveAuthentication));
  put('passwordauthentication', yesNo(options.passwordAuthentication));
  put('pubkeyauthentication', options.pubkeyAuthentication);
  put('requesttty', options.requestTTY);
  put('stricthostkeychecking', options.strictHostKeyChecking);
  put('connectionattempts', options.connectionAttempts);
  put('numberofpasswordprompts', options.numberOfPasswordPrompts);
  put('serveralivecountmax', options.serverAliveCountMax);
  put('serveraliveinterval', options.serverAliveInterval);
  put('requiredrsasize', options.requiredRSASize);
  put('ciphers', options.ciphers.join(','));
  put('hostkeyalgorithms', options.hostKeyAlgorithms.join(','));
  if (options.hostKeyAlias !== null) put('hostkeyalias', options.hostKeyAlias);
  if (options.identityAgent !== null) put('identityagent', options.identityAgent);
  put('kexalgorithms', options.kexAlgorithms.join(','));
  if (options.remoteCommand !== null) put('remotecommand', options.remoteCommand);
  put('loglevel', options.logLevel);
  put('macs', options.macs.join(','));
  put('preferredauthentications', options.preferredAuthentications.join(','));
  put('pubkeyacceptedalgorithms', options.pubkeyAcceptedAlgorithms.join(','));
  if (options.revokedHostKeys !== null) put('revokedhostkeys', options.revokedHostKeys);
  if (options.tag !== null) put('tag', options.tag);
  for (const f of options.dynamicForward) put('dynamicforward', formatEndpoint(f.listen, true));
  for (const f of options.localForward) put('localforward', `${formatEndpoint(f.listen, true)} ${f.connect ? formatEndpoint(f.connect, false) : ''}`.trim());
  for (const f of options.remoteForward) put('remoteforward', `${formatEndpoint(f.listen, true)} ${f.connect ? formatEndpoint(f.connect, false) : ''}`.trim());
  for (const file of options.identityFile) put('identityfile', file);
  for (const file of options.certificateFile) put('certificatefile', file);
  put('globalknownhostsfile', options.globalKnownHostsFile.join(' '));
  // ssh expands these before printing them (it opens them for host key checks before -G's dump).
  put('userknownhostsfile', options.userKnownHostsFile.map((f) => expandClientPath(f, options)).join(' '));
  for (const name of options.sendEnv) put('sendenv', name);
  for (const { name, value } of options.setEnv) put('setenv', `${name}=${value}`);
  const agent = options.addKeysToAgent;
  put('addkeystoagent', agent.lifetime === null ? agent.mode : `${agent.mode === 'confirm' ? 'confirm ' : ''}${agent.lifetime}`);
  put('forwardagent', typeof options.forwardAgent === 'string' ? options.forwardAgent : yesNo(options.forwardAgent));
  put('connecttimeout', options.connectTimeout === null ? 'none' : options.connectTimeout);
  put('rekeylimit', `${options.rekeyLimit.bytes} ${options.rekeyLimit.seconds}`);
  if (options.proxyJump !== null) put('proxyjump', options.proxyJump.map(formatJumpHost).join(','));
  else if (options.proxyCommand !== null) put('proxycommand', options.proxyCommand);
  return `${out.join('\n')}\n`;
}
