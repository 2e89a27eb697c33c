/**
 * sshd_config(5) for tsshd: parse the file (and `-o` options) into typed settings, then apply the
 * `Match` blocks for one connection.
 *
 * OpenSSH's rules, kept here:
 * - keywords are case-insensitive; for a single-valued keyword the FIRST value wins, and `-o`
 *   options are read before the file so they win;
 * - some keywords add up: Port, ListenAddress, HostKey, AcceptEnv, Allow/DenyUsers,
 *   Allow/DenyGroups; Subsystem keeps the first command per name; AuthorizedKeysFile,
 *   AuthenticationMethods, SetEnv, PermitOpen and PermitListen take all arguments of their first line;
 * - `Include` globs, relative paths living in /etc/ssh (not next to the including file);
 * - `Match` starts a conditional block that lasts to the next Match or the end of the file; when a
 *   connection matches, the block's values replace the global ones (a list replaces a list). Only
 *   keywords OpenSSH allows in Match may appear there (Port may not, for instance).
 *
 * Every other keyword OpenSSH 9.x knows is accepted and ignored with a warning; an unknown keyword
 * or a bad value is a ConfigError naming file and line.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import {
  applyAlgorithmSetting,
  cipherAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
  type AlgorithmFamily,
} from '../algorithms/registry.js';
import { matchAddressList, matchHostname, matchPatternList, parseIpNetwork } from '../keys/patterns.js';
import {
  ConfigError,
  MAX_INCLUDE_DEPTH,
  assertMaxArguments,
  expandPercent,
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
  parseSyslogFacility,
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
  type SyslogFacility,
} from './tokens.js';

export type PermitRootLogin = 'yes' | 'prohibit-password' | 'forced-commands-only' | 'no';
/** AllowTcpForwarding / AllowStreamLocalForwarding (`all` is read as `yes`). */
export type ForwardingPermission = 'yes' | 'no' | 'local' | 'remote';
export type GatewayPorts = 'yes' | 'no' | 'clientspecified';
export type AddressFamily = 'any' | 'inet' | 'inet6';

export interface ListenAddress {
  readonly host: string;
  /** null: listen on every Port. */
  readonly port: number | null;
  readonly rdomain: string | null;
}

export interface Subsystem {
  readonly name: string;
  /** `internal-sftp`, or a command line for the user's shell, quoting as written. */
  readonly command: string;
}

/** MaxStartups start:rate:full — refuse rate% of new unauthenticated connections above start, all above full. */
export interface MaxStartups {
  readonly start: number;
  readonly rate: number;
  readonly full: number;
}

/** The effective settings; `null` is OpenSSH's `none`. */
export interface SshdSettings {
  readonly port: readonly number[];
  /** As written; empty means every address of `addressFamily` (see listenEndpoints()). */
  readonly listenAddress: readonly ListenAddress[];
  readonly addressFamily: AddressFamily;
  readonly hostKey: readonly string[];
  /** Patterns with %h %u %U %% left for expandAuthorizedKeysFile(); `none` possible. */
  readonly authorizedKeysFile: readonly string[];
  readonly pubkeyAuthentication: boolean;
  readonly passwordAuthentication: boolean;
  readonly kbdInteractiveAuthentication: boolean;
  readonly usePAM: boolean;
  /** `any`, or lists of methods each of which must all succeed (`publickey,password`). */
  readonly authenticationMethods: 'any' | readonly (readonly string[])[];
  readonly permitRootLogin: PermitRootLogin;
  readonly permitEmptyPasswords: boolean;
  readonly strictModes: boolean;
  readonly maxAuthTries: number;
  readonly maxSessions: number;
  readonly maxStartups: MaxStartups;
  /** Seconds; 0 = no limit. */
  readonly loginGraceTime: number;
  /** Seconds; 0 = no keepalives. */
  readonly clientAliveInterval: number;
  readonly clientAliveCountMax: number;
  readonly kexAlgorithms: readonly string[];
  readonly ciphers: readonly string[];
  readonly macs: readonly string[];
  readonly hostKeyAlgorithms: readonly string[];
  readonly pubkeyAcceptedAlgorithms: readonly string[];
  readonly rekeyLimit: RekeyLimit;
  readonly subsystem: readonly Subsystem[];
  readonly forceCommand: string | null;
  readonly chrootDirectory: string | null;
  readonly allowTcpForwarding: ForwardingPermission;
  readonly allowStreamLocalForwarding: ForwardingPermission;
  readonly allowAgentForwarding: boolean;
  /** DisableForwarding yes overrides every Allow*Forwarding. */
  readonly disableForwarding: boolean;
  readonly gatewayPorts: GatewayPorts;
  /** `any`, `none`, or host:port entries (port may be `*`). */
  readonly permitOpen: readonly string[];
  readonly permitListen: readonly string[];
  readonly acceptEnv: readonly string[];
  readonly setEnv: readonly EnvironmentSetting[];
  /** yes/no, or a pattern-list of variable names that ~/.ssh/environment may set. */
  readonly permitUserEnvironment: boolean | string;
  readonly permitTTY: boolean;
  readonly banner: string | null;
  readonly printMotd: boolean;
  readonly pidFile: string | null;
  readonly logLevel: LogLevel;
  readonly syslogFacility: SyslogFacility;
  readonly allowUsers: readonly string[];
  readonly denyUsers: readonly string[];
  readonly allowGroups: readonly string[];
  readonly denyGroups: readonly string[];
  readonly compression: boolean;
  readonly revokedKeys: string | null;
  readonly requiredRSASize: number;
  /** RefuseConnection yes (usually in a Match): drop the connection at once. */
  readonly refuseConnection: boolean;
  /** tsshd's own: a file of user password hashes, used instead of the system's. */
  readonly passwordFile: string | null;
}

