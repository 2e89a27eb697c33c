/**
 * Finding the real programs that interop tests use as peers (OpenSSH's ssh/sshd/ssh-keygen/ssh-agent,
 * tmux, and OpenSSH 10 unpacked into a cache folder), and the skip rule:
 *
 * - a test whose peer is missing is SKIPPED with a message naming the program and its Debian package;
 * - unless TSSH_REQUIRE_PEERS=1 (CI sets it): then a missing peer is a test FAILURE, so CI can never
 *   pass by skipping.
 *
 * One line in a test:
 *
 *   test('…', async (t) => { if (!havePeers(t, 'ssh', 'sshd')) return; … });
 *   test('…', { skip: skipUnlessPeers('ssh', 'sshd') }, async (t) => { … });
 *
 * OpenSSH 10 (for mlkem768x25519-sha256) comes from the network, so it is optional even in CI:
 *
 *   const openssh10 = await needOpenSsh10(t); if (!openssh10) return;
 *
 * Overrides, honoured everywhere (also the way to simulate a machine without OpenSSH):
 *   TSSH_PEER_SSH, TSSH_PEER_SSHD, TSSH_PEER_SSH_KEYGEN, TSSH_PEER_SSH_AGENT, TSSH_PEER_TMUX, TSSH_PEER_CLANG:
 *     an absolute path to use instead, or "none" to treat the program as absent;
 *   TSSH_HIDE_PEERS=1: every peer, OpenSSH 10 included, is treated as absent;
 *   TSSH_CACHE: the cache folder (default ~/.cache/tssh), OpenSSH 10 lives in its openssh10/;
 *   TSSH_REQUIRE_OPENSSH10=1: a missing OpenSSH 10 fails instead of skipping.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { loadNodePty } from '../../src/cli/sshd/pty.js';

export type PeerName = 'ssh' | 'sshd' | 'ssh-keygen' | 'ssh-agent' | 'tmux' | 'clang';

/** The Debian package that provides each peer, for the skip message. */
const PACKAGE: Record<PeerName, string> = {
  ssh: 'openssh-client',
  sshd: 'openssh-server',
  'ssh-keygen': 'openssh-client',
  'ssh-agent': 'openssh-client',
  tmux: 'tmux',
  // Rebuilds the WebAssembly Poly1305 from its C source; wasm-ld comes from lld.
  clang: 'clang and lld',
};

/** Where a program is looked for besides PATH: sshd lives in /usr/sbin, often not on a user's PATH. */
const EXTRA_DIRS: readonly string[] = ['/usr/sbin', '/usr/bin'];

/** True when CI asked that a missing peer fail the test rather than skip it. */
export function peersRequired(): boolean {
  return process.env.TSSH_REQUIRE_PEERS === '1';
}

