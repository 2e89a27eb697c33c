/**
 * Running what a session asks for, as sshd does: the user's shell (`shell -c command` for exec,
 * a login shell for shell), in the user's home, with the environment sshd sets, as the
 * authenticated user when we run as root; output flows back with back-pressure, and the exit
 * status or signal goes back to the client.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { constants, existsSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import type { ServerSession } from '../../server-session.js';
import { knownGroups, type SystemUser } from './users.js';
import { chrootCommand, splitForRoot } from './chroot.js';
import { readChildOutput, readOutputFd } from './child-output.js';
import { closeAll, removeFifos, takeFifoPaths, takeStderrPipe } from './session-pipes.js';
import { helperReady, startThroughHelper, type HelperCommand } from './spawn-helper.js';

/** OpenSSH's _PATH_STDPATH and the root variant (pathnames.h). */
const USER_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/games';
const ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SETPRIV = '/usr/bin/setpriv';
const ENV_PROGRAM = '/usr/bin/env';

export interface SessionContext {
  readonly user: SystemUser;
  /** Switch to `user` (we run as root); otherwise run as ourselves. */
  readonly switchUser: boolean;
  /**
   * How the user's commands get the user's credentials when switchUser (users.ts
   * credentialSwitch): `same` skips the switch (root serving root; internal-sftp then runs in
   * process too), `uid-gid` takes spawn's uid and gid, `initgroups` (the default) goes through
   * setpriv. A terminal's session always goes through setpriv, which also gives the terminal to
   * the user (pty.ts).
   */
  readonly credentials?: 'same' | 'uid-gid' | 'initgroups';
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /**
   * Variables from authorized_keys environment=, ~/.ssh/environment and SetEnv (in that order,
   * later ones winning), already filtered; they override the standard ones, as in sshd.
   */
  readonly extraEnv: Readonly<Record<string, string>>;
  /** What the client sent (env requests accepted by AcceptEnv): the standard variables override these. */
  readonly clientEnv?: Readonly<Record<string, string>>;
  /** ChrootDirectory, expanded and checked: the session runs inside it (tsshd as root only). */
  readonly chroot?: string;
  /** PrintMotd: the file to show before an interactive login shell (pty sessions only). */
  readonly motd?: string;
}

/** Whether the session's processes must take the user's credentials (not needed when they are ours). */
export function mustSwitchUser(context: SessionContext): boolean {
  return context.switchUser && context.credentials !== 'same';
}

/** The environment sshd gives a session (session.c do_setup_env). */
export function sessionEnvironment(context: SessionContext, term: string | undefined, tty: string | undefined): Record<string, string> {
  const { user } = context;
  const env: Record<string, string> = {
    ...context.clientEnv,
    USER: user.name,
    LOGNAME: user.name,
    HOME: user.home,
    SHELL: user.shell,
    PATH: user.uid === 0 ? ROOT_PATH : USER_PATH,
    MAIL: `/var/mail/${user.name}`,
    ...context.extraEnv,
    SSH_CLIENT: `${context.remoteAddress} ${context.remotePort} ${context.localPort}`,
    SSH_CONNECTION: `${context.remoteAddress} ${context.remotePort} ${context.localAddress} ${context.localPort}`,
  };
  if (term) env.TERM = term;
  if (tty) env.SSH_TTY = tty;
  if (process.env.TZ) env.TZ = process.env.TZ;
  return env;
}

/** The argv for the user's shell: `-c command`, or a login shell (argv[0] starts with '-'). */
export function shellCommand(user: SystemUser, command: string | undefined): { file: string; args: string[]; argv0: string } {
  const name = basename(user.shell);
  if (command === undefined) return { file: user.shell, args: [], argv0: `-${name}` };
  return { file: user.shell, args: ['-c', command], argv0: name };
}

/**
 * Start a process for `command` (undefined: an interactive shell) without a terminal, wired to
 * the session's streams: through the spawn helper (spawn-helper.ts) when it can,
 * else with child_process: its errors through a real pipe where session-pipes.ts has one (so that
 * the command can open /dev/stderr, as under sshd), the rest through Node's sockets.
 */
export function runWithoutPty(session: ServerSession, context: SessionContext, command: string | undefined): ChildProcess | HelperCommand | undefined {
  const helped = runThroughHelper(session, context, command);
  if (helped) return helped;
  const pipe = takeStderrPipe(mustSwitchUser(context) ? context.user : undefined);
  const child = startChild(session, context, command, pipe ? ['pipe', 'pipe', pipe.child] : 'pipe');
  if (pipe) closeAll([pipe.child]); // the child has its own copy: ours must go, or no EOF comes
  if (!child) {
    if (pipe) closeAll([pipe.ours]);
    return undefined;
  }
  const stderr = pipe ? new Socket({ fd: pipe.ours, readable: true, writable: false }) : child.stderr!;
  wireChild(session, child, { stdin: child.stdin!, stdout: readSessionOutput(session, child), stderr });
  return child;
}