/** One `Match` criterion; a block matches when all its criteria do. */
export type SshdMatchCriterion =
  | { readonly kind: 'all' }
  | { readonly kind: 'invalid-user' }
  | { readonly kind: 'user' | 'group' | 'host' | 'address' | 'localaddress' | 'rdomain'; readonly patterns: string }
  | { readonly kind: 'localport'; readonly port: number };

export interface SshdMatchBlock {
  readonly file: string;
  readonly line: number;
  readonly criteria: readonly SshdMatchCriterion[];
}

/** A keyword tsshd accepted but does not act on. */
export interface IgnoredDirective {
  readonly keyword: string;
  readonly file: string;
  readonly line: number;
  readonly args: readonly string[];
}

type Draft = { -readonly [K in keyof SshdSettings]?: SshdSettings[K] };
type Apply = (draft: Draft) => void;

interface MatchDirective {
  /** Every enclosing Match (an Include inside a Match adds its own), all of which must match. */
  readonly conditions: readonly SshdMatchBlock[];
  readonly apply: Apply;
}

export interface SshdConfig {
  /** The global settings with defaults filled in: what applies before any Match. */
  readonly settings: SshdSettings;
  readonly matchBlocks: readonly SshdMatchBlock[];
  /** `/etc/ssh/sshd_config line 12: tsshd ignores UseDNS`, one per ignored line. */
  readonly warnings: readonly string[];
  readonly ignored: readonly IgnoredDirective[];
  /** Every file read, in order (the main file first, then includes). */
  readonly files: readonly string[];
  /** Private to resolveForConnection(). */
  readonly matchDirectives: readonly MatchDirective[];
}

export interface ParseSshdConfigOptions {
  /** `-o "Keyword value"` options, read before the file so they win. */
  readonly overrides?: readonly string[];
  /** Where relative Include paths live (OpenSSH: /etc/ssh). */
  readonly includeBaseDir?: string;
  /** The file name used in messages when the input is text. */
  readonly file?: string;
  /** Ports from the command line (`-p`): the file's Port lines are then ignored. */
  readonly ports?: readonly number[];
  /** The port when none is configured (OpenSSH: 22). */
  readonly defaultPort?: number;
  /** Directory that relative HostKey and PidFile paths are resolved against (default: cwd). */
  readonly cwd?: string;
}

// ---- Keyword table ---------------------------------------------------------------------------

interface ParseContext {
  readonly cwd: string;
  readonly portsFromCommandLine: boolean;
}

interface Keyword {
  /** Spelling used in messages. */
  readonly name: string;
  /** May appear inside a Match block (OpenSSH's SSHCFG_MATCH). */
  readonly inMatch: boolean;
  /** Undefined: accepted but ignored, with a warning. */
  readonly parse?: (line: ConfigLine, name: string, ctx: ParseContext) => Apply;
}

function setOnce<K extends keyof SshdSettings>(draft: Draft, key: K, value: SshdSettings[K]): void {
  if (draft[key] === undefined) draft[key] = value;
}

/** The string lists to which every line adds (not first-wins). */
type AddingListKey = 'hostKey' | 'acceptEnv' | 'allowUsers' | 'denyUsers' | 'allowGroups' | 'denyGroups';

function append(draft: Draft, key: AddingListKey, items: readonly string[]): void {
  draft[key] = [...(draft[key] ?? []), ...items];
}

/** The settings keys whose value type is exactly V (so a parser can only set a field of its type). */
type KeysOf<V> = { [K in keyof SshdSettings]-?: [SshdSettings[K]] extends [V] ? ([V] extends [SshdSettings[K]] ? K : never) : never }[keyof SshdSettings];

const flag =
  (key: KeysOf<boolean>) =>
  (line: ConfigLine, name: string): Apply => {
    const value = parseYesNo(line, name, false);
    return (d) => setOnce(d, key, value);
  };

const choice =
  <K extends keyof SshdSettings, T extends SshdSettings[K] & string>(key: K, choices: readonly T[], aliases: Record<string, T> = {}) =>
  (line: ConfigLine, name: string): Apply => {
    const value = parseChoice(line, name, choices, aliases);
    return (d) => setOnce(d, key, value);
  };

const integer =
  (key: KeysOf<number>) =>
  (line: ConfigLine, name: string): Apply => {
    const value = integerArgument(line, name, singleArgument(line, name));
    return (d) => setOnce(d, key, value);
  };

const time =
  (key: KeysOf<number>) =>
  (line: ConfigLine, name: string): Apply => {
    const value = timeArgument(line, name, singleArgument(line, name));
    return (d) => setOnce(d, key, value);
  };

/** A path or `none` (null). `resolveRelative`: make a relative path absolute, as sshd does for its own files. */
const pathOrNone =
  (key: KeysOf<string | null>, resolveRelative = false) =>
  (line: ConfigLine, name: string, ctx: ParseContext): Apply => {
    const arg = singleArgument(line, name);
    const value = arg.toLowerCase() === 'none' ? null : resolveRelative && !isAbsolute(arg) ? resolve(ctx.cwd, arg) : arg;
    return (d) => setOnce(d, key, value);
  };

const algorithms =
  <T extends { readonly name: string }>(key: KeysOf<readonly string[]>, fam: AlgorithmFamily<T>) =>
  (line: ConfigLine, name: string): Apply => {
    let list: string[];
    try {
      list = applyAlgorithmSetting(fam, singleArgument(line, name));
    } catch (e) {
      if (e instanceof RangeError) throw lineError(line, `Bad ${name}: ${e.message}`);
      throw e;
    }
    return (d) => setOnce(d, key, list);
  };

