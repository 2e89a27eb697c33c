/**
 * Terminal sessions for tsshd through node-pty, an optional dependency: loaded lazily (dynamic
 * import) the first time a server starts; without it every pty request is refused and sessions run
 * without a terminal, as before.
 *
 * A session with a pty runs, in a fresh pseudo-terminal of the requested size:
 *
 *   /bin/sh -c PREPARE tssh-pty [setpriv --reuid=U --regid=G --init-groups --] [ARGV0-HELPER] SHELL [-c COMMAND]
 *
 * PREPARE runs on the new terminal before the user's shell exists, so that nothing can see the
 * terminal half-configured:
 *  - `SSH_TTY=$(tty)`: node-pty names the slave device only after the fork, too late for the
 *    environment it was given; the first process on the terminal asks it instead, and exports it;
 *  - when switching users (tsshd runs as root), the slave becomes the user's, group tty, mode 0620,
 *    as sshd's pty_setowner() does (devpts creates it as root's);
 *  - `stty …` applies the client's terminal modes (RFC 4254 §8), which node-pty has no way to take:
 *    node-pty's own fixed defaults are the starting point, and every mode the client sent and Linux
 *    knows overrides them (GNU stty checks all its arguments before changing anything, so one it
 *    does not know would leave the defaults: we only give it names and values it accepts);
 *  - then `exec`: the same process becomes setpriv (uid, gid and supplementary groups, which
 *    node-pty's uid/gid options do not set: it calls setgid/setuid without initgroups, so root's
 *    groups would stay), then the shell, so the pid node-pty watches is the shell's and its exit
 *    status is the session's.
 * A login shell gets argv[0] `-bash` (sshd's convention) through `bash -c 'exec -a …'` when
 * /bin/bash exists, else `-l` for the shells known to take it.
 *
 * Test hook: TSSH_DISABLE_NODE_PTY=1 makes tsshd behave as if node-pty were not installed.
 */
import { closeSync, constants as fsConstants, existsSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename } from 'node:path';
import { execFileSync } from 'node:child_process';
/**
 * The part of node-pty's API tsshd uses, declared here so that the build does not depend on the
 * optional package being installed (its own typings come with it).
 */
interface IPtyForkOptions {
  readonly name?: string;
  readonly cols?: number;
  readonly rows?: number;
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  readonly encoding?: string | null;
}
interface IPty {
  readonly pid: number;
  onData(listener: (data: string | Buffer) => void): unknown;
  onExit(listener: (event: { exitCode: number; signal?: number }) => void): unknown;
  write(data: string | Buffer): void;
  resize(columns: number, rows: number): void;
  kill(signal?: string): void;
  pause(): void;
  resume(): void;
}
import type { ServerSession } from '../../server-session.js';
import type { PtyRequest } from '../../connection/session.js';
import { sessionEnvironment, type SessionContext } from './session-runner.js';
import { chrootCommand, splitForRoot } from './chroot.js';

export interface NodePty {
  spawn(file: string, args: string[], options: IPtyForkOptions): IPty;
}

export interface PtySupport {
  /** node-pty, when it loaded and terminals can be given out. */
  readonly nodePty: NodePty | undefined;
  /** Why not, for the log: `node-pty is not installed (npm install node-pty)`. */
  readonly reason: string;
}

const NOT_INSTALLED = 'node-pty is not installed (npm install node-pty)';
const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];
const BASH = '/bin/bash';
/** Shells that read `-l` as "be a login shell" (tcsh only when it is the sole argument: it is). */
const LOGIN_FLAG_SHELLS = new Set(['sh', 'dash', 'ash', 'bash', 'zsh', 'ksh', 'ksh93', 'mksh', 'fish', 'tcsh', 'csh', 'yash', 'posh']);

let loading: Promise<PtySupport> | undefined;

/** Loads node-pty once per process (the import starts on the first call). Never rejects. */
export function loadNodePty(): Promise<PtySupport> {
  loading ??= importNodePty();
  return loading;
}

