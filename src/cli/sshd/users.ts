/**
 * The system's user database, as sshd uses it: name, uid, gid, home, shell and the
 * supplementary groups. Node has no getpwnam(3); `getent` asks NSS the same way the C library
 * does (so LDAP or sssd users work too), and `id -G` gives the group list.
 */
import { execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

/** Look a user up; undefined when no such user exists. */
export function lookupUser(name: string): SystemUser | undefined {
  // A name that could be read as an option or a number is never a user we look up.
  if (!/^[A-Za-z0-9._][A-Za-z0-9._@-]*$/.test(name)) return undefined;
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
  const fields = line.split(':');
  if (fields.length < 7 || fields[0] !== name) return undefined;
  return {
    name,
    uid: Number(fields[2]),
    gid: Number(fields[3]),
    home: fields[5] || '/',
    shell: fields[6] || '/bin/sh',
  };
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
