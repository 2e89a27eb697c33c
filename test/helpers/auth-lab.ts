/**
 * What the authentication interop tests (test/interop/auth-server.test.ts, auth-client.test.ts and
 * test/api/auth-errors.test.ts) share, on top of ./openssh.ts and ./peers.ts:
 *
 *   const lab = await createLab();             // an OpenSshFixture made without a TestContext, for
 *   after(() => lab.cleanup());                //   describe-level before()/after() hooks
 *   const key = await makeUserKey(lab, 'ecdsa-384');           // ssh-keygen; its fingerprint as ssh-keygen -l prints it
 *   const tsshd = await startTsshd(lab, ['PasswordFile …']);   // dist/bin/tsshd.js -f CONFIG -e -D on a free port
 *   await tsshdPasswd(file, 'root', 'secret');                 // `tsshd passwd -f FILE add USER`, password on stdin
 *   const askpass = writeAskpass(lab, 'good', 'secret');       // for ssh: SSH_ASKPASS=… SSH_ASKPASS_REQUIRE=force DISPLAY=…
 *   const config = writeSshdConfig(lab, ['UsePAM yes']);        // sshd_config whose first lines are the caller's
 *   const agent = await startSshAgent(lab);                     // ssh-agent -D -a SOCK; agent.add(keyFile)
 *   const user = await createSystemUser('password');            // useradd -m + chpasswd; user.remove() = userdel -r
 *
 * Every child is stopped by its PID (SIGTERM, then SIGKILL), never by name.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, generateKey, OpenSshFixture, type SshdInetd } from './openssh.js';
import { peerPath, peersRequired } from './peers.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The compiled tsshd program. */
export const TSSHD = join(REPO_ROOT, 'dist', 'bin', 'tsshd.js');

