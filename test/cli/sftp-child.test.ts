/**
 * The SFTP child started with --assigned (src/sftp/child.ts), as tsshd starts it ahead of a
 * session: it serves nothing before its assignment on fd 3; with a user in the assignment it
 * serves with that user's uid and gid (real, effective, saved and file-system ones: no way back to
 * root) and groups; a bad assignment or a user it cannot become ends it without a reply; EOF on
 * fd 3 ends it quietly.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { canMakeSystemUsers, createSystemUser } from '../helpers/auth-lab.js';
import { FXP } from '../../src/sftp/protocol.js';
import { RawSftpClient, status } from '../helpers/sftp-client.js';
import { lookupUser } from '../../src/cli/sshd/users.js';
import type { SftpChildAssignment } from '../../src/sftp/internal-sftp.js';

const CHILD = resolve('dist/src/sftp/child.js');

function startAssigned(t: TestContext): { child: ChildProcess; control: Writable; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CHILD, '--assigned'], { cwd: '/', stdio: ['pipe', 'pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  let text = '';
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, control: child.stdio[3] as Writable, stderr: () => text, exited };
}

/** uid and gid lines of /proc/PID/status: real, effective, saved, file system. */
function credentials(pid: number): { uid: number[]; gid: number[]; groups: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number[] => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  return { uid: field('Uid'), gid: field('Gid'), groups: field('Groups') };
}

const config = (dir: string): SftpChildAssignment['config'] => ({ cwd: dir, home: dir, readOnly: false, umask: undefined });

describe('SFTP child started ahead (--assigned)', () => {
  test('EOF on fd 3 before any assignment: exits 0 and never answers', async (t) => {
    const { child, control, exited } = startAssigned(t);
    const client = new RawSftpClient(child.stdin!, child.stdout!);
    const version = client.init().then(() => 'answered', () => 'no answer');
    control.end();
    assert.equal(await exited, 0);
    assert.equal(await Promise.race([version, new Promise((r) => setTimeout(() => r('no answer'), 200))]), 'no answer');
  });

  test('a malformed assignment: exits 1 without a reply, saying why', async (t) => {
    for (const [text, why] of [
      ['{"config":{"cwd":"/"}}', /not started: /],
      ['not json', /not started: /],
      [JSON.stringify({ config: config('/'), env: {}, user: { name: 'x', uid: -1, gid: 0 } }), /not started: malformed assignment/],
    ] as const) {
      const { child, control, stderr, exited } = startAssigned(t);
      let output = 0;
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.length));
      control.end(text);
      assert.equal(await exited, 1, text);
      assert.match(stderr(), why);
      assert.equal(output, 0);
    }
  });

  test('as root, assigned to a user: serves with that user\'s credentials only, and the kernel refuses what the user may not do', { timeout: 60_000 }, async (t) => {
    if (!canMakeSystemUsers(t)) return;
    const handle = await createSystemUser(randomBytes(12).toString('base64url'));
    t.after(() => handle.remove());
    const user = lookupUser(handle.name)!;
    const { child, control, exited } = startAssigned(t);
    const assignment: SftpChildAssignment = {
      config: config(user.home),
      user: { name: user.name, uid: user.uid, gid: user.gid },
      env: { HOME: user.home, USER: user.name, LOGNAME: user.name, PATH: '/usr/bin:/bin' },
    };
    control.end(JSON.stringify(assignment));
    const client = new RawSftpClient(child.stdin!, child.stdout!);
    await client.init();
    const seen = credentials(child.pid!);
    assert.deepEqual(seen.uid, [user.uid, user.uid, user.uid, user.uid]);
    assert.deepEqual(seen.gid, [user.gid, user.gid, user.gid, user.gid]);
    const groups = spawnSync('id', ['-G', user.name], { encoding: 'utf8' }).stdout.trim().split(/\s+/).map(Number);
    assert.deepEqual([...seen.groups].sort((a, b) => a - b), [...new Set(groups)].sort((a, b) => a - b));
    // A file it makes is the user's; root's files stay out of reach.
    const made = join(user.home, 'made.txt');
    const open = await client.request(FXP.OPEN, (w) => w.string(made).uint32(0x1a).uint32(0));
    assert.equal(open.type, FXP.HANDLE);
    assert.equal(spawnSync('stat', ['-c', '%u', made], { encoding: 'utf8' }).stdout.trim(), String(user.uid));
    const shadow = await client.request(FXP.OPEN, (w) => w.string('/etc/shadow').uint32(1).uint32(0));
    assert.equal(shadow.type, FXP.STATUS);
    assert.match(status(shadow).message, /permission denied/i);
    child.stdin!.end();
    assert.equal(await exited, 0);
    assert.ok(existsSync(made));
  });
});
