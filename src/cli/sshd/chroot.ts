/**
 * ChrootDirectory, as sshd(8) applies it (session.c safely_chroot): only when tsshd runs as root;
 * %h, %u, %U and %% expanded (and a leading ~), `none` for no chroot; every component of the path,
 * the last included, must be a directory owned by root and writable by nobody else, or the
 * connection is refused after authentication with sshd's kind of log line; the session then runs
 * inside that directory as the user, in the user's home there if it exists, else in `/`.
 *
 * How a program gets into the chroot: Node has no chroot(2), and coreutils' chroot(1) always ends
 * in `/` (its --skip-chdir is refused for a new root). So a short Perl program (perl-base is part
 * of every Debian system; Perl is on nearly every Linux) does, in sshd's order: chdir(dir),
 * chroot("."), chdir("/"), the user's groups, gid and uid (checked afterwards: no way back to
 * root), chdir(home) or stay in `/`, then execs the session's program with its argv[0]. Nothing it
 * runs has to exist in the chroot except the session's own program (the user's shell). Perl is
 * started with a clean environment: variables that would steer a root process (LD_*, PERL*, …)
 * are given to the session only after the privileges are dropped.
 *
 * internal-sftp does not use this (Node cannot run inside an arbitrary directory tree): its server
 * confines every path to the chroot itself (src/sftp/confined-fs.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { expandSshdTokens } from '../../config/sshd-config.js';
import { groupIdsNow, lookupUser, type SystemUser } from './users.js';

const PERL_CANDIDATES = ['/usr/bin/perl', '/bin/perl'];

/** The chroot folder for `user`, or undefined for `none`; throws for a relative result. */
export function expandChrootDirectory(setting: string | null, user: SystemUser): string | undefined {
  if (setting === null || setting.toLowerCase() === 'none') return undefined;
  let path = setting;
  // sshd's tilde_expand_filename: ~ and ~/… are the user's home, ~name/… another user's.
  const tilde = /^~([^/]*)(\/.*)?$/.exec(path);
  if (tilde) {
    const home = tilde[1] === '' ? user.home : lookupUser(tilde[1]!)?.home;
    if (home === undefined) throw new Error(`ChrootDirectory: no such user ${tilde[1]}`);
    path = join(home, tilde[2] ?? '');
  }
  const expanded = expandSshdTokens(path, { home: user.home, user: user.name, uid: user.uid });
  if (!isAbsolute(expanded)) throw new Error(`chroot path does not begin at root: ${expanded}`);
  return expanded;
}

/**
 * sshd's check, component by component from `/`: each must exist, be owned by root, not be
 * group- or world-writable, and be a directory. Undefined when all is well, else the log line (sshd's wording) saying which component is wrong.
 */
export function checkChrootDirectory(path: string): string | undefined {
  const parts = path.split('/').filter((p) => p !== '');
  const components = ['/'];
  for (let i = 0; i < parts.length; i++) components.push(`/${parts.slice(0, i + 1).join('/')}${i + 1 < parts.length ? '/' : ''}`);
  for (let i = 0; i < components.length; i++) {
    const component = components[i]!;
    const last = i === components.length - 1;
    const kind = last ? '' : 'component ';
    let info;
    try {
      info = statSync(component);
    } catch (error) {
      return `stat("${component}"): ${describeErrno(error as NodeJS.ErrnoException)}`;
    }
    if (info.uid !== 0 || (info.mode & 0o022) !== 0) return `bad ownership or modes for chroot directory ${kind}"${component}"`;
    if (!info.isDirectory()) return `chroot path ${kind}"${component}" is not a directory`;
  }
  return undefined;
}

function describeErrno(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT': return 'No such file or directory';
    case 'EACCES': return 'Permission denied';
    case 'ENOTDIR': return 'Not a directory';
    case 'ELOOP': return 'Too many levels of symbolic links';
    default: return error.message;
  }
}

export function findPerl(): string | undefined {
  return PERL_CANDIDATES.find((path) => existsSync(path));
}

/**
 * Variables that steer what a process does before it runs its own code (the dynamic loader,
 * glibc's locale and charset modules, Perl, shells' start-up): a root helper must never see them
 * with values a user chose (PermitUserEnvironment, AcceptEnv, authorized_keys environment=). glibc
 * ignores these for set-uid programs (its "unsecure" list); we go further and ignore them for
 * every helper that runs as root, and hand them to the session after privileges are dropped.
 */
