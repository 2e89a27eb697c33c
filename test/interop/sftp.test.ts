/**
 * tsshd's internal-sftp against OpenSSH's own programs: `sftp -b` (put/get of a 20 MiB random
 * file, ls -l, mkdir/rmdir, rename, rm, symlink, chmod, df, a missing file), `scp` in its default
 * SFTP mode, ForceCommand internal-sftp, a throwaway system user whose files are theirs and who
 * meets the kernel's refusals, tsshd run by an ordinary user (the server then runs in process),
 * and the same requests answered by our server and by OpenSSH's sftp-server side by side. The
 * throughput of sftp put/get against tsshd and against sshd is reported as a diagnostic.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { havePeers, peerPath } from '../helpers/peers.js';
import {
  canMakeSystemUsers,
  createLab,
  createSystemUser,
  run,
  startTsshd,
  systemUsersUnavailable,
  TSSHD,
  waitForText,
  type RunResult,
  type SystemUserHandle,
  type Tsshd,
} from '../helpers/auth-lab.js';
import { freePort, type OpenSshFixture } from '../helpers/openssh.js';
import { lookupUser } from '../../src/cli/sshd/users.js';
import { encodeAttrs, FX, FXF, FXP } from '../../src/sftp/protocol.js';
import { handleOf, namesOf, RawSftpClient, status, type Name, type Reply } from '../helpers/sftp-client.js';

const MiB = 1024 * 1024;
const SFTP_CHILD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'sftp', 'child.js');
const OPENSSH_SFTP_SERVER = '/usr/lib/openssh/sftp-server';

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** sftp and scp live next to ssh (the openssh-client package). */
function sibling(program: 'sftp' | 'scp'): string {
  return join(dirname(peerPath('ssh')), program);
}


let batchCount = 0;

/** `sftp -b FILE user@127.0.0.1` with `commands` in FILE. */
async function sftpBatch(lab: OpenSshFixture, port: number, user: string, commands: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
  const batch = lab.path(`sftp-batch.${++batchCount}`);
  writeFileSync(batch, `${commands.join('\n')}\n`);
  return run(sibling('sftp'), [...lab.clientOptions(port, { portFlag: '-P', quiet: true }), '-b', batch, `${user}@127.0.0.1`], { timeoutMs });
}

function scp(lab: OpenSshFixture, port: number, from: string, to: string): Promise<RunResult> {
  return run(sibling('scp'), [...lab.clientOptions(port, { portFlag: '-P', quiet: true }), from, to], { timeoutMs: 120_000 });
}

