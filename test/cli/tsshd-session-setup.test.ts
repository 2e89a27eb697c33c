/**
 * What tsshd sets up around a session, checked with OpenSSH's ssh as the client and a throwaway
 * system user (tsshd as root):
 *  - PrintMotd: the motd (TSSH_MOTD_FILE, tsshd's test hook, instead of /etc/motd) before an
 *    interactive login shell on a terminal; not for a command, not without a terminal, not with
 *    ~/.hushlogin, not with PrintMotd no;
 *  - PermitUserEnvironment: ~/.ssh/environment (comments, blanks, a bad line reported to the
 *    session, values with spaces and `=`) and authorized_keys environment=, with `yes`, with a
 *    pattern-list, and not at all with the default `no`; SetEnv wins over both; a variable a root
 *    helper must not see (LC_*) still reaches the user's shell.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveNodePty, havePeers, missingPeers } from '../helpers/peers.js';
import { canMakeSystemUsers, createLab, createSystemUser, makeUserKey, startTsshd, systemUsersUnavailable, type SystemUserHandle, type UserKey } from '../helpers/auth-lab.js';
import type { OpenSshFixture } from '../helpers/openssh.js';
import { lookupUser, type SystemUser } from '../../src/cli/sshd/users.js';
import { parseEnvironmentFile, userMaySet } from '../../src/cli/sshd/user-environment.js';


describe('tsshd session set-up (as root, for a system user)', () => {
  let lab: OpenSshFixture | undefined;
  let user: SystemUserHandle | undefined;
  let account: SystemUser | undefined;
  let keyed: UserKey | undefined;
  const marker = `motd-marker-${randomBytes(4).toString('hex')}`;

  before(async () => {
    // Every test here needs OpenSSH's ssh (and the keys ssh-keygen makes): each skips, naming it.
    if (systemUsersUnavailable() !== undefined || missingPeers('ssh', 'ssh-keygen') !== undefined) return;
    lab = await createLab();
    user = await createSystemUser(randomBytes(12).toString('base64url'));
    account = lookupUser(user.name)!;
    const motd = lab.path('motd');
    writeFileSync(motd, `Welcome\n${marker}\n`);
    // tsshd reads the test hook from its environment, which it inherits from this process.
    process.env.TSSH_MOTD_FILE = motd;
    keyed = await makeUserKey(lab, 'ed25519', { name: 'id_env', authorize: false });
    lab.authorize(keyed.publicKeyLine, 'environment="KEYVAR=from-key",environment="FOO=from-key-too"');
    const ssh = join(account.home, '.ssh');
    mkdirSync(ssh, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(ssh, 'environment'),
      ['# a comment', '', '   FOO=from-file', 'BAR=bar value = x', 'not a variable', 'LC_TSSH=deferred', 'SKIPPED=no'].join('\n') + '\n',
    );
    chownSync(ssh, account.uid, account.gid);
    chownSync(join(ssh, 'environment'), account.uid, account.gid);
  });
  after(async () => {
    await user?.remove();
    await lab?.cleanup();
  });

  test('PrintMotd: shown before a login shell on a terminal; not for a command, without a terminal, with ~/.hushlogin or PrintMotd no', { timeout: 90_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    if (!(await haveNodePty(t))) return;
    const tsshd = await startTsshd(lab!, []);
    t.after(() => tsshd.stop());
    const as = { user: user!.name, port: tsshd.port };
    const shell = await lab!.runSsh(['-tt', '127.0.0.1'], { ...as, input: 'exit 0\n' });
    assert.equal(shell.code, 0, shell.stderr);
    assert.match(shell.stdout, new RegExp(`^Welcome\\r\\n${marker}\\r$`, 'm'), 'the motd, through the terminal (CR LF)');
    const command = await lab!.runSsh(['-tt', '127.0.0.1', 'echo ran'], as);
    assert.match(command.stdout, /^ran\r$/m);
    assert.doesNotMatch(command.stdout, new RegExp(marker));
    const noTty = await lab!.runSsh(['-T', '127.0.0.1'], { ...as, input: 'echo no-tty-shell\n' });
    assert.match(noTty.stdout, /^no-tty-shell$/m);
    assert.doesNotMatch(noTty.stdout, new RegExp(marker));
    const hush = join(account!.home, '.hushlogin');
    writeFileSync(hush, '');
    try {
      const hushed = await lab!.runSsh(['-tt', '127.0.0.1'], { ...as, input: 'echo hushed-$((1+1)); exit 0\n' });
      assert.match(hushed.stdout, /hushed-2/);
      assert.doesNotMatch(hushed.stdout, new RegExp(marker));
    } finally {
      rmSync(hush);
    }
    const off = await startTsshd(lab!, ['PrintMotd no']);
    t.after(() => off.stop());
    const quiet = await lab!.runSsh(['-tt', '127.0.0.1'], { user: user!.name, port: off.port, input: 'echo quiet-$((2+1)); exit 0\n' });
    assert.match(quiet.stdout, /quiet-3/);
    assert.doesNotMatch(quiet.stdout, new RegExp(marker));
  });

  const show = 'echo "FOO=${FOO-unset}|BAR=${BAR-unset}|KEYVAR=${KEYVAR-unset}|LC_TSSH=${LC_TSSH-unset}|SKIPPED=${SKIPPED-unset}"';

  test('PermitUserEnvironment yes: ~/.ssh/environment over authorized_keys environment=, SetEnv over both, bad lines reported', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    const tsshd = await startTsshd(lab!, ['PermitUserEnvironment yes', 'SetEnv SKIPPED=admin SHLVL=1']);
    t.after(() => tsshd.stop());
    const r = await lab!.runSsh(['127.0.0.1', show], { user: user!.name, port: tsshd.port, identity: keyed!.privateKey });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'FOO=from-file|BAR=bar value = x|KEYVAR=from-key|LC_TSSH=deferred|SKIPPED=admin\n');
    assert.equal(r.stderr, `Bad line 5 in ${account!.home}/.ssh/environment\n`);
    // The same through a terminal (node-pty): the variables a root helper must not see arrive too.
    if (!(await haveNodePty(t))) return;
    const tty = await lab!.runSsh(['-tt', '127.0.0.1', show], { user: user!.name, port: tsshd.port, identity: keyed!.privateKey });
    assert.equal(tty.code, 0, tty.stderr);
    assert.match(tty.stdout, /FOO=from-file\|BAR=bar value = x\|KEYVAR=from-key\|LC_TSSH=deferred\|SKIPPED=admin\r\n$/);
  });

  test('PermitUserEnvironment with a pattern-list lets only matching names through', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    const tsshd = await startTsshd(lab!, ['PermitUserEnvironment KEY*,FOO,!BAR']);
    t.after(() => tsshd.stop());
    const r = await lab!.runSsh(['127.0.0.1', show], { user: user!.name, port: tsshd.port, identity: keyed!.privateKey });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'FOO=from-file|BAR=unset|KEYVAR=from-key|LC_TSSH=unset|SKIPPED=unset\n');
  });

  test('PermitUserEnvironment no (the default): neither the file nor environment= is used', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    const tsshd = await startTsshd(lab!, []);
    t.after(() => tsshd.stop());
    const r = await lab!.runSsh(['127.0.0.1', show], { user: user!.name, port: tsshd.port, identity: keyed!.privateKey });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'FOO=unset|BAR=unset|KEYVAR=unset|LC_TSSH=unset|SKIPPED=unset\n');
    assert.equal(r.stderr, '');
  });
});

describe('~/.ssh/environment parsing and PermitUserEnvironment patterns', () => {
  test('lines as sshd reads them', () => {
    const parsed = parseEnvironmentFile('# c\n\n\t A=1\nB==2\n=x\nnoequals\nC=\n', '/h/.ssh/environment');
    assert.deepEqual(parsed.variables, [['A', '1'], ['B', '=2'], ['C', '']]);
    assert.deepEqual(parsed.problems, ['Bad line 5 in /h/.ssh/environment', 'Bad line 6 in /h/.ssh/environment']);
    assert.deepEqual(parseEnvironmentFile('A=1\n'.repeat(1001), 'f').problems, ['Too many lines in environment file f']);
  });

  test('yes, no and pattern-lists with negation', () => {
    assert.equal(userMaySet(true, 'ANY'), true);
    assert.equal(userMaySet(false, 'ANY'), false);
    assert.equal(userMaySet('LANG,LC_*', 'LC_ALL'), true);
    assert.equal(userMaySet('LANG,LC_*', 'PATH'), false);
    assert.equal(userMaySet('*,!LD_*', 'LD_PRELOAD'), false);
    assert.equal(userMaySet('*,!LD_*', 'EDITOR'), true);
  });
});