const list =
  (key: AddingListKey, validate?: (arg: string) => string | undefined) =>
  (line: ConfigLine, name: string): Apply => {
    for (const arg of line.args) {
      const problem = validate?.(arg);
      if (problem !== undefined) throw lineError(line, `${name}: ${problem}`);
    }
    const items = [...line.args];
    return (d) => append(d, key, items);
  };

function parsePortLine(line: ConfigLine, name: string, ctx: ParseContext): Apply {
  const port = parsePort(singleArgument(line, name));
  if (port === undefined) throw lineError(line, `Bad port number: ${line.args[0]}`);
  // `tsshd -p` replaces the file's ports, as sshd's -p does.
  if (ctx.portsFromCommandLine) return () => {};
  return (d) => {
    d.port = [...(d.port ?? []), port];
  };
}

function parseListenAddress(line: ConfigLine, name: string): Apply {
  assertMaxArguments(line, name, 3);
  const [text, rdomainWord, rdomainName] = line.args as [string, string?, string?];
  let host = text;
  let port: number | null = null;
  // A bare IPv6 address (two or more colons, no brackets) has no port part.
  if (!(text.indexOf(':') >= 0 && text.indexOf(':') !== text.lastIndexOf(':') && !text.includes('['))) {
    const split = splitHostPort(text);
    if (split === undefined || split.host === '') throw lineError(line, `bad address:port usage: ${text}`);
    host = split.host;
    if (split.port !== undefined) {
      const parsed = parsePort(split.port);
      if (parsed === undefined) throw lineError(line, `bad port number in ListenAddress: ${text}`);
      port = parsed;
    }
  }
  if (rdomainWord !== undefined && (rdomainWord !== 'rdomain' || rdomainName === undefined)) {
    throw lineError(line, `bad ListenAddress syntax (expected "address [rdomain name]")`);
  }
  const entry: ListenAddress = { host, port, rdomain: rdomainName ?? null };
  return (d) => {
    d.listenAddress = [...(d.listenAddress ?? []), entry];
  };
}

function parseHostKey(line: ConfigLine, name: string, ctx: ParseContext): Apply {
  const arg = singleArgument(line, name);
  const path = isAbsolute(arg) ? arg : resolve(ctx.cwd, arg);
  return (d) => append(d, 'hostKey', [path]);
}

function parseAuthorizedKeysFile(line: ConfigLine): Apply {
  const files = [...line.args];
  return (d) => setOnce(d, 'authorizedKeysFile', files);
}

const AUTH_METHODS = ['publickey', 'password', 'keyboard-interactive', 'hostbased', 'gssapi-with-mic'];

function parseAuthenticationMethods(line: ConfigLine, name: string): Apply {
  if (line.args.includes('any')) {
    if (line.args.length > 1) throw lineError(line, `"any" must appear alone in ${name}`);
    return (d) => setOnce(d, 'authenticationMethods', 'any');
  }
  const lists = line.args.map((arg) =>
    arg.split(',').map((method) => {
      const base = method.split(':')[0]!;
      if (!AUTH_METHODS.includes(base)) throw lineError(line, `invalid ${name} method "${method}" (known: ${AUTH_METHODS.join(', ')})`);
      return method;
    }),
  );
  return (d) => setOnce(d, 'authenticationMethods', lists);
}

function parseMaxStartups(line: ConfigLine, name: string): Apply {
  const arg = singleArgument(line, name);
  const m = /^(\d+)(?::(\d+):(\d+))?$/.exec(arg);
  const start = Number(m?.[1]);
  // A single number is both the start and the hard limit; the rate keeps its default.
  const rate = m?.[2] === undefined ? 30 : Number(m[2]);
  const full = m?.[3] === undefined ? start : Number(m[3]);
  if (m === null || start <= 0 || full <= 0 || start > full || rate < 1 || rate > 100) {
    throw lineError(line, `Invalid ${name} spec: ${arg} (expected start:rate:full with start <= full and rate 1-100)`);
  }
  // OpenSSH lets a later MaxStartups line overwrite an earlier one; we keep first-wins like every
  // other keyword so that `-o MaxStartups=…` wins as the manual promises.
  return (d) => setOnce(d, 'maxStartups', { start, rate, full });
}

function parseRekey(line: ConfigLine, name: string): Apply {
  const value = parseRekeyLimit(line, name);
  return (d) => setOnce(d, 'rekeyLimit', value);
}

function parseSubsystem(line: ConfigLine, name: string): Apply {
  if (line.args.length < 2) throw lineError(line, `Missing subsystem command for ${name} ${line.args[0]}`);
  const entry: Subsystem = { name: line.args[0]!, command: rawFrom(line, 1) };
  return (d) => {
    const current = d.subsystem ?? [];
    // The first definition of a name wins; later ones are ignored, as in sshd.
    if (!current.some((s) => s.name === entry.name)) d.subsystem = [...current, entry];
  };
}

function parseForceCommand(line: ConfigLine): Apply {
  const command = rawFrom(line, 0);
  // `none` lets a Match block cancel a global ForceCommand.
  const value = command.toLowerCase() === 'none' ? null : command;
  return (d) => setOnce(d, 'forceCommand', value);
}

