/**
 * Commands started by a small helper process instead of by a fork of tsshd.
 *
 * Node's child_process.spawn forks the whole server: the page tables of tsshd's 60-odd MB and its
 * 170-odd memory areas are copied, then every page tsshd writes faults once (copy-on-write), and
 * tsshd reaps the child itself. perf put that at a quarter of tsshd's main thread per login with a
 * command (0.9-1.0 ms of CPU in spawn() alone). So tsshd starts one small helper process and asks
 * it for each command. There are two with the same protocol:
 *
 * - the C one, spawner.c, built into dist/libexec/tsshd-spawner at `npm install` / `npm run build`
 *   when a C compiler is there (scripts/build-spawner.mjs): a process of a few hundred KiB whose
 *   fork, and its command's exec, cost what they cost from a shell; tsshd prefers it;
 * - the Perl one below (perl-base is part of every Debian system, and the chroot trampoline
 *   already relies on it), used when the C one was not built or TSSH_SPAWN_HELPER=perl is set:
 *   perl's fork of itself and the copy-on-write faults that follow (perl's reference counts touch
 *   its pages) cost it 0.3-0.45 ms more per command than the C one, and its commands 0.25-0.45 ms
 *   more each (docs/performance.md, "The command helper in C").
 *
 * The protocol:
 *
 * - The helper listens on a Unix socket in tsshd's private FIFO folder (0700) and says `R` on its
 *   stdout once it does; commands asked for before that use child_process.
 * - Each command is one connection to that socket: tsshd connects and writes the request, a
 *   10-byte length (`%09d\n`) then that many bytes of NUL-separated fields: id, working folder,
 *   uid, gid, groups (comma-separated; uid empty: keep the helper's credentials), the stdout and
 *   stderr FIFO paths, the pipe size, file, argv[0], the argument count, the arguments, then
 *   NAME=VALUE environment entries. The helper reads exactly the request, and the rest of the
 *   connection becomes the command's stdin: a socket, as sshd gives, so that a command reopening
 *   /dev/stdin gets an error rather than waiting for a writer (as on a named FIFO), shut for
 *   writing as a pipe's read end would be (tsshd never reads it). tsshd may write the client's
 *   input right after the request, before the command has started.
 * - Its stdout and stderr are FIFOs from session-pipes.ts's stock: tsshd opens the read ends, the
 *   helper the write ends (without waiting: tsshd's may be gone if the session ended) before it
 *   forks, gives them to the user and removes the names. The command can open /dev/stdout and
 *   /dev/stderr by name, as under sshd.
 * - The child makes the stdout pipe 1 MiB (F_SETPIPE_SZ; child-output.ts OUTPUT_PIPE_SIZE: tsshd
 *   reads a whole pipe at a time, which makes downloads cheaper), takes the user's groups, gid
 *   and uid (checked, as the chroot trampoline does), enters the folder, sets the environment
 *   and executes the command.
 * - On the helper's stdout: `X id status` (waitpid's status) when a command has exited, `F id
 *   message` when it could not be started. The helper learns of an exit from a pidfd per command
 *   in its select(). (It first had a SIGCHLD handler; perl runs handlers between statements, so
 *   an exit just before select() blocked went unnoticed until something else woke the helper, and
 *   the session waited for ever: seen once in the test suite and once in a benchmark.) It keeps a
 *   copy of each command's stdout and stderr until it has sent the status, so that tsshd learns
 *   of the end in one wake-up.
 * - On its stdin, from tsshd: `K id signal-number` to signal a command. The helper knows which of
 *   its children are still unreaped, so a signal never reaches a process that merely reuses an
 *   exited command's pid; a signal for a request it has not read yet waits for it.
 *
 * A command thus costs tsshd no wake-up of its own until it ends (no reply on start, no connection
 * to accept), and the helper never sees the session's environment in its own (only the child,
 * after the switch, right before the exec).
 *
 * Measured against child_process, same build (docs/performance.md). Only commands without a
 * terminal or chroot go this way; those, and any command when neither helper can run or the FIFOs
 * are missing (or TSSH_SPAWN_HELPER=0 is set in tsshd's environment), use child_process
 * (session-runner.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';
import { packageFile } from '../../package-files.js';
import { findPerl, PERL_SWITCH_USER } from './chroot.js';
import { pipeFolder } from './session-pipes.js';
import { OUTPUT_PIPE_SIZE } from './child-output.js';

const HELPER = String.raw`
use strict; use warnings; use POSIX (); use Fcntl (); use Socket ();
$0 = 'tsshd-spawner';
# In a command's child, before the exec: the command's stderr has the message, its status 127.
sub fail { print STDERR "tsshd: $_[0]\n"; POSIX::_exit(127); }
${PERL_SWITCH_USER}
my $path = shift @ARGV;
my $listener;
socket($listener, Socket::AF_UNIX(), Socket::SOCK_STREAM(), 0) or die "socket: $!\n";
unlink($path);
bind($listener, Socket::pack_sockaddr_un($path)) or die "bind $path: $!\n";
listen($listener, 128) or die "listen: $!\n";
my $nonblock = fcntl($listener, Fcntl::F_GETFL(), 0);
fcntl($listener, Fcntl::F_SETFL(), $nonblock | POSIX::O_NONBLOCK());
$SIG{PIPE} = 'IGNORE';
# Running commands: id by pid, pid by id, and a pidfd by pid (readable once it has exited). No
# SIGCHLD handler: perl runs handlers between statements, so a child that exits just before a
# blocking select would not be noticed until something else woke it.
my (%id_of, %pid_of, %pidfd_of, %outputs_of, %waiting_signals);
my $highest = -1;
sub reply { syswrite(STDOUT, $_[0]); }
# pidfd_open(2): 434 on every architecture Debian has but alpha. undef: poll with waitpid instead.
sub pidfd { my $fd = syscall(434, $_[0] + 0, 0); return $fd >= 0 ? $fd : undef; }
# The status first, then our copies of the command's stdout and stderr: tsshd then learns of the end
# in one wake-up rather than one for each output's end and another for the status.
sub reaped {
  my ($pid) = @_;
  my $id = delete $id_of{$pid};
  delete $pid_of{$id};
  reply("X $id $?\n");
  my $fd = delete $pidfd_of{$pid};
  POSIX::close($fd) if defined $fd;
  close($_) for @{delete $outputs_of{$pid}};
}
sub read_exactly { my ($fh, $want) = @_; my $buf = ''; while (length($buf) < $want) { my $n = sysread($fh, $buf, $want - length($buf), length $buf); if (!defined $n) { next if $!{EINTR}; return undef; } return undef if $n == 0; } return $buf; }
sub child {
  my ($cwd, $uid, $gid, $groups, $i, $o, $e, $pipesize, $file, $argv0, $args, $env) = @_;
  $SIG{PIPE} = 'DEFAULT';
  POSIX::dup2($i, 0); POSIX::dup2($o, 1); POSIX::dup2($e, 2);
  POSIX::close($_) for grep { $_ > 2 } ($i, $o, $e);
  for my $fh (\*STDIN, \*STDOUT, \*STDERR) { my $flags = fcntl($fh, Fcntl::F_GETFL(), 0); fcntl($fh, Fcntl::F_SETFL(), $flags & ~POSIX::O_NONBLOCK()) if defined $flags; }
  if ($pipesize) { fcntl(\*STDOUT, 1031, $pipesize + 0); }
  if (length $uid) {
    fail("malformed credentials") unless $uid =~ /^\d+$/ && $gid =~ /^\d+$/ && $groups =~ /^[\d,]*$/;
    switch_user($uid, $gid, split(/,/, $groups));
  }
  chdir($cwd) or chdir('/');
  %ENV = ();
  for (@$env) { my ($k, $v) = split(/=/, $_, 2); $ENV{$k} = $v; }
  # No warning of perl's own: fail() says it, once.
  { no warnings 'exec'; exec { $file } $argv0, @$args; }
  fail("$file: $!");
}
# One request: read it from the connection, open the FIFOs, fork. Replies F when it cannot start it.
sub start {
  my ($s) = @_;
  my $head = read_exactly($s, 10);
  return unless defined $head && $head =~ /^(\d{9})\n$/;
  my $body = read_exactly($s, $1 + 0);
  return unless defined $body;
  my @f = split(/\0/, $body, -1);
  my ($id, $cwd, $uid, $gid, $groups, $out, $err, $pipesize, $file, $argv0, $nargs) = splice(@f, 0, 11);
  return unless defined $nargs && $id =~ /^\d+$/;
  $highest = $id if $id > $highest;
  my @args = splice(@f, 0, $nargs);
  # The FIFOs, opened without waiting (tsshd's ends may be gone already: the session ended).
  my $nb = POSIX::O_NONBLOCK();
  # Perl handles: close-on-exec, so that the copies kept here until the command has been reaped
  # never reach a command started later (which would hold this command's output open).
  my ($o, $e);
  if (!sysopen($o, $out, POSIX::O_WRONLY() | $nb) || !sysopen($e, $err, POSIX::O_WRONLY() | $nb)) {
    my $why = "$!";
    close($_) for grep { defined $_ && defined fileno($_) } ($o, $e);
    unlink($out, $err);
    delete $waiting_signals{$id};
    reply("F $id $why\n");
    return;
  }
  chown($uid, $gid, $out, $err) if length $uid;
  unlink($out, $err);
  # stdin is for reading only, as a pipe's end would be (tsshd never reads what is written to it).
  shutdown($s, 1);
  my $pid = fork();
  child($cwd, $uid, $gid, $groups, fileno($s), fileno($o), fileno($e), $pipesize, $file, $argv0, \@args, \@f) if defined $pid && $pid == 0;
  if (!defined $pid) {
    close($_) for ($o, $e);
    delete $waiting_signals{$id};
    reply("F $id $!\n");
    return;
  }
  $id_of{$pid} = $id; $pid_of{$id} = $pid; $outputs_of{$pid} = [$o, $e];
  my $fd = pidfd($pid);
  $pidfd_of{$pid} = $fd if defined $fd;
  kill($_, $pid) for @{delete $waiting_signals{$id} // []};
}
my $control = '';
reply("R\n");
while (1) {
  my $rin = '';
  vec($rin, fileno(STDIN), 1) = 1; vec($rin, fileno($listener), 1) = 1;
  vec($rin, $_, 1) = 1 for values %pidfd_of;
  # A command without a pidfd (a kernel before 5.3): look for its end every 50 ms.
  my $timeout = keys(%pidfd_of) < keys(%id_of) ? 0.05 : undef;
  my $n = select(my $rout = $rin, undef, undef, $timeout);
  next if $n < 0 && $!{EINTR};
  POSIX::_exit(3) if $n < 0;
  for my $pid (keys %id_of) {
    my $fd = $pidfd_of{$pid};
    next if defined $fd && !vec($rout, $fd, 1);
    reaped($pid) if waitpid($pid, POSIX::WNOHANG()) == $pid;
  }
  # Every connection waiting, before the signals: one may be for them.
  while (accept(my $s, $listener)) { start($s); close($s); }
  next unless vec($rout, fileno(STDIN), 1);
  my $got = sysread(STDIN, $control, 4096, length $control);
  if (!defined $got) { next if $!{EINTR}; POSIX::_exit(0); }
  POSIX::_exit(0) if $got == 0;
  while ($control =~ s/^K (\d+) (\d+)\n//) {
    my ($id, $signal) = ($1, $2);
    if (defined $pid_of{$id}) { kill($signal, $pid_of{$id}); }
    elsif ($id > $highest) { push @{$waiting_signals{$id}}, $signal; }
  }
  POSIX::_exit(2) if length($control) > 1024;
}
`;

export interface HelperRequest {
  readonly file: string;
  readonly argv0: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** Credentials to take first (tsshd as root, for another user); undefined: keep the helper's. */
  readonly user?: { readonly uid: number; readonly gid: number; readonly groups: readonly number[] };
  /** FIFO paths whose other ends tsshd has open (see the header). */
  readonly fifos: { readonly stdout: string; readonly stderr: string };
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