// ---------------------------------------------------------------------------------------------
// Small process helpers

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end (stdin: `input` or nothing), with a time limit. */
export function run(
  program: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      program,
      args,
      { env: options.env ?? process.env, timeout: options.timeoutMs ?? 30_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (!error) return resolvePromise({ code: 0, stdout, stderr });
        // A number: the program ran and exited with it. Otherwise it could not start or was killed.
        if (typeof error.code === 'number') return resolvePromise({ code: error.code, stdout, stderr });
        reject(new Error(`${program} ${args.join(' ')}: ${error.message}\n${stderr}`));
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

/** Polls `text()` until `pattern` matches what came after `since` characters; rejects after the time limit. */
export async function waitForText(
  text: () => string,
  pattern: RegExp,
  options: { since?: number; timeoutMs?: number; what?: string } = {},
): Promise<RegExpExecArray> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 10_000;
  for (;;) {
    const match = pattern.exec(text().slice(options.since ?? 0));
    if (match) return match;
    if (Date.now() - started > timeoutMs) {
      throw new Error(`${options.what ?? 'log'} did not show ${pattern} within ${timeoutMs} ms; it has:\n${text().slice(options.since ?? 0)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Child {
  child: ChildProcess;
  exited: Promise<void>;
  stderr: () => string;
}

function spawnTracked(program: string, args: readonly string[], env?: NodeJS.ProcessEnv): Child {
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const chunks: Buffer[] = [];
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exited = new Promise<void>((r) => {
    child.once('exit', () => r());
    child.once('error', () => r());
  });
  return { child, exited, stderr: () => Buffer.concat(chunks).toString('utf8') };
}

/** SIGTERM by PID, SIGKILL after a grace period; resolves when the process is gone. */
async function stopChild(c: Child, graceMs = 3000): Promise<void> {
  const { child } = c;
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return c.exited;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return c.exited;
  }
  const timer = setTimeout(() => {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  await c.exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// The lab: an OpenSshFixture for hooks

/**
 * An OpenSshFixture (host keys ed25519/ecdsa/rsa, a user ed25519 key in authorized_keys, an empty
 * known_hosts) in a fresh temporary folder, made without a TestContext so that a describe block's
 * before() can build it once; call `cleanup()` in after(). Children started through the fixture
 * (spawnSshdListening, runSsh) are stopped by cleanup().
 */
export async function createLab(): Promise<OpenSshFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-auth-'));
  try {
    const [ed25519, ecdsa, rsa, user] = await Promise.all([
      generateKey('ed25519', join(dir, 'host_ed25519'), 'tssh-auth-host-ed25519'),
      generateKey('ecdsa', join(dir, 'host_ecdsa'), 'tssh-auth-host-ecdsa'),
      generateKey('rsa', join(dir, 'host_rsa'), 'tssh-auth-host-rsa'),
      generateKey('ed25519', join(dir, 'user_ed25519'), 'tssh-auth-user-ed25519'),
    ]);
    return new OpenSshFixture(dir, { ed25519, ecdsa, rsa }, user);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Keys made by ssh-keygen

export type UserKeyKind = 'ed25519' | 'ecdsa-256' | 'ecdsa-384' | 'ecdsa-521' | 'rsa' | 'rsa-pem';

export interface UserKey {
  kind: UserKeyKind;
  privateKey: string;
  publicKey: string;
  publicKeyLine: string;
  /** `SHA256:…` as ssh-keygen -l prints it. */
  fingerprint: string;
  /** ssh-keygen -l's key label: ED25519, ECDSA, RSA. */
  label: string;
  passphrase: string | undefined;
}

/** ssh-keygen -l -f FILE: the SHA256 fingerprint and the type label, e.g. ['SHA256:…', 'ED25519']. */
export async function keygenFingerprint(path: string): Promise<{ fingerprint: string; label: string }> {
  const r = await run(peerPath('ssh-keygen'), ['-l', '-f', path]);
  const m = /^\d+ (SHA256:\S+) .*\((\S+)\)\s*$/.exec(r.stdout.trim());
  if (r.code !== 0 || !m) throw new Error(`ssh-keygen -l -f ${path} failed (${r.code}): ${r.stdout}${r.stderr}`);
  return { fingerprint: m[1]!, label: m[2]! };
}

/**
 * A user key pair made by ssh-keygen in the lab folder (optionally encrypted with `passphrase`),
 * and added to the lab's authorized_keys unless `authorize` is false.
 */
export async function makeUserKey(
  lab: OpenSshFixture,
  kind: UserKeyKind,
  options: { name?: string; passphrase?: string; authorize?: boolean } = {},
): Promise<UserKey> {
  const path = lab.path(options.name ?? `id_${kind}`);
  const typeArgs: Record<UserKeyKind, string[]> = {
    ed25519: ['-t', 'ed25519'],
    'ecdsa-256': ['-t', 'ecdsa', '-b', '256'],
    'ecdsa-384': ['-t', 'ecdsa', '-b', '384'],
    'ecdsa-521': ['-t', 'ecdsa', '-b', '521'],
    rsa: ['-t', 'rsa', '-b', '3072'],
    'rsa-pem': ['-t', 'rsa', '-b', '2048', '-m', 'PEM'],
  };
  const args = ['-q', ...typeArgs[kind], '-N', options.passphrase ?? '', '-C', `tssh-auth-${kind}`, '-f', path];
  const r = await run(peerPath('ssh-keygen'), args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`ssh-keygen ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  const publicKeyLine = readFileSync(`${path}.pub`, 'utf8').trim();
  if (options.authorize !== false) lab.authorize(publicKeyLine);
  const { fingerprint, label } = await keygenFingerprint(`${path}.pub`);
  return { kind, privateKey: path, publicKey: `${path}.pub`, publicKeyLine, fingerprint, label, passphrase: options.passphrase };
}

// ---------------------------------------------------------------------------------------------
// tsshd

export interface Tsshd {
  pid: number;
  port: number;
  config: string;
  /** Everything tsshd wrote to stderr (its -e log) so far. */
  log(): string;
  /** Waits until the log after `since` characters matches. */
  waitForLog(pattern: RegExp, since?: number, timeoutMs?: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

let tsshdCount = 0;

/**
 * Writes a tsshd config (the lab's three host keys, its authorized_keys, StrictModes no,
 * `SetEnv SHLVL=1`, Port and ListenAddress 127.0.0.1, then `lines`, then `trailing`: Match blocks) and runs
 * `[options.prefix] node [options.nodeArgs] dist/bin/tsshd.js -f CONFIG -e -D [args]` (with
 * options.env added to the environment; a prefix such as setpriv must exec node, so that the PID
 * stays tsshd's); resolves once it listens. Retries on another free port if the port was taken
 * in between.
 */
export async function startTsshd(
  lab: OpenSshFixture,
  lines: readonly string[],
  args: readonly string[] = [],
  trailing: readonly string[] = [],
  options: { nodeArgs?: readonly string[]; env?: NodeJS.ProcessEnv; prefix?: readonly string[] } = {},
): Promise<Tsshd> {
  if (!existsSync(TSSHD)) throw new Error(`${TSSHD} is missing: build first (npx tsc -p .)`);
  tsshdCount += 1;
  const config = lab.path(`tsshd_config.${tsshdCount}`);
  let lastLog = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const text = [
      // Caller's lines first: like sshd, the first value of a keyword is the one that counts.
      ...lines,
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${lab.hostKeys.ed25519.privateKey}`,
      `HostKey ${lab.hostKeys.ecdsa.privateKey}`,
      `HostKey ${lab.hostKeys.rsa.privateKey}`,
      `AuthorizedKeysFile ${lab.authorizedKeys}`,
      'StrictModes no',
      'SetEnv SHLVL=1',
      // Match blocks, which must come after every global line.
      ...trailing,
    ].join('\n');
    writeFileSync(config, `${text}\n`);
    const argv = [...(options.prefix ?? []), process.execPath, ...(options.nodeArgs ?? []), TSSHD, '-f', config, '-e', '-D', ...args];
    const c = spawnTracked(argv[0]!, argv.slice(1), options.env && { ...process.env, ...options.env });
    let gone = false;
    void c.exited.then(() => (gone = true));
    const started = Date.now();
    const listening = new RegExp(`Server listening on 127\\.0\\.0\\.1 port ${port}\\b`);
    while (!gone && !listening.test(c.stderr()) && Date.now() - started < 20_000) {
      await new Promise((r) => setTimeout(r, 25));
    }
    if (listening.test(c.stderr()) && c.child.pid !== undefined) {
      return {
        pid: c.child.pid,
        port,
        config,
        log: c.stderr,
        waitForLog: (pattern, since = 0, timeoutMs = 10_000) => waitForText(c.stderr, pattern, { since, timeoutMs, what: 'tsshd log' }),
        stop: () => stopChild(c),
      };
    }
    await stopChild(c);
    lastLog = c.stderr();
    if (!/Address already in use/.test(lastLog)) break;
  }
  throw new Error(`tsshd did not start listening; its log:\n${lastLog}`);
}

/** `tsshd passwd -f FILE add USER`, the password on stdin. */
export async function tsshdPasswd(file: string, user: string, password: string): Promise<void> {
  const r = await run(process.execPath, [TSSHD, 'passwd', '-f', file, 'add', user], { input: `${password}\n` });
  if (r.code !== 0) throw new Error(`tsshd passwd add ${user} failed (${r.code}): ${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// SSH_ASKPASS

export interface Askpass {
  script: string;
  /** The environment that makes ssh (and ssh-add) ask this script instead of a terminal. */
  env: Record<string, string>;
  /** The prompts the script was asked so far, one per call. */
  prompts(): string[];
}

/** A script for SSH_ASKPASS that records its prompt and prints `answer`. */
export function writeAskpass(lab: OpenSshFixture, name: string, answer: string): Askpass {
  const script = lab.path(`askpass-${name}.sh`);
  const promptLog = `${script}.prompts`;
  const answerFile = `${script}.answer`;
  writeFileSync(answerFile, `${answer}\n`, { mode: 0o600 });
  writeFileSync(promptLog, '');
  writeFileSync(
    script,
    `#!/bin/sh\nprintf '%s\\n' "$1" >> '${promptLog}'\ncat '${answerFile}'\n`,
  );
  chmodSync(script, 0o700);
  return {
    script,
    env: { SSH_ASKPASS: script, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
    prompts: () => readFileSync(promptLog, 'utf8').split('\n').filter((l) => l !== ''),
  };
}

// ---------------------------------------------------------------------------------------------
// sshd configs for our client

let sshdConfigCount = 0;

/**
 * An sshd_config in the lab folder whose first lines are `lines` (sshd keeps the first value of a
 * keyword, so these win), followed by the lab's host keys, authorized_keys, StrictModes no,
 * PidFile none, ListenAddress 127.0.0.1, LogLevel DEBUG3 and SetEnv SHLVL=1. Unlike
 * OpenSshFixture.sshdConfig it does not fix UsePAM.
 */
export function writeSshdConfig(lab: OpenSshFixture, lines: readonly string[]): string {
  sshdConfigCount += 1;
  const path = lab.path(`auth_sshd_config.${sshdConfigCount}`);
  const text = [
    ...lines,
    `HostKey ${lab.hostKeys.ed25519.privateKey}`,
    `HostKey ${lab.hostKeys.ecdsa.privateKey}`,
    `HostKey ${lab.hostKeys.rsa.privateKey}`,
    `AuthorizedKeysFile ${lab.authorizedKeys}`,
    'StrictModes no',
    'PidFile none',
    'ListenAddress 127.0.0.1',
    'LogLevel DEBUG3',
    'SetEnv SHLVL=1',
  ];
  writeFileSync(path, `${text.join('\n')}\n`);
  return path;
}

/** A known_hosts file in the lab folder that trusts the lab's host keys for [127.0.0.1]:port. */
export function trustLabHostKeys(lab: OpenSshFixture, port: number, name = `known_hosts.${port}`): string {
  const path = lab.path(name);
  const lines = [lab.hostKeys.ed25519, lab.hostKeys.ecdsa, lab.hostKeys.rsa].map((k) => {
    const [type, blob] = k.publicKeyLine.split(' ');
    return `[127.0.0.1]:${port} ${type} ${blob}`;
  });
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** sshd -i's pipes as one Duplex, for connect({ sock }). */
export function inetdSock(sshd: SshdInetd): Duplex {
  return Duplex.from({ readable: sshd.stdout, writable: sshd.stdin });
}

// ---------------------------------------------------------------------------------------------
// ssh-agent

export interface SshAgentProcess {
  socket: string;
  pid: number;
  /** ssh-add FILE (a passphrase is given through SSH_ASKPASS). */
  add(keyFile: string, passphrase?: string): Promise<void>;
  /** ssh-add -D. */
  removeAll(): Promise<void>;
  /** ssh-add -l lines. */
  list(): Promise<string[]>;
  stop(): Promise<void>;
}

/** `ssh-agent -D -a SOCK` with its socket in the lab folder; resolves once the socket exists. */
export async function startSshAgent(lab: OpenSshFixture, name = 'agent'): Promise<SshAgentProcess> {
  const socket = lab.path(`${name}.sock`);
  const c = spawnTracked(peerPath('ssh-agent'), ['-D', '-a', socket]);
  const started = Date.now();
  while (!existsSync(socket)) {
    if (c.child.exitCode !== null || Date.now() - started > 10_000) {
      await stopChild(c);
      throw new Error(`ssh-agent did not create ${socket}: ${c.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const sshAdd = async (args: string[], passphrase?: string): Promise<RunResult> => {
    const env: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: socket };
    if (passphrase !== undefined) Object.assign(env, writeAskpass(lab, `ssh-add-${randomBytes(4).toString('hex')}`, passphrase).env);
    return run(join(dirname(peerPath('ssh-agent')), 'ssh-add'), args, { env });
  };
  return {
    socket,
    pid: c.child.pid!,
    add: async (keyFile, passphrase) => {
      const r = await sshAdd([keyFile], passphrase);
      if (r.code !== 0) throw new Error(`ssh-add ${keyFile} failed (${r.code}): ${r.stderr}`);
    },
    removeAll: async () => {
      const r = await sshAdd(['-D']);
      if (r.code !== 0) throw new Error(`ssh-add -D failed (${r.code}): ${r.stderr}`);
    },
    list: async () => (await sshAdd(['-l'])).stdout.split('\n').filter((l) => l !== ''),
    stop: () => stopChild(c),
  };
}

// ---------------------------------------------------------------------------------------------
// Throwaway system users (root only)

export interface SystemUserHandle {
  name: string;
  password: string;
  /** userdel -r; safe to call twice. */
  remove(): Promise<void>;
}

/** Why throwaway users cannot be made here, or undefined when they can. */
export function systemUsersUnavailable(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root to create a throwaway user (useradd)';
  for (const program of ['/usr/sbin/useradd', '/usr/sbin/chpasswd', '/usr/sbin/userdel']) {
    if (!existsSync(program)) return `needs ${program} (Debian package passwd)`;
  }
  return undefined;
}

/**
 * For a test that needs a throwaway user: true when one can be made; else skips the test, or under
 * TSSH_REQUIRE_PEERS=1 throws so that it fails.
 */
export function canMakeSystemUsers(t: TestContext): boolean {
  const reason = systemUsersUnavailable();
  if (reason === undefined) return true;
  if (peersRequired()) throw new Error(`${reason}; TSSH_REQUIRE_PEERS=1 forbids skipping, so this is a failure`);
  t.skip(reason);
  return false;
}

/**
 * `useradd -m -s /bin/bash tsshXXXXXX` and `chpasswd`; retried while another process holds the
 * passwd lock (test files run in parallel).
 */
export async function createSystemUser(password: string): Promise<SystemUserHandle> {
  const name = `tssh${randomBytes(4).toString('hex')}`;
  let last: RunResult | undefined;
  for (let attempt = 0; attempt < 20; attempt++) {
    last = await run('/usr/sbin/useradd', ['-m', '-s', '/bin/bash', name]);
    if (last.code === 0) break;
    // 1: cannot update the password file (locked), 10: cannot update the group file.
    if (last.code !== 1 && last.code !== 10) break;
    await new Promise((r) => setTimeout(r, 100 + attempt * 50));
  }
  if (last?.code !== 0) throw new Error(`useradd ${name} failed (${last?.code}): ${last?.stderr}`);
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    for (let attempt = 0; attempt < 20; attempt++) {
      const r = await run('/usr/sbin/userdel', ['-r', name]);
      // 0 done; 12 could not remove the home folder or mail spool (there was none): the user is gone.
      if (r.code === 0 || r.code === 12 || r.code === 6) break;
      await new Promise((res) => setTimeout(res, 100 + attempt * 50));
    }
    removed = true;
  };
  for (let attempt = 0; attempt < 20; attempt++) {
    last = await run('/usr/sbin/chpasswd', [], { input: `${name}:${password}\n` });
    if (last.code === 0) return { name, password, remove };
    await new Promise((r) => setTimeout(r, 100 + attempt * 50));
  }
  await remove();
  throw new Error(`chpasswd for ${name} failed (${last?.code}): ${last?.stderr}`);
}

