// The messages users see when authentication fails, in both directions against real OpenSSH:
//
// - our client -> sshd (9.2): a wrong password, an unknown user (the very same message, so nothing
//   tells whether the account exists), a wrong key, MaxAuthTries, LoginGraceTime, a changed host key
//   (the message names both fingerprints and the known_hosts file:line), and key files that cannot be
//   used (garbage, missing, wrong or no passphrase: the debug log says why, then Permission denied);
// - ssh -> tsshd: a wrong password and a wrong key (exit 255, "Permission denied"), an unknown user
//   (ssh sees exactly what it sees for a wrong password), MaxAuthTries 2 ("Too many authentication
//   failures", for our client too), LoginGraceTime 1 (a client that never answers a
//   keyboard-interactive prompt is dropped), and root's password under the default PermitRootLogin.
//
// Wrong-password cases need an account with a known password: a throwaway system user (useradd -m +
// chpasswd, removed with userdel -r), so they need root; they skip otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, HostKeyError, type ConnectOptions } from '../../src/client.js';
import { AuthenticationFailedError } from '../../src/auth/client.js';
import { DisconnectError, SshError } from '../../src/errors.js';
import { parseSshDebug, type OpenSshFixture, type SshdListening } from '../helpers/openssh.js';
import { haveRoot, havePeers, missingPeers } from '../helpers/peers.js';
import {
  canMakeSystemUsers,
  createLab,
  createSystemUser,
  keygenFingerprint,
  makeUserKey,
  startTsshd,
  systemUsersUnavailable,
  trustLabHostKeys,
  tsshdPasswd,
  writeAskpass,
  writeSshdConfig,
  type SystemUserHandle,
  type Tsshd,
  type UserKey,
} from '../helpers/auth-lab.js';

const CASE_TIMEOUT_MS = 60_000;
const PASSWORD = 'tssh-Errors-pw-9';
const PASSPHRASE = 'the right passphrase';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** connect() that must fail: resolves with the error and our debug lines. */
async function connectFails(options: ConnectOptions): Promise<{ error: Error; debug: string[]; ms: number }> {
  const debug: string[] = [];
  const started = Date.now();
  try {
    const client = await connect({ readyTimeout: 30_000, ...options, debug: (line) => debug.push(line) });
    await client.end();
  } catch (error) {
    return { error: error as Error, debug, ms: Date.now() - started };
  }
  assert.fail(`connect() succeeded, but it should have failed; our debug log:\n${debug.join('\n')}`);
}

/** Connects, runs `id -un`, disconnects. */
async function loginRunsIdUn(options: ConnectOptions): Promise<string> {
  const client = await connect({ readyTimeout: 30_000, ...options });
  try {
    const r = await client.exec('id -un');
    assert.equal(r.code, 0);
    return r.stdout.toString('utf8');
  } finally {
    await client.end();
  }
}