/** PermitOpen/PermitListen: `any`, `none`, or host:port entries; PermitListen also takes a bare port. */
const permitList =
  (key: 'permitOpen' | 'permitListen') =>
  (line: ConfigLine, name: string): Apply => {
    const entries = line.args.map((arg) => {
      if (arg === 'any' || arg === 'none') {
        if (line.args.length > 1) throw lineError(line, `${arg} must appear alone on a ${name} line`);
        return arg;
      }
      const bare = key === 'permitListen' && !arg.includes(':');
      const split = bare ? { host: '*', port: arg } : splitHostPort(arg);
      if (split === undefined || split.host === '') throw lineError(line, `${name} missing host in ${arg}`);
      if (split.port === undefined || (split.port !== '*' && parsePort(split.port) === undefined)) {
        throw lineError(line, `${name} bad port number in ${arg}`);
      }
      return bare ? `*:${arg}` : arg;
    });
    return (d) => setOnce(d, key, entries);
  };

function parseSetEnvLine(line: ConfigLine): Apply {
  const settings = parseSetEnv(line);
  return (d) => setOnce(d, 'setEnv', settings);
}

function parsePermitUserEnvironment(line: ConfigLine, name: string): Apply {
  const arg = singleArgument(line, name);
  // OpenSSH compares yes/no case-sensitively here: anything else is a pattern-list.
  const value = arg === 'yes' ? true : arg === 'no' ? false : arg;
  return (d) => setOnce(d, 'permitUserEnvironment', value);
}

function parseCompression(line: ConfigLine, name: string): Apply {
  const value = parseChoice(line, name, ['yes', 'delayed', 'no']) !== 'no';
  return (d) => setOnce(d, 'compression', value);
}

function parseLogLevelLine(line: ConfigLine, name: string): Apply {
  const value = parseLogLevel(line, name);
  return (d) => setOnce(d, 'logLevel', value);
}

function parseSyslogFacilityLine(line: ConfigLine, name: string): Apply {
  const value = parseSyslogFacility(line, name);
  return (d) => setOnce(d, 'syslogFacility', value);
}

const noEquals = (arg: string): string | undefined => (arg.includes('=') ? `invalid environment name ${arg}` : undefined);

const forwarding = ['yes', 'no', 'local', 'remote'] as const;

/** Typed keywords: [name, allowed in Match, parser]. */
const TYPED: readonly [string, boolean, NonNullable<Keyword['parse']>][] = [
  ['Port', false, parsePortLine],
  ['ListenAddress', false, parseListenAddress],
  ['AddressFamily', false, choice('addressFamily', ['any', 'inet', 'inet6'])],
  ['HostKey', false, parseHostKey],
  ['HostDSAKey', false, parseHostKey],
  ['AuthorizedKeysFile', true, parseAuthorizedKeysFile],
  ['PubkeyAuthentication', true, flag('pubkeyAuthentication')],
  ['DSAAuthentication', false, flag('pubkeyAuthentication')],
  ['PasswordAuthentication', true, flag('passwordAuthentication')],
  ['KbdInteractiveAuthentication', true, flag('kbdInteractiveAuthentication')],
  ['ChallengeResponseAuthentication', true, flag('kbdInteractiveAuthentication')],
  ['SkeyAuthentication', true, flag('kbdInteractiveAuthentication')],
  ['UsePAM', false, flag('usePAM')],
  ['AuthenticationMethods', true, parseAuthenticationMethods],
  ['PermitRootLogin', true, choice('permitRootLogin', ['yes', 'prohibit-password', 'forced-commands-only', 'no'], { 'without-password': 'prohibit-password' })],
  ['PermitEmptyPasswords', true, flag('permitEmptyPasswords')],
  ['StrictModes', false, flag('strictModes')],
  ['MaxAuthTries', true, integer('maxAuthTries')],
  ['MaxSessions', true, integer('maxSessions')],
  ['MaxStartups', false, parseMaxStartups],
  ['LoginGraceTime', false, time('loginGraceTime')],
  ['ClientAliveInterval', true, time('clientAliveInterval')],
  ['ClientAliveCountMax', true, integer('clientAliveCountMax')],
  ['KexAlgorithms', false, algorithms('kexAlgorithms', kexAlgorithms)],
  ['Ciphers', false, algorithms('ciphers', cipherAlgorithms)],
  ['MACs', false, algorithms('macs', macAlgorithms)],
  ['HostKeyAlgorithms', false, algorithms('hostKeyAlgorithms', signatureAlgorithms)],
  ['PubkeyAcceptedAlgorithms', true, algorithms('pubkeyAcceptedAlgorithms', signatureAlgorithms)],
  ['PubkeyAcceptedKeyTypes', true, algorithms('pubkeyAcceptedAlgorithms', signatureAlgorithms)],
  ['RekeyLimit', true, parseRekey],
  ['Subsystem', true, parseSubsystem],
  ['ForceCommand', true, parseForceCommand],
  ['ChrootDirectory', true, pathOrNone('chrootDirectory')],
  ['AllowTcpForwarding', true, choice('allowTcpForwarding', forwarding, { all: 'yes' })],
  ['AllowStreamLocalForwarding', true, choice('allowStreamLocalForwarding', forwarding, { all: 'yes' })],
  ['AllowAgentForwarding', true, flag('allowAgentForwarding')],
  ['DisableForwarding', true, flag('disableForwarding')],
  ['GatewayPorts', true, choice('gatewayPorts', ['yes', 'no', 'clientspecified'])],
  ['PermitOpen', true, permitList('permitOpen')],
  ['PermitListen', true, permitList('permitListen')],
  ['AcceptEnv', true, list('acceptEnv', noEquals)],
  ['SetEnv', true, parseSetEnvLine],
  ['PermitUserEnvironment', false, parsePermitUserEnvironment],
  ['PermitTTY', true, flag('permitTTY')],
  ['Banner', true, pathOrNone('banner')],
  ['PrintMotd', false, flag('printMotd')],
  ['PidFile', false, pathOrNone('pidFile', true)],
  ['LogLevel', true, parseLogLevelLine],
  ['SyslogFacility', false, parseSyslogFacilityLine],
  ['AllowUsers', true, list('allowUsers')],
  ['DenyUsers', true, list('denyUsers')],
  ['AllowGroups', true, list('allowGroups')],
  ['DenyGroups', true, list('denyGroups')],
  ['Compression', false, parseCompression],
  ['RevokedKeys', true, pathOrNone('revokedKeys')],
  ['RequiredRSASize', true, integer('requiredRSASize')],
  ['RefuseConnection', true, flag('refuseConnection')],
  ['PasswordFile', true, pathOrNone('passwordFile')],
];

