// User authentication, our client -> OpenSSH's sshd (9.2): connect() logs in to a real sshd
// (`sshd -D` on a free port, and once `sshd -i` through `sock`) with every key type loaded from
// files ssh-keygen wrote (plain, encrypted with a passphrase, RSA in PEM), through a real ssh-agent
// (`ssh-agent -D -a SOCK`, keys added with ssh-add; an RSA key there makes the agent sign
// rsa-sha2-512 through the SSH_AGENT_RSA_SHA2_512 flag), and with a password and PAM
// keyboard-interactive for a throwaway system user (useradd -m + chpasswd, removed with userdel -r
// afterwards; sshd runs with UsePAM yes). AuthenticationMethods publickey,password shows that our
// client follows partial success.
//
// Each login runs `id -un` with client.exec and checks the user it prints and its exit status, and
// sshd's own log: `Accepted publickey for root from 127.0.0.1 port N ssh2: ED25519 SHA256:…` (the
// fingerprint as ssh-keygen -l prints it) and, at DEBUG3, `userauth_pubkey: authenticated 1 pkalg
// <the signature algorithm>`. The failures users see are in test/api/auth-errors.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { connect, type ConnectOptions, type SshClient } from '../../src/client.js';
import type { SshPublicKey } from '../../src/algorithms/types.js';
import { parsePrivateKeyFile } from '../../src/keys/private-key-file.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import type { OpenSshFixture, SshdListening } from '../helpers/openssh.js';
import { havePeers, missingPeers } from '../helpers/peers.js';
import {
  canMakeSystemUsers,
  createLab,
  createSystemUser,
  inetdSock,
  makeUserKey,
  startSshAgent,
  systemUsersUnavailable,
  trustLabHostKeys,
  writeSshdConfig,
  type SshAgentProcess,
  type SystemUserHandle,
  type UserKey,
  type UserKeyKind,
} from '../helpers/auth-lab.js';

const CASE_TIMEOUT_MS = 60_000;
const PASSPHRASE = 'correct horse battery staple';
const PEERS = ['sshd', 'ssh-keygen'] as const;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** sshd's line for an accepted login; `from` is a pattern for the address (sshd -i logs UNKNOWN). */
function acceptedLine(method: string, user: string, key?: UserKey, from = '127\\.0\\.0\\.1'): RegExp {
  const keyPart = key ? `: ${key.label} ${escapeRegExp(key.fingerprint)}` : '\\s*$';
  return new RegExp(`^Accepted ${escapeRegExp(method)} for ${escapeRegExp(user)} from ${from} port \\d+ ssh2${keyPart}`, 'm');
}

/** The pkalg sshd logs at DEBUG3 once a signature verified. */
function pkalgLine(algorithm: string): RegExp {
  return new RegExp(`userauth_pubkey: authenticated 1 pkalg ${escapeRegExp(algorithm)}\\b`);
}