/** The running helper: its process, the socket it listens on, and the commands not yet ended. */
interface Helper {
  readonly process: ChildProcess;
  readonly path: string;
  readonly commands: Map<string, HelperCommand>;
  ready: boolean;
}

/**
 * A command the helper started: what session-runner.ts uses of a ChildProcess ('spawn', 'exit',
 * 'error', stdin, kill, exitCode, signalCode). 'spawn' comes at once: the input written to stdin
 * waits in the connection until the command reads it.
 */
export class HelperCommand extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** Set once the command has ended or failed: no more events. */
  private settled = false;

  constructor(
    /** The command's stdin: our end of its connection, which carried the request first. */
    readonly stdin: Socket,
    private readonly id: string,
    private readonly helper: Helper,
  ) {
    super();
  }

  /** Ask the helper to signal the command (which it does only while it has not been reaped). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    const number = osConstants.signals[signal];
    if (this.settled || number === undefined) return false;
    this.helper.process.stdin?.write(`K ${this.id} ${number}\n`);
    return true;
  }

  /** @internal The helper reported waitpid's status. */
  exited(status: number): void {
    if (this.settled) return;
    this.settled = true;
    const signal = status & 0x7f;
    if (signal !== 0) this.signalCode = SIGNAL_NAMES.get(signal) ?? 'SIGKILL';
    else this.exitCode = (status >> 8) & 0xff;
    this.stdin.destroy();
    this.emit('exit', this.exitCode, this.signalCode);
  }

  /** @internal The command could not be started, or its end can no longer be known. */
  failed(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.stdin.destroy();
    this.emit('error', error);
  }
}