async function logShows(text: () => string, pattern: RegExp, since: number, what: string): Promise<string> {
  const started = Date.now();
  for (;;) {
    const log = text().slice(since);
    if (pattern.test(log)) return log;
    if (Date.now() - started > 10_000) assert.fail(`${what} does not show ${pattern}:\n${log.split('\n').filter((l) => !/^debug[23]/.test(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ---------------------------------------------------------------------------------------------
// Our client -> sshd

describe('what our client says when OpenSSH sshd refuses it', { timeout: 180_000 }, () => {
  const PEERS = ['sshd', 'ssh-keygen'] as const;
  let lab: OpenSshFixture | undefined;
  let sshd: SshdListening | undefined;
  let user: SystemUserHandle | undefined;
  let stranger: UserKey | undefined;
  let encrypted: UserKey | undefined;
  let config = '';
  let knownHosts = '';

  before(async () => {
    if (missingPeers(...PEERS)) return;
    lab = await createLab();
    if (!systemUsersUnavailable()) user = await createSystemUser(PASSWORD);
    [stranger, encrypted] = await Promise.all([
      makeUserKey(lab, 'ed25519', { name: 'id_stranger', authorize: false }),
      makeUserKey(lab, 'ed25519', { name: 'id_encrypted', passphrase: PASSPHRASE }),
    ]);
    // Password through /etc/shadow (UsePAM no: no PAM fail delay), no keyboard-interactive, so the
    // methods sshd lists are exactly publickey,password.
    config = writeSshdConfig(lab, ['UsePAM no', 'PasswordAuthentication yes', 'KbdInteractiveAuthentication no']);
    sshd = await lab.spawnSshdListening(config);
    knownHosts = trustLabHostKeys(lab, sshd.port);
  });
  after(async () => {
    await sshd?.stop();
    await user?.remove();
    await lab?.cleanup();
  });

  const base = (): Pick<ConnectOptions, 'host' | 'port' | 'knownHosts'> => ({
    host: '127.0.0.1',
    port: sshd!.port,
    knownHosts: { files: [knownHosts], globalFiles: [] },
  });

  test('control: the throwaway user logs in with the right password (so the failures below are about the password)', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS) || !canMakeSystemUsers(t)) return;
    assert.equal(await loginRunsIdUn({ ...base(), username: user!.name, password: PASSWORD }), `${user!.name}\n`);
  });

  test('a wrong password: connect() rejects with "Permission denied (publickey,password)." (ERR_SSH_AUTH) and sshd logs "Failed password"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS) || !canMakeSystemUsers(t)) return;
    const since = sshd!.stderrText().length;
    const { error } = await connectFails({ ...base(), username: user!.name, password: 'not the password' });
    assert.ok(error instanceof AuthenticationFailedError, `${error.constructor.name}: ${error.message}`);
    assert.equal(error.message, 'Permission denied (publickey,password).');
    assert.equal(error.code, 'ERR_SSH_AUTH');
    assert.deepEqual(error.methods, ['publickey', 'password']);
    await logShows(() => sshd!.stderrText(), new RegExp(`^Failed password for ${user!.name} from 127\\.0\\.0\\.1`, 'm'), since, "sshd's log");
  });

  test('an unknown user gets exactly the message a wrong password gets, so it cannot tell whether the account exists', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS) || !canMakeSystemUsers(t)) return;
    const since = sshd!.stderrText().length;
    const known = await connectFails({ ...base(), username: user!.name, password: 'not the password' });
    const unknown = await connectFails({ ...base(), username: 'tsshnosuchuser', password: 'not the password' });
    assert.equal(unknown.error.constructor, known.error.constructor);
    assert.equal(unknown.error.message, known.error.message);
    assert.equal(unknown.error.message, 'Permission denied (publickey,password).');
    assert.equal((unknown.error as SshError).code, (known.error as SshError).code);
    // What the server told us along the way is the same too.
    const methodsLines = (d: string[]): string[] => d.filter((l) => l.startsWith('Authentications that can continue'));
    assert.deepEqual(methodsLines(unknown.debug), methodsLines(known.debug));
    // Only sshd's own log knows.
    await logShows(() => sshd!.stderrText(), /^Invalid user tsshnosuchuser from 127\.0\.0\.1/m, since, "sshd's log");
  });

  test('a key sshd does not accept: "Permission denied (publickey,password)." and sshd logs "Failed publickey" for that key', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const since = sshd!.stderrText().length;
    const { error, debug } = await connectFails({ ...base(), username: lab!.user, privateKeyFiles: [stranger!.privateKey] });
    assert.equal(error.message, 'Permission denied (publickey,password).');
    assert.ok(debug.includes(`Offering public key: ${stranger!.privateKey} ssh-ed25519`), debug.join('\n'));
    await logShows(
      () => sshd!.stderrText(),
      new RegExp(`^Failed publickey for ${escapeRegExp(lab!.user)} from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 ${escapeRegExp(stranger!.fingerprint)}`, 'm'),
      since,
      "sshd's log",
    );
  });

  test('a corrupt key file: the debug log says `Load key "…": invalid format`, and connect() rejects with Permission denied', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const garbage = lab!.path('id_garbage');
    writeFileSync(garbage, Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\x00\xff\n-----END OPENSSH PRIVATE KEY-----\n', 'latin1'), { mode: 0o600 });
    const random = lab!.path('id_random');
    writeFileSync(random, Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 151 + 7) % 256)), { mode: 0o600 });
    const { error, debug } = await connectFails({ ...base(), username: lab!.user, privateKeyFiles: [garbage, random] });
    assert.equal(error.message, 'Permission denied (publickey,password).');
    for (const path of [garbage, random]) {
      assert.ok(
        debug.some((l) => l.startsWith(`Load key "${path}": `) && /invalid format|not a private key|malformed|corrupt|truncated/i.test(l)),
        `no "Load key" line explaining ${path}:\n${debug.join('\n')}`,
      );
    }
    assert.ok(!debug.some((l) => l.startsWith('Offering public key')), 'nothing was offered');
  });

  test('a missing key file: the debug log says `Load key "…"` with the system error (ENOENT), and connect() rejects with Permission denied', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const missing = lab!.path('id_does_not_exist');
    const { error, debug } = await connectFails({ ...base(), username: lab!.user, privateKeyFiles: [missing] });
    assert.equal(error.message, 'Permission denied (publickey,password).');
    assert.ok(debug.some((l) => l.startsWith(`Load key "${missing}": `) && /ENOENT|no such file/i.test(l)), debug.join('\n'));
  });

  test('an encrypted key with a wrong passphrase: the debug log says "incorrect passphrase supplied to decrypt private key" (ssh\'s words), then Permission denied', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const { error, debug } = await connectFails({ ...base(), username: lab!.user, privateKeyFiles: [encrypted!.privateKey], passphrase: 'the wrong passphrase' });
    assert.equal(error.message, 'Permission denied (publickey,password).');
    assert.ok(debug.includes(`Load key "${encrypted!.privateKey}": incorrect passphrase supplied to decrypt private key`), debug.join('\n'));
  });

  test('an encrypted key and no passphrase at all: the debug log says a passphrase is required, then Permission denied', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const { error, debug } = await connectFails({ ...base(), username: lab!.user, privateKeyFiles: [encrypted!.privateKey] });
    assert.equal(error.message, 'Permission denied (publickey,password).');
    assert.ok(debug.some((l) => l.startsWith(`Load key "${encrypted!.privateKey}": `) && /passphrase/i.test(l)), debug.join('\n'));
  });

  test('a key file that cannot be used does not stop the next one: after a corrupt file the right key logs in', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const garbage = lab!.path('id_garbage2');
    writeFileSync(garbage, 'this is not a key\n', { mode: 0o600 });
    const stdout = await loginRunsIdUn({ ...base(), username: lab!.user, privateKeyFiles: [garbage, lab!.userKey.privateKey] });
    assert.equal(stdout, `${lab!.user}\n`);
  });

  test('a changed host key: HostKeyError names the known and the offered fingerprints and the known_hosts file:line, and no authentication is attempted', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const file = lab!.path('known_hosts_changed');
    const [type, blob] = stranger!.publicKeyLine.split(' ');
    const text = `# hosts\nother.example ${lab!.hostKeys.ecdsa.publicKeyLine.split(' ').slice(0, 2).join(' ')}\n[127.0.0.1]:${sshd!.port} ${type} ${blob}\n`;
    writeFileSync(file, text);
    const offered = await keygenFingerprint(lab!.hostKeys.ed25519.publicKey);
    const since = sshd!.stderrText().length;
    const { error } = await connectFails({
      host: '127.0.0.1',
      port: sshd!.port,
      username: lab!.user,
      privateKeyFiles: [lab!.userKey.privateKey],
      knownHosts: { files: [file], globalFiles: [] },
    });
    assert.ok(error instanceof HostKeyError, `${error.constructor.name}: ${error.message}`);
    assert.equal(error.code, 'ERR_SSH_HOST_KEY');
    assert.ok(error.message.includes(`[127.0.0.1]:${sshd!.port}`), error.message);
    assert.ok(error.message.includes(stranger!.fingerprint), `the known fingerprint ${stranger!.fingerprint} is not named: ${error.message}`);
    assert.ok(error.message.includes(offered.fingerprint), `the offered fingerprint ${offered.fingerprint} is not named: ${error.message}`);
    assert.ok(error.message.includes(`${file}:3`), `the file:line ${file}:3 is not named: ${error.message}`);
    assert.equal(readFileSync(file, 'utf8'), text, 'known_hosts is left alone');
    // The connection ended before any USERAUTH_REQUEST: sshd saw no user at all.
    await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch(sshd!.stderrText().slice(since), /userauth-request for user|Accepted publickey|Failed publickey/);
  });

  test('sshd with MaxAuthTries 2: after two refused keys sshd disconnects and connect() rejects naming "Too many authentication failures"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const strict = await lab!.spawnSshdListening(config, undefined, ['-o', 'MaxAuthTries=2']);
    try {
      const strangers = await Promise.all(
        [1, 2, 3].map((n) => makeUserKey(lab!, 'ed25519', { name: `id_stranger_${n}`, authorize: false })),
      );
      const { error, debug } = await connectFails({
        host: '127.0.0.1',
        port: strict.port,
        username: lab!.user,
        privateKeyFiles: strangers.map((k) => k.privateKey),
        knownHosts: { files: [trustLabHostKeys(lab!, strict.port)], globalFiles: [] },
      });
      assert.ok(error instanceof DisconnectError, `${error.constructor.name}: ${error.message}`);
      assert.match(error.message, /Too many authentication failures/);
      assert.equal(debug.filter((l) => l.startsWith('Offering public key')).length, 2, debug.join('\n'));
      await logShows(() => strict.stderrText(), /maximum authentication attempts exceeded for /, 0, "sshd's log");
    } finally {
      await strict.stop();
    }
  });

  test('sshd with LoginGraceTime 1: a keyboard-interactive prompt we never answer ends in a dropped connection, and connect() rejects', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const slow = await lab!.spawnSshdListening(config, undefined, ['-o', 'LoginGraceTime=1', '-o', 'UsePAM=yes', '-o', 'KbdInteractiveAuthentication=yes']);
    try {
      let prompted = 0;
      const { error, ms } = await connectFails({
        host: '127.0.0.1',
        port: slow.port,
        username: lab!.user,
        authMethods: ['keyboard-interactive'],
        keyboardInteractive: () => {
          prompted++;
          return new Promise<string[]>(() => {});
        },
        knownHosts: { files: [trustLabHostKeys(lab!, slow.port)], globalFiles: [] },
      });
      assert.equal(prompted, 1, 'sshd asked once');
      assert.ok(error instanceof SshError, `${error.constructor.name}: ${error.message}`);
      assert.notEqual(error.code, 'ERR_SSH_TIMEOUT', `our own readyTimeout fired, not sshd: ${error.message}`);
      assert.ok(ms >= 900 && ms < 20_000, `dropped after ${ms} ms`);
      // sshd closes the socket without a DISCONNECT (and, since Debian's fix for CVE-2024-6387, its
      // grace alarm handler exits without logging "Timeout before authentication").
      assert.equal(error.code, 'ERR_SSH_CONNECTION_LOST', error.message);
    } finally {
      await slow.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// ssh -> tsshd

describe('what ssh says when tsshd refuses it', { timeout: 120_000 }, () => {
  const PEERS = ['ssh', 'ssh-keygen'] as const;
  let lab: OpenSshFixture | undefined;
  let tsshd: Tsshd | undefined;
  let stranger: UserKey | undefined;

  before(async () => {
    if (missingPeers(...PEERS)) return;
    lab = await createLab();
    stranger = await makeUserKey(lab, 'ed25519', { name: 'id_stranger', authorize: false });
    const passwordFile = lab.path('tsshd.passwd');
    await tsshdPasswd(passwordFile, lab.user, PASSWORD);
    tsshd = await startTsshd(lab, [
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication yes',
      `PasswordFile ${passwordFile}`,
      'PermitRootLogin yes',
      'LogLevel VERBOSE',
    ]);
  });
  after(async () => {
    await tsshd?.stop();
    await lab?.cleanup();
  });

  test('control: ssh logs in with the right password from SSH_ASKPASS', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const askpass = writeAskpass(lab!, 'right', PASSWORD);
    const r = await lab!.runSsh(['127.0.0.1', 'echo ok'], {
      port: tsshd!.port,
      identity: null,
      batchMode: false,
      env: askpass.env,
      options: ['PreferredAuthentications=password', 'NumberOfPasswordPrompts=1'],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ok\n');
  });

  test('a wrong password: ssh exits 255 with "Permission denied (…)" and tsshd logs "Failed password"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const askpass = writeAskpass(lab!, 'wrong', 'not the password');
    const since = tsshd!.log().length;
    const r = await lab!.runSsh(['127.0.0.1', 'echo ok'], {
      port: tsshd!.port,
      identity: null,
      batchMode: false,
      env: askpass.env,
      options: ['PreferredAuthentications=password', 'NumberOfPasswordPrompts=1'],
    });
    assert.equal(r.code, 255);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`${escapeRegExp(lab!.user)}@127\\.0\\.0\\.1: Permission denied \\(publickey,keyboard-interactive,password\\)\\.`));
    await tsshd!.waitForLog(new RegExp(`^Failed password for ${escapeRegExp(lab!.user)} from 127\\.0\\.0\\.1 port \\d+ ssh2`, 'm'), since);
  });

  test('a key tsshd does not accept: ssh exits 255 with "Permission denied (…)" and tsshd logs "Failed publickey"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const since = tsshd!.log().length;
    const r = await lab!.runSsh(['127.0.0.1', 'echo ok'], { port: tsshd!.port, identity: stranger!.privateKey });
    assert.equal(r.code, 255);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /Permission denied \(publickey,keyboard-interactive,password\)\./);
    await tsshd!.waitForLog(new RegExp(`^Failed publickey for ${escapeRegExp(lab!.user)} from 127\\.0\\.0\\.1`, 'm'), since);
  });

  test('an unknown user sees what a wrong password sees: the same methods, the same keyboard-interactive prompt, the same "Permission denied"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const attempt = async (user: string) => {
      const askpass = writeAskpass(lab!, `enum-${user}`, 'not the password');
      const r = await lab!.runSsh(['127.0.0.1', 'echo ok'], {
        port: tsshd!.port,
        user,
        identity: stranger!.privateKey,
        batchMode: false,
        verbose: true,
        env: askpass.env,
        options: ['PreferredAuthentications=publickey,keyboard-interactive,password', 'NumberOfPasswordPrompts=1'],
      });
      const normalize = (line: string): string => line.split(user).join('USER');
      return {
        code: r.code,
        methods: r.stderr.split('\n').filter((l) => l.includes('Authentications that can continue')).map((l) => l.trim()),
        denied: r.stderr.split('\n').filter((l) => l.includes('Permission denied')).map((l) => normalize(l.trim())),
        serverAcceptedKey: /Server accepts key/.test(r.stderr),
        prompts: askpass.prompts().map(normalize),
        offered: parseSshDebug(r.stderr).authMethodsOffered,
      };
    };
    const known = await attempt(lab!.user);
    const unknown = await attempt('tsshnosuchuser');
    assert.equal(known.code, 255);
    assert.deepEqual(known.denied, ['USER@127.0.0.1: Permission denied (publickey,keyboard-interactive,password).']);
    // keyboard-interactive asked the same question ("Password: "), password too.
    assert.equal(known.prompts.length, 2, known.prompts.join('\n'));
    assert.deepEqual(unknown, known);
  });
});

