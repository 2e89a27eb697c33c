/**
 * tsshd run by root starts a user's command with exactly the credentials setpriv --init-groups
 * would give it. Through a spawn helper (spawn-helper.ts: the C one, the default when it was
 * built, or the Perl one) the helper's child sets them itself; with child_process (TSSH_SPAWN_HELPER=0, and whenever the helper cannot be used)
 * tsshd picks the cheapest way that gives them (users.ts credentialSwitch): root serving root with
 * the groups tsshd already has keeps tsshd's credentials (and internal-sftp runs in tsshd's
 * process either way); a user in no group but its primary one takes spawn's uid and gid (libuv
 * also drops the supplementary groups); a user with supplementary groups goes through setpriv.
 * Each session must see what setpriv would have given it, also when tsshd itself has groups of
 * its own. Which programs tsshd starts is read from a preloaded spy (helpers/spawn-spy.ts).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { havePeers, missingPeers, peerPath, peersRequired } from '../helpers/peers.js';
import { canMakeSystemUsers, createLab, createSystemUser, run, startTsshd, type Tsshd } from '../helpers/auth-lab.js';
import type { OpenSshFixture } from '../helpers/openssh.js';
import { credentialSwitch, lookupUser } from '../../src/cli/sshd/users.js';
import { spawnHelperProgram } from '../../src/cli/sshd/spawn-helper.js';
import type { TestContext } from 'node:test';

const SPAWN_SPY = resolve('dist/test/helpers/spawn-spy.js');
const SETPRIV = '/usr/bin/setpriv';
/** What a session's process reports about itself: uid, gid and its groups, sorted. */
const CREDENTIALS = 'id -u; id -g; id -G | tr " " "\\n" | sort -n | tr "\\n" " "';

/** Root, with setpriv to compare against; else skips (a failure under TSSH_REQUIRE_PEERS=1). */
function rootWithSetpriv(t: TestContext, helper?: 'native' | 'perl'): boolean {
  let reason: string | undefined;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) reason = 'needs root: tsshd switches users only as root';
  else if (!existsSync(SETPRIV)) reason = `needs ${SETPRIV} (Debian package util-linux)`;
  else if (helper === 'native' && !spawnHelperProgram('native')) reason = 'needs dist/libexec/tsshd-spawner, which scripts/build-spawner.mjs builds with a C compiler (Debian package gcc)';
  if (reason === undefined) return true;
  if (peersRequired()) throw new Error(`${reason}; TSSH_REQUIRE_PEERS=1 forbids skipping`);
  t.skip(reason);
  return false;
}

/** The test's own view: do root's groups (id -G) equal this process's groups plus its egid? */
function rootKeepsOurGroups(): boolean {
  const theirs = new Set(spawnSync('id', ['-G', 'root'], { encoding: 'utf8' }).stdout.trim().split(/\s+/).map(Number));
  theirs.add(0);
  const ours = new Set([...process.getgroups!(), process.getegid!()]);
  return theirs.size === ours.size && [...theirs].every((id) => ours.has(id));
}

/** The programs tsshd started since `since` lines of the spy's log. */
function spawned(log: string, since = 0): string[][] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').split('\n').filter(Boolean).slice(since).map((line) => JSON.parse(line) as string[]);
}

const MODES = [
  { name: 'through the C spawn helper', helper: 'native', env: {} },
  { name: 'through the Perl spawn helper (TSSH_SPAWN_HELPER=perl)', helper: 'perl', env: { TSSH_SPAWN_HELPER: 'perl' } },
  { name: 'with child_process (TSSH_SPAWN_HELPER=0)', helper: undefined, env: { TSSH_SPAWN_HELPER: '0' } },
] as const;

/** Whether `argv` (from the spy's log) started the spawn helper of `kind`. */
function isHelper(argv: readonly string[], kind: 'native' | 'perl'): boolean {
  return kind === 'native' ? argv[0] === spawnHelperProgram('native')?.file : argv.some((word) => word.includes("$0 = 'tsshd-spawner'"));
}

/**
 * The command (the argv that holds CREDENTIALS) was started as `how` says: by the spawn helper
 * (tsshd started no such program itself, and the helper once), or as that program by tsshd.
 */
