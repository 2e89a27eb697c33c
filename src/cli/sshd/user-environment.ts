/**
 * PermitUserEnvironment (sshd_config): `no` (the default), `yes`, or a pattern-list of variable
 * names. When not `no`, the `environment="NAME=value"` options of the authorized_keys line that
 * logged in and the user's ~/.ssh/environment (read as the user, inside the chroot when there is
 * one, as sshd reads it after setusercontext) add variables to the session; a pattern-list lets
 * only the names it matches through (session.c do_setup_env, read_environment_file).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { matchPatternList } from '../../keys/patterns.js';
import { chrootCommand } from './chroot.js';
import type { SystemUser } from './users.js';

const SETPRIV = '/usr/bin/setpriv';
/** sshd gives up on an environment file longer than this (and so do we, with a message). */
const MAX_LINES = 1000;
const MAX_BYTES = 256 * 1024;

/** Whether PermitUserEnvironment lets the user set `name`. */
export function userMaySet(setting: boolean | string, name: string): boolean {
  if (setting === false) return false;
  if (setting === true) return true;
  return matchPatternList(name, setting) === 'match';
}

export interface EnvironmentFile {
  readonly variables: ReadonlyArray<readonly [string, string]>;
  /** Problems for the session's stderr, in sshd's words (`Bad line 3 in …`). */
  readonly problems: readonly string[];
}

/**
 * ~/.ssh/environment's format: `NAME=value` lines; leading blanks skipped; empty lines and lines
 * starting with # ignored; the value is everything after the first `=`, verbatim (no quoting).
 */
export function parseEnvironmentFile(text: string, path: string): EnvironmentFile {
  const variables: [string, string][] = [];
  const problems: string[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length > MAX_LINES) return { variables: [], problems: [`Too many lines in environment file ${path}`] };
  lines.forEach((raw, index) => {
    const line = raw.replace(/^[ \t]+/, '');
    if (line === '' || line.startsWith('#')) return;
    const equals = line.indexOf('=');
    // A name must be something a process environment can hold.
    if (equals <= 0 || line.slice(0, equals).includes('\0') || line.includes('\0')) {
      problems.push(`Bad line ${index + 1} in ${path}`);
      return;
    }
    variables.push([line.slice(0, equals), line.slice(equals + 1)]);
  });
  return { variables, problems };
}

/**
 * The text of the user's ~/.ssh/environment, read with the user's own permissions (a symbolic
 * link to a file only root may read gives nothing), inside `chroot` when given; undefined when
 * there is none or it cannot be read.
 */
export async function readUserEnvironmentFile(user: SystemUser, switchUser: boolean, chroot: string | undefined): Promise<string | undefined> {
  const path = join(user.home, '.ssh', 'environment');
  if (!switchUser) {
    try {
      const text = await readFile(path);
      return text.length > MAX_BYTES ? undefined : text.toString('utf8');
    } catch {
      return undefined;
    }
  }
  let file: string;
  let args: string[];
  const env: Record<string, string> = { PATH: '/usr/bin:/bin' };
  if (chroot) {
    try {
      ({ file, args } = chrootCommand(chroot, user, {}, { cat: path }));
    } catch {
      return undefined;
    }
  } else {
    if (!existsSync(SETPRIV)) return undefined;
    file = SETPRIV;
    args = [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', '/bin/cat', '--', path];
  }
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'ignore'], env, cwd: '/' });
    const chunks: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BYTES) child.kill('SIGKILL');
      else chunks.push(chunk);
    });
    child.once('error', () => resolve(undefined));
    child.once('close', (code) => resolve(code === 0 && size <= MAX_BYTES ? Buffer.concat(chunks).toString('utf8') : undefined));
  });
}