let helper: Helper | undefined;
let nextId = 0;
/** Set once perl or the folder turned out to be missing: commands use child_process from then on. */
let unavailable = false;
/** Set by prepareSpawnHelper: a tsshd that serves one connection (inetd mode) never starts one. */
let enabled = false;
/** Set once the C helper could not start: the Perl one is used from then on. */
let nativeFailed = false;

/**
 * The C helper built next to dist/src (scripts/build-spawner.mjs), when it was built; its absence
 * (no C compiler at install) only means the Perl one is used. TSSH_SPAWNER in tsshd's environment
 * names another (a packager's /usr/libexec, say).
 */
const BUILT_SPAWNER = packageFile('libexec/tsshd-spawner');

/** A helper program: the file to run and its arguments before the socket's path. */
export interface SpawnHelperProgram {
  readonly kind: 'native' | 'perl';
  readonly file: string;
  readonly args: readonly string[];
}

/**
 * The helper program of `kind`, or undefined when it is missing (not built; no perl). Without a
 * kind: the C one when built (unless TSSH_SPAWN_HELPER=perl in the environment), else perl.
 */
export function spawnHelperProgram(kind?: 'native' | 'perl'): SpawnHelperProgram | undefined {
  const wanted = kind ?? (process.env.TSSH_SPAWN_HELPER === 'perl' || nativeFailed ? 'perl' : undefined);
  if (wanted !== 'perl') {
    const file = process.env.TSSH_SPAWNER || BUILT_SPAWNER;
    try {
      accessSync(file, fsConstants.X_OK);
      return { kind: 'native', file, args: [] };
    } catch {
      if (wanted === 'native') return undefined;
    }
  }
  const perl = findPerl();
  return perl ? { kind: 'perl', file: perl, args: ['-e', HELPER] } : undefined;
}

