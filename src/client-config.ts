/**
 * connect() through ssh_config(5): the options resolved for a destination (./config/ssh-config.ts)
 * turned into connection options, as ssh(1) uses them: the way in (TCP with ConnectTimeout and
 * ConnectionAttempts, ProxyCommand, ProxyJump hops), host key checking by StrictHostKeyChecking
 * and the known_hosts files, identities and the agent, algorithms, keepalives and rekeying.
 *
 * The result is a plan (hops, then the target) that the client (./client.ts) carries out: this
 * module knows nothing of the client itself, so the two do not import each other.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { connectTcp } from './transport-io.js';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import {
  clientTokens,
  expandClientPath,
  loadSshConfig,
  resolveHost,
  type JumpHost,
  type SshConfig,
  type SshOptions,
} from './config/ssh-config.js';
import { DisconnectReason, SshError } from './errors.js';
import type { StrictHostKeyChecking } from './keys/host-key-verifier.js';
import type {
  CommonConnectOptions,
  ConnectOptions,
  KnownHostsSettings,
  PasswordContext,
  ResolvedConnectOptions,
  SshConfigConnectOptions,
  SshConfigSource,
} from './client-options.js';

/** StrictHostKeyChecking in ssh_config's words → the known_hosts policy. */
const POLICY: Record<SshOptions['strictHostKeyChecking'], StrictHostKeyChecking> = {
  yes: 'strict',
  ask: 'ask',
  'accept-new': 'accept-new',
  no: 'off',
};

/**
 * The configs a source names, in the order they are read: `true` is ~/.ssh/config then
 * /etc/ssh/ssh_config (each optional, as for ssh); a path must exist. Throws ConfigError (with
 * the file and line) for a file that does not parse.
 */
export function loadSshConfigs(source: SshConfigSource, options: { readonly home?: string } = {}): SshConfig[] {
  const home = options.home ?? homedir();
  if (source === true) {
    return [
      loadSshConfig(join(home, '.ssh', 'config'), { optional: true, home }),
      loadSshConfig('/etc/ssh/ssh_config', { optional: true, system: true, home }),
    ];
  }
  const list: readonly (string | SshConfig)[] = typeof source === 'string' || !Array.isArray(source) ? [source as string | SshConfig] : source;
  return list.map((item) => (typeof item === 'string' ? loadSshConfig(item, { home }) : item));
}

/** One connection of a plan: its options, and how to reach its server when nothing is in front of it. */
export interface PlannedConnection {
  readonly hostName: string;
  readonly port: number;
  /** The connection options, without `sock` (that comes from open() or the previous hop). */
  readonly options: PlannedOptions;
  /** A byte stream to the server: TCP (ConnectTimeout, ConnectionAttempts) or the ProxyCommand. */
  readonly open: () => Promise<Duplex>;
}

/** Connection options as the plan gives them: a known_hosts policy of 'ask' may lack its callback (then it refuses). */
export type PlannedOptions = Omit<ConnectOptions, 'knownHosts'> & { readonly knownHosts: KnownHostsSettings };

/** ProxyJump hops in the order they are connected through, then the destination. */
export interface ConnectionPlan {
  readonly hops: readonly PlannedConnection[];
  readonly target: PlannedConnection;
  /** A stream given to connect(): it replaces every way in. */
  readonly sock: Duplex | undefined;
  readonly debug: ((line: string) => void) | undefined;
}

/** The plan for connect({ host, sshConfig, … }): read the files, resolve the host, apply the explicit options. */
export function planFromSshConfig(options: SshConfigConnectOptions): ConnectionPlan {
  const configs = loadSshConfigs(options.sshConfig);
  const destination = resolveHost(configs, options.host, {
    user: options.username,
    port: options.port,
    identityFiles: options.privateKeyFiles,
    overrides: options.sshConfigOverrides,
  });
  // privateKeyFiles were handed to resolveHost like `ssh -i`: they are in destination.identityFile.
  const { host: _host, port: _port, username: _username, sshConfig: _sshConfig, sshConfigOverrides: _overrides, privateKeyFiles: _files, ...explicit } = options;
  return planFromSshOptions(destination, { ...explicit, jumpConfigs: configs });
}