describe('tsshd internal-sftp with OpenSSH sftp and scp', () => {
  let lab: OpenSshFixture | undefined;
  let tsshd: Tsshd | undefined;
  let local = '';
  let remote = '';
  let big = '';

  before(async () => {
    if (!existsSync(TSSHD)) return;
    lab = await createLab();
    local = lab.path('local');
    remote = lab.path('remote');
    mkdirSync(local);
    mkdirSync(remote);
    big = join(local, 'big.bin');
    writeFileSync(big, randomBytes(20 * MiB));
    tsshd = await startTsshd(lab, ['Subsystem sftp internal-sftp', 'LogLevel VERBOSE']);
  });
  after(async () => {
    await tsshd?.stop();
    await lab?.cleanup();
  });

  test('sftp -b: put/get 20 MiB byte-exact, ls -l, mkdir/rmdir, rename, symlink, chmod, df, rm, a missing file', { timeout: 180_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    const me = lookupUser(lab!.user)!;
    const back = join(local, 'big.back');
    const result = await sftpBatch(lab!, tsshd!.port, lab!.user, [
      'pwd',
      `cd ${remote}`,
      `put ${big} big.bin`,
      `get big.bin ${back}`,
      'ls -l',
      'mkdir newdir',
      'ls -l',
      'rmdir newdir',
      'rename big.bin moved.bin',
      'ln -s moved.bin link.bin',
      'chmod 640 moved.bin',
      'ls -l',
      'df',
      `-get nothing-here ${join(local, 'nothing')}`,
      'rm link.bin',
      'ls -la',
    ]);
    assert.equal(result.code, 0, `sftp failed:\n${result.stdout}\n${result.stderr}\n${tsshd!.log()}`);
    const out = result.stdout;
    // REALPATH of "." is the user's home: the session's working folder, as with sshd.
    assert.match(out, new RegExp(`Remote working directory: ${me.home}\\n`));
    assert.equal(sha256(join(remote, 'moved.bin')), sha256(big), 'uploaded bytes');
    assert.equal(sha256(back), sha256(big), 'downloaded bytes');
    const listings = out.split(/^sftp> /m);
    const listing = (n: number): string => listings.filter((l) => /^ls -la?\n/.test(l))[n]!;
    assert.match(listing(0), /^-rw-r--r-- +\S+ +\S+ +\S+ +20971520 \w{3} [ \d]\d \d\d:\d\d big\.bin$/m);
    assert.match(listing(1), /^drwxr-xr-x +.* newdir$/m);
    assert.match(listing(2), /^-rw-r----- +.* 20971520 .* moved\.bin$/m);
    assert.match(listing(2), /^lrwxrwxrwx +.* link\.bin$/m);
    assert.doesNotMatch(listing(2), /newdir|big\.bin/);
    assert.match(listing(3), / \.\.?$/m);
    assert.doesNotMatch(listing(3), /link\.bin/);
    assert.match(out, /^sftp> df\n +Size +Used +Avail +\(root\) +%Capacity\n +\d+ +\d+ +\d+ +\d+ +\d+%$/m);
    assert.match(result.stderr, /File ".*nothing-here" not found/);
    assert.equal(statSync(join(remote, 'moved.bin')).mode & 0o777, 0o640);
    assert.equal(existsSync(join(remote, 'link.bin')), false);
    assert.equal(existsSync(join(remote, 'newdir')), false);
    assert.equal(existsSync(join(local, 'nothing')), false);
    rmSync(join(remote, 'moved.bin'));
    rmSync(back);
  });

  test('scp in its default SFTP mode: upload and download byte-exact', { timeout: 180_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    const up = await scp(lab!, tsshd!.port, big, `${lab!.user}@127.0.0.1:${remote}/scp.bin`);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(sha256(join(remote, 'scp.bin')), sha256(big));
    const down = await scp(lab!, tsshd!.port, `${lab!.user}@127.0.0.1:${remote}/scp.bin`, join(local, 'scp.back'));
    assert.equal(down.code, 0, down.stderr);
    assert.equal(sha256(join(local, 'scp.back')), sha256(big));
    // A relative remote path is relative to the home folder; ~ expands there too.
    const small = join(local, 'small.txt');
    writeFileSync(small, 'small\n');
    const home = lookupUser(lab!.user)!.home;
    const name = `tssh-scp-${randomBytes(4).toString('hex')}.txt`;
    try {
      const relative = await scp(lab!, tsshd!.port, small, `${lab!.user}@127.0.0.1:${name}`);
      assert.equal(relative.code, 0, relative.stderr);
      assert.equal(readFileSync(join(home, name), 'utf8'), 'small\n');
      const tilde = await scp(lab!, tsshd!.port, `${lab!.user}@127.0.0.1:~/${name}`, join(local, 'tilde.txt'));
      assert.equal(tilde.code, 0, tilde.stderr);
      assert.equal(readFileSync(join(local, 'tilde.txt'), 'utf8'), 'small\n');
    } finally {
      rmSync(join(home, name), { force: true });
      rmSync(join(remote, 'scp.bin'), { force: true });
      rmSync(join(local, 'scp.back'), { force: true });
    }
  });
});

describe('ForceCommand internal-sftp', () => {
  test('serves SFTP even where the Subsystem line names another program', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    const lab = await createLab();
    t.after(() => lab.cleanup());
    const tsshd = await startTsshd(lab, ['ForceCommand internal-sftp', 'Subsystem sftp /bin/false']);
    t.after(() => tsshd.stop());
    writeFileSync(lab.path('hello.txt'), 'forced\n');
    const result = await sftpBatch(lab, tsshd.port, lab.user, [`get ${lab.path('hello.txt')} ${lab.path('hello.back')}`]);
    assert.equal(result.code, 0, `${result.stderr}\n${tsshd.log()}`);
    assert.equal(readFileSync(lab.path('hello.back'), 'utf8'), 'forced\n');
  });
});

