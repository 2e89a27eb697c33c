/**
 * tsshd as root serves ordinary local users: a session runs as the authenticated user (uid, gid,
 * groups, home, shell, environment from the user database), with publickey from the user's own
 * ~/.ssh/authorized_keys and with a password checked through PAM.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, chownSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { havePeers, missingPeers } from '../helpers/peers.js';
import {
  canMakeSystemUsers,
  createLab,
  createSystemUser,
  makeUserKey,
  startTsshd,
  writeAskpass,
  systemUsersUnavailable,
  type SystemUserHandle,
  type Tsshd,
  type UserKey,
} from '../helpers/auth-lab.js';
import type { OpenSshFixture } from '../helpers/openssh.js';
import { lookupUser } from '../../src/cli/sshd/users.js';
import { loadPam } from '../../src/cli/sshd/pam.js';
import { peersRequired } from '../helpers/peers.js';
import type { TestContext } from 'node:test';

/** PAM needs the optional authenticate-pam binding, built at npm install when libpam0g-dev is present. */
function havePam(t: TestContext): boolean {
  const pam = loadPam();
  if ('check' in pam) return true;
  const reason = `needs PAM: ${pam.unavailable} (install Debian package libpam0g-dev, then npm install)`;
  if (peersRequired()) throw new Error(`${reason}; TSSH_REQUIRE_PEERS=1 forbids skipping`);
  t.skip(reason);
  return false;
}

describe('tsshd as root logs in a local user', () => {
  let lab: OpenSshFixture | undefined;
  let user: SystemUserHandle | undefined;
  let tsshd: Tsshd | undefined;
  let key: UserKey | undefined;
  const PASSWORD = 'correct horse 42';

  before(async () => {
    // Every test here needs OpenSSH's ssh (and the keys ssh-keygen makes): each skips, naming it.
    if (systemUsersUnavailable() !== undefined || missingPeers('ssh', 'ssh-keygen') !== undefined) return;
    lab = await createLab();
    user = await createSystemUser(PASSWORD);
    const account = lookupUser(user.name)!;
    key = await makeUserKey(lab, 'ed25519', { name: 'id_local', authorize: false });
    // The user's own authorized_keys, owned by them with the modes StrictModes wants.
    const sshDir = join(account.home, '.ssh');
    mkdirSync(sshDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(sshDir, 'authorized_keys'), `${key.publicKeyLine}\n`, { mode: 0o600 });
    chownSync(sshDir, account.uid, account.gid);
    chownSync(join(sshDir, 'authorized_keys'), account.uid, account.gid);
    chmodSync(sshDir, 0o700);
    tsshd = await startTsshd(lab, [
      'AuthorizedKeysFile .ssh/authorized_keys',
      'StrictModes yes',
      'UsePAM yes',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication yes',
    ]);
  });
  after(async () => {
    await tsshd?.stop();
    await user?.remove();
    await lab?.cleanup();
  });

  const COMMAND = 'id -un; id -gn; echo "HOME=$HOME USER=$USER LOGNAME=$LOGNAME SHELL=$SHELL"; echo "SSH_CONNECTION=$SSH_CONNECTION"; pwd';

  test('publickey from the user\'s own authorized_keys: the session runs as that user with its environment', async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    const since = tsshd!.log().length;
    const result = await lab!.runSsh(['127.0.0.1', COMMAND], { port: tsshd!.port, user: user!.name, identity: key!.privateKey });
    assert.equal(result.code, 0, result.stderr);
    const account = lookupUser(user!.name)!;
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines[0], user!.name);
    assert.equal(lines[1], user!.name);
    assert.equal(lines[2], `HOME=${account.home} USER=${user!.name} LOGNAME=${user!.name} SHELL=/bin/bash`);
    assert.match(lines[3]!, /^SSH_CONNECTION=127\.0\.0\.1 \d+ /);
    assert.equal(lines[4], account.home);
    await tsshd!.waitForLog(new RegExp(`Accepted publickey for ${user!.name} from 127\\.0\\.0\\.1`), since);
  });

  test('the user\'s command can open its standard error by name (the pipe is the user\'s)', async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t)) return;
    const command = 'echo err > /dev/stderr && stat -L -c %U /dev/stderr';
    const run = () => lab!.runSsh(['127.0.0.1', command], { port: tsshd!.port, user: user!.name, identity: key!.privateKey });
    // Sessions before tsshd's first FIFOs exist get sockets: ask until one has a pipe.
    let result = await run();
    for (let i = 0; i < 40 && result.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      result = await run();
    }
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${user!.name}\n`);
    assert.match(result.stderr, /^err$/m);
  });

  test('a password checked through PAM logs the user in', async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t) || !havePam(t)) return;
    const askpass = writeAskpass(lab!, 'pam', PASSWORD);
    const result = await lab!.runSsh(['127.0.0.1', COMMAND], {
      port: tsshd!.port,
      user: user!.name,
      identity: null,
      batchMode: false,
      options: ['PreferredAuthentications=password'],
      env: askpass.env,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.split('\n')[0], user!.name);
  });

  test('a wrong password is refused through PAM', async (t) => {
    if (!havePeers(t, 'ssh') || !canMakeSystemUsers(t) || !havePam(t)) return;
    const askpass = writeAskpass(lab!, 'pam-wrong', 'not the password');
    const result = await lab!.runSsh(['127.0.0.1', COMMAND], {
      port: tsshd!.port,
      user: user!.name,
      identity: null,
      batchMode: false,
      options: ['PreferredAuthentications=password', 'NumberOfPasswordPrompts=1'],
      env: askpass.env,
    });
    assert.equal(result.code, 255);
    assert.match(result.stderr, /Permission denied/);
  });
});
