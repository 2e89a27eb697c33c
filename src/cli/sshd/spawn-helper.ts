/**
 * Commands started by a small helper process instead of by a fork of tsshd.
 *
 * Node's child_process.spawn forks the whole server: the page tables of tsshd's 60-odd MB and its
 * 170-odd memory areas are copied, then every page tsshd writes faults once (copy-on-write), and
 * tsshd reaps the child itself. perf put that at a quarter of tsshd's main thread per login with a
 * command (0.9-1.0 ms of CPU in spawn() alone). A Perl process of a few MB forks for a fraction of
 * that, so tsshd starts one helper (perl-base is part of every Debian system, and the chroot
 * trampoline already relies on it) and asks it for each command:
 *
 * - The request (tsshd -> helper stdin): `LENGTH\n` then LENGTH bytes of NUL-separated fields: id,
 *   working folder, uid, gid, groups (comma-separated; uid empty: keep the helper's credentials),
 *   the stdout and stderr FIFO paths, the pipe size, file, argv[0], the argument count, the
 *   arguments, then NAME=VALUE environment entries.
 * - The replies (helper stdout): `S id pid` once forked, `X id status` (waitpid's status) when it
 *   has exited, `F id message` when it could not start it.
 *
 * The command's stdin is a connection the helper makes to a listening socket of tsshd's (in its
 * private FIFO folder) and names by the id: a socket, as sshd gives, so that a command reopening
 * /dev/stdin gets an error rather than waiting forever for a writer (what a named FIFO would do
 * after the client's EOF). Its stdout and stderr are FIFOs from session-pipes.ts's stock: tsshd
 * opens the read ends, the helper the write ends (without waiting: tsshd's may be gone if the
 * session ended) before it forks, gives them to the user and removes the names; the child makes
 * the stdout pipe 1 MiB (F_SETPIPE_SZ: larger reads for downloads), takes the user's groups, gid and
 * uid (checked, as the chroot trampoline does), enters the folder, sets the environment and
 * executes the command; tsshd feeds stdin once it has both the "S" and the connection. The command
 * can open /dev/stdout and /dev/stderr by name, as under sshd. The helper never sees the session's
 * environment in its own (only the child, after the switch, right before the exec).
 *
 * Measured against child_process, same build (docs/performance.md): 16 logins at a time with
 * `exec true`, tsshd's own CPU -24 %, tsshd plus helper plus commands -5 %, +18 % connections per
 * second; ssh -> tsshd downloads +12 %. Only commands without a terminal or chroot go this way;
 * those, and any command when perl or the FIFOs are missing (or TSSH_SPAWN_HELPER=0 is set in
 * tsshd's environment), use child_process as before (session-runner.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';
import { findPerl } from './chroot.js';
import { pipeFolder } from './session-pipes.js';

/** The stdin and stdout pipes' size: what a user may set (/proc/sys/fs/pipe-max-size's default). */
const PIPE_SIZE = 1024 * 1024;

