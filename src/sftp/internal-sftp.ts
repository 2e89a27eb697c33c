/**
 * `Subsystem sftp internal-sftp` (and `ForceCommand internal-sftp`) in tsshd: a session served by
 * tssh's own SFTP server (./server.ts), with sftp-server(8)'s options -d, -R and -u.
 *
 * Whose permissions: when tsshd runs as root for another user, the SFTP server runs in a child
 * process with that user's credentials (uid, gid and the supplementary groups, as the user's
 * shell gets), the channel piped to its stdin and stdout. The kernel then decides every access
 * exactly as it would for the user's own programs: modes, ACLs, supplementary groups, root-squashed
 * NFS, LSMs, and the file a symbolic link swapped in between a check and a use. Checking
 * permissions ourselves while acting as root would have to reproduce all of that and would race
 * with the file system (a check-then-open is a TOCTOU hole). The child also isolates: a bug in
 * the SFTP server cannot touch tsshd's memory (host keys) nor take other sessions down.
 *
 * Such a child is started as root, loads, and waits for its assignment on fd 3 (child.ts
 * --assigned): the session's settings and the user, whose credentials it takes (initgroups,
 * setgid, setuid) before it reads anything or serves a request. That lets tsshd start one ahead:
 * after the first such session there is a child waiting for the next (let go after ten minutes
 * unused), and a session no longer waits 60-100 ms for Node to start.
 *
 * When tsshd is not root, every session is ours anyway: the server runs in tsshd's own process,
 * saving a Node start per session; except with -u, because a umask belongs to a whole process.
 * The same when tsshd as root serves root with tsshd's own groups (users.ts credentialSwitch):
 * the child would have the very credentials tsshd has, so the kernel would decide nothing
 * differently, and it costs a Node start (about 60 ms) before the first reply. What is given up is
 * the fault isolation, which the in-process server must not need anyway: it serves every session
 * of a tsshd not run by root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { ServerSession } from '../server-session.js';
import { deliverOutput, feedStdin, mustSwitchUser, readSessionOutput, type SessionContext } from '../cli/sshd/session-runner.js';
import type { Logger } from '../cli/sshd/log.js';
import { SftpServer } from './server.js';
import { packageFile } from '../package-files.js';

/** The compiled child program, next to this module (dist/src/sftp/child.js). */
const CHILD = packageFile('src/sftp/child.js');

/** The session's settings for the child. */
export interface SftpChildConfig {
  /** ChrootDirectory: served as `/`; cwd and home are then inside it (./confined-fs.ts). */
  readonly root?: string;
  readonly cwd: string;
  readonly home: string;
  readonly readOnly: boolean;
  readonly umask: number | undefined;
}

/** What tsshd writes on a child's fd 3 (child.ts --assigned), as JSON. */
export interface SftpChildAssignment {
  readonly config: SftpChildConfig;
  /** Whose credentials the child takes before anything else (tsshd runs as root); absent: it keeps its own. */
  readonly user?: { readonly name: string; readonly uid: number; readonly gid: number };
  /** The session's environment. */
  readonly env: Readonly<Record<string, string>>;
}

export interface InternalSftpOptions {
  readonly readOnly: boolean;
  readonly umask: number | undefined;
  /** -d, with %d, %u and %% expanded; relative to the home folder. */
  readonly startDirectory: string | undefined;
}

/** True for `internal-sftp` with or without options. */
export function isInternalSftp(command: string): boolean {
  return /^\s*internal-sftp(\s|$)/.test(command);
}

/** Words of a command line: whitespace-separated, with '…' and "…" quoting as sshd_config has it. */
function splitWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = pattern.exec(line); m; m = pattern.exec(line)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

/**
 * sftp-server(8)'s options. -e, -f and -l (logging) are accepted and ignored; -P, -p and -Q,
 * which would restrict requests, are refused rather than ignored, so a configuration relying on
 * them fails closed.
 */