describe('tsshd as root serves SFTP as the logged-in user', () => {
  let lab: OpenSshFixture | undefined;
  let user: SystemUserHandle | undefined;
  let tsshd: Tsshd | undefined;

  before(async () => {
    if (systemUsersUnavailable() !== undefined || !existsSync(TSSHD)) return;
    lab = await createLab();
    user = await createSystemUser(randomBytes(12).toString('base64url'));
    // The lab's AuthorizedKeysFile holds the lab key, for this user as for everyone.
    tsshd = await startTsshd(lab, ['Subsystem sftp internal-sftp', 'LogLevel VERBOSE']);
  });
  after(async () => {
    await tsshd?.stop();
    await user?.remove();
    await lab?.cleanup();
  });

  test('an uploaded file belongs to the user; the kernel refuses what the user may not do', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd') || !canMakeSystemUsers(t)) return;
    const account = lookupUser(user!.name)!;
    const payload = join(lab!.dir, 'payload.bin');
    writeFileSync(payload, randomBytes(3 * MiB + 17));
    const forbidden = `/root/tssh-forbidden-${randomBytes(4).toString('hex')}`;
    const result = await sftpBatch(lab!, tsshd!.port, user!.name, [
      'pwd',
      `put ${payload} up.bin`,
      `-put ${payload} ${forbidden}`,
      `-get /etc/shadow ${lab!.path('shadow')}`,
      'mkdir made',
      'ls -ln',
    ]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}\n${tsshd!.log()}`);
    assert.match(result.stdout, new RegExp(`Remote working directory: ${account.home}\\n`));
    const uploaded = statSync(join(account.home, 'up.bin'));
    assert.equal(uploaded.uid, account.uid, 'owner of the uploaded file');
    assert.equal(uploaded.gid, account.gid, 'group of the uploaded file');
    assert.equal(sha256(join(account.home, 'up.bin')), sha256(payload));
    assert.equal(statSync(join(account.home, 'made')).uid, account.uid);
    // sftp 9.2 prints names here even with -n, whichever server it talks to.
    assert.match(result.stdout, new RegExp(`^-rw-r--r-- +\\S+ +(${account.uid}|${user!.name}) +(${account.gid}|${user!.name}) +3145745 .* up\\.bin$`, 'm'));
    assert.equal(existsSync(forbidden), false);
    assert.equal(existsSync(lab!.path('shadow')), false);
    assert.equal(result.stderr.match(/Permission denied/g)?.length, 2, result.stderr);
    await tsshd!.waitForLog(new RegExp(`internal-sftp session for ${user!.name} \\(as uid ${account.uid} in a child process\\)`));
  });

  test('the next session is served by a child started ahead, with the same credentials', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd') || !canMakeSystemUsers(t)) return;
    const account = lookupUser(user!.name)!;
    // One session has a child started for it and leaves one started ahead for the next.
    const first = await sftpBatch(lab!, tsshd!.port, user!.name, ['pwd']);
    assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}\n${tsshd!.log()}`);
    const since = tsshd!.log().length;
    const payload = join(lab!.dir, 'ahead.bin');
    writeFileSync(payload, randomBytes(MiB + 5));
    const result = await sftpBatch(lab!, tsshd!.port, user!.name, [`put ${payload} ahead.bin`, `-get /etc/shadow ${lab!.path('shadow-ahead')}`]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}\n${tsshd!.log()}`);
    await tsshd!.waitForLog(new RegExp(`internal-sftp for ${user!.name}: a child started ahead takes the session`), since);
    const uploaded = statSync(join(account.home, 'ahead.bin'));
    assert.equal(uploaded.uid, account.uid);
    assert.equal(uploaded.gid, account.gid);
    assert.equal(sha256(join(account.home, 'ahead.bin')), sha256(payload));
    assert.equal(existsSync(lab!.path('shadow-ahead')), false);
    assert.match(result.stderr, /Permission denied/);
  });
});

describe('tsshd run by an ordinary user serves SFTP in its own process', () => {
  test('put/get through the in-process server', { timeout: 90_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd') || !canMakeSystemUsers(t)) return;
    if (!existsSync('/usr/bin/setpriv')) {
      t.skip('needs /usr/bin/setpriv (Debian package util-linux) to start tsshd as another user');
      return;
    }
    const lab = await createLab();
    const user = await createSystemUser(randomBytes(12).toString('base64url'));
    let server: ReturnType<typeof startAs> | undefined;
    // In this order: userdel refuses to remove a user whose processes still run.
    t.after(async () => {
      await server?.stop();
      await user.remove();
      await lab.cleanup();
    });
    const account = lookupUser(user.name)!;
    // The user's own copy of a host key and of the lab's authorized_keys.
    const own = join(account.home, 'tsshd');
    mkdirSync(own, { mode: 0o700 });
    copyFileSync(lab.hostKeys.ed25519.privateKey, join(own, 'host_key'));
    copyFileSync(lab.authorizedKeys, join(own, 'authorized_keys'));
    const port = await freePort();
    writeFileSync(join(own, 'config'), [
      'Subsystem sftp internal-sftp',
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(own, 'host_key')}`,
      `AuthorizedKeysFile ${join(own, 'authorized_keys')}`,
      'StrictModes no',
      'LogLevel VERBOSE',
      'PidFile none',
    ].join('\n') + '\n');
    for (const f of ['', 'host_key', 'authorized_keys', 'config']) chownSync(join(own, f), account.uid, account.gid);
    chmodSync(join(own, 'host_key'), 0o600);
    server = startAs(account.uid, account.gid, [TSSHD, '-f', join(own, 'config'), '-e', '-D']);
    await waitForText(server.log, new RegExp(`Server listening on 127\\.0\\.0\\.1 port ${port}\\b`), { timeoutMs: 20_000, what: 'tsshd log' });
    const payload = lab.path('payload.bin');
    writeFileSync(payload, randomBytes(5 * MiB + 3));
    const result = await sftpBatch(lab, port, user.name, [`put ${payload} up.bin`, `get up.bin ${lab.path('back.bin')}`, 'ls -l up.bin']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}\n${server.log()}`);
    assert.equal(sha256(join(account.home, 'up.bin')), sha256(payload));
    assert.equal(sha256(lab.path('back.bin')), sha256(payload));
    await waitForText(server.log, new RegExp(`internal-sftp session for ${user.name} \\(in process\\)`), { what: 'tsshd log' });
  });
});

/** node ARGS as uid:gid (setpriv), its stderr collected; stopped by PID. */
function startAs(uid: number, gid: number, args: readonly string[]): { log: () => string; stop: () => Promise<void> } {
  const child: ChildProcess = spawn('/usr/bin/setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: '/',
  });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    log: () => text,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------

/** A server program on stdin/stdout with a raw client, INIT done. */
async function spawnServer(t: TestContext, program: string, args: readonly string[], cwd: string): Promise<RawSftpClient> {
  const child = spawn(program, args, { cwd, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, TZ: 'UTC' } });
  t.after(() => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
  });
  const client = new RawSftpClient(child.stdin!, child.stdout!);
  await client.init();
  return client;
}

async function listAll(client: RawSftpClient, path: string): Promise<Map<string, Name>> {
  const handle = handleOf(await client.request(FXP.OPENDIR, (w) => w.string(path)));
  const names = new Map<string, Name>();
  for (;;) {
    const reply = await client.request(FXP.READDIR, (w) => w.string(handle));
    if (reply.type === FXP.STATUS) break;
    for (const n of namesOf(reply)) names.set(n.filename, n);
  }
  await client.request(FXP.CLOSE, (w) => w.string(handle));
  return names;
}

/** A reply within 10 s, or a failure naming the request (instead of the test's own time-out). */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply to ${what}`)), 10_000)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function outcome(reply: Reply): string {
  if (reply.type === FXP.STATUS) return `status ${status(reply).code}`;
  if (reply.type === FXP.NAME) return `name ${namesOf(reply).map((n) => n.filename).join(',')}`;
  return `type ${reply.type}`;
}