async function importNodePty(): Promise<PtySupport> {
  if (process.env.TSSH_DISABLE_NODE_PTY === '1') return { nodePty: undefined, reason: NOT_INSTALLED };
  try {
    // A variable specifier: the optional package is resolved at run time only.
    const specifier: string = 'node-pty';
    const imported = (await import(specifier)) as NodePty & { readonly default?: NodePty };
    // node-pty is CommonJS: its exports are the default export, and usually named ones too.
    const nodePty = typeof imported.spawn === 'function' ? imported : imported.default;
    if (!nodePty || typeof nodePty.spawn !== 'function') return { nodePty: undefined, reason: 'node-pty loaded without a spawn function' };
    return { nodePty, reason: '' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return { nodePty: undefined, reason: NOT_INSTALLED };
    // Installed, but its native part did not build or does not match this Node.
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { nodePty: undefined, reason: `node-pty could not be loaded (${message}); rebuild it with npm rebuild node-pty` };
  }
}

/**
 * Whether a terminal can be given out for a session: node-pty loaded, and (when switching users)
 * setpriv present, since node-pty alone would leave root's supplementary groups on the user's shell.
 */
export async function ptySupport(switchUser: boolean): Promise<PtySupport> {
  const loaded = await loadNodePty();
  if (!loaded.nodePty) return loaded;
  if (switchUser && findSetpriv() === undefined) {
    return { nodePty: undefined, reason: 'setpriv (util-linux) is missing, so the shell could not drop root\'s groups' };
  }
  return loaded;
}

function findSetpriv(): string | undefined {
  return SETPRIV_CANDIDATES.find((path) => existsSync(path));
}

function findProgram(name: string): string {
  for (const dir of ['/usr/bin', '/bin']) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return name;
}

/** The group sshd gives terminals: `tty`, else the user's own group (then mode 0600). */
function ttyGroup(): number | undefined {
  try {
    const line = execFileSync('getent', ['group', 'tty'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const gid = Number(line.split(':')[2]);
    return Number.isInteger(gid) ? gid : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Terminal modes → stty

/** RFC 4254 §8 control characters and their stty names (Linux has no VDSUSP, VSTATUS, VFLUSH). */
const CONTROL_CHARS: ReadonlyArray<readonly [string, string]> = [
  ['VINTR', 'intr'], ['VQUIT', 'quit'], ['VERASE', 'erase'], ['VKILL', 'kill'], ['VEOF', 'eof'],
  ['VEOL', 'eol'], ['VEOL2', 'eol2'], ['VSTART', 'start'], ['VSTOP', 'stop'], ['VSUSP', 'susp'],
  ['VREPRINT', 'rprnt'], ['VWERASE', 'werase'], ['VLNEXT', 'lnext'], ['VDISCARD', 'discard'],
  ['VSWTCH', 'swtch'],
];

/**
 * Flag modes, each `name` or `-name` for stty. PENDIN is left out: Linux has the flag but GNU stty
 * has no name for it, and one unknown argument makes stty change nothing at all.
 */
const FLAGS: ReadonlyArray<readonly [string, string]> = [
  ['IGNPAR', 'ignpar'], ['PARMRK', 'parmrk'], ['INPCK', 'inpck'], ['ISTRIP', 'istrip'],
  ['INLCR', 'inlcr'], ['IGNCR', 'igncr'], ['ICRNL', 'icrnl'], ['IUCLC', 'iuclc'], ['IXON', 'ixon'],
  ['IXANY', 'ixany'], ['IXOFF', 'ixoff'], ['IMAXBEL', 'imaxbel'], ['IUTF8', 'iutf8'],
  ['ISIG', 'isig'], ['ICANON', 'icanon'], ['XCASE', 'xcase'], ['ECHO', 'echo'], ['ECHOE', 'echoe'],
  ['ECHOK', 'echok'], ['ECHONL', 'echonl'], ['NOFLSH', 'noflsh'], ['TOSTOP', 'tostop'],
  ['IEXTEN', 'iexten'], ['ECHOCTL', 'echoctl'], ['ECHOKE', 'echoke'],
  ['OPOST', 'opost'], ['OLCUC', 'olcuc'], ['ONLCR', 'onlcr'], ['OCRNL', 'ocrnl'], ['ONOCR', 'onocr'],
  ['ONLRET', 'onlret'], ['PARENB', 'parenb'], ['PARODD', 'parodd'],
];

/** The speeds Linux's termios (and so stty) accepts. */
const SPEEDS = new Set([
  0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200,
  230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000,
]);

/**
 * The stty arguments for a pty-req's modes: every mode the client sent that Linux has. A control
 * character of 255 is "disabled" in the protocol (OpenSSH's encoding of _POSIX_VDISABLE), `undef`
 * for stty; others are given as hex integers, which stty never confuses with a literal character.
 */
export function sttyArguments(modes: Readonly<Record<string, number>>): string[] {
  const args: string[] = [];
  for (const [mode, name] of CONTROL_CHARS) {
    const value = modes[mode];
    if (value === undefined || !Number.isInteger(value) || value < 0) continue;
    if (value >= 255) args.push(name, 'undef');
    else args.push(name, `0x${value.toString(16).padStart(2, '0')}`);
  }
  for (const [mode, name] of FLAGS) {
    const value = modes[mode];
    if (value === undefined) continue;
    args.push(value !== 0 ? name : `-${name}`);
  }
  // CS7 and CS8 are values of one field (CSIZE); OpenSSH sends both, one of them set.
  if (modes.CS8 !== undefined && modes.CS8 !== 0) args.push('cs8');
  else if (modes.CS7 !== undefined && modes.CS7 !== 0) args.push('cs7');
  const ispeed = modes.TTY_OP_ISPEED;
  const ospeed = modes.TTY_OP_OSPEED;
  if (ispeed !== undefined && SPEEDS.has(ispeed)) args.push('ispeed', String(ispeed));
  if (ospeed !== undefined && SPEEDS.has(ospeed)) args.push('ospeed', String(ospeed));
  return args;
}

// ---------------------------------------------------------------------------------------------
// Running a session in a pty

/** A word for /bin/sh; the script below only ever quotes names, numbers and paths. */
function quote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The argv that the preparing /bin/sh execs into: [setpriv … [env VARS…]] [argv0 helper] shell
 * [-c command], or the chroot trampoline (./chroot.ts) with the shell. `deferred` are the variables
 * a root process must not see (./chroot.ts splitForRoot): given to the shell after the drop.
 */
function finalCommand(context: SessionContext, command: string | undefined, deferred: readonly (readonly [string, string])[]): string[] {
  const { user } = context;
  const login = command === undefined;
  const shellArgs = login ? [] : ['-c', command];
  if (context.chroot !== undefined) {
    // The trampoline sets argv[0] itself: `-bash` for a login shell, as sshd.
    const argv0 = login ? `-${basename(user.shell)}` : basename(user.shell);
    const env = Object.fromEntries(deferred);
    const c = chrootCommand(context.chroot, user, env, { exec: { file: user.shell, argv0, args: shellArgs } });
    return [c.file, ...c.args];
  }
  const argv: string[] = [];
  if (context.switchUser) {
    argv.push(findSetpriv()!, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--');
    if (deferred.length > 0) argv.push(findProgram('env'), ...deferred.map(([k, v]) => `${k}=${v}`));
  }
  if (!login) {
    argv.push(user.shell, ...shellArgs);
  } else if (existsSync(BASH)) {
    // bash's exec -a gives the shell sshd's login argv[0]; --norc keeps Debian's bash from reading
    // ~/.bashrc for this helper (it would, seeing SSH_CLIENT), and exec undoes its SHLVL increment.
    argv.push(BASH, '--norc', '--noprofile', '-c', 'exec -a "$0" "$@"', `-${basename(user.shell)}`, user.shell);
  } else {
    argv.push(user.shell, ...(LOGIN_FLAG_SHELLS.has(basename(user.shell)) ? ['-l'] : []));
  }
  return argv;
}

function prepareScript(context: SessionContext, pty: PtyRequest): string {
  const lines = [`t=$(${findProgram('tty')} 2>/dev/null) && SSH_TTY=$t && export SSH_TTY`];
  if (context.switchUser) {
    const group = ttyGroup();
    const owner = `${context.user.uid}:${group ?? context.user.gid}`;
    const mode = group === undefined ? '600' : '620';
    lines.push(`[ -n "$SSH_TTY" ] && ${findProgram('chown')} ${owner} "$SSH_TTY" && ${findProgram('chmod')} ${mode} "$SSH_TTY"`);
  }
  const stty = sttyArguments(pty.modes);
  if (stty.length > 0) lines.push(`${findProgram('stty')} ${stty.map(quote).join(' ')} 2>/dev/null`);
  // PrintMotd: shown on the terminal (its output modes apply) before the login shell starts.
  if (context.motd !== undefined) lines.push(`[ -f ${quote(context.motd)} ] && ${findProgram('cat')} -- ${quote(context.motd)}`);
  lines.push('exec "$@"');
  return lines.join('\n');
}

const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(osConstants.signals).map(([name, number]) => [number, name.replace(/^SIG/, '')]),
);

/**
 * Start `command` (undefined: the user's login shell) in a pseudo-terminal for a session whose pty
 * request was accepted, and wire it to the session: input, output with flow control, window
 * changes, signals, and the exit status or signal at the end.
 */
export function runWithPty(session: ServerSession, context: SessionContext, command: string | undefined, nodePty: NodePty): IPty | undefined {
  const request = session.pty;
  if (!request) throw new Error('runWithPty: the session has no accepted pty');
  const term = request.term === '' ? 'dumb' : request.term;
  const fullEnv = sessionEnvironment(context, term, undefined);
  // The preparing /bin/sh runs as root when we switch users: it sees only what cannot steer it.
  const { safe, deferred } = context.switchUser ? splitForRoot(fullEnv) : { safe: fullEnv, deferred: [] };
  const env = safe;
  const cwd = context.chroot === undefined && existsSync(context.user.home) ? context.user.home : '/';
  const options: IPtyForkOptions = {
    name: term,
    cols: request.columns > 0 ? request.columns : 80,
    rows: request.rows > 0 ? request.rows : 24,
    cwd,
    env,
    // Bytes, not strings: output that is not UTF-8 passes through unchanged. (node-pty then leaves
    // IUTF8 off; the client's IUTF8 mode, applied by stty, decides.)
    encoding: null,
  };
  let child: IPty;
  try {
    child = nodePty.spawn('/bin/sh', ['-c', prepareScript(context, request), 'tssh-pty', ...finalCommand(context, command, deferred)], options);
  } catch (error) {
    session.stderr.write(`tsshd: cannot start a terminal session: ${error instanceof Error ? error.message : String(error)}\r\n`);
    session.exit(1);
    return undefined;
  }
  wirePty(session, child);
  return child;
}

/**
 * The slave side of a node-pty terminal, opened once more by us (O_NOCTTY: never our controlling
 * terminal). node-pty names the device only in its JavaScript object (`ptsName`, not in its typings).
 */
function holdSlave(child: IPty): number | undefined {
  const name = (child as IPty & { readonly ptsName?: unknown }).ptsName;
  if (typeof name !== 'string' || !name.startsWith('/dev/')) return undefined;
  try {
    return openSync(name, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
  } catch {
    return undefined;
  }
}

/**
 * Output flow control without losing the end of the output. Three things lose it with node-pty alone:
 *  - pausing node-pty's reader (a net.Socket) stops it only once its own buffer is full, so up to a
 *    buffer's worth waits inside it, and when the last process on the terminal exits the master
 *    reads EIO and node-pty destroys that reader, buffered data and all;
 *  - once the slave is closed, Linux may answer EIO while output is still queued in the pty (seen
 *    here: ~8 KB of a fast writer's last output lost with a reader that had just resumed);
 *  - and node-pty destroys the reader 200 ms after the shell is reaped, read or not.
 * So we hold the slave open ourselves (no EIO can come while anything is left), check every 20 ms
 * whether the shell is still there, and once it is gone read everything left (at most the kernel's
 * pty buffer) into the session's own queue, never pausing again; when nothing more has come for
 * 30 ms we let go of the slave, EIO follows, and node-pty reports the exit.
 */
function wirePty(session: ServerSession, child: IPty): void {
  let closed = false;
  let paused = false;
  let processGone = false;
  let slave = holdSlave(child);

  const releaseSlave = (): void => {
    if (slave === undefined) return;
    try {
      closeSync(slave);
    } catch {
      // already closed
    }
    slave = undefined;
  };
  const resume = (): void => {
    if (!paused) return;
    paused = false;
    session.off('drain', resume);
    child.resume();
  };
  const watch = setInterval(() => {
    try {
      process.kill(child.pid, 0);
      return;
    } catch {
      // reaped: node-pty's own exit handling has begun
    }
    processGone = true;
    clearInterval(watch);
    resume();
    armDrained();
  }, 20);
  watch.unref();
  // Armed when the shell is gone, re-armed by every chunk that still arrives.
  let drained: NodeJS.Timeout | undefined;
  const armDrained = (): void => {
    if (drained) drained.refresh();
    else drained = setTimeout(releaseSlave, 30);
  };

  child.onData((data: string | Buffer) => {
    if (closed) return;
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (processGone) armDrained();
    if (session.write(chunk) || paused || processGone) return;
    paused = true;
    child.pause();
    session.once('drain', resume);
  });
  session.on('data', (chunk: Buffer) => {
    if (!closed) child.write(chunk);
  });
  session.on('window-change', (size) => {
    if (closed || size.columns <= 0 || size.rows <= 0) return;
    try {
      child.resize(size.columns, size.rows);
    } catch {
      // the terminal is already gone
    }
  });
  session.on('signal', (name: string) => {
    const signal = `SIG${name}`;
    if (!(signal in osConstants.signals)) return; // an unknown name is ignored, as sshd does
    child.kill(signal);
  });
  child.onExit(({ exitCode, signal }) => {
    clearInterval(watch);
    if (drained) clearTimeout(drained);
    releaseSlave();
    if (closed) return;
    closed = true;
    const name = signal ? SIGNAL_NAMES.get(signal) : undefined;
    if (name) session.exitSignal(name);
    else session.exit(exitCode);
  });
  session.once('channel-close', () => {
    if (closed) return;
    closed = true;
    // The client went away: hang up on the shell, as closing sshd's pty master would, and read
    // (and drop) whatever it still writes, so that nothing blocks on a full terminal.
    resume();
    child.kill('SIGHUP');
  });
}

