/**
 * The system's user database, as sshd uses it: name, uid, gid, home, shell and the
 * supplementary groups. Node has no getpwnam(3); `getent` asks NSS the same way the C library
 * does (so LDAP or sssd users work too), and `id -G` gives the group list.
 */
import { execFileSync } from 'node:child_process';
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