/**
 * Everything else sshd 9.x knows (servconf.c's keyword table, plus 10.x's SshdAuthPath and
 * Debian's patches), with whether it may appear in a Match block. Accepted, warned about, ignored.
 */
const IGNORED_GLOBAL = [
  'AFSTokenPassing', 'CheckMail', 'DebianBanner', 'FingerprintHash', 'GSSAPICleanupCredentials',
  'GSSAPIKexAlgorithms', 'GSSAPIKeyExchange', 'GSSAPIStoreCredentialsOnRekey', 'GSSAPIStrictAcceptorCheck',
  'HostCertificate', 'HostKeyAgent', 'IgnoreUserKnownHosts', 'KeepAlive', 'KerberosGetAFSToken',
  'KerberosOrLocalPasswd', 'KerberosTGTPassing', 'KerberosTicketCleanup', 'KeyRegenerationInterval',
  'ModuliFile', 'PAMAuthenticationViaKbdInt', 'PerSourceMaxStartups', 'PerSourceNetBlockSize',
  'PerSourcePenalties', 'PerSourcePenaltyExemptList', 'PrintLastLog', 'Protocol', 'ReverseMappingCheck',
  'RhostsAuthentication', 'SecurityKeyProvider', 'ServerKeyBits', 'SshdAuthPath', 'SshdSessionPath',
  'TCPKeepAlive', 'UseDNS', 'UseLogin', 'UsePrivilegeSeparation', 'VerifyReverseMapping',
  'VersionAddendum', 'XAuthLocation',
];
const IGNORED_IN_MATCH_TOO = [
  'AuthorizedKeysCommand', 'AuthorizedKeysCommandUser', 'AuthorizedKeysFile2', 'AuthorizedPrincipalsCommand',
  'AuthorizedPrincipalsCommandUser', 'AuthorizedPrincipalsFile', 'CASignatureAlgorithms', 'ChannelTimeout',
  'ExposeAuthInfo', 'GSSAPIAuthentication', 'HostbasedAcceptedAlgorithms', 'HostbasedAcceptedKeyTypes',
  'HostbasedAuthentication', 'HostbasedUsesNameFromPacketOnly', 'IPQoS', 'IgnoreRhosts',
  'KerberosAuthentication', 'LogVerbose', 'PAMServiceName', 'PermitTunnel', 'PermitUserRC',
  'PubkeyAuthOptions', 'RDomain', 'RSAAuthentication', 'RhostsRSAAuthentication', 'StreamLocalBindMask',
  'StreamLocalBindUnlink', 'TrustedUserCAKeys', 'UnusedConnectionTimeout', 'X11DisplayOffset',
  'X11Forwarding', 'X11UseLocalhost',
];

const KEYWORDS: ReadonlyMap<string, Keyword> = uniqueKeywords([
  ...TYPED.map(([name, inMatch, parse]): [string, Keyword] => [name.toLowerCase(), { name, inMatch, parse }]),
  ...IGNORED_GLOBAL.map((name): [string, Keyword] => [name.toLowerCase(), { name, inMatch: false }]),
  ...IGNORED_IN_MATCH_TOO.map((name): [string, Keyword] => [name.toLowerCase(), { name, inMatch: true }]),
]);

/** Every keyword tsshd accepts (typed or ignored), lower-case, plus Match and Include. */
export function knownSshdKeywords(): string[] {
  return [...KEYWORDS.keys(), 'match', 'include'].sort();
}

// ---- Defaults --------------------------------------------------------------------------------

function defaultSettings(defaultPort: number): SshdSettings {
  return {
    port: [defaultPort],
    listenAddress: [],
    addressFamily: 'any',
    hostKey: ['/etc/ssh/ssh_host_rsa_key', '/etc/ssh/ssh_host_ecdsa_key', '/etc/ssh/ssh_host_ed25519_key'],
    authorizedKeysFile: ['.ssh/authorized_keys', '.ssh/authorized_keys2'],
    pubkeyAuthentication: true,
    passwordAuthentication: true,
    kbdInteractiveAuthentication: true,
    usePAM: false,
    authenticationMethods: 'any',
    permitRootLogin: 'prohibit-password',
    permitEmptyPasswords: false,
    strictModes: true,
    maxAuthTries: 6,
    maxSessions: 10,
    maxStartups: { start: 10, rate: 30, full: 100 },
    loginGraceTime: 120,
    clientAliveInterval: 0,
    clientAliveCountMax: 3,
    kexAlgorithms: [...kexAlgorithms.defaults],
    ciphers: [...cipherAlgorithms.defaults],
    macs: [...macAlgorithms.defaults],
    hostKeyAlgorithms: [...signatureAlgorithms.defaults],
    pubkeyAcceptedAlgorithms: [...signatureAlgorithms.defaults],
    rekeyLimit: { bytes: 0, seconds: 0 },
    subsystem: [],
    forceCommand: null,
    chrootDirectory: null,
    allowTcpForwarding: 'yes',
    allowStreamLocalForwarding: 'yes',
    allowAgentForwarding: true,
    disableForwarding: false,
    gatewayPorts: 'no',
    permitOpen: ['any'],
    permitListen: ['any'],
    acceptEnv: [],
    setEnv: [],
    permitUserEnvironment: false,
    permitTTY: true,
    banner: null,
    printMotd: true,
    pidFile: '/run/sshd.pid',
    logLevel: 'INFO',
    syslogFacility: 'AUTH',
    allowUsers: [],
    denyUsers: [],
    allowGroups: [],
    denyGroups: [],
    compression: true,
    revokedKeys: null,
    requiredRSASize: 1024,
    refuseConnection: false,
    passwordFile: null,
  };
}