function peersHidden(): boolean {
  return process.env.TSSH_HIDE_PEERS === '1';
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function overrideVariable(name: PeerName): string {
  return `TSSH_PEER_${name.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * The absolute path of a peer program, or undefined when it is absent. Absolute because sshd
 * refuses to run otherwise (it re-executes itself).
 */
export function findPeer(name: PeerName): string | undefined {
  if (peersHidden()) return undefined;
  const override = process.env[overrideVariable(name)];
  if (override !== undefined && override !== '') {
    if (override === 'none') return undefined;
    const path = resolve(override);
    return isExecutable(path) ? path : undefined;
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d));
  // sshd: the system's own first, as TESTING.md and the Debian package put it there.
  const order = name === 'sshd' ? [...EXTRA_DIRS, ...dirs] : [...dirs, ...EXTRA_DIRS];
  for (const dir of order) {
    const path = join(dir, name);
    if (isExecutable(path)) return path;
  }
  return undefined;
}

/** The message a test skips (or fails) with when a peer is absent. */
export function missingPeerMessage(name: PeerName): string {
  return `needs ${name} (Debian package ${PACKAGE[name]})`;
}

/** The first absent peer's message, or undefined when all are present. */
export function missingPeers(...names: PeerName[]): string | undefined {
  const missing = names.filter((n) => findPeer(n) === undefined);
  if (missing.length === 0) return undefined;
  return missing.map(missingPeerMessage).join('; ');
}

function requiredFailure(message: string, variable: string): Error {
  return new Error(`${message}; ${variable}=1 forbids skipping, so this is a failure`);
}

/**
 * For the `skip` option of test(): a skip reason naming the missing program, or false. Under
 * TSSH_REQUIRE_PEERS=1 it is always false, so the test runs and fails where it asks for the program
 * (peerPath throws with the same message).
 */
export function skipUnlessPeers(...names: PeerName[]): string | false {
  if (peersRequired()) return false;
  return missingPeers(...names) ?? false;
}

/**
 * Inside a test that needs root (sshd -T, another user's files): true as root; otherwise skips
 * with `why`, or, under TSSH_REQUIRE_PEERS=1 (CI runs as root), throws so the test fails.
 */
export function haveRoot(t: TestContext, why: string): boolean {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return true;
  if (peersRequired()) throw new Error(`${why}; TSSH_REQUIRE_PEERS=1 forbids skipping`);
  t.skip(why);
  return false;
}

/**
 * Inside a test: true when every named peer is present; otherwise marks the test skipped with a
 * message naming the program(s) and returns false, or, under TSSH_REQUIRE_PEERS=1, throws so the
 * test fails. Use as `if (!havePeers(t, 'ssh', 'sshd')) return;`.
 */
export function havePeers(t: TestContext, ...names: PeerName[]): boolean {
  const message = missingPeers(...names);
  if (message === undefined) return true;
  if (peersRequired()) throw requiredFailure(message, 'TSSH_REQUIRE_PEERS');
  t.skip(message);
  return false;
}

/**
 * node-pty loads (it is optional, for tsshd's terminals); otherwise the test is skipped naming
 * it, or fails under TSSH_REQUIRE_PEERS=1.
 */
export async function haveNodePty(t: TestContext): Promise<boolean> {
  const support = await loadNodePty();
  if (support.nodePty) return true;
  const message = `needs node-pty: ${support.reason}`;
  if (peersRequired()) throw requiredFailure(message, 'TSSH_REQUIRE_PEERS');
  t.skip(message);
  return false;
}

/** The path of a peer that the test cannot do without; throws naming the program when absent. */
export function peerPath(name: PeerName): string {
  const path = findPeer(name);
  if (path === undefined) throw new Error(missingPeerMessage(name));
  return path;
}

// ---------------------------------------------------------------------------------------------
// sshd programs: the system's (9.2 here) and OpenSSH 10 from the cache.

/** An sshd to run: its path and the options it needs before any others. */
export interface SshdProgram {
  path: string;
  /** e.g. OpenSSH 10's -o SshdSessionPath=… -o SshdAuthPath=… pointing into the cache folder. */
  args: string[];
}

/** The system sshd (absolute path) with no extra options. Throws naming sshd when absent. */
export function systemSshd(): SshdProgram {
  return { path: peerPath('sshd'), args: [] };
}

/** OpenSSH 10 unpacked from Debian bookworm-backports by scripts/fetch-openssh10.sh. */
export interface OpenSsh10 {
  /** The folder the .debs were unpacked into. */
  root: string;
  ssh: string;
  sshKeygen: string;
  sshd: SshdProgram;
  /** What `ssh -V` printed, e.g. "OpenSSH_10.0p2 Debian-7~bpo12+1, OpenSSL 3.0.19 …". */
  version: string;
}

export function openSsh10Root(): string {
  const cache = process.env.TSSH_CACHE || join(homedir(), '.cache', 'tssh');
  return join(cache, 'openssh10');
}

/** OpenSSH 10 if it is already in the cache folder (nothing is downloaded). */
export function findOpenSsh10(): OpenSsh10 | undefined {
  if (peersHidden()) return undefined;
  const root = openSsh10Root();
  const ssh = join(root, 'usr/bin/ssh');
  const sshd = join(root, 'usr/sbin/sshd');
  const session = join(root, 'usr/lib/openssh/sshd-session');
  const auth = join(root, 'usr/lib/openssh/sshd-auth');
  if (![ssh, sshd, session].every(isExecutable)) return undefined;
  const probe = spawnSync(ssh, ['-V'], { encoding: 'utf8', timeout: 10_000 });
  const version = `${probe.stderr ?? ''}${probe.stdout ?? ''}`.trim();
  if (!/^OpenSSH_(1\d)/.test(version)) return undefined;
  // OpenSSH 10's sshd runs its per-connection halves from fixed paths under /usr/lib/openssh; point
  // them at the cache instead. sshd-auth exists from 10.0 on.
  const args = ['-o', `SshdSessionPath=${session}`];
  if (existsSync(auth)) args.push('-o', `SshdAuthPath=${auth}`);
  return {
    root,
    ssh,
    sshKeygen: join(root, 'usr/bin/ssh-keygen'),
    sshd: { path: sshd, args },
    version,
  };
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const FETCH_SCRIPT = join(REPO_ROOT, 'scripts', 'fetch-openssh10.sh');

let fetchAttempt: { result: OpenSsh10 | undefined; reason: string } | undefined;

/**
 * OpenSSH 10 from the cache, fetching it with scripts/fetch-openssh10.sh once per process when
 * absent. Resolves with the reason it is unavailable otherwise.
 */
export async function fetchOpenSsh10(): Promise<{ result: OpenSsh10 | undefined; reason: string }> {
  const found = findOpenSsh10();
  if (found) return { result: found, reason: '' };
  if (peersHidden()) return { result: undefined, reason: 'TSSH_HIDE_PEERS=1' };
  if (fetchAttempt) return fetchAttempt;
  const outcome = await new Promise<{ code: number | null; log: string }>((done) => {
    if (!existsSync(FETCH_SCRIPT)) {
      done({ code: null, log: `${FETCH_SCRIPT} not found` });
      return;
    }
    const child = spawn('bash', [FETCH_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      done({ code: null, log: String(e) });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, log });
    });
  });
  const result = findOpenSsh10();
  const lastLine = outcome.log.trim().split('\n').pop() ?? '';
  fetchAttempt = { result, reason: result ? '' : `scripts/fetch-openssh10.sh failed (exit ${outcome.code}): ${lastLine}` };
  return fetchAttempt;
}

/**
 * Inside a test: OpenSSH 10, fetched if needed; or undefined after marking the test skipped with a
 * message that says why. OpenSSH 10 comes from the network (CI tolerates that download failing), so
 * this skips even under TSSH_REQUIRE_PEERS=1; TSSH_REQUIRE_OPENSSH10=1 makes it a failure.
 */
export async function needOpenSsh10(t: TestContext): Promise<OpenSsh10 | undefined> {
  const { result, reason } = await fetchOpenSsh10();
  if (result) return result;
  const message = `needs OpenSSH 10 (openssh-client/openssh-server from Debian bookworm-backports, unpacked into ${openSsh10Root()} by scripts/fetch-openssh10.sh): ${reason}`;
  if (process.env.TSSH_REQUIRE_OPENSSH10 === '1') throw requiredFailure(message, 'TSSH_REQUIRE_OPENSSH10');
  t.skip(message);
  return undefined;
}