const HELPER = String.raw`
use strict; use warnings; use POSIX (); use Fcntl (); use Socket ();
$0 = 'tsshd-spawner';
my $listener = shift @ARGV;
my %running;
my $chld = POSIX::SigSet->new(POSIX::SIGCHLD());
sub reply { syswrite(STDOUT, $_[0]); }
sub reap { while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) { my $id = delete $running{$pid}; reply("X $id $?\n") if defined $id; } }
$SIG{CHLD} = \&reap;
my $buf = '';
sub fill { my $want = shift; while (length($buf) < $want) { my $n = sysread(STDIN, $buf, 65536, length $buf); if (!defined $n) { next if $!{EINTR}; POSIX::_exit(0); } POSIX::_exit(0) if $n == 0; } }
sub child {
  my ($cwd, $uid, $gid, $groups, $i, $o, $e, $pipesize, $file, $argv0, $args, $env) = @_;
  $SIG{CHLD} = 'DEFAULT';
  POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), $chld);
  POSIX::dup2($i, 0); POSIX::dup2($o, 1); POSIX::dup2($e, 2);
  POSIX::close($_) for grep { $_ > 2 } ($i, $o, $e);
  for my $fh (\*STDIN, \*STDOUT, \*STDERR) { my $flags = fcntl($fh, Fcntl::F_GETFL(), 0); fcntl($fh, Fcntl::F_SETFL(), $flags & ~POSIX::O_NONBLOCK()) if defined $flags; }
  sub fail { print STDERR "tsshd: $_[0]\n"; POSIX::_exit(127); }
  if ($pipesize) { fcntl(\*STDOUT, 1031, $pipesize + 0); }
  if (length $uid) {
    my @groups = grep { length } split(/,/, $groups);
    @groups = ($gid) unless @groups;
    POSIX::setgid($gid) or fail("setgid $gid: $!");
    $) = join(' ', $gid, @groups);
    POSIX::setuid($uid) or fail("setuid $uid: $!");
    fail("could not drop privileges") if $< != $uid || $> != $uid || (split(' ', $())[0] != $gid || (split(' ', $)))[0] != $gid;
    fail("could regain root") if $uid != 0 && POSIX::setuid(0);
    my %want = map { $_ => 1 } ($gid, @groups);
    my %have = map { $_ => 1 } split(' ', $));
    fail("could not set the groups") if join(',', sort keys %want) ne join(',', sort keys %have);
  }
  chdir($cwd) or chdir('/');
  %ENV = ();
  for (@$env) { my ($k, $v) = split(/=/, $_, 2); $ENV{$k} = $v; }
  { exec { $file } $argv0, @$args; }
  fail("$file: $!");
}
while (1) {
  fill(length($buf) + 1) while index($buf, "\n") < 0;
  $buf =~ s/^(\d+)\n// or POSIX::_exit(2);
  my $length = $1;
  fill($length);
  my @f = split(/\0/, substr($buf, 0, $length, ''), -1);
  my ($id, $cwd, $uid, $gid, $groups, $out, $err, $pipesize, $file, $argv0, $nargs) = splice(@f, 0, 11);
  my @args = splice(@f, 0, $nargs);
  # stdin: a connection to tsshd's listener, named by the id (a socket, as sshd gives: reopening
  # /dev/stdin fails instead of waiting for a writer, as a named FIFO would). stdout and stderr:
  # the FIFOs, opened without waiting (tsshd's ends may be gone already: the session ended).
  my $s;
  my $ok = socket($s, Socket::AF_UNIX(), Socket::SOCK_STREAM(), 0) && connect($s, Socket::pack_sockaddr_un($listener)) && syswrite($s, "$id\n");
  my $nb = POSIX::O_NONBLOCK();
  my $o = POSIX::open($out, POSIX::O_WRONLY() | $nb); my $e = POSIX::open($err, POSIX::O_WRONLY() | $nb);
  if (!$ok || !defined $o || !defined $e) {
    my $why = "$!";
    close($s) if $s;
    POSIX::close($_) for grep { defined } ($o, $e);
    unlink($out, $err);
    reply("F $id $why\n");
    next;
  }
  my $i = fileno($s);
  chown($uid, $gid, $out, $err) if length $uid;
  unlink($out, $err);
  POSIX::sigprocmask(POSIX::SIG_BLOCK(), $chld);
  my $pid = fork();
  child($cwd, $uid, $gid, $groups, $i, $o, $e, $pipesize, $file, $argv0, \@args, \@f) if defined $pid && $pid == 0;
  close($s);
  POSIX::close($_) for ($o, $e);
  if (defined $pid) { $running{$pid} = $id; reply("S $id $pid\n"); } else { reply("F $id $!\n"); }
  POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), $chld);
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

/**
 * A command the helper started: what session-runner.ts uses of a ChildProcess ('exit', 'error',
 * kill, exitCode, signalCode). kill() signals the pid itself (tsshd may: it is root, or the
 * command is its own user's); signals asked for before the pid is known are sent once it is.
 */
export class HelperCommand extends EventEmitter {
  pid: number | undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** The command's stdin: our end of its connection, once it has come ('spawn' waits for it). */
  stdin: Socket | undefined;
  private readonly pending: NodeJS.Signals[] = [];

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.exitCode !== null || this.signalCode !== null) return false;
    if (this.pid === undefined) {
      this.pending.push(signal);
      return true;
    }
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** @internal */
  started(pid: number): void {
    this.pid = pid;
    for (const signal of this.pending.splice(0)) this.kill(signal);
    if (this.stdin) this.emit('spawn');
  }

  /** @internal */
  connected(stdin: Socket): void {
    this.stdin = stdin;
    this.once('exit', () => stdin.destroy());
    if (this.pid !== undefined) this.emit('spawn');
  }

  /** @internal */
  exited(status: number): void {
    const signal = status & 0x7f;
    if (signal !== 0) this.signalCode = SIGNAL_NAMES.get(signal) ?? 'SIGKILL';
    else this.exitCode = (status >> 8) & 0xff;
    this.emit('exit', this.exitCode, this.signalCode);
  }
}

/** The helper process, while it runs, and the listener its commands' stdin connections come to. */
let helper: { readonly process: ChildProcess; readonly commands: Map<string, HelperCommand>; readonly listener: Server } | undefined;
let nextId = 0;
/** Set once perl turned out to be missing: commands use child_process from then on. */
let unavailable = false;

/**
 * Where each command's stdin connection comes: the first line is the request's id, the rest is the
 * command's to read. What a command writes to its stdin is read and dropped.
 */
function stdinListener(path: string, commands: Map<string, HelperCommand>): Server {
  const listener = createServer((socket) => {
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\n');
      if (end < 0) {
        if (head.length > 32) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.on('data', () => {});
      const command = commands.get(head.slice(0, end));
      if (!command || command.stdin) socket.destroy();
      else command.connected(socket);
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  });
  // A path it cannot listen on (too long for a Unix socket, say): no helper from now on; a
  // command already asked for fails to connect, and the helper says so ("F").
  listener.on('error', () => {
    unavailable = true;
    listener.close();
  });
  listener.listen(path);
  listener.unref();
  return listener;
}

function startHelper(): NonNullable<typeof helper> | undefined {
  if (helper) return helper;
  const perl = unavailable ? undefined : findPerl();
  const folder = pipeFolder();
  if (!perl || !folder) {
    unavailable = true;
    return undefined;
  }
  const commands = new Map<string, HelperCommand>();
  const path = join(folder, `stdin-${nextId}.sock`);
  const listener = stdinListener(path, commands);
  // Its own small environment (a C locale, no variable that steers perl): it never needs more.
  const child = spawn(perl, ['-e', HELPER, path], { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'inherit'] });
  const started = { process: child, commands, listener };
  helper = started;
  let text = '';
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (chunk: string) => {
    text += chunk;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n')) {
      const [kind, id, value] = text.slice(0, end).split(' ', 3);
      text = text.slice(end + 1);
      const command = commands.get(id ?? '');
      if (!command) continue;
      if (kind === 'S') command.started(Number(value));
      else if (kind === 'X') {
        commands.delete(id!);
        command.exited(Number(value));
      } else if (kind === 'F') {
        commands.delete(id!);
        command.emit('error', new Error(`the command helper could not fork: ${value}`));
      }
    }
  });
  const gone = (): void => {
    if (helper === started) helper = undefined;
    listener.close();
    // Commands it started and had not reported as ended: their end can no longer be known.
    for (const command of commands.values()) command.emit('error', new Error('the command helper exited'));
    commands.clear();
  };
  child.once('exit', gone);
  child.once('error', (error) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') unavailable = true;
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

/** Whether a command can go through the helper: perl is there (checked once). */
export function helperAvailable(): boolean {
  return !unavailable && (helper !== undefined || findPerl() !== undefined);
}

/**
 * Ask the helper to start a command; undefined when there is no helper (then start it another way).
 * Fields must not contain NUL, which no file name, argument or variable of a real command can.
 */
export function startThroughHelper(request: HelperRequest): HelperCommand | undefined {
  const fields = [
    request.cwd,
    request.user ? String(request.user.uid) : '',
    request.user ? String(request.user.gid) : '',
    request.user ? request.user.groups.join(',') : '',
    request.fifos.stdout,
    request.fifos.stderr,
    String(PIPE_SIZE),
    request.file,
    request.argv0,
    String(request.args.length),
    ...request.args,
    ...Object.entries(request.env).map(([name, value]) => `${name}=${value}`),
  ];
  if (fields.some((field) => field.includes('\0'))) return undefined;
  const running = startHelper();
  if (!running) return undefined;
  const id = String(nextId++);
  const command = new HelperCommand();
  running.commands.set(id, command);
  const payload = Buffer.from([id, ...fields].join('\0'), 'utf8');
  running.process.stdin!.write(Buffer.concat([Buffer.from(`${payload.length}\n`), payload]));
  return command;
}