/**
 * The command through the spawn helper, or undefined to start it with child_process: in a chroot,
 * without perl or FIFOs, while the helper is not ready (tsshd's start, or a helper that died being
 * replaced), or when the user's groups are not known yet (they are once the session waited for
 * credentialSwitch, which asks for them).
 */
function runThroughHelper(session: ServerSession, context: SessionContext, command: string | undefined): HelperCommand | undefined {
  // Asked before any FIFO is taken: no helper (tsshd -i, TSSH_SPAWN_HELPER=0, not ready) costs none.
  if (context.chroot !== undefined || !helperReady()) return undefined;
  const { user } = context;
  let credentials: { uid: number; gid: number; groups: readonly number[] } | undefined;
  if (mustSwitchUser(context)) {
    const groups = context.credentials === 'uid-gid' ? [user.gid] : knownGroups(user);
    if (!groups) return undefined;
    credentials = { uid: user.uid, gid: user.gid, groups };
  }
  const paths = takeFifoPaths(2);
  if (!paths) return undefined;
  const [stdoutPath, stderrPath] = paths as [string, string];
  const ours: number[] = [];
  try {
    // Ours first, for reading, without waiting: the command's ends are opened by the helper.
    ours.push(openSync(stdoutPath, constants.O_RDONLY | constants.O_NONBLOCK));
    ours.push(openSync(stderrPath, constants.O_RDONLY | constants.O_NONBLOCK));
  } catch {
    closeAll(ours);
    removeFifos(paths);
    return undefined;
  }
  const { file, args, argv0 } = shellCommand(user, command);
  const child = startThroughHelper({
    file,
    argv0,
    args,
    env: sessionEnvironment(context, session.env.TERM, undefined),
    cwd: existsSync(user.home) ? user.home : '/',
    user: credentials,
    fifos: { stdout: stdoutPath, stderr: stderrPath },
  });
  if (!child) {
    closeAll(ours);
    removeFifos(paths);
    return undefined;
  }
  const [stdoutFd, stderrFd] = ours as [number, number];
  const stdout = readOutputFd(stdoutFd, sessionOutputCallback(session, () => stdout));
  const stderr = new Socket({ fd: stderrFd, readable: true, writable: false });
  // The helper removes the names once it has opened its ends; if it never got that far, here.
  child.once('error', () => {
    removeFifos(paths);
    stdout.destroy();
    stderr.destroy();
  });
  wireChild(session, child, { stdin: child.stdin, stdout, stderr });
  return child;
}

/**
 * The child's stdout read with onread (child-output.ts), each read going straight to the session
 * (ChannelStream.writeNow) and pausing while the channel has no room; undefined when it has to be
 * read as a stream.
 */
export function readSessionOutput(session: ServerSession, child: ChildProcess): Socket | undefined {
  const reader: Socket | undefined = readChildOutput(child.stdout, sessionOutputCallback(session, () => reader));
  return reader;
}

/** The onread callback that sends each read to the session, pausing `reader()` while it is full. */
function sessionOutputCallback(session: ServerSession, reader: () => Socket | undefined): (bytes: number, buffer: Uint8Array) => boolean {
  return (bytes, buffer) => {
    if (session.writeNow(Buffer.from(buffer.buffer, buffer.byteOffset, bytes))) return true;
    session.once('drain', () => reader()?.resume());
    return false;
  };
}

function startChild(session: ServerSession, context: SessionContext, command: string | undefined, stdio: StdioOptions): ChildProcess | undefined {
  const { file, args, argv0 } = shellCommand(context.user, command);
  const env = sessionEnvironment(context, session.env.TERM, undefined);
  const cwd = existsSync(context.user.home) ? context.user.home : '/';
  let child: ChildProcess;
  if (context.chroot !== undefined) {
    let command;
    try {
      command = chrootCommand(context.chroot, context.user, env, { exec: { file, argv0, args } });
    } catch (error) {
      session.stderr.write(`${(error as Error).message}\n`);
      session.exit(1);
      return undefined;
    }
    child = spawn(command.file, command.args, { cwd: '/', env: command.env, stdio });
  } else if (mustSwitchUser(context) && context.credentials !== 'uid-gid' && existsSync(SETPRIV)) {
    // setpriv sets uid, gid and the supplementary groups (initgroups), which spawn's uid/gid cannot.
    // It runs as root: variables that would steer it reach the shell only through env(1), after
    // the privileges are dropped.
    const { safe, deferred } = splitForRoot(env);
    const viaEnv = deferred.length > 0 ? [ENV_PROGRAM, ...deferred.map(([k, v]) => `${k}=${v}`)] : [];
    child = spawn(
      SETPRIV,
      [`--reuid=${context.user.uid}`, `--regid=${context.user.gid}`, '--init-groups', '--', ...viaEnv, file, ...args],
      { cwd, env: safe, stdio, argv0: 'setpriv' },
    );
  } else {
    child = spawn(file, args, {
      cwd,
      env,
      stdio,
      argv0,
      ...(mustSwitchUser(context) ? { uid: context.user.uid, gid: context.user.gid } : {}),
    });
  }
  return child;
}

