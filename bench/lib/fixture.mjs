// @ts-check
/**
 * The benchmark's world: a temporary folder with an ed25519 host key and user key (made by
 * ssh-keygen), authorized_keys, and the three servers, each on its own free 127.0.0.1 port with
 * its own config: OpenSSH's sshd, tsshd (DIST/bin/tsshd.js) and the ssh2 server script; and,
 * when it is in the test cache, OpenSSH 10's sshd as a fourth (findSshd10). Every server is
 * stopped by its PID; the folder is removed at the end.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { homedir, tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const ROOT = dirname(BENCH_DIR);
/** The compiled tssh: the snapshot lib/build.mjs made (BENCH_DIST), else dist/. */
export const DIST = process.env.BENCH_DIST ?? join(ROOT, 'dist');
export const TSSHD = join(DIST, 'bin/tsshd.js');
export const TSSH = join(DIST, 'bin/tssh.js');
export const SSH2_SERVER = join(BENCH_DIR, 'ssh2-server.mjs');
export const SSH2_CLIENT = join(BENCH_DIR, 'ssh2-client.mjs');
export const CONN_CLIENT = join(BENCH_DIR, 'conn-client.mjs');

/** The programs, overridable for other installations. */
export const SSH = process.env.BENCH_SSH ?? '/usr/bin/ssh';
export const SSHD = process.env.BENCH_SSHD ?? '/usr/sbin/sshd';
export const SSH_KEYGEN = process.env.BENCH_SSH_KEYGEN ?? '/usr/bin/ssh-keygen';

/**
 * OpenSSH 10's sshd from the folder scripts/fetch-openssh10.sh unpacks Debian's packages into (the
 * tests' cache: $TSSH_CACHE/openssh10, by default ~/.cache/tssh/openssh10; BENCH_OPENSSH10 names
 * another such folder, or `off`), with the options that point its per-connection programs
 * (sshd-session, sshd-auth) into that folder; undefined when it is not there. Nothing is
 * downloaded here: `npm test` fetches it, and the benchmark uses it when it is present.
 * @returns {{ sshd: string, args: string[], version: string } | undefined}
 */
export function findSshd10() {
  const setting = process.env.BENCH_OPENSSH10;
  if (setting === 'off' || setting === '0') return undefined;
  const root = setting || join(process.env.TSSH_CACHE || join(homedir(), '.cache', 'tssh'), 'openssh10');
  const sshd = join(root, 'usr/sbin/sshd');
  const session = join(root, 'usr/lib/openssh/sshd-session');
  const auth = join(root, 'usr/lib/openssh/sshd-auth');
  const executable = (/** @type {string} */ path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (!executable(sshd) || !executable(session)) return undefined;
  const probe = spawnSync(join(root, 'usr/bin/ssh'), ['-V'], { encoding: 'utf8', timeout: 10000 });
  const version = `${probe.stderr ?? ''}${probe.stdout ?? ''}`.trim().split(',')[0] ?? '';
  if (!/^OpenSSH_1\d/.test(version)) return undefined;
  const args = ['-o', `SshdSessionPath=${session}`];
  if (executable(auth)) args.push('-o', `SshdAuthPath=${auth}`);
  return { sshd, args, version };
}

/** OpenSSH's servers: one listener that forks a process (tree) per connection and reaps it. */
export const isOpenSshServer = (/** @type {ServerKind} */ kind) => kind === 'sshd' || kind === 'sshd10';

/** Every cipher the throughput figure uses, plus the MAC for aes128-ctr. */
export const CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr'];
export const MACS = ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-256'];

/** Start a program with a high open-file limit (1,000 connections need more than 1,024 fds). */
const RAISE_NOFILE = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(address.port));
    });
  });
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wait until something accepts TCP connections on port (or the process dies, or 15 s pass).
 * @param {number} port
 * @param {import('node:child_process').ChildProcess} child
 * @param {() => string} log
 */
async function waitListening(port, child, log) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited before listening:\n${log()}`);
    const ok = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('data', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
      socket.setTimeout(1000, () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`server not listening on ${port} after 15 s:\n${log()}`);
}

/** @typedef {'sshd' | 'sshd10' | 'tsshd' | 'ssh2'} ServerKind */

/**
 * @typedef {object} RunningServer
 * @property {ServerKind} kind
 * @property {number} pid
 * @property {number} port
 * @property {() => string} log
 * @property {() => Promise<void>} stop
 * @property {Promise<void>} exited
 */

/**
 * How a program's `#!/usr/bin/env -S [NAME=VALUE ...] node [FLAGS]` line starts it: the
 * variables it sets and the Node flags it passes, so that the harness runs tssh and tsshd exactly
 * as they run when started as programs. Returns the start of an argv: the line's env with the
 * NAME=VALUE assignments when it sets variables, then node and its flags (the script and its
 * arguments follow).
 * @param {string} script
 * @returns {string[]}
 */