function startHelper(): Helper | undefined {
  if (helper || unavailable || !enabled) return helper;
  const program = spawnHelperProgram();
  const folder = pipeFolder();
  if (!program || !folder) {
    unavailable = true;
    return undefined;
  }
  // Its own small environment (a C locale, no variable that steers perl or the loader): it never
  // needs more.
  const path = join(folder, `spawner-${nextId}.sock`);
  const child = spawn(program.file, [...program.args, path], { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'inherit'] });
  const started: Helper = { process: child, path, commands: new Map(), ready: false };
  helper = started;
  let text = '';
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (chunk: string) => {
    text += chunk;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n')) {
      const [kind, id = '', value] = text.slice(0, end).split(' ', 3);
      text = text.slice(end + 1);
      if (kind === 'R') {
        started.ready = true;
        continue;
      }
      const command = started.commands.get(id);
      if (!command) continue;
      started.commands.delete(id);
      if (kind === 'X') command.exited(Number(value));
      else if (kind === 'F') command.failed(new Error(`the command helper could not start it: ${value}`));
    }
  });
  const gone = (): void => {
    if (helper === started) helper = undefined;
    // Commands it started and had not reported as ended: their end can no longer be known.
    for (const command of started.commands.values()) command.failed(new Error('the command helper exited'));
    started.commands.clear();
  };
  // One that ended before it was ready (it could not listen, say) would fail the same way again:
  // a C helper that does is not run again (a build for another machine, say), and perl takes over
  // for the next command; a Perl one that does leaves commands to child_process.
  const neverReady = (): void => {
    if (started.ready) return;
    if (program.kind === 'native') nativeFailed = true;
    else unavailable = true;
  };
  child.once('exit', () => {
    neverReady();
    gone();
  });
  child.once('error', (error) => {
    // The program cannot run (missing, not executable, not a program for this machine); other
    // errors (out of processes, say) may pass, and the next command tries again.
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOEXEC') neverReady();
    gone();
  });
  (child.stdin as Writable).on('error', () => {
    // the helper is gone: 'exit' says so
  });
  // The helper must never keep tsshd running: sessions hold their own references.
  child.unref();
  for (const stream of [child.stdin, child.stdout]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  return started;
}

