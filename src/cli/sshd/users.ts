/**
 * The system's user database, as sshd uses it: name, uid, gid, home, shell and the
 * supplementary groups. Node has no getpwnam(3); `getent` asks NSS the same way the C library
 * does (so LDAP or sssd users work too), and `id -G` gives the group list.
 */
import { execFile, execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';
import { readFileSync, statSync } from 'node:fs';

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

/** /etc/passwd parsed, kept while the file's mtime is unchanged: no process per lookup. */
let passwdCache: { mtimeMs: number; users: Map<string, SystemUser> } | undefined;

function fromPasswdFile(name: string): SystemUser | undefined {
  try {
    const { mtimeMs } = statSync('/etc/passwd');
    if (!passwdCache || passwdCache.mtimeMs !== mtimeMs) {
      const users = new Map<string, SystemUser>();
      for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const user = parsePasswdLine(line);
        if (user) users.set(user.name, user);
      }
      passwdCache = { mtimeMs, users };
    }
    return passwdCache.users.get(name);
  } catch {
    return undefined;
  }
}

function parsePasswdLine(line: string): SystemUser | undefined {
  const fields = line.trim().split(':');
  if (fields.length < 7 || !fields[0]) return undefined;
  return { name: fields[0], uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || '/', shell: fields[6] || '/bin/sh' };
}

/**
 * Whether NSS may know users that /etc/passwd does not (LDAP, sssd, NIS): only then is an
 * unknown name worth a getent process. (Asking it for every unknown name would also make a
 * failed login for an unknown user measurably slower than for a known one.)
 */
let otherSources: boolean | undefined;
function usesOtherUserSources(): boolean {
  if (otherSources === undefined) {
    try {
      const line = readFileSync('/etc/nsswitch.conf', 'utf8').split('\n').find((l) => /^\s*passwd\s*:/.test(l)) ?? '';
      const sources = line.replace(/^\s*passwd\s*:/, '').replace(/\[[^\]]*\]/g, '').trim().split(/\s+/).filter(Boolean);
      otherSources = sources.some((source) => !['files', 'compat', 'systemd'].includes(source));
    } catch {
      otherSources = true;
    }
  }
  return otherSources;
}

/**
 * Look a user up; undefined when no such user exists. /etc/passwd first (cheap, and checked on
 * every login attempt), then NSS through getent for users from other sources (LDAP, sssd).
 */
export function lookupUser(name: string): SystemUser | undefined {
  // A name that could be read as an option or a number is never a user we look up.
  if (!/^[A-Za-z0-9._][A-Za-z0-9._@-]*$/.test(name)) return undefined;
  const local = fromPasswdFile(name);
  if (local || !usesOtherUserSources()) return local;
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
  const user = parsePasswdLine(line);
  return user?.name === name ? user : undefined;
}

/** Names of the groups a user belongs to (primary and supplementary). */
export function userGroups(name: string): string[] {
  try {
    return execFileSync('id', ['-Gn', '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split(/\s+/)
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** The user this process runs as. */
export function currentUser(): SystemUser {
  const info = userInfo();
  return lookupUser(info.username) ?? {
    name: info.username,
    uid: info.uid,
    gid: info.gid,
    home: info.homedir,
    shell: info.shell ?? '/bin/sh',
  };
}

export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** How long an answer of sharesCredentials() is trusted while /etc/group keeps its mtime. */
const CREDENTIALS_TTL_MS = 60_000;
const credentialAnswers = new Map<string, { readonly checkedAt: number; readonly groupMtimeMs: number; readonly answer: Promise<boolean> }>();

/**
 * Whether a process started for `user` may simply keep this process's credentials, because
 * setpriv would set exactly these again: the real and effective uid and gid are the user's, and
 * this process's groups are the ones initgroups(3) gives the user (`id -G`, which asks NSS as
 * setpriv does). The effective gid counts as one of the groups on both sides, as the kernel counts
 * it in every permission check. In practice: tsshd run by root, serving root. The answer is kept
 * for a minute while /etc/group is unchanged; anything unclear answers false (switch as usual).
 */
export function sharesCredentials(user: SystemUser): Promise<boolean> {
  if (!process.getuid || !process.geteuid || !process.getgid || !process.getegid || !process.getgroups) return Promise.resolve(false);
  if (process.getuid() !== user.uid || process.geteuid() !== user.uid || process.getgid() !== user.gid || process.getegid() !== user.gid) {
    return Promise.resolve(false);
  }
  const ours = new Set([...process.getgroups(), process.getegid()]);
  let groupMtimeMs = -1;
  try {
    groupMtimeMs = statSync('/etc/group').mtimeMs;
  } catch {
    // no /etc/group: NSS alone knows the groups; the minute still bounds the answer's age
  }
  const now = Date.now();
  const known = credentialAnswers.get(user.name);
  if (known && known.groupMtimeMs === groupMtimeMs && now - known.checkedAt < CREDENTIALS_TTL_MS) return known.answer;
  const answer = new Promise<boolean>((resolve) => {
    execFile('id', ['-G', '--', user.name], { encoding: 'utf8', timeout: 5000 }, (error, stdout) => {
      const theirs = new Set(error ? [] : stdout.trim().split(/\s+/).map(Number));
      theirs.add(user.gid);
      resolve(!error && theirs.size === ours.size && [...theirs].every((id) => Number.isInteger(id) && ours.has(id)));
    });
  });
  credentialAnswers.set(user.name, { checkedAt: now, groupMtimeMs, answer });
  return answer;
}