describe('tsshd limits: MaxAuthTries 2 and the default PermitRootLogin', { timeout: 120_000 }, () => {
  const PEERS = ['ssh', 'ssh-keygen'] as const;
  let lab: OpenSshFixture | undefined;
  let tsshd: Tsshd | undefined;
  const strangers: UserKey[] = [];

  before(async () => {
    if (missingPeers(...PEERS)) return;
    lab = await createLab();
    strangers.push(...(await Promise.all([1, 2, 3].map((n) => makeUserKey(lab!, 'ed25519', { name: `id_stranger_${n}`, authorize: false })))));
    const passwordFile = lab.path('tsshd.passwd');
    await tsshdPasswd(passwordFile, lab.user, PASSWORD);
    // No PermitRootLogin line: the default, prohibit-password.
    tsshd = await startTsshd(lab, ['PasswordAuthentication yes', 'KbdInteractiveAuthentication yes', `PasswordFile ${passwordFile}`], ['-o', 'MaxAuthTries 2']);
  });
  after(async () => {
    await tsshd?.stop();
    await lab?.cleanup();
  });

  test('after two refused keys tsshd disconnects with "Too many authentication failures"; ssh exits 255 and prints it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const since = tsshd!.log().length;
    const r = await lab!.runSsh(
      ['-i', strangers[1]!.privateKey, '-i', strangers[2]!.privateKey, '127.0.0.1', 'echo ok'],
      { port: tsshd!.port, identity: strangers[0]!.privateKey },
    );
    assert.equal(r.code, 255);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`Received disconnect from 127\\.0\\.0\\.1 port ${tsshd!.port}:\\d+: Too many authentication failures`));
    const log = await tsshd!.waitForLog(/Too many authentication failures/, since);
    assert.ok(log);
    assert.equal((tsshd!.log().slice(since).match(/^Failed publickey/gm) ?? []).length, 2);
  });

  test('our client gets the same: connect() rejects naming "Too many authentication failures" after two refused keys', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const { error, debug } = await connectFails({
      host: '127.0.0.1',
      port: tsshd!.port,
      username: lab!.user,
      privateKeyFiles: strangers.map((k) => k.privateKey),
      knownHosts: { files: [trustLabHostKeys(lab!, tsshd!.port)], globalFiles: [] },
    });
    assert.ok(error instanceof DisconnectError, `${error.constructor.name}: ${error.message}`);
    assert.match(error.message, /Too many authentication failures/);
    assert.equal(debug.filter((l) => l.startsWith('Offering public key')).length, 2, debug.join('\n'));
  });

  test('under the default PermitRootLogin (prohibit-password) tsshd refuses root\'s password even when the PasswordFile has one, as sshd does', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    if (!haveRoot(t, 'needs root: the test logs in as root')) return;
    const askpass = writeAskpass(lab!, 'root', PASSWORD);
    const r = await lab!.runSsh(['127.0.0.1', 'echo ok'], {
      port: tsshd!.port,
      identity: null,
      batchMode: false,
      env: askpass.env,
      options: ['PreferredAuthentications=password', 'NumberOfPasswordPrompts=1'],
    });
    assert.equal(
      r.code,
      255,
      'BUG src/cli/sshd/auth.ts: checkPassword() takes the PasswordFile branch before the PermitRootLogin check, ' +
        `so root logs in with a password under the default prohibit-password (ssh printed ${JSON.stringify(r.stdout)})`,
    );
    assert.match(r.stderr, /Permission denied/);
  });
});

