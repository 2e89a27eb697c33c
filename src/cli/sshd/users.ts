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

/** How long a user's groups as `id -G` gave them are trusted while /etc/group keeps its mtime. */
const GROUPS_TTL_MS = 60_000;
const groupAnswers = new Map<
  string,
  { readonly checkedAt: number; readonly groupMtimeMs: number; readonly ids: Promise<readonly number[] | undefined>; settled?: readonly number[] }
>();

/** `id -G` output as the group list, the primary group first; undefined if it is not one. */
function parseGroupIds(text: string, gid: number): number[] | undefined {
  const list = text.trim().split(/\s+/).map(Number);
  return list.length > 0 && list.every((id) => Number.isInteger(id) && id >= 0) ? [...new Set([gid, ...list])] : undefined;
}

/** What initialGroups() last found for `user`, if it has answered (undefined: not asked yet, or unknown). */
export function knownGroups(user: SystemUser): readonly number[] | undefined {
  return groupAnswers.get(user.name)?.settled;
}

/**
 * The groups initgroups(3) gives `user`, the primary one included: `id -G`, which asks NSS as
 * setpriv's initgroups does. Kept for a minute while /etc/group is unchanged; undefined when
 * `id` could not tell.
 */
export function initialGroups(user: SystemUser): Promise<readonly number[] | undefined> {
  let groupMtimeMs = -1;
  try {
    groupMtimeMs = statSync('/etc/group').mtimeMs;
  } catch {
    // no /etc/group: NSS alone knows the groups; the minute still bounds the answer's age
  }
  const now = Date.now();
  const known = groupAnswers.get(user.name);
  if (known && known.groupMtimeMs === groupMtimeMs && now - known.checkedAt < GROUPS_TTL_MS) return known.ids;
  const ids = new Promise<readonly number[] | undefined>((resolve) => {
    execFile('id', ['-G', '--', user.name], { encoding: 'utf8', timeout: 5000 }, (error, stdout) => {
      resolve(error ? undefined : parseGroupIds(stdout, user.gid));
    });
  });
  const entry: { checkedAt: number; groupMtimeMs: number; ids: typeof ids; settled?: readonly number[] } = { checkedAt: now, groupMtimeMs, ids };
  groupAnswers.set(user.name, entry);
  void ids.then((list) => {
    entry.settled = list;
  });
  return ids;
}

/**
 * The user's numeric groups (primary first), as initgroups(3) would set them, for a caller that
 * cannot wait: what initialGroups() found if it has answered (a session of tsshd as root asked it
 * before it starts), else `id -G` run now; the primary group alone if NSS does not know the user.
 */
export function groupIdsNow(user: SystemUser): number[] {
  const known = groupAnswers.get(user.name)?.settled;
  if (known) return [...known];
  try {
    const text = execFileSync('id', ['-G', '--', user.name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return parseGroupIds(text, user.gid) ?? [user.gid];
  } catch {
    return [user.gid];
  }
}

/**
 * How a process started for `user` gets the user's credentials, when this process runs as root:
 * - `same`: it keeps ours, which are the user's already (root serving root with root's groups);
 * - `uid-gid`: the user belongs to no group but its primary one, so spawn's own uid and gid
 *   (libuv also drops the supplementary groups) give exactly what initgroups would;
 * - `initgroups`: through setpriv --init-groups, for the supplementary groups.
 * The effective gid counts as one of the groups on both sides, as the kernel counts it in every
 * permission check. Anything unclear answers `initgroups`.
 */
export async function credentialSwitch(user: SystemUser): Promise<'same' | 'uid-gid' | 'initgroups'> {
  const groups = await initialGroups(user);
  if (groups === undefined || !process.getuid || !process.geteuid || !process.getgid || !process.getegid || !process.getgroups) return 'initgroups';
  const own = process.getuid() === user.uid && process.geteuid() === user.uid && process.getgid() === user.gid && process.getegid() === user.gid;
  const ours = new Set([...process.getgroups(), process.getegid()]);
  if (own && groups.length === ours.size && groups.every((id) => ours.has(id))) return 'same';
  return groups.every((id) => id === user.gid) ? 'uid-gid' : 'initgroups';
}