/**
 * Bytes of the session's input that may wait for the child to read before the session is paused
 * (and so the client's window stops being refilled).
 */
const STDIN_QUEUE_LIMIT = 256 * 1024;

/**
 * Copy the session's input to the child's stdin. Instead of pipe(): the writes of one turn of the
 * event loop go out in one writev (a read of the SSH socket opens several packets at once), and
 * pipe() would pause after each 32 KiB packet, since the child's stdin buffers only 16 KiB before
 * write() returns false. Input that arrives after the child closed its stdin is discarded, so the
 * client is never left waiting for window space.
 */
export function feedStdin(session: ServerSession, stdin: Writable): void {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    stdin.uncork();
  };
  let waiting = false;
  const resume = (): void => {
    if (!waiting) return;
    waiting = false;
    stdin.off('drain', resume);
    stdin.off('close', resume);
    session.resume();
  };
  stdin.on('error', () => {}); // the process may exit without reading its input
  session.on('data', (chunk: Buffer) => {
    if (stdin.destroyed || stdin.writableEnded) return;
    if (!corked) {
      corked = true;
      stdin.cork();
      process.nextTick(uncork);
    }
    stdin.write(chunk);
    if (!waiting && stdin.writableLength >= STDIN_QUEUE_LIMIT) {
      waiting = true;
      session.pause();
      stdin.on('drain', resume);
      stdin.on('close', resume);
    }
  });
  session.once('end', () => {
    if (!stdin.destroyed) stdin.end();
  });
}

/**
 * Deliver a child's stdout to the session until it ends: from `reader`, made by readSessionOutput
 * (its reads reach the session through onread; flowing mode, so that 'end' comes), or with pipe()
 * when there is none. `ended` runs once, when the output has ended.
 */
export function deliverOutput(session: ServerSession, child: { readonly stdout: Readable | null }, reader: Socket | undefined, ended: () => void): void {
  if (reader) {
    reader.once('end', ended);
    reader.on('error', () => reader.destroy());
    reader.once('close', () => {
      if (!reader.readableEnded) ended();
    });
    reader.resume();
    session.once('channel-close', () => reader.destroy());
  } else {
    child.stdout!.pipe(session, { end: false });
    child.stdout!.once('end', ended);
  }
}

/**
 * The child's streams as we see them. `stdout`: read with onread (readSessionOutput), or
 * undefined to read the child's own stdout as a stream.
 */
interface ChildStreams {
  /** Fed from the process's 'spawn' on: before it, input waits in the session. */
  readonly stdin: Writable;
  readonly stdout: Socket | undefined;
  readonly stderr: Readable;
}

/** What wireChild uses of a process: a ChildProcess, or a HelperCommand. */
interface SessionProcess {
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  readonly stdout?: Readable | null;
  kill(signal?: NodeJS.Signals): boolean;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'spawn', listener: () => void): unknown;
}

function wireChild(session: ServerSession, child: SessionProcess, { stdin, stdout, stderr }: ChildStreams): void {
  let outputsOpen = 2;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const finish = (): void => {
    if (outputsOpen > 0 || !exit) return;
    if (exit.signal) session.exitSignal(exit.signal.replace(/^SIG/, ''));
    else session.exit(exit.code ?? 255);
  };
  const stdoutEnded = (): void => {
    outputsOpen--;
    finish();
  };
  deliverOutput(session, { stdout: child.stdout ?? null }, stdout, stdoutEnded);
  stderr.pipe(session.stderr, { end: false });
  stderr.once('end', () => {
    outputsOpen--;
    finish();
  });
  // Once the process has started (one that could not start gets no input); until then the input
  // waits in the session.
  child.once('spawn', () => feedStdin(session, stdin));
  child.once('error', (error) => {
    session.stderr.write(`${error.message}\n`);
    exit = { code: 127, signal: null };
    outputsOpen = 0;
    finish();
  });
  child.once('exit', (code, signal) => {
    exit = { code, signal };
    finish();
  });
  session.on('signal', (name: string) => {
    try {
      child.kill(`SIG${name}` as NodeJS.Signals);
    } catch {
      // An unknown signal name is ignored, as sshd does.
    }
  });
  session.once('channel-close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGHUP');
  });
}