/** Waits for sshd's log (which its per-connection children write) to show `pattern` after `since`. */
async function sshdLogShows(sshd: SshdListening, pattern: RegExp, since: number): Promise<string> {
  const started = Date.now();
  for (;;) {
    const log = sshd.stderrText().slice(since);
    if (pattern.test(log)) return log;
    if (Date.now() - started > 10_000) assert.fail(`sshd's log does not show ${pattern}:\n${log.split('\n').filter((l) => !/^debug[23]/.test(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Connects, runs `id -un`, disconnects; returns what it printed, its exit code and our debug lines. */
async function loginAndRunIdUn(options: ConnectOptions): Promise<{ stdout: string; code: number | undefined; debug: string[] }> {
  const debug: string[] = [];
  let client: SshClient | undefined;
  try {
    client = await connect({ readyTimeout: 30_000, ...options, debug: (line) => debug.push(line) });
    const result = await client.exec('id -un');
    return { stdout: result.stdout.toString('utf8'), code: result.code, debug };
  } catch (error) {
    (error as Error).message += `\nour debug log:\n${debug.join('\n')}`;
    throw error;
  } finally {
    await client?.end();
  }
}

function knownHostsFor(lab: OpenSshFixture, sshd: SshdListening): ConnectOptions['knownHosts'] {
  return { files: [trustLabHostKeys(lab, sshd.port)], globalFiles: [] };
}

interface KeyFileCase {
  title: string;
  kind: UserKeyKind;
  name: string;
  encrypted: 'no' | 'string' | 'function';
  algorithm: string;
}

const KEY_FILE_CASES: readonly KeyFileCase[] = [
  { title: 'an ed25519 key file', kind: 'ed25519', name: 'id_ed25519', encrypted: 'no', algorithm: 'ssh-ed25519' },
  { title: 'an ecdsa-sha2-nistp256 key file', kind: 'ecdsa-256', name: 'id_ecdsa256', encrypted: 'no', algorithm: 'ecdsa-sha2-nistp256' },
  { title: 'an ecdsa-sha2-nistp384 key file', kind: 'ecdsa-384', name: 'id_ecdsa384', encrypted: 'no', algorithm: 'ecdsa-sha2-nistp384' },
  { title: 'an ecdsa-sha2-nistp521 key file', kind: 'ecdsa-521', name: 'id_ecdsa521', encrypted: 'no', algorithm: 'ecdsa-sha2-nistp521' },
  { title: 'an RSA key file encrypted with a passphrase (string), signing rsa-sha2-512', kind: 'rsa', name: 'id_rsa_enc', encrypted: 'string', algorithm: 'rsa-sha2-512' },
  { title: 'an ed25519 key file encrypted with a passphrase that a function returns for its path', kind: 'ed25519', name: 'id_ed25519_enc', encrypted: 'function', algorithm: 'ssh-ed25519' },
  { title: 'an RSA key file in PEM format (ssh-keygen -m PEM)', kind: 'rsa-pem', name: 'id_rsa_pem', encrypted: 'no', algorithm: 'rsa-sha2-512' },
];

describe('our client logs in to sshd with key files written by ssh-keygen', { timeout: 180_000 }, () => {
  let lab: OpenSshFixture | undefined;
  let sshd: SshdListening | undefined;
  let config = '';
  const keys = new Map<string, UserKey>();

  before(async () => {
    if (missingPeers(...PEERS)) return;
    lab = await createLab();
    const made = await Promise.all(
      KEY_FILE_CASES.map((c) => makeUserKey(lab!, c.kind, { name: c.name, passphrase: c.encrypted === 'no' ? undefined : PASSPHRASE })),
    );
    for (const key of made) keys.set(key.privateKey, key);
    config = writeSshdConfig(lab, ['UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no']);
    sshd = await lab.spawnSshdListening(config);
  });
  after(async () => {
    await sshd?.stop();
    await lab?.cleanup();
  });

  for (const c of KEY_FILE_CASES) {
    test(`with ${c.title}: id -un runs and sshd logs "Accepted publickey" for its fingerprint and pkalg ${c.algorithm}`, { timeout: CASE_TIMEOUT_MS }, async (t) => {
      if (!havePeers(t, ...PEERS)) return;
      const key = keys.get(lab!.path(c.name))!;
      const asked: string[] = [];
      const since = sshd!.stderrText().length;
      const r = await loginAndRunIdUn({
        host: '127.0.0.1',
        port: sshd!.port,
        username: lab!.user,
        privateKeyFiles: [key.privateKey],
        passphrase:
          c.encrypted === 'string'
            ? PASSPHRASE
            : c.encrypted === 'function'
              ? (path: string) => {
                  asked.push(path);
                  return PASSPHRASE;
                }
              : undefined,
        authMethods: ['publickey'],
        knownHosts: knownHostsFor(lab!, sshd!),
      });
      assert.equal(r.stdout, `${lab!.user}\n`);
      assert.equal(r.code, 0);
      assert.ok(r.debug.some((l) => l === `Offering public key: ${key.privateKey} ${c.algorithm}`), r.debug.join('\n'));
      if (c.encrypted === 'function') assert.deepEqual(asked, [key.privateKey], 'the passphrase function is asked once, with the key file path');
      const log = await sshdLogShows(sshd!, acceptedLine('publickey', lab!.user, key), since);
      assert.match(log, pkalgLine(c.algorithm));
    });
  }

  test('a key given in memory goes before none, behind the service request: sshd sees plain publickey first and accepts it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const key = keys.get(lab!.path('id_ed25519'))!;
    const { key: parsed } = await parsePrivateKeyFile(readFileSync(key.privateKey));
    const since = sshd!.stderrText().length;
    const r = await loginAndRunIdUn({ host: '127.0.0.1', port: sshd!.port, username: lab!.user, privateKeys: [parsed], knownHosts: knownHostsFor(lab!, sshd!) });
    assert.equal(r.stdout, `${lab!.user}\n`);
    assert.ok(!r.debug.some((l) => l.startsWith('Authentications that can continue')), r.debug.join('\n'));
    const offered = r.debug.findIndex((l) => l.startsWith('Offering public key'));
    assert.ok(offered >= 0 && offered < r.debug.findIndex((l) => l.startsWith('SSH2_MSG_SERVICE_ACCEPT received')), r.debug.join('\n'));
    const log = await sshdLogShows(sshd!, acceptedLine('publickey', lab!.user, key), since);
    const methods = [...log.matchAll(/userauth-request for user \S+ service ssh-connection method (\S+)/g)].map((m) => m[1]);
    // Sent before sshd's EXT_INFO was read, so without publickey-hostbound (pipelineAuthentication).
    assert.deepEqual(methods, ['publickey'], log);
  });

  test('a refused key in memory, then a good one: the second request uses publickey-hostbound, learnt from the EXT_INFO meanwhile', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const key = keys.get(lab!.path('id_ed25519'))!;
    const { key: parsed } = await parsePrivateKeyFile(readFileSync(key.privateKey));
    const stranger = await generatePrivateKey('ed25519');
    const since = sshd!.stderrText().length;
    const r = await loginAndRunIdUn({ host: '127.0.0.1', port: sshd!.port, username: lab!.user, privateKeys: [stranger, parsed], knownHosts: knownHostsFor(lab!, sshd!) });
    assert.equal(r.stdout, `${lab!.user}\n`);
    const log = await sshdLogShows(sshd!, acceptedLine('publickey', lab!.user, key), since);
    const methods = [...log.matchAll(/userauth-request for user \S+ service ssh-connection method (\S+)/g)].map((m) => m[1]);
    assert.deepEqual(methods, ['publickey', 'publickey-hostbound-v00@openssh.com'], log);
  });

  test('pipelineAuthentication: false: the key waits for the SERVICE_ACCEPT and goes as publickey-hostbound', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const key = keys.get(lab!.path('id_ed25519'))!;
    const { key: parsed } = await parsePrivateKeyFile(readFileSync(key.privateKey));
    const since = sshd!.stderrText().length;
    const r = await loginAndRunIdUn({ host: '127.0.0.1', port: sshd!.port, username: lab!.user, privateKeys: [parsed], pipelineAuthentication: false, knownHosts: knownHostsFor(lab!, sshd!) });
    assert.equal(r.stdout, `${lab!.user}\n`);
    const log = await sshdLogShows(sshd!, acceptedLine('publickey', lab!.user, key), since);
    const methods = [...log.matchAll(/userauth-request for user \S+ service ssh-connection method (\S+)/g)].map((m) => m[1]);
    assert.deepEqual(methods, ['publickey-hostbound-v00@openssh.com'], log);
  });

  test('key files: one without a passphrase goes before none, as a key in memory; an encrypted one waits for none, and its passphrase is asked once', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const methodsOf = async (file: string, passphrase?: (path: string) => string): Promise<string[]> => {
      const since = sshd!.stderrText().length;
      const r = await loginAndRunIdUn({ host: '127.0.0.1', port: sshd!.port, username: lab!.user, privateKeyFiles: [file], passphrase, knownHosts: knownHostsFor(lab!, sshd!) });
      assert.equal(r.stdout, `${lab!.user}\n`);
      const log = await sshdLogShows(sshd!, acceptedLine('publickey', lab!.user, keys.get(file)!), since);
      return [...log.matchAll(/userauth-request for user \S+ service ssh-connection method (\S+)/g)].map((m) => m[1]!);
    };
    // One request, before none: plain publickey when the file was read by the end of the key
    // exchange and the request went behind the service request, hostbound when it had to wait.
    const plain = await methodsOf(lab!.path('id_ed25519'));
    assert.ok(plain.length === 1 && ['publickey', 'publickey-hostbound-v00@openssh.com'].includes(plain[0]!), plain.join(','));
    const asked: string[] = [];
    const encrypted = lab!.path('id_ed25519_enc');
    const methods = await methodsOf(encrypted, (path) => {
      asked.push(path);
      return PASSPHRASE;
    });
    assert.deepEqual(methods, ['none', 'publickey-hostbound-v00@openssh.com']);
    assert.deepEqual(asked, [encrypted]);
  });

  test('a key given in memory that sshd refuses: none is tried last, then Permission denied (publickey)', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const stranger = await generatePrivateKey('ed25519');
    const since = sshd!.stderrText().length;
    await assert.rejects(
      connect({ host: '127.0.0.1', port: sshd!.port, username: lab!.user, privateKeys: [stranger], knownHosts: knownHostsFor(lab!, sshd!), readyTimeout: 30_000 }),
      /Permission denied \(publickey\)\./,
    );
    const log = await sshdLogShows(sshd!, /method none/, since);
    const methods = [...log.matchAll(/userauth-request for user \S+ service ssh-connection method (\S+)/g)].map((m) => m[1]);
    assert.deepEqual(methods, ['publickey', 'none'], log);
  });

  test('over sshd -i through `sock` (a Duplex over the child\'s pipes): the ed25519 key logs in and id -un runs', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const key = keys.get(lab!.path('id_ed25519'))!;
    const inetd = lab!.spawnSshdInetd(config);
    const trusted = [lab!.hostKeys.ed25519, lab!.hostKeys.ecdsa, lab!.hostKeys.rsa].map((k) => Buffer.from(k.publicKeyLine.split(' ')[1]!, 'base64'));
    try {
      const r = await loginAndRunIdUn({
        sock: inetdSock(inetd),
        username: lab!.user,
        privateKeyFiles: [key.privateKey],
        verifyHostKey: (hostKey: SshPublicKey) => trusted.some((blob) => blob.equals(hostKey.blob)),
      });
      assert.equal(r.stdout, `${lab!.user}\n`);
      assert.equal(r.code, 0);
      await new Promise<void>((resolve, reject) => {
        const started = Date.now();
        const poll = (): void => {
          if (acceptedLine('publickey', lab!.user, key, '\\S+').test(inetd.stderrText())) resolve();
          else if (Date.now() - started > 10_000) reject(new Error(`sshd -i log:\n${inetd.stderrText()}`));
          else setTimeout(poll, 25);
        };
        poll();
      });
    } finally {
      await inetd.kill();
    }
  });
});

describe('our client logs in to sshd through a real ssh-agent', { timeout: 120_000 }, () => {
  const PEERS_AGENT = ['sshd', 'ssh-keygen', 'ssh-agent'] as const;
  let lab: OpenSshFixture | undefined;
  let sshd: SshdListening | undefined;
  let agent: SshAgentProcess | undefined;
  let rsa: UserKey | undefined;
  let ecdsa: UserKey | undefined;
  let stranger: UserKey | undefined;

  before(async () => {
    if (missingPeers(...PEERS_AGENT)) return;
    lab = await createLab();
    [rsa, ecdsa, stranger] = await Promise.all([
      makeUserKey(lab, 'rsa', { name: 'agent_rsa', passphrase: PASSPHRASE }),
      makeUserKey(lab, 'ecdsa-384', { name: 'agent_ecdsa384' }),
      makeUserKey(lab, 'ed25519', { name: 'agent_stranger', authorize: false }),
    ]);
    sshd = await lab.spawnSshdListening(writeSshdConfig(lab, ['UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no']));
    agent = await startSshAgent(lab);
  });
  after(async () => {
    await agent?.stop();
    await sshd?.stop();
    await lab?.cleanup();
  });

  test('an RSA key in ssh-agent (added with its passphrase): the agent signs rsa-sha2-512 for us and sshd accepts it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS_AGENT)) return;
    await agent!.removeAll();
    await agent!.add(rsa!.privateKey, PASSPHRASE);
    assert.equal((await agent!.list()).length, 1);
    const since = sshd!.stderrText().length;
    const r = await loginAndRunIdUn({
      host: '127.0.0.1',
      port: sshd!.port,
      username: lab!.user,
      agent: agent!.socket,
      authMethods: ['publickey'],
      knownHosts: knownHostsFor(lab!, sshd!),
    });
    assert.equal(r.stdout, `${lab!.user}\n`);
    assert.equal(r.code, 0);
    assert.ok(r.debug.some((l) => /^Offering public key: agent: .* rsa-sha2-512$/.test(l)), r.debug.join('\n'));
    const log = await sshdLogShows(sshd!, acceptedLine('publickey', lab!.user, rsa), since);
    // An agent that ignored the flag would sign ssh-rsa (SHA-1), which sshd rejects for rsa-sha2-512.
    assert.match(log, pkalgLine('rsa-sha2-512'));
  });

  test('keys in ssh-agent are tried in order: a key sshd does not know is refused, the next (ecdsa-sha2-nistp384) logs in', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS_AGENT)) return;
    await agent!.removeAll();
    await agent!.add(stranger!.privateKey);
    await agent!.add(ecdsa!.privateKey);
    const since = sshd!.stderrText().length;
    const r = await loginAndRunIdUn({
      host: '127.0.0.1',
      port: sshd!.port,
      username: lab!.user,
      agent: agent!.socket,
      authMethods: ['publickey'],
      knownHosts: knownHostsFor(lab!, sshd!),
    });
    assert.equal(r.stdout, `${lab!.user}\n`);
    assert.equal(r.code, 0);
    const offered = r.debug.filter((l) => l.startsWith('Offering public key: agent: '));
    assert.equal(offered.length, 2, offered.join('\n'));
    assert.match(offered[0]!, / ssh-ed25519$/);
    assert.match(offered[1]!, / ecdsa-sha2-nistp384$/);
    const log = await sshdLogShows(sshd!, acceptedLine('publickey', lab!.user, ecdsa), since);
    assert.match(log, new RegExp(`Failed publickey for ${escapeRegExp(lab!.user)} from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 ${escapeRegExp(stranger!.fingerprint)}`));
    // The agent's list was read during the key exchange, so the first key's query went first, not
    // `none`: a query for each key, then the signed request for the one sshd takes.
    const methods = [...log.matchAll(/userauth-request for user \S+ service ssh-connection method (\S+)/g)].map((m) => m[1]);
    assert.deepEqual(methods, Array(3).fill('publickey-hostbound-v00@openssh.com'), log);
  });

  test('an agent socket where no agent runs: the debug log says so and the key files are used instead', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS_AGENT)) return;
    const missing = lab!.path('no-agent.sock');
    const r = await loginAndRunIdUn({
      host: '127.0.0.1',
      port: sshd!.port,
      username: lab!.user,
      agent: missing,
      privateKeyFiles: [ecdsa!.privateKey],
      authMethods: ['publickey'],
      knownHosts: knownHostsFor(lab!, sshd!),
    });
    assert.equal(r.stdout, `${lab!.user}\n`);
    assert.ok(r.debug.some((l) => l.startsWith('agent: ') && /ENOENT|no such file|connect/i.test(l)), r.debug.join('\n'));
  });
});

describe('our client logs in to sshd with a password and PAM keyboard-interactive as a throwaway system user', { timeout: 120_000 }, () => {
  const PASSWORD = 'tssh-Pam-pw-42';
  let lab: OpenSshFixture | undefined;
  let sshd: SshdListening | undefined;
  let mfaSshd: SshdListening | undefined;
  let user: SystemUserHandle | undefined;
  let userKey: UserKey | undefined;

  before(async () => {
    if (missingPeers(...PEERS) || systemUsersUnavailable()) return;
    lab = await createLab();
    user = await createSystemUser(PASSWORD);
    userKey = await makeUserKey(lab, 'ed25519', { name: 'id_system_user' });
    // sshd reads authorized_keys as the user: let it through the (0700) lab folder to that file only.
    chmodSync(lab.dir, 0o711);
    chmodSync(lab.authorizedKeys, 0o644);
    const common = ['UsePAM yes', 'PasswordAuthentication yes', 'KbdInteractiveAuthentication yes'];
    [sshd, mfaSshd] = await Promise.all([
      lab.spawnSshdListening(writeSshdConfig(lab, common)),
      lab.spawnSshdListening(writeSshdConfig(lab, ['AuthenticationMethods publickey,password', ...common])),
    ]);
  });
  after(async () => {
    await sshd?.stop();
    await mfaSshd?.stop();
    await user?.remove();
    await lab?.cleanup();
  });

  test('password (through PAM): id -un prints the user and sshd logs "Accepted password"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS) || !canMakeSystemUsers(t)) return;
    const since = sshd!.stderrText().length;
    const r = await loginAndRunIdUn({
      host: '127.0.0.1',
      port: sshd!.port,
      username: user!.name,
      password: PASSWORD,
      authMethods: ['password'],
      knownHosts: knownHostsFor(lab!, sshd!),
    });
    assert.equal(r.stdout, `${user!.name}\n`);
    assert.equal(r.code, 0);
    await sshdLogShows(sshd!, acceptedLine('password', user!.name), since);
  });

  test('keyboard-interactive through PAM: we answer PAM\'s "Password: " prompt, id -un prints the user and sshd logs "Accepted keyboard-interactive/pam"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS) || !canMakeSystemUsers(t)) return;
    const prompts: { prompt: string; echo: boolean }[] = [];
    const since = sshd!.stderrText().length;
    const r = await loginAndRunIdUn({
      host: '127.0.0.1',
      port: sshd!.port,
      username: user!.name,
      authMethods: ['keyboard-interactive'],
      keyboardInteractive: (request) => {
        prompts.push(...request.prompts.map((p) => ({ prompt: p.prompt, echo: p.echo })));
        return request.prompts.map(() => PASSWORD);
      },
      knownHosts: knownHostsFor(lab!, sshd!),
    });
    assert.equal(r.stdout, `${user!.name}\n`);
    assert.equal(r.code, 0);
    assert.deepEqual(prompts, [{ prompt: 'Password: ', echo: false }]);
    await sshdLogShows(sshd!, acceptedLine('keyboard-interactive/pam', user!.name), since);
  });

  test('AuthenticationMethods publickey,password: our client follows partial success from the key to the password; sshd logs "Partial publickey" then "Accepted password"', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS) || !canMakeSystemUsers(t)) return;
    const since = mfaSshd!.stderrText().length;
    const r = await loginAndRunIdUn({
      host: '127.0.0.1',
      port: mfaSshd!.port,
      username: user!.name,
      privateKeyFiles: [userKey!.privateKey],
      password: PASSWORD,
      knownHosts: knownHostsFor(lab!, mfaSshd!),
    });
    assert.equal(r.stdout, `${user!.name}\n`);
    assert.equal(r.code, 0);
    // The key file (no passphrase) went first, before any `none`: the first answer is the partial success.
    const firstAnswer = r.debug.findIndex((line) => line.startsWith('Authentications that can continue'));
    assert.equal(r.debug[firstAnswer], 'Authentications that can continue: password (partial success)', r.debug.join('\n'));
    assert.ok(r.debug.findIndex((line) => line.startsWith('Offering public key')) < firstAnswer, r.debug.join('\n'));
    const log = await sshdLogShows(mfaSshd!, acceptedLine('password', user!.name), since);
    assert.match(
      log,
      new RegExp(`^Partial publickey for ${escapeRegExp(user!.name)} from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 ${escapeRegExp(userKey!.fingerprint)}`, 'm'),
    );
    assert.doesNotMatch(log, /^Accepted publickey/m);
  });
});