export function programLauncher(script) {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!(\S*env) -S((?: [A-Z_][A-Z0-9_]*=\S+)*) node((?: --?[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!match) return [process.execPath];
  const words = (text) => text.trim().split(/\s+/).filter(Boolean);
  const assignments = words(match[2]);
  return [...(assignments.length > 0 ? [match[1], ...assignments] : []), process.execPath, ...words(match[3])];
}

export class Fixture {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'tssh-bench-'));
    this.user = userInfo().username;
    this.hostKey = join(this.dir, 'host_ed25519');
    this.userKey = join(this.dir, 'id_ed25519');
    this.authorizedKeys = join(this.dir, 'authorized_keys');
    execFileSync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-host', '-f', this.hostKey]);
    execFileSync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-user', '-f', this.userKey]);
    writeFileSync(this.authorizedKeys, readFileSync(`${this.userKey}.pub`));
    /** @type {Set<RunningServer>} */
    this.servers = new Set();
  }

  /**
   * sshd_config text shared by sshd and tsshd.
   * @param {number} port
   */
  serverConfig(port) {
    return [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${this.hostKey}`,
      `AuthorizedKeysFile ${this.authorizedKeys}`,
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'KexAlgorithms curve25519-sha256',
      'HostKeyAlgorithms ssh-ed25519',
      `Ciphers ${CIPHERS.join(',')}`,
      `MACs ${MACS.join(',')}`,
      // 1,000 idle connections opened 16 at a time: no random drops of unauthenticated ones.
      'MaxStartups 200:30:2000',
      'PrintMotd no',
      'PidFile none',
      'LogLevel ERROR',
      // See shared/TESTING.md: bash then skips ~/.bashrc (pyenv init) for commands.
      'SetEnv SHLVL=1',
      // The file-transfer figure: each server's own in-process SFTP server.
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n');
  }

  /**
   * Start one server kind on a fresh port (sshd10: only when findSshd10 finds it).
   * @param {ServerKind} kind
   * @param {{ nodeFlags?: string[], ssh2NoNative?: boolean }} [options]
   * @returns {Promise<RunningServer>}
   */
  async start(kind, options = {}) {
    const port = await freePort();
    /** @type {string[]} */
    let argv;
    if (kind === 'sshd' || kind === 'sshd10') {
      mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
      const config = join(this.dir, `sshd_config.${port}`);
      const sshd10 = kind === 'sshd10' ? findSshd10() : undefined;
      if (kind === 'sshd10' && !sshd10) throw new Error('OpenSSH 10 is not in the cache (scripts/fetch-openssh10.sh)');
      // OpenSSH 9.8 and later penalise a source address for connections that end badly; the
      // benchmark's thousands of connections from 127.0.0.1 must never be throttled.
      writeFileSync(config, this.serverConfig(port) + (sshd10 ? 'PerSourcePenalties no\n' : ''));
      argv = sshd10 ? [sshd10.sshd, ...sshd10.args, '-D', '-e', '-f', config] : [SSHD, '-D', '-e', '-f', config];
    } else if (kind === 'tsshd') {
      if (!existsSync(TSSHD)) throw new Error(`${TSSHD} is missing: run npm run build first`);
      const config = join(this.dir, `tsshd_config.${port}`);
      // MaxStartups and UsePAM as in sshd's; PidFile none: tsshd keeps no PID file either.
      writeFileSync(config, this.serverConfig(port));
      argv = [...programLauncher(TSSHD), ...(options.nodeFlags ?? []), TSSHD, '-D', '-e', '-f', config];
    } else {
      argv = [
        process.execPath,
        ...(options.nodeFlags ?? []),
        SSH2_SERVER,
        '--port',
        String(port),
        '--host-key',
        this.hostKey,
        '--authorized-keys',
        this.authorizedKeys,
        '--user',
        this.user,
        ...(options.ssh2NoNative ? ['--no-native'] : []),
      ];
    }
    const child = spawn('/bin/sh', ['-c', RAISE_NOFILE, 'sh', ...argv], { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
    /** @type {Buffer[]} */
    const output = [];
    let outputBytes = 0;
    const keep = (/** @type {Buffer} */ chunk) => {
      // Keep the start of the log (errors at start-up), not megabytes of it.
      if (outputBytes < 64 * 1024) output.push(chunk);
      outputBytes += chunk.length;
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const log = () => Buffer.concat(output).toString('utf8');
    const exited = new Promise((resolve) => child.once('exit', () => resolve(undefined)));
    const pid = /** @type {number} */ (child.pid);
    /** @type {RunningServer} */
    const server = {
      kind,
      pid,
      port,
      log,
      exited: /** @type {Promise<void>} */ (exited),
      stop: async () => {
        this.servers.delete(server);
        if (child.exitCode !== null || child.signalCode !== null) return;
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          return;
        }
        const timer = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }, 5000);
        await exited;
        clearTimeout(timer);
      },
    };
    this.servers.add(server);
    try {
      await waitListening(port, child, log);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** ssh's options: this fixture's key, no config files, no host key prompts, quiet. */
  sshOptions() {
    return [
      '-F', '/dev/null',
      '-i', this.userKey,
      '-o', 'IdentitiesOnly=yes',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'BatchMode=yes',
      '-o', 'LogLevel=ERROR',
      '-o', 'KexAlgorithms=curve25519-sha256',
      '-o', 'HostKeyAlgorithms=ssh-ed25519',
      '-T',
    ];
  }

  async close() {
    await Promise.all([...this.servers].map((server) => server.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
