/**
 * Running OpenSSH as a test peer, every time in a fresh temporary folder that is removed when the
 * test ends, with every child process stopped by PID. Loopback only, no fixed ports, no stdin.
 *
 *   const fx = await openSshFixture(t);                  // keys, authorized_keys, known_hosts in a temp dir
 *   const config = fx.sshdConfig({ extra: ['KexAlgorithms curve25519-sha256'] });
 *   const sshd = fx.spawnSshdInetd(config);              // sshd -i: speak SSH over sshd.stdin/stdout
 *   const proxy = fx.sshdProxyCommand(config);           // ssh → sshd -i through ProxyCommand
 *   const r = await fx.runSsh(['peer', 'echo hello'], { proxyCommand: proxy.command, verbose: true });
 *   parseSshDebug(r.stderr).kex                          // 'sntrup761x25519-sha512'
 *   const server = await fx.spawnSshdListening(config);  // sshd -D on 127.0.0.1:<free port>
 *
 * Peers are looked up through ./peers.ts, so a missing program throws an error naming it; call
 * havePeers()/skipUnlessPeers() first to skip instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { findPeer, peerPath, peersRequired, systemSshd, type SshdProgram } from './peers.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { formatPrivateKeyFile } from '../../src/keys/private-key-file.js';
import { formatOpenSshPublicKey } from '../../src/keys/public-key-text.js';

export type KeyType = 'ed25519' | 'ecdsa' | 'rsa';
export const HOST_KEY_TYPES: readonly KeyType[] = ['ed25519', 'ecdsa', 'rsa'];

export interface KeyPair {
  type: KeyType;
  /** Path of the private key file (mode 0600, no passphrase). */
  privateKey: string;
  /** Path of the public key file (privateKey + '.pub'). */
  publicKey: string;
  /** The public key line: "ssh-ed25519 AAAA… comment". */
  publicKeyLine: string;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the program could not be started at all. */
  error?: Error;
}

export interface SshdConfigOptions {
  /** Host keys to list, in this order. Default: ed25519, ecdsa, rsa. */
  hostKeys?: readonly KeyType[];
  /** Default DEBUG3 (sshd -e writes it to stderr). */
  logLevel?: string;
  /** Lines added at the end, e.g. 'KexAlgorithms curve25519-sha256', 'Ciphers aes128-ctr', 'MACs hmac-sha2-256'. */
  extra?: readonly string[];
  /**
   * Default true: `SetEnv SHLVL=1`, so a bash started for a command does not read ~/.bashrc (on these
   * machines it runs pyenv init, ~150 ms and output noise). See TESTING.md.
   */
  quietShell?: boolean;
  /** File name inside the fixture folder; default sshd_config, sshd_config.2, … */
  fileName?: string;
}

export interface SshdInetd {
  pid: number;
  /** Bytes to sshd (the client-to-server SSH stream). */
  stdin: Writable;
  /** Bytes from sshd (the server-to-client SSH stream). */
  stdout: Readable;
  /** sshd's -e log so far. */
  stderrText(): string;
  /** Stops sshd by PID (SIGTERM, then SIGKILL) and waits for it. */
  kill(): Promise<ExitStatus>;
  exited: Promise<ExitStatus>;
}

export interface SshdListening {
  pid: number;
  host: '127.0.0.1';
  port: number;
  stderrText(): string;
  /** Stops sshd by PID and waits for it. */
  stop(): Promise<ExitStatus>;
  exited: Promise<ExitStatus>;
}

export interface ProxyCommand {
  /** A value for `ssh -o ProxyCommand=…` that runs `sshd -i` over ssh's stdin/stdout. */
  command: string;
  /** Where that sshd's -e log goes. */
  logFile: string;
  /** That sshd's log so far ('' before it starts). */
  log(): string;
}