/**
 * Use the helper from now on and start it now, so that it is ready for the first command (tsshd
 * does when it listens; a helper that dies is replaced at the next command). Without this call
 * commands start with child_process; TSSH_SPAWN_HELPER=0 in the environment keeps it so.
 */
export function prepareSpawnHelper(): void {
  if (process.env.TSSH_SPAWN_HELPER === '0') return;
  enabled = true;
  startHelper();
}

/** Whether a command can go through the helper now (starting a new one if the last one died). */
export function helperReady(): boolean {
  return startHelper()?.ready === true;
}

/**
 * Ask the helper to start a command; undefined when no helper is ready (then start it another way,
 * while one starts for the next command). Fields must not contain NUL, which no file name,
 * argument or variable of a real command can.
 */
export function startThroughHelper(request: HelperRequest): HelperCommand | undefined {
  const fields = [
    request.cwd,
    request.user ? String(request.user.uid) : '',
    request.user ? String(request.user.gid) : '',
    request.user ? request.user.groups.join(',') : '',
    request.fifos.stdout,
    request.fifos.stderr,
    String(OUTPUT_PIPE_SIZE),
    request.file,
    request.argv0,
    String(request.args.length),
    ...request.args,
    ...Object.entries(request.env).map(([name, value]) => `${name}=${value}`),
  ];
  if (fields.some((field) => field.includes('\0'))) return undefined;
  const running = startHelper();
  if (!running?.ready) return undefined;
  const id = String(nextId++);
  const payload = Buffer.from([id, ...fields].join('\0'), 'utf8');
  if (payload.length > 999_999_999) return undefined;
  const stdin = connect(running.path);
  const command = new HelperCommand(stdin, id, running);
  running.commands.set(id, command);
  stdin.write(Buffer.concat([Buffer.from(`${String(payload.length).padStart(9, '0')}\n`), payload]));
  // Never read: the helper shut the command's writing side (and reading it would cost a wake-up
  // when the command ends).
  stdin.pause();
  stdin.on('error', (error: NodeJS.ErrnoException) => {
    // No connection at all: the helper's socket is gone (the helper with it; it is replaced).
    if (error.syscall === 'connect' && running.commands.delete(id)) command.failed(new Error(`the command helper could not be reached: ${error.message}`));
  });
  process.nextTick(() => command.emit('spawn'));
  return command;
}