// ---- Parsing ---------------------------------------------------------------------------------

const MATCH_CRITERIA = ['user', 'group', 'host', 'address', 'localaddress', 'localport', 'rdomain'] as const;

function parseMatchLine(line: ConfigLine): SshdMatchBlock {
  const criteria: SshdMatchCriterion[] = [];
  const args = [...line.args];
  while (args.length > 0) {
    let attribute = args.shift()!;
    let value: string | undefined;
    const lower = attribute.toLowerCase();
    if (lower === 'all') {
      if (criteria.length > 0 || args.length > 0) throw lineError(line, `'all' cannot be combined with other Match attributes`);
      criteria.push({ kind: 'all' });
      break;
    }
    if (lower === 'invalid-user') {
      criteria.push({ kind: 'invalid-user' });
      continue;
    }
    // `Match User=alice` is the same as `Match User alice` (OpenSSH 9.8+).
    const eq = attribute.indexOf('=');
    if (eq > 0) {
      value = attribute.slice(eq + 1);
      attribute = attribute.slice(0, eq);
    } else {
      value = args.shift();
    }
    const kind = MATCH_CRITERIA.find((k) => k === attribute.toLowerCase());
    if (kind === undefined) throw lineError(line, `Unsupported Match attribute ${attribute}`);
    if (value === undefined || value === '') throw lineError(line, `Missing Match criteria for ${attribute}`);
    if (kind === 'localport') {
      const port = parsePort(value);
      if (port === undefined) throw lineError(line, `Invalid LocalPort '${value}' on Match line`);
      criteria.push({ kind, port });
      continue;
    }
    if ((kind === 'address' || kind === 'localaddress') && !validAddressList(value)) {
      throw lineError(line, `Invalid Match ${attribute} argument '${value}'`);
    }
    criteria.push({ kind, patterns: value });
  }
  if (criteria.length === 0) throw lineError(line, 'One or more attributes required for Match');
  return { file: line.file, line: line.line, criteria };
}

/** An address list is valid when no entry is empty and no network has bits set past its prefix. */
function validAddressList(list: string): boolean {
  return list.split(',').every((item) => {
    const entry = item.startsWith('!') ? item.slice(1) : item;
    return entry !== '' && parseIpNetwork(entry) !== 'inconsistent';
  });
}

interface ParseState {
  readonly options: ParseSshdConfigOptions;
  readonly ctx: ParseContext;
  readonly global: Draft;
  readonly matchDirectives: MatchDirective[];
  readonly matchBlocks: SshdMatchBlock[];
  readonly warnings: string[];
  readonly ignored: IgnoredDirective[];
  readonly files: string[];
}

/** Apply one directive; returns the conditions that hold for the lines after it. */
function processLine(
  state: ParseState,
  line: ConfigLine,
  inherited: readonly SshdMatchBlock[],
  current: readonly SshdMatchBlock[],
  depth: number,
  commandLine: boolean,
): readonly SshdMatchBlock[] {
  const lower = line.keyword.toLowerCase();
  if (lower === 'match' || lower === 'include') {
    if (commandLine) throw lineError(line, `${line.keyword} is not supported as a command-line option`);
    if (lower === 'include') {
      processInclude(state, line, current, depth);
      return current;
    }
    const block = parseMatchLine(line);
    state.matchBlocks.push(block);
    // `Match all` goes back to whatever held where this file began (global at top level).
    return block.criteria[0]?.kind === 'all' ? inherited : [...inherited, block];
  }
  const keyword = KEYWORDS.get(lower);
  if (keyword === undefined) throw lineError(line, `unsupported option "${line.keyword}"`);
  if (current.length > 0 && !keyword.inMatch) throw lineError(line, `Directive ${keyword.name} is not allowed within a Match block`);
  if (keyword.parse === undefined) {
    state.warnings.push(`${line.file} line ${line.line}: tsshd ignores ${keyword.name}`);
    state.ignored.push({ keyword: keyword.name, file: line.file, line: line.line, args: line.args });
    return current;
  }
  const apply = keyword.parse(line, keyword.name, state.ctx);
  if (current.length === 0) apply(state.global);
  else state.matchDirectives.push({ conditions: current, apply });
  return current;
}

function processText(state: ParseState, text: string, file: string, inherited: readonly SshdMatchBlock[], depth: number): void {
  state.files.push(file);
  let current = inherited;
  for (const line of lexConfig(text, file)) current = processLine(state, line, inherited, current, depth, false);
}

function processInclude(state: ParseState, line: ConfigLine, current: readonly SshdMatchBlock[], depth: number): void {
  if (depth + 1 > MAX_INCLUDE_DEPTH) throw lineError(line, `Include nested too deeply (more than ${MAX_INCLUDE_DEPTH} levels)`);
  const base = state.options.includeBaseDir ?? '/etc/ssh';
  for (const arg of line.args) {
    // sshd anchors relative includes in /etc/ssh whatever file they appear in.
    const pattern = arg.startsWith('/') || arg.startsWith('~') ? arg : join(base, arg);
    for (const path of globFiles(pattern)) {
      processText(state, readConfigFile(path, line), path, current, depth + 1);
    }
  }
}

