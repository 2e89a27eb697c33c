/**
 * tsshd's ChrootDirectory, as root with a throwaway system user and real OpenSSH clients:
 *  - the SFTP jail (`ForceCommand internal-sftp` + `ChrootDirectory BASE/%u`): OpenSSH's sftp sees
 *    the chroot as `/`, starts in the home inside it, and cannot leave it by `cd ..`, by absolute
 *    paths or through symbolic links (relative or absolute) that point outside; what it uploads
 *    lands inside, owned by the user;
 *  - exec in the chroot: the user's shell (bash, copied into the jail with its libraries) runs
 *    inside it as the user, in the home there;
 *  - a chroot folder the user owns is refused after authentication, with sshd's log line.
 * The jail lives under /srv (root-owned, mode 755): under /tmp (mode 1777) sshd's rule refuses it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { haveNodePty, havePeers, peerPath } from '../helpers/peers.js';
import { canMakeSystemUsers, createLab, createSystemUser, run, startTsshd, systemUsersUnavailable, type RunResult, type SystemUserHandle, type Tsshd } from '../helpers/auth-lab.js';
import type { OpenSshFixture } from '../helpers/openssh.js';
import { lookupUser, type SystemUser } from '../../src/cli/sshd/users.js';
import { checkChrootDirectory, expandChrootDirectory } from '../../src/cli/sshd/chroot.js';

const JAIL_BASES = ['/srv', '/var/lib', '/opt'];


let batches = 0;
async function sftpBatch(lab: OpenSshFixture, port: number, user: string, commands: readonly string[]): Promise<RunResult> {
  const batch = lab.path(`chroot-batch.${++batches}`);
  writeFileSync(batch, `${commands.join('\n')}\n`);
  return run(join(dirname(peerPath('ssh')), 'sftp'), [...lab.clientOptions(port, { portFlag: '-P', quiet: true }), '-b', batch, `${user}@127.0.0.1`], { timeoutMs: 60_000 });
}

/** Copies a program and the libraries ldd lists into the jail, at the same paths. */
function copyProgram(jail: string, program: string): void {
  const copy = (path: string): void => {
    const target = join(jail, path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    copyFileSync(path, target);
    chmodSync(target, 0o755);
  };
  copy(program);
  const ldd = execFileSync('ldd', [program], { encoding: 'utf8' });
  for (const match of ldd.matchAll(/(\/\S+) \(0x/g)) copy(match[1]!);
}

describe('tsshd ChrootDirectory (as root)', () => {
  let lab: OpenSshFixture | undefined;
  let user: SystemUserHandle | undefined;
  let account: SystemUser | undefined;
  let base = '';
  let jail = '';
  let sftpServer: Tsshd | undefined;

  before(async () => {
    if (systemUsersUnavailable() !== undefined) return;
    lab = await createLab();
    user = await createSystemUser(randomBytes(12).toString('base64url'));
    account = lookupUser(user.name)!;
    const parent = JAIL_BASES.find((dir) => existsSync(dir) && statSync(dir).uid === 0 && (statSync(dir).mode & 0o022) === 0)!;
    base = mkdtempSync(join(parent, 'tssh-jail-'));
    chmodSync(base, 0o755);
    // The user's jail: BASE/NAME (ChrootDirectory BASE/%u), with a home inside, an /etc of its own,
    // and links that try to point out of it.
    jail = join(base, user.name);
    mkdirSync(jail, { mode: 0o755 });
    chmodSync(jail, 0o755);
    mkdirSync(join(jail, 'etc'), { mode: 0o755 });
    writeFileSync(join(jail, 'etc', 'jail-marker'), 'inside the jail\n', { mode: 0o644 });
    const home = join(jail, account.home);
    mkdirSync(home, { recursive: true, mode: 0o755 });
    chmodSync(join(jail, 'home'), 0o755);
    chownSync(home, account.uid, account.gid);
    symlinkSync('/etc', join(home, 'abs-etc'));
    symlinkSync('../../../../../../../../etc', join(home, 'rel-etc'));
    symlinkSync('/etc/passwd', join(home, 'passwd-link'));
    copyProgram(jail, '/bin/bash');
    const config = [
      `Match User ${user.name}`,
      `  ChrootDirectory ${base}/%u`,
      '  ForceCommand internal-sftp',
    ];
    sftpServer = await startTsshdWithMatch(lab, config);
  });
  after(async () => {
    await sftpServer?.stop();
    await user?.remove();
    if (base) rmSync(base, { recursive: true, force: true });
    await lab?.cleanup();
  });

  test('tokens and the ownership check, component by component', { timeout: 30_000 }, (t) => {
    if (!canMakeSystemUsers(t)) return;
    assert.equal(expandChrootDirectory(`${base}/%u`, account!), jail);
    assert.equal(expandChrootDirectory('/jails%h/%%', account!), `/jails${account!.home}/%`);
    assert.equal(expandChrootDirectory('none', account!), undefined);
    assert.throws(() => expandChrootDirectory('relative/%u', account!), /does not begin at root/);
    assert.equal(checkChrootDirectory(jail), undefined);
    assert.equal(checkChrootDirectory('/tmp'), 'bad ownership or modes for chroot directory "/tmp"');
    assert.match(checkChrootDirectory(join(jail, account!.home, 'x')) ?? '', /bad ownership or modes for chroot directory component "\/.*\/home\/tssh[0-9a-f]+\/"$/);
    assert.match(checkChrootDirectory(join(jail, 'etc', 'jail-marker')) ?? '', /chroot path ".*jail-marker" is not a directory/);
    assert.match(checkChrootDirectory(join(base, 'missing')) ?? '', /^stat\(".*missing"\): No such file or directory$/);
  });

  test('sftp in the jail: / is the chroot, the home inside it, no way out by .., absolute paths or links', { timeout: 90_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    const upload = lab!.path('upload.txt');
    writeFileSync(upload, 'uploaded into the jail\n');
    const got = lab!.path('got');
    mkdirSync(got);
    const r = await sftpBatch(lab!, sftpServer!.port, user!.name, [
      'pwd',
      'cd ..',
      'cd ..',
      'cd ..',
      'pwd',
      'ls -1 /',
      `get /etc/jail-marker ${got}/marker`,
      `-get /etc/passwd ${got}/passwd`,
      `-get ../../../../etc/passwd ${got}/passwd2`,
      `cd ${account!.home}`,
      // sftp lists a link as a name; cd follows it (REALPATH), then ls lists where it led.
      'cd abs-etc',
      'pwd',
      'ls -1',
      `cd ${account!.home}`,
      'cd rel-etc',
      'pwd',
      'ls -1',
      `cd ${account!.home}`,
      `-get passwd-link ${got}/passwd3`,
      `get abs-etc/jail-marker ${got}/marker2`,
      `put ${upload} up.txt`,
      '-ln -s /etc/shadow made-link',
      `-get made-link ${got}/shadow`,
    ]);
    const log = `${r.stdout}\n${r.stderr}\n${sftpServer!.log()}`;
    assert.equal(r.code, 0, log);
    const wd = [...r.stdout.matchAll(/^Remote working directory: (.*)$/gm)].map((m) => m[1]);
    assert.deepEqual(wd, [account!.home, '/', '/etc', '/etc'], log);
    // The root listing is the jail's: its etc, home and the copied bash's folders; not the system's.
    const rootListing = r.stdout.slice(r.stdout.indexOf('sftp> ls -1 /'), r.stdout.indexOf('sftp> get /etc/jail-marker'));
    assert.match(rootListing, /^\/?etc$/m, log);
    assert.match(rootListing, /^\/?home$/m, log);
    assert.doesNotMatch(rootListing, /^\/?(proc|root|srv|var)$/m, log);
    assert.equal(readFileSync(join(got, 'marker'), 'utf8'), 'inside the jail\n');
    assert.equal(readFileSync(join(got, 'marker2'), 'utf8'), 'inside the jail\n');
    for (const name of ['passwd', 'passwd2', 'passwd3', 'shadow']) assert.equal(existsSync(join(got, name)), false, `${name} came from outside the jail\n${log}`);
    // Both links lead to the jail's /etc (only the marker), never the system's.
    const listings = r.stdout.split('sftp> ').filter((part) => part.startsWith('ls -1\n'));
    assert.equal(listings.length, 2, log);
    for (const listing of listings) {
      assert.match(listing, /jail-marker/, log);
      assert.doesNotMatch(listing, /passwd|hostname|os-release/, log);
    }
    const uploaded = join(jail, account!.home, 'up.txt');
    assert.equal(readFileSync(uploaded, 'utf8'), 'uploaded into the jail\n');
    assert.equal(statSync(uploaded).uid, account!.uid);
    await sftpServer!.waitForLog(new RegExp(`internal-sftp session for ${user!.name} \\(as uid ${account!.uid} in a child process, confined to ${jail.replace(/[.]/g, '\\.')}\\)`));
  });

  test('exec in the chroot: the user\'s shell runs inside it, as the user, in the home there, with ~/.ssh/environment from inside', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    // Two ~/.ssh/environment files: the one in the home inside the chroot counts, as in sshd.
    for (const home of [account!.home, join(jail, account!.home)]) {
      mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
      writeFileSync(join(home, '.ssh', 'environment'), `WHERE=${home === account!.home ? 'outside' : 'inside'}\n`);
      chownSync(join(home, '.ssh'), account!.uid, account!.gid);
      chownSync(join(home, '.ssh', 'environment'), account!.uid, account!.gid);
    }
    const tsshd = await startTsshd(lab!, ['LogLevel VERBOSE', 'PermitUserEnvironment yes'], [], [`Match User ${user!.name}`, `  ChrootDirectory ${base}/%u`]);
    try {
      const command = 'pwd; echo "U=$UID H=$HOME W=$WHERE"; echo /*; read -r line < /etc/jail-marker; echo "M=$line"; [ -e /etc/passwd ] && echo leak || echo no-passwd';
      const r = await run(peerPath('ssh'), [...lab!.clientOptions(tsshd.port, { quiet: true }), '-l', user!.name, '127.0.0.1', command], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${tsshd.log()}`);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], account!.home);
      assert.equal(lines[1], `U=${account!.uid} H=${account!.home} W=inside`);
      assert.equal(lines[2], '/bin /etc /home /lib /lib64');
      assert.equal(lines[3], 'M=inside the jail');
      assert.equal(lines[4], 'no-passwd');
    } finally {
      await tsshd.stop();
    }
  });

  test('a terminal session in the chroot: a login shell (argv[0] -bash) in the home there', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    if (!(await haveNodePty(t))) return;
    const tsshd = await startTsshdWithMatch(lab!, [`Match User ${user!.name}`, `  ChrootDirectory ${base}/%u`]);
    try {
      const r = await lab!.runSsh(['-tt', '127.0.0.1'], { user: user!.name, port: tsshd.port, input: 'echo "P=$(pwd) Z=$0 R=$(echo /*)"; exit 0\n' });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${tsshd.log()}`);
      assert.match(r.stdout, new RegExp(`^P=${account!.home} Z=-bash R=/bin /etc /home /lib /lib64\r$`, 'm'), r.stdout);
    } finally {
      await tsshd.stop();
    }
  });

  test('a chroot folder the user owns: the connection is refused after authentication, with a clear log line', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    const bad = join(base, 'bad');
    mkdirSync(bad, { mode: 0o755 });
    chownSync(bad, account!.uid, account!.gid);
    const tsshd = await startTsshdWithMatch(lab!, [`Match User ${user!.name}`, `  ChrootDirectory ${bad}`, '  ForceCommand internal-sftp']);
    try {
      const r = await sftpBatch(lab!, tsshd.port, user!.name, ['pwd']);
      assert.notEqual(r.code, 0, r.stdout);
      assert.doesNotMatch(r.stdout, /Remote working directory/);
      await tsshd.waitForLog(new RegExp(`fatal: bad ownership or modes for chroot directory "${bad.replace(/[.]/g, '\\.')}" \\(user ${user!.name}\\)`));
      await tsshd.waitForLog(new RegExp(`Disconnected from user ${user!.name} `));
    } finally {
      await tsshd.stop();
    }
  });
});

/** tsshd with internal-sftp, a verbose log and `match` (a Match block) after every global line. */
function startTsshdWithMatch(lab: OpenSshFixture, match: readonly string[]): Promise<Tsshd> {
  return startTsshd(lab, ['LogLevel VERBOSE', 'Subsystem sftp internal-sftp'], [], match);
}