describe('side by side with OpenSSH\'s sftp-server', () => {
  test('the same listing, longnames, attributes and status codes for the same requests', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    if (!existsSync(OPENSSH_SFTP_SERVER)) {
      t.skip(`needs ${OPENSSH_SFTP_SERVER} (Debian package openssh-sftp-server)`);
      return;
    }
    const lab = await createLab();
    t.after(() => lab.cleanup());
    const dir = lab.path('tree');
    mkdirSync(dir);
    writeFileSync(join(dir, 'plain.txt'), 'hello');
    writeFileSync(join(dir, 'empty'), '');
    writeFileSync(join(dir, 'big'), Buffer.alloc(123456));
    mkdirSync(join(dir, 'sub'));
    symlinkSync('plain.txt', join(dir, 'link'));
    symlinkSync('nowhere', join(dir, 'dangling'));
    writeFileSync(join(dir, 'setuid'), '');
    chmodSync(join(dir, 'setuid'), 0o4755);
    writeFileSync(join(dir, 'old'), 'old');
    utimesSync(join(dir, 'old'), new Date('2001-03-05T14:29:00Z'), new Date('2001-03-05T14:29:00Z'));
    // A name that is not UTF-8: both servers pass the bytes through.
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), Buffer.from([0x66, 0xff, 0x67])]), '');
    spawnSync('mkfifo', [join(dir, 'fifo')]);
    if (process.getuid?.() === 0) {
      writeFileSync(join(dir, 'nobody'), '');
      chownSync(join(dir, 'nobody'), 65534, 65534);
    }
    const ours = await spawnServer(t, process.execPath, [SFTP_CHILD, JSON.stringify({ cwd: dir, home: dir, readOnly: false })], dir);
    const theirs = await spawnServer(t, OPENSSH_SFTP_SERVER, [], dir);

    const [a, b] = await Promise.all([within(listAll(ours, '.'), 'our listing'), within(listAll(theirs, '.'), 'OpenSSH\'s listing')]);
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [name, entry] of b) assert.deepEqual(a.get(name), entry, `entry ${name}`);

    // Requests whose outcome (status code, or the names returned) must match.
    const requests: [string, (c: RawSftpClient) => Promise<Reply>][] = [
      ['realpath .', (c) => c.request(FXP.REALPATH, (w) => w.string('.'))],
      ['realpath sub/..', (c) => c.request(FXP.REALPATH, (w) => w.string('sub/..'))],
      ['realpath missing last component', (c) => c.request(FXP.REALPATH, (w) => w.string('sub/new'))],
      ['realpath missing middle', (c) => c.request(FXP.REALPATH, (w) => w.string('nope/new'))],
      ['stat dangling', (c) => c.request(FXP.STAT, (w) => w.string('dangling'))],
      ['open missing', (c) => c.request(FXP.OPEN, (w) => w.string('missing').uint32(FXF.READ).uint32(0))],
      ['opendir a file', (c) => c.request(FXP.OPENDIR, (w) => w.string('plain.txt'))],
      ['rmdir a file', (c) => c.request(FXP.RMDIR, (w) => w.string('plain.txt'))],
      ['readlink', (c) => c.request(FXP.READLINK, (w) => w.string('link'))],
      ['mkdir existing', (c) => c.request(FXP.MKDIR, (w) => encodeAttrs(w.string('sub'), {}))],
      ['rename onto existing', (c) => c.request(FXP.RENAME, (w) => w.string('empty').string('plain.txt'))],
      ['close bad handle', (c) => c.request(FXP.CLOSE, (w) => w.string('zzzz'))],
      ['read bad handle', (c) => c.request(FXP.READ, (w) => w.string('zzzz').uint64(0n).uint32(10))],
      ['write bad handle', (c) => c.request(FXP.WRITE, (w) => w.string('zzzz').uint64(0n).string('x'))],
      ['fstat bad handle', (c) => c.request(FXP.FSTAT, (w) => w.string('zzzz'))],
      ['readdir bad handle', (c) => c.request(FXP.READDIR, (w) => w.string('zzzz'))],
      ['fsync bad handle', (c) => c.extended('fsync@openssh.com', (w) => w.string('zzzz'))],
      ['remove a folder', (c) => c.request(FXP.REMOVE, (w) => w.string('sub'))],
      ['symlink onto existing', (c) => c.request(FXP.SYMLINK, (w) => w.string('x').string('plain.txt'))],
      ['hardlink onto existing', (c) => c.extended('hardlink@openssh.com', (w) => w.string('plain.txt').string('empty'))],
      ['setstat missing', (c) => c.request(FXP.SETSTAT, (w) => encodeAttrs(w.string('missing'), { permissions: 0o600 }))],
      ['expand-path ~', (c) => c.extended('expand-path@openssh.com', (w) => w.string('sub/../plain.txt'))],
      ['unknown extension', (c) => c.extended('nothing@example.com')],
    ];
    for (const [what, send] of requests) {
      const [mine, openssh] = await Promise.all([within(send(ours), `ours: ${what}`), within(send(theirs), `OpenSSH: ${what}`)]);
      assert.equal(outcome(mine), outcome(openssh), what);
    }
    // One deliberate difference: an errno without a status of its own (EINVAL here) is FAILURE with
    // the system's words, where OpenSSH answers BAD_MESSAGE, which §7 keeps for malformed packets.
    const readlinkOfFile = (c: RawSftpClient): Promise<Reply> => c.request(FXP.READLINK, (w) => w.string('plain.txt'));
    assert.deepEqual(status(await readlinkOfFile(ours)), { code: FX.FAILURE, message: 'invalid argument' });
    assert.equal(status(await readlinkOfFile(theirs)).code, FX.BAD_MESSAGE);
    // And OpenSSH's server leaves a request of an unknown type unanswered (it only logs it); §7
    // wants exactly one reply per request, so ours answers OP_UNSUPPORTED.
    assert.equal(status(await ours.request(77)).code, FX.OP_UNSUPPORTED);
    assert.ok(lstatSync(join(dir, 'empty')).isFile());
  });
});