export interface RunSshOptions {
  /** The ssh program; default the system's (peers.ts). */
  ssh?: string;
  /** Reach the server through this command's stdin/stdout (e.g. fx.sshdProxyCommand(config).command). */
  proxyCommand?: string;
  port?: number;
  /** Default: the user running the tests. */
  user?: string;
  /** Private key file; default the fixture's user key; null: none. */
  identity?: string | null;
  /** Default 'accept-new' (a fresh known_hosts in the fixture folder). */
  strictHostKeyChecking?: 'yes' | 'no' | 'accept-new';
  /** Default true: never prompt. */
  batchMode?: boolean;
  /** -vvv; otherwise LogLevel=ERROR keeps stderr to real errors. */
  verbose?: boolean;
  /** Extra -o values, e.g. 'KexAlgorithms=curve25519-sha256'. They come first, so they win over the defaults. */
  options?: readonly string[];
  /** Written to ssh's stdin, then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  /** Added to (or, with undefined values, removed from) the environment. */
  env?: Record<string, string | undefined>;
  /** Default 30 s; on expiry ssh is killed and the promise rejects with its stderr. */
  timeoutMs?: number;
}

export interface SshResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The full argument list ssh was given, for failure messages. */
  args: string[];
}

/** Quotes one word for /bin/sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (listen on port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a listening socket'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** sshd refuses to start without its privilege-separation folder; Debian's init would make it. */
export function ensureRunSshd(): void {
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface Tracked {
  child: ChildProcess;
  exited: Promise<ExitStatus>;
}

function track(child: ChildProcess): Tracked {
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, exited };
}

/** Stops one child by its PID: SIGTERM, then SIGKILL if it is still there after a grace period. */
async function stopByPid(tracked: Tracked, graceMs = 2000): Promise<ExitStatus> {
  const { child } = tracked;
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, graceMs);
    const status = await tracked.exited;
    clearTimeout(timer);
    return status;
  }
  return tracked.exited;
}

function collectText(stream: Readable | null): () => string {
  const chunks: Buffer[] = [];
  stream?.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks).toString('utf8');
}