function readConfigFile(path: string, from?: ConfigLine): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    if (from) throw lineError(from, `cannot read included file ${path}: ${reason}`);
    throw new ConfigError(path, 0, `cannot read config file: ${reason}`);
  }
}

/** The input: text (a plain string), or a file to read. */
export type SshdConfigInput = string | { readonly path: string } | { readonly text: string; readonly path?: string };

/**
 * Parse sshd_config text (or `{ path }` to read a file) and any `-o` overrides. Throws ConfigError
 * for an unknown keyword, a bad value, or a keyword not allowed where it stands.
 */
export function parseSshdConfig(input: SshdConfigInput, options: ParseSshdConfigOptions = {}): SshdConfig {
  const file = typeof input === 'string' ? (options.file ?? 'sshd_config') : (input.path ?? options.file ?? 'sshd_config');
  const text = typeof input === 'string' ? input : 'text' in input ? input.text : readConfigFile(input.path);
  const state: ParseState = {
    options,
    ctx: { cwd: options.cwd ?? process.cwd(), portsFromCommandLine: (options.ports?.length ?? 0) > 0 },
    global: {},
    matchDirectives: [],
    matchBlocks: [],
    warnings: [],
    ignored: [],
    files: [],
  };
  if (options.ports && options.ports.length > 0) state.global.port = [...options.ports];
  (options.overrides ?? []).forEach((override, index) => {
    const line = lexConfigLine(override, 'command-line', index + 1);
    if (line) processLine(state, line, [], [], 0, true);
  });
  processText(state, text, file, [], 0);
  const settings: SshdSettings = { ...defaultSettings(options.defaultPort ?? 22), ...state.global };
  return {
    settings,
    matchBlocks: state.matchBlocks,
    warnings: state.warnings,
    ignored: state.ignored,
    files: state.files,
    matchDirectives: state.matchDirectives,
  };
}

/** Read and parse a config file. */
export function loadSshdConfig(path: string, options: ParseSshdConfigOptions = {}): SshdConfig {
  return parseSshdConfig({ path }, options);
}

// ---- Per connection --------------------------------------------------------------------------

/** What a Match block can test. A criterion whose fact is missing does not match (like `sshd -T -C`). */
export interface ConnectionInfo {
  readonly user?: string;
  /** The user's groups (primary and supplementary) for `Match Group`. */
  readonly groups?: readonly string[];
  /** Whether `user` is not a valid account (`Match Invalid-User`). */
  readonly invalidUser?: boolean;
  /** The client's address. */
  readonly address?: string;
  /** The client's host name (the address itself when DNS is not used). */
  readonly host?: string;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly rdomain?: string;
}

function criterionMatches(criterion: SshdMatchCriterion, conn: ConnectionInfo): boolean {
  switch (criterion.kind) {
    case 'all':
      return true;
    case 'invalid-user':
      return conn.invalidUser === true;
    case 'user':
      return conn.user !== undefined && matchPatternList(conn.user, criterion.patterns) === 'match';
    case 'group': {
      if (conn.groups === undefined) return false;
      const results = conn.groups.map((g) => matchPatternList(g, criterion.patterns));
      return !results.includes('negated') && results.includes('match');
    }
    case 'host':
      return conn.host !== undefined && matchHostname(conn.host, criterion.patterns) === 'match';
    case 'address':
      return conn.address !== undefined && matchAddressList(conn.address, criterion.patterns) === 'match';
    case 'localaddress':
      return conn.localAddress !== undefined && matchAddressList(conn.localAddress, criterion.patterns) === 'match';
    case 'localport':
      return conn.localPort === criterion.port;
    case 'rdomain':
      return conn.rdomain !== undefined && matchPatternList(conn.rdomain, criterion.patterns) === 'match';
  }
}

/** Whether a Match block applies to a connection. */
export function matchBlockApplies(block: SshdMatchBlock, conn: ConnectionInfo): boolean {
  return block.criteria.every((c) => criterionMatches(c, conn));
}

/**
 * The settings for one connection: the global ones, with the values of every matching Match
 * block laid over them (the first matching block to set a keyword wins).
 */
export function resolveForConnection(config: SshdConfig, conn: ConnectionInfo): SshdSettings {
  const verdicts = new Map<SshdMatchBlock, boolean>();
  const applies = (block: SshdMatchBlock): boolean => {
    let verdict = verdicts.get(block);
    if (verdict === undefined) verdicts.set(block, (verdict = matchBlockApplies(block, conn)));
    return verdict;
  };
  const draft: Draft = {};
  let matched = false;
  for (const directive of config.matchDirectives) {
    if (directive.conditions.every(applies)) {
      directive.apply(draft);
      matched = true;
    }
  }
  // Without a matching Match block every connection shares the one settings object (it is
  // read-only): a copy of its ~90 fields per connection is memory an idle connection keeps.
  return matched ? { ...config.settings, ...draft } : config.settings;
}

// ---- Helpers for the server ------------------------------------------------------------------

/** Where to listen: each ListenAddress (on its own port or every Port), or the wildcard addresses. */
export function listenEndpoints(settings: SshdSettings): { host: string; port: number }[] {
  const endpoints: { host: string; port: number }[] = [];
  const add = (host: string, port: number): void => {
    if (!endpoints.some((e) => e.host === host && e.port === port)) endpoints.push({ host, port });
  };
  if (settings.listenAddress.length === 0) {
    const hosts = settings.addressFamily === 'inet' ? ['0.0.0.0'] : settings.addressFamily === 'inet6' ? ['::'] : ['::', '0.0.0.0'];
    for (const port of settings.port) for (const host of hosts) add(host, port);
    return endpoints;
  }
  for (const la of settings.listenAddress) {
    for (const port of la.port === null ? settings.port : [la.port]) add(la.host, port);
  }
  return endpoints;
}