describe('throughput', () => {
  test('sftp put/get of 20 MiB: tsshd internal-sftp against sshd internal-sftp (reported, not asserted)', { timeout: 300_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    const lab = await createLab();
    t.after(() => lab.cleanup());
    const file = lab.path('big.bin');
    writeFileSync(file, randomBytes(20 * MiB));
    const tsshd = await startTsshd(lab, ['Subsystem sftp internal-sftp']);
    t.after(() => tsshd.stop());
    const sshd = await lab.spawnSshdListening(lab.sshdConfig({ extra: ['Subsystem sftp internal-sftp'], logLevel: 'ERROR' }));
    const timed = async (port: number, commands: string[]): Promise<number> => {
      const started = process.hrtime.bigint();
      const r = await sftpBatch(lab, port, lab.user, commands);
      assert.equal(r.code, 0, r.stderr);
      return Number(process.hrtime.bigint() - started) / 1e6;
    };
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const results: Record<string, { put: number[]; get: number[] }> = { tsshd: { put: [], get: [] }, sshd: { put: [], get: [] } };
    // Three transfers per connection, the connection's own setup subtracted: 60 MiB a sample.
    const perSession = 3;
    for (let round = 0; round < 3; round++) {
      for (const [name, port] of [['tsshd', tsshd.port], ['sshd', sshd.port]] as const) {
        const up = lab.path(`up-${name}.bin`);
        const down = lab.path(`down-${name}.bin`);
        const connect = await timed(port, ['pwd']);
        const put = await timed(port, Array.from({ length: perSession }, () => `put ${file} ${up}`));
        const get = await timed(port, Array.from({ length: perSession }, () => `get ${up} ${down}`));
        assert.equal(sha256(down), sha256(file));
        results[name]!.put.push(Math.max(1, (put - connect) / perSession));
        results[name]!.get.push(Math.max(1, (get - connect) / perSession));
      }
    }
    for (const [name, r] of Object.entries(results)) {
      const put = median(r.put);
      const get = median(r.get);
      t.diagnostic(`${name}: put ${(20 / (put / 1000)).toFixed(0)} MiB/s (${put.toFixed(0)} ms), get ${(20 / (get / 1000)).toFixed(0)} MiB/s (${get.toFixed(0)} ms), median of 3 rounds of 3 transfers, connection setup subtracted`);
    }
  });
});