export function isRootUnsafeVariable(name: string): boolean {
  return (
    /^(LD_|PERL|MALLOC_|GLIBC_|BASH_FUNC_)/.test(name) ||
    [
      'GCONV_PATH', 'GETCONF_DIR', 'HOSTALIASES', 'LOCALDOMAIN', 'LOCPATH', 'NIS_PATH', 'NLSPATH',
      'RESOLV_HOST_CONF', 'RES_OPTIONS', 'TMPDIR', 'TZDIR', 'BASH_ENV', 'ENV', 'IFS', 'SHELLOPTS',
      'BASHOPTS', 'PS4', 'CDPATH', 'POSIXLY_CORRECT', 'LANGUAGE', 'LC_ALL', 'LANG',
    ].includes(name) ||
    name.startsWith('LC_')
  );
}

/** The environment split into what a root helper may see and what only the session gets. */
export function splitForRoot(env: Readonly<Record<string, string>>): { safe: Record<string, string>; deferred: [string, string][] } {
  const safe: Record<string, string> = {};
  const deferred: [string, string][] = [];
  for (const [name, value] of Object.entries(env)) {
    if (isRootUnsafeVariable(name)) deferred.push([name, value]);
    else safe[name] = value;
  }
  return { safe, deferred };
}

/**
 * Perl, for the programs that start a command as another user (this file's trampoline and
 * spawn-helper.ts): switch_user(UID, GID, GROUPS...) takes the groups (GID alone when none is
 * given: with one value, assigning $) would leave the caller's groups), the gid and the uid, then
 * checks that they hold: real, effective and saved ids, root not to be regained, exactly these
 * groups. The program defines fail(MESSAGE), which must not return.
 */
export const PERL_SWITCH_USER = String.raw`
sub switch_user {
  my ($uid, $gid, @groups) = @_;
  @groups = grep { length } @groups;
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
`;

/**
 * The Perl program: argv is DIR UID GID GROUPS HOME NDEFERRED [NAME=VALUE…] MODE …, where MODE is
 * `exec FILE ARGV0 ARGS…` or `cat FILE` (print a file as the user inside the chroot; exit 1 when
 * it cannot be read). Every failure before the exec is fatal (exit 255) with a message on stderr.
 */
const TRAMPOLINE = String.raw`
use strict; use warnings; use POSIX ();
sub fail { print STDERR "tsshd: $_[0]\n"; POSIX::_exit(255); }
${PERL_SWITCH_USER}
my ($dir, $uid, $gid, $groups, $home, $n) = splice(@ARGV, 0, 6);
my @deferred = splice(@ARGV, 0, $n);
my $mode = shift @ARGV;
chdir($dir) or fail("Unable to chdir to chroot path \"$dir\": $!");
chroot('.') or fail("chroot(\"$dir\"): $!");
chdir('/') or fail("chdir(/) after chroot: $!");
switch_user($uid, $gid, split(/,/, $groups));
chdir($home) or chdir('/');
for (@deferred) { my ($k, $v) = split(/=/, $_, 2); $ENV{$k} = $v; }
if ($mode eq 'cat') {
  open(my $f, '<', $ARGV[0]) or POSIX::_exit(1);
  binmode($f); binmode(STDOUT);
  my $buf; print $buf while read($f, $buf, 65536);
  close(STDOUT) or POSIX::_exit(1);
  POSIX::_exit(0);
}
my ($file, $argv0, @args) = @ARGV;
{ no warnings 'exec'; exec { $file } $argv0, @args; }
fail("$file: $!");
`;

export interface ChrootCommand {
  readonly file: string;
  readonly args: string[];
  /** The environment to start `file` with: what a root process may see. */
  readonly env: Record<string, string>;
}

/**
 * The command that runs `file` (with `argv0` and `args`) as `user` inside `dir`, in the user's
 * home there when it exists; or, with `cat`, prints a file read as the user inside `dir`.
 */
export function chrootCommand(
  dir: string,
  user: SystemUser,
  env: Readonly<Record<string, string>>,
  run: { readonly exec: { file: string; argv0: string; args: readonly string[] } } | { readonly cat: string },
): ChrootCommand {
  const perl = findPerl();
  if (!perl) throw new Error('ChrootDirectory needs perl (Debian package perl-base), which is missing');
  const { safe, deferred } = splitForRoot(env);
  const groups = groupIdsNow(user).join(',');
  const head = [dir, String(user.uid), String(user.gid), groups, user.home, String(deferred.length), ...deferred.map(([k, v]) => `${k}=${v}`)];
  const tail = 'exec' in run ? ['exec', run.exec.file, run.exec.argv0, ...run.exec.args] : ['cat', run.cat];
  return { file: perl, args: ['-e', TRAMPOLINE, '--', ...head, ...tail], env: safe };
}