export function parseInternalSftp(command: string, user: { name: string; home: string }): InternalSftpOptions {
  const words = splitWords(command).slice(1);
  let readOnly = false;
  let umask: number | undefined;
  let startDirectory: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (!word.startsWith('-') || word === '-') throw new Error(`internal-sftp: unexpected argument "${word}"`);
    for (let j = 1; j < word.length; j++) {
      const flag = word[j]!;
      const needsValue = 'dfluPpQ'.includes(flag);
      let value: string | undefined;
      if (needsValue) {
        value = j + 1 < word.length ? word.slice(j + 1) : words[++i];
        if (value === undefined) throw new Error(`internal-sftp: option -${flag} needs a value`);
        j = word.length;
      }
      switch (flag) {
        case 'R':
          readOnly = true;
          break;
        case 'e':
        case 'f':
        case 'l':
          break;
        case 'u':
          if (!/^[0-7]{1,4}$/.test(value!)) throw new Error(`internal-sftp: invalid umask "${value}"`);
          umask = parseInt(value!, 8);
          break;
        case 'd': {
          const expanded = value!.replace(/%(.?)/g, (_all, c: string) => {
            if (c === 'd') return user.home;
            if (c === 'u') return user.name;
            if (c === '%') return '%';
            throw new Error(`internal-sftp: unknown %-token in -d "${value}"`);
          });
          startDirectory = isAbsolute(expanded) ? expanded : join(user.home, expanded);
          break;
        }
        default:
          throw new Error(`internal-sftp: option -${flag} is not supported`);
      }
    }
  }
  return { readOnly, umask, startDirectory };
}

/**
 * Serves the session with the SFTP server: in a child as the user when tsshd switches users (or
 * for -u, or confined), else in process. The session ends with the server's exit status.
 */
export function startInternalSftp(session: ServerSession, context: SessionContext, command: string, log: Logger): void {
  const { user } = context;
  let options: InternalSftpOptions;
  try {
    options = parseInternalSftp(command, user);
  } catch (error) {
    log.error((error as Error).message);
    session.stderr.write(`${(error as Error).message}\n`);
    session.exit(1);
    return;
  }
  const root = context.chroot;
  // In a chroot the child finds out whether the home exists inside it (it can look only there).
  const home = root !== undefined || existsSync(user.home) ? user.home : '/';
  const cwd = options.startDirectory ?? home;
  const switchUser = mustSwitchUser(context);
  const inChild = switchUser || options.umask !== undefined || root !== undefined;
  const where = switchUser ? `as uid ${user.uid} in a child process` : inChild ? 'in a child process' : 'in process';
  log.info(`internal-sftp session for ${user.name} (${where}${root !== undefined ? `, confined to ${root}` : ''})`);
  if (inChild) {
    try {
      runChild(session, context, { root, cwd, home, readOnly: options.readOnly, umask: options.umask }, log);
    } catch (error) {
      log.error(`internal-sftp for ${user.name}: ${(error as Error).message}`);
      if (!session.channelClosed) session.exit(1);
    }
    return;
  }
  const server = new SftpServer(session, session, {
    cwd,
    home,
    readOnly: options.readOnly,
    endOutput: false,
    log: (line) => log.info(`${line} (user ${user.name})`),
    // The session is a ChannelStream, which calls back once the transport has sealed or copied the bytes.
    reuseDataBuffers: true,
  });
  server.once('done', (code) => {
    if (!session.channelClosed) session.exit(code);
  });
  session.once('channel-close', () => server.destroy());
}

/** The SFTP child's PATH (it runs getent): root's, and everyone else's. */
const ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const USER_PATH = '/usr/local/bin:/usr/bin:/bin';

/** How long a child started ahead waits for a session before tsshd lets it go. */
const SPARE_IDLE_MS = 10 * 60_000;
/** The one child started ahead, while there is one: unreferenced, so it never keeps tsshd running. */
let spare:
  | { readonly child: ChildProcess; readonly timer: NodeJS.Timeout; readonly onStderr: (text: string) => void; readonly onError: (error: Error) => void }
  | undefined;

/**
 * A child that loads and waits for its assignment on fd 3 (child.ts --assigned). Started with a
 * small, fixed environment, in `/`: nothing the client sent (AcceptEnv) reaches Node, so
 * NODE_OPTIONS and the like cannot turn an SFTP-only login (ForceCommand internal-sftp) into
 * running code; the session's environment comes with the assignment.
 */