/**
 * Expand sshd's tokens in AuthorizedKeysFile, ChrootDirectory and similar: %h home, %u user,
 * %U numeric uid, %% a percent sign. Throws on any other token.
 */
export function expandSshdTokens(pattern: string, who: { home: string; user: string; uid?: number }): string {
  const tokens: Record<string, string> = { h: who.home, u: who.user };
  if (who.uid !== undefined) tokens.U = String(who.uid);
  return expandPercent(pattern, tokens);
}

/**
 * One AuthorizedKeysFile entry for a user, as an absolute path: tokens expanded, a leading `~/`
 * read as the user's home, and a relative path taken as relative to the home directory (sshd(8)).
 * `none` (no file at all) is the caller's to skip before calling this.
 */
export function expandAuthorizedKeysFile(pattern: string, who: { home: string; user: string; uid?: number }): string {
  const expanded = expandSshdTokens(pattern, who);
  if (expanded === '~' || expanded.startsWith('~/')) return join(who.home, expanded.slice(1));
  return isAbsolute(expanded) ? expanded : join(who.home, expanded);
}

// ---- `tsshd -T` ------------------------------------------------------------------------------

const yesNo = (value: boolean): string => (value ? 'yes' : 'no');
const orNone = (value: string | null): string => value ?? 'none';

/** The effective settings as `sshd -T` prints them: lower-case keywords, one setting per line. */
export function formatSshdConfig(settings: SshdSettings): string {
  const out: string[] = [];
  const put = (keyword: string, value: string | number): void => void out.push(`${keyword} ${value}`);
  for (const port of settings.port) put('port', port);
  put('addressfamily', settings.addressFamily);
  for (const { host, port } of listenEndpoints(settings)) put('listenaddress', host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
  put('usepam', yesNo(settings.usePAM));
  put('logingracetime', settings.loginGraceTime);
  put('maxauthtries', settings.maxAuthTries);
  put('maxsessions', settings.maxSessions);
  put('clientaliveinterval', settings.clientAliveInterval);
  put('clientalivecountmax', settings.clientAliveCountMax);
  put('requiredrsasize', settings.requiredRSASize);
  put('permitrootlogin', settings.permitRootLogin);
  put('pubkeyauthentication', yesNo(settings.pubkeyAuthentication));
  put('passwordauthentication', yesNo(settings.passwordAuthentication));
  put('kbdinteractiveauthentication', yesNo(settings.kbdInteractiveAuthentication));
  put('printmotd', yesNo(settings.printMotd));
  put('permittty', yesNo(settings.permitTTY));
  put('strictmodes', yesNo(settings.strictModes));
  put('permitemptypasswords', yesNo(settings.permitEmptyPasswords));
  put('compression', yesNo(settings.compression));
  put('gatewayports', settings.gatewayPorts);
  put('allowtcpforwarding', settings.allowTcpForwarding);
  put('allowagentforwarding', yesNo(settings.allowAgentForwarding));
  put('disableforwarding', yesNo(settings.disableForwarding));
  put('allowstreamlocalforwarding', settings.allowStreamLocalForwarding);
  put('refuseconnection', yesNo(settings.refuseConnection));
  put('pidfile', orNone(settings.pidFile));
  put('ciphers', settings.ciphers.join(','));
  put('macs', settings.macs.join(','));
  put('banner', orNone(settings.banner));
  put('forcecommand', orNone(settings.forceCommand));
  put('chrootdirectory', orNone(settings.chrootDirectory));
  put('revokedkeys', orNone(settings.revokedKeys));
  put('passwordfile', orNone(settings.passwordFile));
  put('kexalgorithms', settings.kexAlgorithms.join(','));
  put('hostkeyalgorithms', settings.hostKeyAlgorithms.join(','));
  put('pubkeyacceptedalgorithms', settings.pubkeyAcceptedAlgorithms.join(','));
  put('loglevel', settings.logLevel);
  put('syslogfacility', settings.syslogFacility);
  put('authorizedkeysfile', settings.authorizedKeysFile.join(' '));
  for (const key of settings.hostKey) put('hostkey', key);
  for (const user of settings.allowUsers) put('allowusers', user);
  for (const user of settings.denyUsers) put('denyusers', user);
  for (const group of settings.allowGroups) put('allowgroups', group);
  for (const group of settings.denyGroups) put('denygroups', group);
  for (const name of settings.acceptEnv) put('acceptenv', name);
  for (const { name, value } of settings.setEnv) put('setenv', `${name}=${value}`);
  const methods = settings.authenticationMethods;
  put('authenticationmethods', methods === 'any' ? 'any' : methods.map((m) => m.join(',')).join(' '));
  for (const { name, command } of settings.subsystem) put('subsystem', `${name} ${command}`);
  const { start, rate, full } = settings.maxStartups;
  put('maxstartups', `${start}:${rate}:${full}`);
  put('rekeylimit', `${settings.rekeyLimit.bytes} ${settings.rekeyLimit.seconds}`);
  put('permitopen', settings.permitOpen.join(' '));
  put('permitlisten', settings.permitListen.join(' '));
  const env = settings.permitUserEnvironment;
  put('permituserenvironment', typeof env === 'string' ? env : yesNo(env));
  return `${out.join('\n')}\n`;
}