function expectStarted(programs: string[][], log: string, how: string): string[] | undefined {
  const command = programs.find((argv) => argv.includes(CREDENTIALS));
  if (how === 'native' || how === 'perl') {
    assert.equal(command, undefined, `tsshd started the command itself: ${JSON.stringify(command)}`);
    assert.equal(spawned(log).filter((argv) => isHelper(argv, how)).length, 1, `one ${how} helper`);
    return undefined;
  }
  assert.ok(command, `the command among ${JSON.stringify(programs)}`);
  assert.equal(command[0], how);
  return command;
}

for (const mode of MODES) {
  describe(`tsshd as root starts a command with the user's credentials, ${mode.name}`, () => {
    let lab: OpenSshFixture | undefined;
    let tsshd: Tsshd | undefined;
    let spyLog = '';

    before(async () => {
      if (typeof process.getuid !== 'function' || process.getuid() !== 0 || missingPeers('ssh') !== undefined) return;
      lab = await createLab();
      spyLog = lab.path('tsshd-spawn.log');
      tsshd = await startTsshd(lab, ['Subsystem sftp internal-sftp', 'LogLevel VERBOSE'], [], [], {
        nodeArgs: ['--import', SPAWN_SPY],
        env: { TSSH_SPAWN_LOG: spyLog, ...mode.env },
      });
    });
    after(async () => {
      await tsshd?.stop();
      await lab?.cleanup();
    });

    test('credentialSwitch: same for root exactly when root\'s groups are ours; uid-gid without supplementary groups; else initgroups', async (t) => {
      if (mode.helper) return; // the same function either way: checked once
      if (!rootWithSetpriv(t, mode.helper)) return;
      assert.equal(await credentialSwitch(lookupUser('root')!), rootKeepsOurGroups() ? 'same' : 'initgroups');
      // Same uid, another primary group: not the same identity.
      assert.notEqual(await credentialSwitch({ ...lookupUser('root')!, gid: 12345 }), 'same');
      if (!canMakeSystemUsers(t)) return;
      const plain = await createSystemUser(randomBytes(12).toString('base64url'));
      t.after(() => plain.remove());
      assert.equal(await credentialSwitch(lookupUser(plain.name)!), 'uid-gid');
      const grouped = await createSystemUser(randomBytes(12).toString('base64url'));
      t.after(() => grouped.remove());
      addToGroup(grouped.name, 'users');
      assert.equal(await credentialSwitch(lookupUser(grouped.name)!), 'initgroups');
    });

    test('a command for root: setpriv only when root\'s groups differ from tsshd\'s, the same credentials either way', { timeout: 60_000 }, async (t) => {
      if (!rootWithSetpriv(t, mode.helper) || !havePeers(t, 'ssh')) return;
      const since = spawned(spyLog).length;
      const result = await lab!.runSsh(['127.0.0.1', CREDENTIALS], { port: tsshd!.port, user: 'root' });
      assert.equal(result.code, 0, `${result.stderr}\n${tsshd!.log()}`);
      const viaSetpriv = spawnSync(SETPRIV, ['--reuid=0', '--regid=0', '--init-groups', '--', '/bin/sh', '-c', CREDENTIALS], { encoding: 'utf8' });
      assert.equal(result.stdout, viaSetpriv.stdout);
      const programs = spawned(spyLog, since);
      const shell = lookupUser('root')!.shell;
      expectStarted(programs, spyLog, mode.helper ?? (rootKeepsOurGroups() ? shell : SETPRIV));
    });

    test('SFTP for root runs in tsshd\'s process when the credentials are the same', { timeout: 60_000 }, async (t) => {
      if (!rootWithSetpriv(t, mode.helper) || !havePeers(t, 'ssh')) return;
      const since = spawned(spyLog).length;
      const logSince = tsshd!.log().length;
      const payload = lab!.path('payload.bin');
      writeFileSync(payload, randomBytes(300_000));
      const batch = lab!.path('sftp-batch');
      writeFileSync(batch, `put ${payload} ${lab!.path('up.bin')}\nget ${lab!.path('up.bin')} ${lab!.path('back.bin')}\n`);
      const sftp = join(dirname(peerPath('ssh')), 'sftp');
      const result = await run(sftp, [...lab!.clientOptions(tsshd!.port, { portFlag: '-P', quiet: true }), '-b', batch, 'root@127.0.0.1'], { timeoutMs: 30_000 });
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}\n${tsshd!.log()}`);
      assert.deepEqual(readFileSync(lab!.path('back.bin')), readFileSync(payload));
      const nodeChildren = spawned(spyLog, since).filter((argv) => argv.includes(process.execPath));
      if (rootKeepsOurGroups()) {
        await tsshd!.waitForLog(/internal-sftp session for root \(in process\)/, logSince);
        assert.deepEqual(nodeChildren, []);
      } else {
        await tsshd!.waitForLog(/internal-sftp session for root \(as uid 0 in a child process\)/, logSince);
        assert.equal(nodeChildren.length, 1);
      }
    });

    test('another user: spawn\'s uid and gid without supplementary groups, setpriv with them; what setpriv would give either way', { timeout: 60_000 }, async (t) => {
      if (!rootWithSetpriv(t, mode.helper) || !havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
      const plain = await createSystemUser(randomBytes(12).toString('base64url'));
      const grouped = await createSystemUser(randomBytes(12).toString('base64url'));
      t.after(async () => {
        await plain.remove();
        await grouped.remove();
      });
      addToGroup(grouped.name, 'users');
      for (const [handle, expected] of [[plain, 'direct'], [grouped, 'setpriv']] as const) {
        const account = lookupUser(handle.name)!;
        const since = spawned(spyLog).length;
        const result = await lab!.runSsh(['127.0.0.1', CREDENTIALS], { port: tsshd!.port, user: handle.name });
        assert.equal(result.code, 0, `${result.stderr}\n${tsshd!.log()}`);
        const viaSetpriv = spawnSync(SETPRIV, [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups', '--', '/bin/sh', '-c', CREDENTIALS], { encoding: 'utf8' });
        assert.equal(result.stdout, viaSetpriv.stdout, handle.name);
        const command = expectStarted(spawned(spyLog, since), spyLog, mode.helper ?? (expected === 'direct' ? account.shell : SETPRIV));
        if (!mode.helper && expected === 'setpriv') assert.ok(command?.includes(`--reuid=${account.uid}`), JSON.stringify(command));
      }
      assert.notEqual(userInfo().uid, lookupUser(plain.name)!.uid);
    });
  });

  describe(`tsshd as root with supplementary groups of its own (4 and 27) passes none of them on, ${mode.name}`, () => {
    test('a user in no group but its own, and root (whose groups are not tsshd\'s now): started directly, with what setpriv gives', { timeout: 60_000 }, async (t) => {
      if (!rootWithSetpriv(t, mode.helper) || !havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
      const lab = await createLab();
      const plain = await createSystemUser(randomBytes(12).toString('base64url'));
      let tsshd: Tsshd | undefined;
      t.after(async () => {
        await tsshd?.stop();
        await plain.remove();
        await lab.cleanup();
      });
      const spyLog = lab.path('tsshd-spawn.log');
      tsshd = await startTsshd(lab, [], [], [], {
        prefix: [SETPRIV, '--groups=4,27', '--'],
        nodeArgs: ['--import', SPAWN_SPY],
        env: { TSSH_SPAWN_LOG: spyLog, ...mode.env },
      });
      const groups = readFileSync(`/proc/${tsshd.pid}/status`, 'utf8').match(/^Groups:\s*(.*)$/m)?.[1]?.trim().split(/\s+/).map(Number);
      assert.deepEqual(groups?.sort((a, b) => a - b), [4, 27], 'tsshd runs with groups 4 and 27');
      // Root too is in no group but its own: spawn's uid and gid (0 and 0) clear tsshd's groups.
      for (const [name, expected] of [[plain.name, lookupUser(plain.name)!.shell], ['root', lookupUser('root')!.shell]] as const) {
        const account = lookupUser(name)!;
        const since = spawned(spyLog).length;
        const result = await lab.runSsh(['127.0.0.1', CREDENTIALS], { port: tsshd.port, user: name });
        assert.equal(result.code, 0, `${result.stderr}\n${tsshd.log()}`);
        const viaSetpriv = spawnSync(SETPRIV, [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups', '--', '/bin/sh', '-c', CREDENTIALS], { encoding: 'utf8' });
        assert.equal(result.stdout, viaSetpriv.stdout, name);
        expectStarted(spawned(spyLog, since), spyLog, mode.helper ?? expected);
      }
    });
  });
}

/** usermod -aG GROUP NAME, retried while another test file holds the group file's lock. */
function addToGroup(name: string, group: string): void {
  for (let attempt = 0; attempt < 20; attempt++) {
    const result = spawnSync('/usr/sbin/usermod', ['-aG', group, name], { encoding: 'utf8' });
    if (result.status === 0) return;
    spawnSync('sleep', ['0.1']);
  }
  throw new Error(`usermod -aG ${group} ${name} failed`);
}