function startChild(): ChildProcess {
  const env: Record<string, string> = { PATH: ROOT_PATH };
  if (process.env.TZ) env.TZ = process.env.TZ;
  // A 1 MiB young generation, as tssh's: the child moves bulk data for one session (docs/performance.md).
  return spawn(process.execPath, ['--max-semi-space-size=1', CHILD, '--assigned'], { cwd: '/', env, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
}

function setReferenced(child: ChildProcess, referenced: boolean): void {
  for (const target of [child, ...child.stdio]) {
    const handle = target as { ref?: () => void; unref?: () => void } | null;
    if (referenced) handle?.ref?.();
    else handle?.unref?.();
  }
}

/**
 * Start a child ahead for the next session that needs one (tsshd as root: every other user's
 * session), so that it does not wait for Node to start. Let go after SPARE_IDLE_MS unused.
 */
function prepareSpare(log: Logger): void {
  if (spare) return;
  const child = startChild();
  const onStderr = (text: string): void => {
    for (const line of text.split('\n')) if (line) log.info(`${line} (SFTP child started ahead)`);
  };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', onStderr);
  const forget = (): void => {
    if (spare?.child !== child) return;
    clearTimeout(spare.timer);
    spare = undefined;
  };
  const onError = (error: Error): void => {
    log.error(`internal-sftp: a child started ahead failed: ${error.message}`);
    forget();
  };
  child.once('exit', forget);
  child.once('error', onError);
  // EOF on fd 3 without an assignment: the child exits.
  const timer = setTimeout(() => {
    forget();
    (child.stdio[3] as Writable | null)?.end();
  }, SPARE_IDLE_MS);
  timer.unref();
  setReferenced(child, false);
  spare = { child, timer, onStderr, onError };
}

/** The child started ahead if there is one still waiting, else a new one. */
function takeChild(): { child: ChildProcess; ahead: boolean } {
  const taken = spare;
  if (taken && taken.child.exitCode === null && taken.child.signalCode === null && taken.child.pid !== undefined) {
    spare = undefined;
    clearTimeout(taken.timer);
    // From here on the session's own listeners report on it.
    taken.child.stderr!.off('data', taken.onStderr);
    taken.child.off('error', taken.onError);
    setReferenced(taken.child, true);
    return { child: taken.child, ahead: true };
  }
  return { child: startChild(), ahead: false };
}

/**
 * The child's input and output take the paths a command's do (session-runner.ts): its stdout is
 * read with onread straight into the channel, its stdin is fed in batches, one writev per turn
 * of the event loop (pipe() would read every reply through a fresh 64 KiB buffer and the stream
 * machinery, and pause the channel after every 32 KiB of requests).
 */
function runChild(session: ServerSession, context: SessionContext, config: SftpChildConfig, log: Logger): void {
  const { user } = context;
  const switchUser = mustSwitchUser(context);
  const { child, ahead } = takeChild();
  if (switchUser) prepareSpare(log);
  if (ahead) log.verbose(`internal-sftp for ${user.name}: a child started ahead takes the session`);
  const assignment: SftpChildAssignment = {
    config,
    ...(switchUser ? { user: { name: user.name, uid: user.uid, gid: user.gid } } : {}),
    env: {
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      PATH: user.uid === 0 ? ROOT_PATH : USER_PATH,
      ...(process.env.TZ ? { TZ: process.env.TZ } : {}),
    },
  };
  const control = child.stdio[3] as Writable;
  control.on('error', () => {
    // the child is gone: its exit (below) ends the session
  });
  control.end(JSON.stringify(assignment));
  let outputOpen = true;
  let exit: number | undefined;
  const finish = (): void => {
    if (outputOpen || exit === undefined || session.channelClosed) return;
    session.exit(exit);
  };
  const outputEnded = (): void => {
    outputOpen = false;
    finish();
  };
  deliverOutput(session, child, readSessionOutput(session, child), outputEnded);
  feedStdin(session, child.stdin!);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    stderr += text;
    const lines = stderr.split('\n');
    stderr = lines.pop()!.slice(-4096);
    for (const line of lines) if (line) log.info(`${line} (user ${user.name})`);
  });
  child.once('error', (error) => {
    log.error(`internal-sftp for ${user.name}: ${error.message}`);
    outputOpen = false;
    exit = 1;
    finish();
  });
  child.once('exit', (code, signal) => {
    exit = code ?? (signal ? 1 : 0);
    finish();
  });
  session.once('channel-close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
}