function runToEnd(
  program: string,
  args: readonly string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeoutMs: number; register: (t: Tracked) => () => void },
): Promise<{ status: ExitStatus; stdout: string; stderr: string }> {
  const child = spawn(program, args, {
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  const tracked = track(child);
  const unregister = options.register(tracked);
  const stdout = collectText(child.stdout);
  const stderr = collectText(child.stderr);
  if (options.input !== undefined && child.stdin) {
    child.stdin.on('error', () => {}); // EPIPE when the program exits without reading: not our concern
    child.stdin.end(options.input);
  }
  // 'close' rather than 'exit': it comes after stdout and stderr are fully read.
  const closed = new Promise<ExitStatus>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
  });
  // A grandchild (say a ProxyCommand) can hold the output pipes open after the program exits; give
  // it a moment to finish writing, then stop waiting for it.
  void tracked.exited.then(() => {
    setTimeout(() => {
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, 2000).unref();
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, options.timeoutMs);
  return closed.then((status) => {
    clearTimeout(timer);
    unregister();
    if (status.error) throw new Error(`could not run ${program}: ${status.error.message}`);
    if (timedOut) throw new Error(`${program} ${args.join(' ')} timed out after ${options.timeoutMs} ms; stderr:\n${stderr()}`);
    return { status, stdout: stdout(), stderr: stderr() };
  });
}

// ---------------------------------------------------------------------------------------------
// Keys, made once per process and copied into each fixture (RSA takes ~0.5 s to generate)

let keyCacheDir: string | undefined;
const keyCache = new Map<string, Promise<KeyPair>>();

function cachedKey(type: KeyType, role: 'host' | 'user'): Promise<KeyPair> {
  const id = `${role}_${type}`;
  let pending = keyCache.get(id);
  if (!pending) {
    if (keyCacheDir === undefined) {
      const dir = mkdtempSync(join(tmpdir(), 'tssh-keys-'));
      keyCacheDir = dir;
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    }
    pending = generateKey(type, join(keyCacheDir, id), `tssh-test-${id}`);
    keyCache.set(id, pending);
  }
  return pending;
}

/** Runs ssh-keygen for a new key pair without passphrase at `path` (and path.pub). */
export async function generateKey(type: KeyType, path: string, comment = `tssh-test-${type}`): Promise<KeyPair> {
  // Without OpenSSH (a machine where the interop tests skip), keys for our own programs come from
  // our own generator, so the tests that need only tsshd and tssh still run.
  if (findPeer('ssh-keygen') === undefined && !peersRequired()) {
    const key = await generatePrivateKey(type === 'ecdsa' ? 'ecdsa-p256' : type);
    writeFileSync(path, await formatPrivateKeyFile(key, { format: 'openssh', comment }), { mode: 0o600 });
    writeFileSync(`${path}.pub`, `${formatOpenSshPublicKey(key.publicKey, comment)}\n`);
    return keyPairAt(type, path);
  }
  const args = ['-q', '-t', type, '-N', '', '-C', comment, '-f', path];
  const { status, stderr } = await runToEnd(peerPath('ssh-keygen'), args, { timeoutMs: 60_000, register: () => () => {} });
  if (status.code !== 0) throw new Error(`ssh-keygen ${args.join(' ')} failed (${status.code}): ${stderr}`);
  return keyPairAt(type, path);
}

function keyPairAt(type: KeyType, path: string): KeyPair {
  return { type, privateKey: path, publicKey: `${path}.pub`, publicKeyLine: readFileSync(`${path}.pub`, 'utf8').trim() };
}

function copyKey(key: KeyPair, path: string): KeyPair {
  copyFileSync(key.privateKey, path);
  copyFileSync(key.publicKey, `${path}.pub`);
  return keyPairAt(key.type, path);
}

// ---------------------------------------------------------------------------------------------
// The fixture

export interface FixtureOptions {
  /** Generate this fixture's own keys instead of copies of the per-process ones. */
  freshKeys?: boolean;
  /** Type of the user key; default ed25519. */
  userKeyType?: KeyType;
}

export class OpenSshFixture {
  /** The temporary folder; removed when the test ends. */
  readonly dir: string;
  /** Host keys: ed25519, ecdsa (P-256), rsa (3072). */
  readonly hostKeys: Record<KeyType, KeyPair>;
  /** The user key pair, already in authorizedKeys. */
  readonly userKey: KeyPair;
  readonly authorizedKeys: string;
  /** ssh's UserKnownHostsFile for this test (starts empty). */
  readonly knownHosts: string;
  /** The user the tests run as, which ssh logs in as by default. */
  readonly user: string;

  private readonly children = new Set<Tracked>();
  private configCount = 0;
  private proxyCount = 0;

  constructor(dir: string, hostKeys: Record<KeyType, KeyPair>, userKey: KeyPair) {
    this.dir = dir;
    this.hostKeys = hostKeys;
    this.userKey = userKey;
    this.authorizedKeys = join(dir, 'authorized_keys');
    this.knownHosts = join(dir, 'known_hosts');
    this.user = userInfo().username;
    writeFileSync(this.authorizedKeys, `${userKey.publicKeyLine}\n`, { mode: 0o600 });
    writeFileSync(this.knownHosts, '', { mode: 0o600 });
  }

  /** A path inside the fixture folder. */
  path(name: string): string {
    return join(this.dir, name);
  }

  /** Makes another key pair inside the fixture folder. */
  makeKey(type: KeyType, name: string): Promise<KeyPair> {
    return generateKey(type, this.path(name));
  }

  /** Adds a public key line to authorized_keys (optionally with options, e.g. 'restrict'). */
  authorize(publicKeyLine: string, keyOptions?: string): void {
    const line = keyOptions ? `${keyOptions} ${publicKeyLine}` : publicKeyLine;
    writeFileSync(this.authorizedKeys, `${readFileSync(this.authorizedKeys, 'utf8')}${line}\n`);
  }

  /** Writes an sshd_config into the fixture folder and returns its path. */
  sshdConfig(options: SshdConfigOptions = {}): string {
    this.configCount += 1;
    const fileName = options.fileName ?? (this.configCount === 1 ? 'sshd_config' : `sshd_config.${this.configCount}`);
    const lines = [
      ...(options.hostKeys ?? HOST_KEY_TYPES).map((type) => `HostKey ${this.hostKeys[type].privateKey}`),
      `AuthorizedKeysFile ${this.authorizedKeys}`,
      'StrictModes no',
      'PidFile none',
      'UsePAM no',
      'ListenAddress 127.0.0.1',
      `LogLevel ${options.logLevel ?? 'DEBUG3'}`,
      ...(options.quietShell === false ? [] : ['SetEnv SHLVL=1']),
      ...(options.extra ?? []),
    ];
    const path = this.path(fileName);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  }

  private register(tracked: Tracked): () => void {
    this.children.add(tracked);
    return () => this.children.delete(tracked);
  }

  /**
   * `sshd -i -e -f CONFIG` as a child: one SSH connection over its stdin/stdout, its log on stderr.
   * `extraArgs` go after the config (e.g. ['-o', 'Ciphers=aes128-ctr']).
   */
  spawnSshdInetd(config = this.sshdConfig(), sshd: SshdProgram = systemSshd(), extraArgs: readonly string[] = []): SshdInetd {
    ensureRunSshd();
    const child = spawn(sshd.path, [...sshd.args, '-i', '-e', '-f', config, ...extraArgs], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const tracked = track(child);
    this.register(tracked);
    const stderrText = collectText(child.stderr);
    // sshd closing its end while our side still writes must not crash the test process.
    child.stdin?.on('error', () => {});
    if (!child.stdin || !child.stdout || child.pid === undefined) {
      throw new Error(`could not start ${sshd.path}: ${stderrText()}`);
    }
    return {
      pid: child.pid,
      stdin: child.stdin,
      stdout: child.stdout,
      stderrText,
      kill: () => stopByPid(tracked),
      exited: tracked.exited,
    };
  }

  /** A ProxyCommand that runs `sshd -i` for each connection, its log appended to a file in the fixture. */
  sshdProxyCommand(config = this.sshdConfig(), sshd: SshdProgram = systemSshd(), extraArgs: readonly string[] = []): ProxyCommand {
    ensureRunSshd();
    this.proxyCount += 1;
    const logFile = this.path(`sshd-proxy-${this.proxyCount}.log`);
    writeFileSync(logFile, '');
    const words = [sshd.path, ...sshd.args, '-i', '-e', '-f', config, ...extraArgs];
    // ssh expands %-tokens in ProxyCommand, so a literal % is written %%.
    const command = `${words.map(shellQuote).join(' ')} 2>>${shellQuote(logFile)}`.replace(/%/g, '%%');
    return { command, logFile, log: () => readFileSync(logFile, 'utf8') };
  }

  /**
   * `sshd -D -e -f CONFIG -p PORT` on 127.0.0.1 and a free port; resolves once it listens. Retries
   * with another port if the free port was taken in between.
   */
  async spawnSshdListening(
    config = this.sshdConfig(),
    sshd: SshdProgram = systemSshd(),
    extraArgs: readonly string[] = [],
  ): Promise<SshdListening> {
    ensureRunSshd();
    let lastLog = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const child = spawn(sshd.path, [...sshd.args, '-D', '-e', '-f', config, '-p', String(port), ...extraArgs], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const tracked = track(child);
      this.register(tracked);
      const stderrText = collectText(child.stderr);
      const outcome = await waitUntilListening(port, stderrText, tracked.exited, 15_000);
      if (outcome === 'listening' && child.pid !== undefined) {
        return {
          pid: child.pid,
          host: '127.0.0.1',
          port,
          stderrText,
          stop: () => stopByPid(tracked),
          exited: tracked.exited,
        };
      }
      await stopByPid(tracked);
      lastLog = stderrText();
      if (outcome === 'timeout' || !/Address already in use/i.test(lastLog)) break;
    }
    throw new Error(`sshd did not start listening on 127.0.0.1; its log:\n${lastLog}`);
  }

  /**
   * Runs ssh with a clean configuration: -F /dev/null, this fixture's known_hosts, the user key only,
   * no agent, BatchMode. `args` follow the options: the destination and an optional command, e.g.
   * ['127.0.0.1', 'echo hello'] (with proxyCommand any host name will do).
   */
  /**
   * The options ssh, sftp, scp and tssh need to reach a server with this fixture's key and
   * known_hosts only, never prompting: `-P` for sftp and scp, `-p` for the others. `quiet` adds
   * LogLevel=ERROR (no "Permanently added" warnings).
   */
  clientOptions(port: number, options: { portFlag?: '-p' | '-P'; quiet?: boolean } = {}): string[] {
    return [
      '-F', '/dev/null',
      '-o', `UserKnownHostsFile=${this.knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=accept-new',
      '-o', 'BatchMode=yes',
      '-o', 'IdentityAgent=none',
      '-o', 'IdentitiesOnly=yes',
      ...(options.quiet ? ['-o', 'LogLevel=ERROR'] : []),
      '-i', this.userKey.privateKey,
      options.portFlag ?? '-p', String(port),
    ];
  }

  async runSsh(args: readonly string[], options: RunSshOptions = {}): Promise<SshResult> {
    const identity = options.identity === undefined ? this.userKey.privateKey : options.identity;
    const o = (value: string): string[] => ['-o', value];
    // ssh keeps the first value given for an option, so the caller's options come first and win.
    const full = [
      ...(options.verbose ? ['-vvv'] : []),
      '-F', '/dev/null',
      ...(options.options ?? []).flatMap(o),
      ...o(`UserKnownHostsFile=${this.knownHosts}`),
      ...o('GlobalKnownHostsFile=/dev/null'),
      ...o(`StrictHostKeyChecking=${options.strictHostKeyChecking ?? 'accept-new'}`),
      ...o(`BatchMode=${options.batchMode === false ? 'no' : 'yes'}`),
      ...o('IdentityAgent=none'),
      ...o('IdentitiesOnly=yes'),
      ...o('ConnectTimeout=15'),
      ...(options.verbose ? [] : o('LogLevel=ERROR')),
      ...(identity === null ? o('PubkeyAuthentication=no') : ['-i', identity]),
      ...(options.proxyCommand !== undefined ? o(`ProxyCommand=${options.proxyCommand}`) : []),
      ...(options.port !== undefined ? ['-p', String(options.port)] : []),
      '-l', options.user ?? this.user,
      ...args,
    ];
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.SSH_AUTH_SOCK;
    for (const [key, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete env[key];
      else env[key] = value;
    }
    const { status, stdout, stderr } = await runToEnd(options.ssh ?? peerPath('ssh'), full, {
      input: options.input,
      env,
      timeoutMs: options.timeoutMs ?? 30_000,
      register: (t) => this.register(t),
    });
    return { code: status.code, signal: status.signal, stdout, stderr, args: full };
  }

  /** Stops every child still running (by PID) and removes the folder; registered with t.after. */
  async cleanup(): Promise<void> {
    await Promise.all([...this.children].map((c) => stopByPid(c)));
    this.children.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function waitUntilListening(
  port: number,
  stderrText: () => string,
  exited: Promise<ExitStatus>,
  timeoutMs: number,
): Promise<'listening' | 'exited' | 'timeout'> {
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const started = Date.now();
  const banner = new RegExp(`Server listening on 127\\.0\\.0\\.1 port ${port}\\b`);
  while (Date.now() - started < timeoutMs) {
    if (banner.test(stderrText())) return 'listening';
    if (hasExited) return 'exited';
    // Without the banner (a config with LogLevel QUIET) fall back to a connection probe, now and then.
    if (Date.now() - started > 2000 && (await canConnect(port))) return 'listening';
    await new Promise((r) => setTimeout(r, 25));
  }
  return 'timeout';
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A fresh temporary folder with host keys (ed25519, ecdsa, rsa), a user key and its
 * authorized_keys, removed (and its children stopped) when the test ends.
 */
export async function openSshFixture(t: TestContext, options: FixtureOptions = {}): Promise<OpenSshFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-test-'));
  let fixture: OpenSshFixture | undefined;
  t.after(() => (fixture ? fixture.cleanup() : rmSync(dir, { recursive: true, force: true })));
  const userKeyType = options.userKeyType ?? 'ed25519';
  const make = (type: KeyType, role: 'host' | 'user'): Promise<KeyPair> =>
    options.freshKeys
      ? generateKey(type, join(dir, `${role}_${type}`), `tssh-test-${role}_${type}`)
      : cachedKey(type, role).then((key) => copyKey(key, join(dir, `${role}_${type}`)));
  const [ed25519, ecdsa, rsa, userKey] = await Promise.all([
    make('ed25519', 'host'),
    make('ecdsa', 'host'),
    make('rsa', 'host'),
    make(userKeyType, 'user'),
  ]);
  fixture = new OpenSshFixture(dir, { ed25519, ecdsa, rsa }, userKey);
  return fixture;
}

// ---------------------------------------------------------------------------------------------
// Reading OpenSSH's debug logs

export interface DirectionAlgorithms {
  cipher: string;
  /** '<implicit>' for AEAD ciphers. */
  mac: string;
  compression: string;
}

/** What both ssh -vvv and sshd -e (DEBUG) log about the key exchange (the first one, if rekeyed). */
export interface KexLog {
  /** The peer's software version, e.g. 'OpenSSH_9.2p1 Debian-2+deb12u10'. */
  remoteSoftware?: string;
  kex?: string;
  hostKeyAlgorithm?: string;
  clientToServer?: DirectionAlgorithms;
  serverToClient?: DirectionAlgorithms;
  /** How many key exchanges were logged (more than one after a rekey). */
  kexCount: number;
}

export interface SshDebug extends KexLog {
  /** 'ssh-ed25519 SHA256:…' from "Server host key: …". */
  serverHostKey?: string;
  /** SSH2_MSG_SERVICE_ACCEPT for ssh-userauth arrived (the transport layer is complete). */
  serviceAccepted: boolean;
  /** The last "Authentications that can continue" list. */
  authMethodsOffered: string[];
  authenticated: boolean;
  /** e.g. 'publickey'. */
  authMethod?: string;
  permissionDenied: boolean;
}

export interface SshdLog extends KexLog {
  /** "Accepted publickey for root from …": the method and user of the successful authentication. */
  accepted?: { method: string; user: string };
  authenticated: boolean;
}

function parseKexLog(log: string): KexLog {
  const result: KexLog = { kexCount: 0 };
  const direction = (text: string): DirectionAlgorithms | undefined => {
    const m = /cipher: (\S+) MAC: (\S+) compression: (\S+)/.exec(text);
    return m ? { cipher: m[1]!, mac: m[2]!, compression: m[3]! } : undefined;
  };
  for (const raw of log.split(/\r?\n/)) {
    // sshd marks pre-authentication lines with " [preauth]".
    const line = raw.replace(/ \[preauth\]$/, '');
    let m: RegExpExecArray | null;
    if ((m = /remote software version (.+)$/.exec(line)) && result.remoteSoftware === undefined) {
      result.remoteSoftware = m[1]!.trim();
    } else if ((m = /debug1: kex: algorithm: (\S+)/.exec(line))) {
      result.kexCount += 1;
      result.kex ??= m[1]!;
    } else if ((m = /debug1: kex: host key algorithm: (\S+)/.exec(line))) {
      result.hostKeyAlgorithm ??= m[1]!;
    } else if ((m = /debug1: kex: client->server (.*)$/.exec(line))) {
      result.clientToServer ??= direction(m[1]!);
    } else if ((m = /debug1: kex: server->client (.*)$/.exec(line))) {
      result.serverToClient ??= direction(m[1]!);
    }
  }
  return result;
}

/** Reads `ssh -vvv` stderr: negotiated algorithms, service accept, authentication outcome. */
export function parseSshDebug(stderr: string): SshDebug {
  const result: SshDebug = {
    ...parseKexLog(stderr),
    serviceAccepted: false,
    authMethodsOffered: [],
    authenticated: false,
    permissionDenied: false,
  };
  for (const line of stderr.split(/\r?\n/)) {
    let m: RegExpExecArray | null;
    if ((m = /debug1: Server host key: (\S+ \S+)/.exec(line))) result.serverHostKey ??= m[1]!;
    else if (/SSH2_MSG_SERVICE_ACCEPT received/.test(line)) result.serviceAccepted = true;
    else if ((m = /Authentications that can continue: (\S+)/.exec(line))) result.authMethodsOffered = m[1]!.split(',');
    else if ((m = /^Authenticated to .* using "([^"]+)"/.exec(line)) || (m = /Authentication succeeded \(([^)]+)\)/.exec(line))) {
      result.authenticated = true;
      result.authMethod ??= m[1]!;
    } else if (/Permission denied \(/.test(line)) result.permissionDenied = true;
  }
  return result;
}

/** Reads `sshd -e` stderr at LogLevel DEBUG or above: negotiated algorithms and the accepted login. */
export function parseSshdLog(stderr: string): SshdLog {
  const result: SshdLog = { ...parseKexLog(stderr), authenticated: false };
  const m = /Accepted (\S+) for (\S+) from /.exec(stderr);
  if (m) {
    result.accepted = { method: m[1]!, user: m[2]! };
    result.authenticated = true;
  }
  return result;
}