/** The plan for options already resolved by resolveHost() (connectWithSshOptions()). */
export function planFromSshOptions(destination: SshOptions, options: ResolvedConnectOptions): ConnectionPlan {
  const { jumpConfigs = [], sock, ...explicit } = options;
  const shared = sharedOptions(explicit);
  // A stream given to connect() is the way in: no hop is needed then.
  const jumps = sock === undefined ? (destination.proxyJump ?? []) : [];
  const hops = jumpChain(jumpConfigs, jumps, 0).map((hop) => plan(hop, shared));
  return { hops, target: plan(destination, explicit), sock, debug: explicit.debug };
}

function resolveJumpHost(configs: readonly SshConfig[], hop: JumpHost): SshOptions {
  return resolveHost(configs, hop.host, { user: hop.user ?? undefined, port: hop.port ?? undefined });
}

/** How deep jump hosts may name jump hosts of their own (a loop in the files ends here). */
const MAX_JUMP_DEPTH = 8;

/**
 * The hops in the order they are connected to. The first hop is reached as ssh reaches it, so its
 * own ProxyJump (or ProxyCommand) applies: its hops come first. Later hops are reached through the
 * hop before them, as with ssh -J a,b.
 */
function jumpChain(configs: readonly SshConfig[], jumps: readonly JumpHost[], depth: number): SshOptions[] {
  if (jumps.length === 0) return [];
  const [first, ...rest] = jumps.map((hop) => resolveJumpHost(configs, hop));
  if (depth >= MAX_JUMP_DEPTH) {
    throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, `ProxyJump: more than ${MAX_JUMP_DEPTH} jump hosts deep at ${first!.host}; is there a loop in the config?`);
  }
  const before = first!.proxyJump === null ? [] : jumpChain(configs, first!.proxyJump, depth + 1);
  return [...before, first!, ...rest];
}

/** What the options given to connect() lend the ProxyJump hops: the callbacks, logging, cancellation. */
function sharedOptions(explicit: Omit<CommonConnectOptions, 'sock'>): Omit<CommonConnectOptions, 'sock'> {
  const { passphrase, password, keyboardInteractive, changePassword, verifyHostKey, debug, signal, readyTimeout } = explicit;
  const knownHosts = explicit.knownHosts === undefined ? undefined : { ask: explicit.knownHosts.ask, onWarning: explicit.knownHosts.onWarning };
  return { passphrase, password, keyboardInteractive, changePassword, verifyHostKey, debug, signal, readyTimeout, knownHosts };
}

/** The connection options for one resolved host, the explicit options winning. */
function plan(o: SshOptions, explicit: Omit<CommonConnectOptions, 'sock'>): PlannedConnection {
  const debug = explicit.debug;
  const path = (p: string): string => expandClientPath(p, o);
  const authMethods =
    explicit.authMethods ??
    o.preferredAuthentications.filter((m) => {
      if (m === 'password') return o.passwordAuthentication;
      if (m === 'keyboard-interactive') return o.kbdInteractiveAuthentication;
      if (m === 'publickey') return o.pubkeyAuthentication !== 'no';
      return true;
    });
  const fromFiles = o.identityFile.map(path).filter((file) => {
    if (existsSync(file)) return true;
    debug?.(`identity file ${file} type -1`);
    return false;
  });
  const privateKeyFiles = [...(explicit.privateKeyFiles ?? []), ...fromFiles];
  const agent = explicit.agent ?? (o.identitiesOnly ? undefined : agentSocket(o));
  const password = explicit.password;
  const limitedPassword =
    typeof password === 'function'
      ? (attempt: number, context: PasswordContext) => (attempt > o.numberOfPasswordPrompts ? undefined : password(attempt, context))
      : password;
  const given = explicit.knownHosts;
  const policy = given?.policy ?? POLICY[o.strictHostKeyChecking];
  const knownHosts: KnownHostsSettings = {
    files: given?.files ?? o.userKnownHostsFile.map(path),
    globalFiles: given?.globalFiles ?? o.globalKnownHostsFile.map(path),
    policy,
    // BatchMode: nobody is asked, so an unknown host is refused.
    ask: o.batchMode ? undefined : given?.ask,
    hash: given?.hash ?? o.hashKnownHosts,
    hostKeyAlias: given?.hostKeyAlias ?? o.hostKeyAlias ?? undefined,
    updateHostKeys: given?.updateHostKeys ?? policy !== 'off',
    onWarning: given?.onWarning,
  };
  const algorithms = explicit.algorithms;
  const options: PlannedOptions = {
    ...explicit,
    host: o.hostName,
    port: o.port,
    username: o.user,
    authMethods,
    publicKeyAlgorithms: explicit.publicKeyAlgorithms ?? o.pubkeyAcceptedAlgorithms,
    privateKeyFiles,
    agent,
    password: limitedPassword,
    knownHosts,
    algorithms: {
      kex: algorithms?.kex ?? o.kexAlgorithms,
      hostKey: algorithms?.hostKey ?? o.hostKeyAlgorithms,
      cipher: algorithms?.cipher ?? o.ciphers,
      mac: algorithms?.mac ?? o.macs,
      compression: algorithms?.compression ?? (o.compression ? ['zlib@openssh.com', 'none'] : ['none']),
    },
    keepaliveInterval: explicit.keepaliveInterval ?? o.serverAliveInterval * 1000,
    keepaliveCountMax: explicit.keepaliveCountMax ?? o.serverAliveCountMax,
    rekeyBytes: explicit.rekeyBytes ?? (o.rekeyLimit.bytes > 0 ? o.rekeyLimit.bytes : undefined),
    rekeyIntervalMs: explicit.rekeyIntervalMs ?? (o.rekeyLimit.seconds > 0 ? o.rekeyLimit.seconds * 1000 : undefined),
  };
  const open = (): Promise<Duplex> =>
    o.proxyCommand !== null && o.proxyCommand !== 'none' ? Promise.resolve(proxyCommand(o, debug)) : openTcp(o, debug, explicit.signal);
  return { hostName: o.hostName, port: o.port, options, open };
}