describe('tsshd with LoginGraceTime 1', { timeout: 60_000 }, () => {
  const PEERS = ['ssh-keygen'] as const;
  let lab: OpenSshFixture | undefined;
  let tsshd: Tsshd | undefined;

  before(async () => {
    if (missingPeers(...PEERS)) return;
    lab = await createLab();
    const passwordFile = lab.path('tsshd.passwd');
    await tsshdPasswd(passwordFile, lab.user, PASSWORD);
    tsshd = await startTsshd(lab, ['KbdInteractiveAuthentication yes', `PasswordFile ${passwordFile}`, 'LogLevel VERBOSE'], ['-o', 'LoginGraceTime 1']);
  });
  after(async () => {
    await tsshd?.stop();
    await lab?.cleanup();
  });

  test('a client that never answers the keyboard-interactive prompt is dropped after about a second; connect() rejects naming the login grace time and tsshd logs "Timeout before authentication"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const since = tsshd!.log().length;
    let prompted = 0;
    const { error, ms } = await connectFails({
      host: '127.0.0.1',
      port: tsshd!.port,
      username: lab!.user,
      authMethods: ['keyboard-interactive'],
      keyboardInteractive: () => {
        prompted++;
        return new Promise<string[]>(() => {});
      },
      knownHosts: { files: [trustLabHostKeys(lab!, tsshd!.port)], globalFiles: [] },
    });
    assert.equal(prompted, 1, 'tsshd asked once');
    assert.ok(error instanceof DisconnectError, `${error.constructor.name}: ${error.message}`);
    assert.match(error.message, /login grace time/);
    assert.ok(ms >= 900 && ms < 20_000, `dropped after ${ms} ms`);
    await tsshd!.waitForLog(/Timeout before authentication for 127\.0\.0\.1 port \d+/, since);
  });
});
