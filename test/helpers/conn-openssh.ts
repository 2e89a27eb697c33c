/**
 * OpenSSH pieces for test/interop/connection.test.ts, on top of ./openssh.ts and ./auth-lab.ts:
 *
 *   const ssh = spawnSshInBackground(lab, ['-N', '-L', `${p}:127.0.0.1:${echo}`, '127.0.0.1'], { port });
 *   await ssh.waitForStderr(/Local forwarding listening on 127\.0\.0\.1 port \d+/);
 *   await ssh.stop();                                   // SIGTERM, then SIGKILL, by PID
 *
 * ssh runs with -v (debug1: forwarding and channel request lines), -F /dev/null, the lab's
 * known_hosts, only the lab's user key, no agent unless `options` names one, BatchMode; the same
 * clean setup as OpenSshFixture.runSsh, but left running for forwarding tests.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { OpenSshFixture } from './openssh.js';
import { peerPath } from './peers.js';
import { waitForText } from './auth-lab.js';

export interface BackgroundSsh {
  pid: number;
  stderr(): string;
  stdout(): Buffer;
  /** Resolves with the match once stderr (after `since` characters) shows `pattern`; rejects if ssh exits first. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops ssh by its PID (SIGTERM, SIGKILL after 2 s) and waits for it. */
  stop(): Promise<void>;
  /** Sends a signal by PID (e.g. SIGSTOP, SIGKILL). */
  signal(signal: NodeJS.Signals): void;
}

export interface BackgroundSshOptions {
  port: number;
  /** Extra -o values; they come first, so they win over the defaults. */
  options?: readonly string[];
}

export function spawnSshInBackground(lab: OpenSshFixture, args: readonly string[], options: BackgroundSshOptions): BackgroundSsh {
  const o = (value: string): string[] => ['-o', value];
  const full = [
    '-v',
    '-F', '/dev/null',
    ...(options.options ?? []).flatMap(o),
    ...o(`UserKnownHostsFile=${lab.knownHosts}`),
    ...o('GlobalKnownHostsFile=/dev/null'),
    ...o('StrictHostKeyChecking=accept-new'),
    ...o('BatchMode=yes'),
    ...o('IdentityAgent=none'),
    ...o('IdentitiesOnly=yes'),
    ...o('ConnectTimeout=15'),
    '-i', lab.userKey.privateKey,
    '-p', String(options.port),
    '-l', lab.user,
    ...args,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SSH_AUTH_SOCK;
  const child = spawn(peerPath('ssh'), full, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const errChunks: Buffer[] = [];
  const outChunks: Buffer[] = [];
  child.stderr.on('data', (chunk: Buffer) => errChunks.push(chunk));
  child.stdout.on('data', (chunk: Buffer) => outChunks.push(chunk));
  const stderr = (): string => Buffer.concat(errChunks).toString('utf8');
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once('error', () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  const signal = (name: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined && !done) process.kill(child.pid, name);
    } catch {
      // already gone
    }
  };
  return {
    pid: child.pid ?? -1,
    stderr,
    stdout: () => Buffer.concat(outChunks),
    exited,
    signal,
    async waitForStderr(pattern, timeoutMs = 15_000) {
      const gone = exited.then(async (status) => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const match = pattern.exec(stderr());
        if (match) return match;
        throw new Error(`ssh exited (${JSON.stringify(status)}) before its log showed ${pattern}:\n${stderr()}`);
      });
      return Promise.race([waitForText(stderr, pattern, { timeoutMs, what: 'ssh -v log' }), gone]);
    },
    async stop() {
      if (done) return;
      signal('SIGCONT');
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The curl program if installed (the SOCKS tests use it besides their own SOCKS5 client). */
export function findCurl(): string | undefined {
  return ['/usr/bin/curl', '/usr/local/bin/curl'].find((path) => existsSync(path));
}

/** Whether a process still exists (signal 0 by PID). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