/** IdentityAgent: `none`, `SSH_AUTH_SOCK` or `$VAR` (that variable), a path; unset: $SSH_AUTH_SOCK. */
function agentSocket(o: SshOptions): string | undefined {
  const setting = o.identityAgent;
  if (setting === 'none') return undefined;
  if (setting === null || setting === 'SSH_AUTH_SOCK') return process.env.SSH_AUTH_SOCK || undefined;
  const variable = /^\$(\w+)$/.exec(setting);
  if (variable) return process.env[variable[1]!] || undefined;
  return expandClientPath(setting, o);
}

/** TCP connect with ConnectTimeout, tried ConnectionAttempts times (one second apart, as ssh). */
async function openTcp(options: SshOptions, debug: ((line: string) => void) | undefined, signal: AbortSignal | undefined): Promise<Socket> {
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= Math.max(1, options.connectionAttempts); attempt++) {
    if (signal?.aborted) break;
    if (attempt > 1) await new Promise((r) => setTimeout(r, 1000));
    debug?.(`Connecting to ${options.hostName} [${options.hostName}] port ${options.port}.`);
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connectTcp({ host: options.hostName, port: options.port });
        const timer =
          options.connectTimeout !== null ? setTimeout(() => socket.destroy(new Error('Connection timed out')), options.connectTimeout * 1000) : undefined;
        socket.once('connect', () => {
          clearTimeout(timer);
          socket.setNoDelay(true);
          debug?.('Connection established.');
          resolve(socket);
        });
        socket.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
    } catch (error) {
      lastError = error as Error;
    }
  }
  const code = (lastError as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, `Could not resolve hostname ${options.hostName}: Name or service not known`, {
      cause: lastError,
    });
  }
  const message = code === 'ECONNREFUSED' ? 'Connection refused' : (lastError?.message ?? 'aborted');
  throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, `connect to host ${options.hostName} port ${options.port}: ${message}`, {
    cause: lastError,
  });
}

/** ProxyCommand: run through /bin/sh with %h %p %r %n … expanded; its stdio is the connection, its stderr ours. */
function proxyCommand(options: SshOptions, debug: ((line: string) => void) | undefined): Duplex {
  const tokens = clientTokens(options);
  const command = options.proxyCommand!.replace(/%(.)/g, (_m, c: string) => (c === '%' ? '%' : (tokens[c] ?? `%${c}`)));
  debug?.(`Executing proxy command: exec ${command}`);
  const child = spawn('/bin/sh', ['-c', `exec ${command}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  stream.on('close', () => child.kill());
  return stream;
}
