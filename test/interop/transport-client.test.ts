// Interop of OUR client transport with OpenSSH's sshd (9.2, and 10 for ML-KEM): `sshd -i` runs as a
// child and we speak SSH over its pipes. Each algorithm we share with sshd gets its own subtest: the
// key exchange completes, both sides (our kexComplete info and sshd's DEBUG3 log) name the same
// algorithms, our client checks that sshd proved the fixture's host key, ssh-userauth is accepted,
// and a USERAUTH_REQUEST for "none" gets USERAUTH_FAILURE listing publickey. The auth layer does
// not exist yet, so most tests stop there — which already proves the encrypted channel both ways.
//
// Re-keying and delayed compression need one step more: OpenSSH's sshd refuses a key re-exchange
// before authentication (its pre-auth dispatch table answers KEXINIT with UNIMPLEMENTED, and it never
// starts one itself: "Don't attempt rekeying during pre-auth"), and zlib@openssh.com starts only
// after USERAUTH_SUCCESS. Those cases therefore log in with a publickey request built and signed by
// hand here (a key generated in process, added to the fixture's authorized_keys), then prove the
// channel with a global request that sshd must answer with REQUEST_FAILURE.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Transport, type AlgorithmLists, type KexInfo } from '../../src/transport/transport.js';
import { pumpInto, streamSender } from '../../src/transport-io.js';
import {
  cipherAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
} from '../../src/algorithms/registry.js';
import type { SshError } from '../../src/errors.js';
import { MSG, UserauthFailure, UserauthRequest } from '../../src/wire/messages.js';
import { Writer } from '../../src/wire/writer.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { openSshFixture, parseSshdLog, type OpenSshFixture, type SshdInetd } from '../helpers/openssh.js';
import { havePeers, needOpenSsh10, peerPath, type SshdProgram } from '../helpers/peers.js';

const execFileAsync = promisify(execFile);

/** Whoever runs the file may be on a slow machine; one case normally takes well under a second. */
const CASE_TIMEOUT_MS = 60_000;
const WAIT_MS = 20_000;
const MLKEM = 'mlkem768x25519-sha256';

/** The host key sshd is given: the fixture's three, or an extra ECDSA key made for the case. */
type HostKeyChoice = 'ed25519' | 'ecdsa' | 'ecdsa384' | 'ecdsa521' | 'rsa';

interface Expected {
  kex: string;
  hostKey: string;
  cipher: string;
  /** undefined for an AEAD cipher (sshd logs "<implicit>"). */
  mac: string | undefined;
  compression: string;
}

interface ClientCase {
  /** Our client's algorithm lists; what is not given is the registry default (compression none). */
  algorithms: Partial<AlgorithmLists>;
  /** sshd_config lines that enable what the case needs. */
  sshdExtra?: readonly string[];
  hostKey: HostKeyChoice;
  expect: Expected;
  /**
   * After the "none" failure, log in with publickey (signed here) and then:
   * 'check' only proves the channel with a global request; 'rekey-by-client' re-keys from our side
   * first; 'rekey-by-sshd' sends enough IGNORE bytes to pass sshd's RekeyLimit so that sshd re-keys.
   */
  afterAuth?: 'check' | 'rekey-by-client' | 'rekey-by-sshd';
  sshd?: SshdProgram;
  /** Guess the key exchange (guessKex: true), and whether the guess must prove right or wrong. */
  guess?: 'right' | 'wrong';
}

/** The registry defaults, compression none: one category at a time is then narrowed to one name. */
function defaultLists(): AlgorithmLists {
  return {
    kex: kexAlgorithms.defaults.filter((name) => name !== MLKEM), // sshd 9.2 would only skip it
    hostKey: [...signatureAlgorithms.defaults],
    cipher: [...cipherAlgorithms.defaults],
    mac: [...macAlgorithms.defaults],
    compression: ['none'],
  };
}

/** The public key blob (base64 field of the .pub line) sshd must prove it holds. */
function publicBlob(pubFile: string): Buffer {
  const fields = readFileSync(pubFile, 'utf8').trim().split(/\s+/);
  assert.ok(fields[1], `no key in ${pubFile}`);
  return Buffer.from(fields[1], 'base64');
}

/** The HostKey to give sshd for a choice: a fixture key, or a new ECDSA key of another size. */
async function hostKeyFor(fx: OpenSshFixture, choice: HostKeyChoice): Promise<{ privateKey: string; publicKey: string }> {
  if (choice === 'ecdsa384' || choice === 'ecdsa521') {
    const bits = choice === 'ecdsa384' ? '384' : '521';
    const path = fx.path(`host_ecdsa${bits}`);
    await execFileAsync(peerPath('ssh-keygen'), ['-q', '-t', 'ecdsa', '-b', bits, '-N', '', '-C', `tssh-test-ecdsa${bits}`, '-f', path]);
    return { privateKey: path, publicKey: `${path}.pub` };
  }
  return fx.hostKeys[choice];
}

/** Our client transport on sshd's pipes, with everything it reports recorded and awaitable. */
class ClientRun {
  readonly transport: Transport;
  readonly kex: KexInfo[] = [];
  readonly services: string[] = [];
  readonly messages: Buffer[] = [];
  readonly debug: string[] = [];
  readonly hostKeysSeen: { type: string; algorithm: string; matches: boolean }[] = [];
  closed: SshError | undefined | 'open' = 'open';
  private readonly listeners = new Set<() => void>();
  private readonly sshd: SshdInetd;

  constructor(sshd: SshdInetd, algorithms: AlgorithmLists, expectedBlob: Buffer, guessKex?: boolean) {
    this.sshd = sshd;
    const notify = (): void => {
      for (const listener of [...this.listeners]) listener();
    };
    this.transport = new Transport(
      {
        role: 'client',
        algorithms,
        identification: 'SSH-2.0-tssh_interop_test',
        guessKex,
        verifyHostKey: (key, algorithm) => {
          const matches = key.blob.equals(expectedBlob);
          this.hostKeysSeen.push({ type: key.type, algorithm, matches });
          return matches;
        },
      },
      {
        send: streamSender(sshd.stdin),
        message: (payload) => {
          this.messages.push(Buffer.from(payload));
          // Synchronously, as the auth layer will: the next packet (already in this chunk) may be
          // compressed with zlib@openssh.com.
          if (payload[0] === MSG.USERAUTH_SUCCESS) this.transport.setAuthenticated();
          notify();
        },
        close: (error) => {
          this.closed = error;
          notify();
        },
        kexComplete: (info) => {
          this.kex.push(info);
          notify();
        },
        serviceAccepted: (service) => {
          this.services.push(service);
          notify();
        },
        debug: (line) => {
          this.debug.push(line);
        },
      },
    );
    pumpInto(this.transport, { readable: sshd.stdout, writable: sshd.stdin });
  }

  /** What to show when something goes wrong: our debug lines and sshd's log. */
  diagnostics(): string {
    const closed = this.closed === 'open' ? 'open' : this.closed ? `${this.closed.code}: ${this.closed.message}` : 'closed cleanly';
    return `our transport: ${closed}\n--- our debug ---\n${this.debug.join('\n')}\n--- sshd log ---\n${this.sshd.stderrText()}`;
  }

  /** Resolves with probe()'s first defined value; rejects if the transport closes first, or on timeout. */
  waitFor<T>(what: string, probe: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        const value = probe();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.closed !== 'open') {
          finish();
          reject(new Error(`connection closed while waiting for ${what}\n${this.diagnostics()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}\n${this.diagnostics()}`));
      }, WAIT_MS);
      const finish = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }
}

/** Polls sshd's log (read asynchronously from its stderr) until `ready` holds, for up to 5 s. */
async function sshdLogWhen(sshd: SshdInetd, ready: (log: string) => boolean): Promise<string> {
  const started = Date.now();
  while (!ready(sshd.stderrText()) && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
  return sshd.stderrText();
}

async function runClientCase(t: TestContext, c: ClientCase): Promise<void> {
  if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
  const fx = await openSshFixture(t);
  const hostKey = await hostKeyFor(fx, c.hostKey);
  const config = fx.sshdConfig({
    hostKeys: [],
    extra: [
      `HostKey ${hostKey.privateKey}`,
      // Only publickey is offered, so the failure lists exactly what the test expects.
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      ...(c.sshdExtra ?? []),
    ],
  });
  const sshd = fx.spawnSshdInetd(config, c.sshd);
  const run = new ClientRun(sshd, { ...defaultLists(), ...c.algorithms }, publicBlob(hostKey.publicKey), c.guess ? true : undefined);
  run.transport.start();

  // 1. The key exchange, with the fixture's host key proved.
  const first = await run.waitFor('the first key exchange', () => run.kex[0]);
  const e = c.expect;
  assert.deepEqual(
    { ...first.algorithms },
    {
      kex: e.kex,
      hostKey: e.hostKey,
      cipherClientToServer: e.cipher,
      cipherServerToClient: e.cipher,
      macClientToServer: e.mac,
      macServerToClient: e.mac,
      compressionClientToServer: e.compression,
      compressionServerToClient: e.compression,
    },
    'the algorithms our client negotiated',
  );
  assert.equal(first.initial, true);
  assert.equal(first.strictKex, true, 'sshd 9.2 and later agree on strict kex');
  if (c.guess) assert.ok(run.debug.includes(`kex: our guess was ${c.guess}`), run.diagnostics());
  assert.deepEqual(run.hostKeysSeen, [{ type: publicKeyType(hostKey.publicKey), algorithm: e.hostKey, matches: true }]);
  assert.equal(run.transport.serverHostKey?.blob.equals(publicBlob(hostKey.publicKey)), true);

  // 2. The service request, over the new keys in both directions.
  run.transport.requestService('ssh-userauth');
  await run.waitFor('SERVICE_ACCEPT for ssh-userauth', () => (run.services.includes('ssh-userauth') ? true : undefined));

  // 3. USERAUTH_REQUEST "none": sshd answers USERAUTH_FAILURE naming publickey.
  run.transport.send(UserauthRequest.encode({ user: fx.user, service: 'ssh-connection', method: 'none', methodFields: Buffer.alloc(0) }));
  const failure = await run.waitFor('USERAUTH_FAILURE', () => run.messages.find((m) => m[0] === MSG.USERAUTH_FAILURE));
  assert.deepEqual(UserauthFailure.decode(failure), { methods: ['publickey'], partialSuccess: false });
  const unexpected = run.messages.filter((m) => m[0] !== MSG.USERAUTH_FAILURE && m[0] !== MSG.USERAUTH_BANNER);
  assert.deepEqual(unexpected.map((m) => m[0]), [], 'no other upper-layer message arrived');

  // 4. Optionally: log in, re-key, and prove the channel with a global request.
  const rekeys = c.afterAuth === 'rekey-by-client' || c.afterAuth === 'rekey-by-sshd';
  if (c.afterAuth) {
    await logInWithPublicKey(run, fx);
    if (c.afterAuth === 'rekey-by-client') run.transport.rekey();
    // sshd checks its RekeyLimit when it next sends: the reply to the global request below.
    if (c.afterAuth === 'rekey-by-sshd') for (let i = 0; i < 4; i++) run.transport.sendIgnore(randomBytes(1024)); // incompressible
    run.transport.send(new Writer(64).byte(MSG.GLOBAL_REQUEST).string('keepalive@openssh.com').boolean(true).finish());
    await run.waitFor('REQUEST_FAILURE for keepalive@openssh.com', () => run.messages.find((m) => m[0] === MSG.REQUEST_FAILURE));
    if (rekeys) {
      const second = await run.waitFor('the second key exchange', () => run.kex[1]);
      assert.equal(second.initial, false);
      assert.deepEqual(second.sessionId, first.sessionId, 'a rekey keeps the session id');
      assert.deepEqual(second.algorithms, first.algorithms);
    }
  }
  assert.equal(run.closed, 'open', run.diagnostics());

  // 5. sshd's view: the same algorithms, and as many key exchanges.
  const kexCount = rekeys ? 2 : 1;
  const text = await sshdLogWhen(
    sshd,
    (log) =>
      parseSshdLog(log).kexCount >= kexCount &&
      /remote software version/.test(log) &&
      (!c.afterAuth || /server_input_global_request: rtype keepalive@openssh\.com/.test(log)),
  );
  const log = parseSshdLog(text);
  const direction = { cipher: e.cipher, mac: e.mac ?? '<implicit>', compression: e.compression };
  assert.equal(log.kex, e.kex, `sshd's kex\n${run.diagnostics()}`);
  assert.equal(log.hostKeyAlgorithm, e.hostKey);
  assert.deepEqual(log.clientToServer, direction);
  assert.deepEqual(log.serverToClient, direction);
  assert.equal(log.kexCount, kexCount, 'key exchanges in sshd log');
  assert.equal(run.kex.length, kexCount, 'key exchanges our client completed');
  assert.equal(log.remoteSoftware, 'tssh_interop_test');
  assert.match(text, /will use strict KEX ordering/, 'sshd agreed on strict kex');
  assert.doesNotMatch(text, /\b(fatal|ssh_dispatch_run_fatal|Bad packet|Corrupted MAC|incorrect signature|dispatch_protocol_error)\b/i, 'sshd logged no error');
  if (c.afterAuth) assert.deepEqual(log.accepted, { method: 'publickey', user: fx.user });
  if (c.afterAuth && e.compression === 'zlib@openssh.com') assert.match(text, /Enabling compression/, 'sshd started delayed compression');

  run.transport.disconnect();
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([sshd.exited, new Promise<'running'>((r) => (timer = setTimeout(() => r('running'), 5000)))]);
  clearTimeout(timer);
  assert.notEqual(exit, 'running', 'sshd ended after our DISCONNECT');
}

/**
 * RFC 4252 §7 publickey authentication, by hand (the auth layer does not exist yet): a new Ed25519
 * key is authorized in the fixture, the request signed over the session id, USERAUTH_SUCCESS
 * awaited (the transport is told at once, which starts delayed compression).
 */
async function logInWithPublicKey(run: ClientRun, fx: OpenSshFixture): Promise<void> {
  const key = await generatePrivateKey('ed25519');
  const algorithm = 'ssh-ed25519';
  fx.authorize(`${algorithm} ${key.publicKey.blob.toString('base64')} tssh-interop-user`);
  const sessionId = run.transport.sessionId;
  assert.ok(sessionId, 'a session id after the key exchange');
  const signed = new Writer(256)
    .string(sessionId)
    .byte(MSG.USERAUTH_REQUEST)
    .string(fx.user)
    .string('ssh-connection')
    .string('publickey')
    .boolean(true)
    .string(algorithm)
    .string(key.publicKey.blob)
    .finish();
  const signature = signatureAlgorithms.all.get(algorithm)!.sign(key, signed);
  const methodFields = new Writer(256).boolean(true).string(algorithm).string(key.publicKey.blob).string(signature).finish();
  run.transport.send(UserauthRequest.encode({ user: fx.user, service: 'ssh-connection', method: 'publickey', methodFields }));
  // The message handler told the transport at once (see ClientRun).
  await run.waitFor('USERAUTH_SUCCESS', () => run.messages.find((m) => m[0] === MSG.USERAUTH_SUCCESS));
}

function publicKeyType(pubFile: string): string {
  return readFileSync(pubFile, 'utf8').trim().split(/\s+/)[0]!;
}

function caseTest(name: string, c: ClientCase | ((t: TestContext) => Promise<ClientCase | undefined>)): void {
  test(name, { timeout: CASE_TIMEOUT_MS }, async (t) => {
    const resolved = typeof c === 'function' ? await c(t) : c;
    if (resolved) await runClientCase(t, resolved);
  });
}

const ED25519: Pick<Expected, 'hostKey'> = { hostKey: 'ssh-ed25519' };
const CHACHA: Pick<Expected, 'cipher' | 'mac'> = { cipher: 'chacha20-poly1305@openssh.com', mac: undefined };
const DEFAULT_EXPECT: Expected = { kex: 'curve25519-sha256', ...ED25519, ...CHACHA, compression: 'none' };

// Two cores: sshd and node share them; three cases at a time keeps both busy without timeouts.
describe('transport interop: tssh client -> OpenSSH sshd', { concurrency: 3 }, () => {
  for (const kex of kexAlgorithms.all.keys()) {
    if (kex === MLKEM) continue; // OpenSSH 10 only, below
    caseTest(`kex ${kex}: tssh client -> OpenSSH sshd`, {
      algorithms: { kex: [kex] },
      sshdExtra: [`KexAlgorithms +${kex}`], // opt-in ones (group1, group14-sha1) need enabling
      hostKey: 'ed25519',
      expect: { ...DEFAULT_EXPECT, kex },
    });
  }

  caseTest(`kex ${MLKEM}: tssh client -> OpenSSH 10 sshd`, async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return undefined;
    const openssh10 = await needOpenSsh10(t);
    if (!openssh10) return undefined;
    return {
      algorithms: { kex: [MLKEM] },
      hostKey: 'ed25519',
      expect: { ...DEFAULT_EXPECT, kex: MLKEM },
      sshd: openssh10.sshd,
    };
  });

  // RFC 4253 §7 guesses: sshd takes a right one as the client's first kex message and drops a
  // wrong one (the client then sends the negotiated method's own).
  caseTest('guessed kex, right (sshd prefers curve25519-sha256 and ssh-ed25519 too): tssh client -> OpenSSH sshd', {
    algorithms: { kex: ['curve25519-sha256', 'diffie-hellman-group14-sha256'] },
    sshdExtra: ['KexAlgorithms curve25519-sha256,diffie-hellman-group14-sha256'],
    hostKey: 'ed25519',
    expect: DEFAULT_EXPECT,
    guess: 'right',
    afterAuth: 'check',
  });

  caseTest('guessed kex, wrong (sshd prefers another kex): tssh client -> OpenSSH sshd', {
    algorithms: { kex: ['curve25519-sha256@libssh.org', 'curve25519-sha256'] },
    sshdExtra: ['KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org'],
    hostKey: 'ed25519',
    expect: { ...DEFAULT_EXPECT, kex: 'curve25519-sha256@libssh.org' },
    guess: 'wrong',
    afterAuth: 'check',
  });

  caseTest('guessed kex, wrong host key algorithm (sshd has only an ECDSA key): tssh client -> OpenSSH sshd', {
    algorithms: { kex: ['curve25519-sha256'] },
    hostKey: 'ecdsa',
    expect: { ...DEFAULT_EXPECT, hostKey: 'ecdsa-sha2-nistp256' },
    guess: 'wrong',
  });

  caseTest(`guessed kex ${MLKEM}, right: tssh client -> OpenSSH 10 sshd`, async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return undefined;
    const openssh10 = await needOpenSsh10(t);
    if (!openssh10) return undefined;
    await kexAlgorithms.all.get(MLKEM)!.prepare?.(); // a guess goes only with the method's code loaded
    return {
      algorithms: { kex: [MLKEM, 'curve25519-sha256'] },
      hostKey: 'ed25519',
      expect: { ...DEFAULT_EXPECT, kex: MLKEM },
      sshd: openssh10.sshd,
      guess: 'right',
    };
  });

  const hostKeyChoice = (algorithm: string): HostKeyChoice => {
    const keyType = signatureAlgorithms.all.get(algorithm)!.keyType;
    switch (keyType) {
      case 'ssh-ed25519':
        return 'ed25519';
      case 'ecdsa-sha2-nistp256':
        return 'ecdsa';
      case 'ecdsa-sha2-nistp384':
        return 'ecdsa384';
      case 'ecdsa-sha2-nistp521':
        return 'ecdsa521';
      case 'ssh-rsa':
        return 'rsa';
      default:
        throw new Error(`no OpenSSH host key for ${algorithm} (${keyType})`);
    }
  };
  for (const algorithm of signatureAlgorithms.all.keys()) {
    caseTest(`host key ${algorithm}: tssh client -> OpenSSH sshd`, {
      algorithms: { hostKey: [algorithm] },
      sshdExtra: [`HostKeyAlgorithms +${algorithm}`], // ssh-rsa (SHA-1) is off by default since 8.8
      hostKey: hostKeyChoice(algorithm),
      expect: { ...DEFAULT_EXPECT, hostKey: algorithm },
    });
  }

  for (const [cipher, impl] of cipherAlgorithms.all) {
    caseTest(`cipher ${cipher}: tssh client -> OpenSSH sshd`, {
      algorithms: { cipher: [cipher] },
      sshdExtra: [`Ciphers +${cipher}`],
      hostKey: 'ed25519',
      // AEAD ciphers carry their own tag; the others get the first default MAC.
      expect: { ...DEFAULT_EXPECT, cipher, mac: impl.aead ? undefined : macAlgorithms.defaults[0]! },
    });
  }

  for (const mac of macAlgorithms.all.keys()) {
    caseTest(`MAC ${mac} (with aes128-ctr): tssh client -> OpenSSH sshd`, {
      algorithms: { cipher: ['aes128-ctr'], mac: [mac] },
      sshdExtra: [`MACs +${mac}`],
      hostKey: 'ed25519',
      expect: { ...DEFAULT_EXPECT, cipher: 'aes128-ctr', mac },
    });
  }

  caseTest('compression zlib@openssh.com, compressing both ways after authentication: tssh client -> OpenSSH sshd', {
    algorithms: { compression: ['zlib@openssh.com'] },
    sshdExtra: ['Compression yes'],
    hostKey: 'ed25519',
    expect: { ...DEFAULT_EXPECT, compression: 'zlib@openssh.com' },
    afterAuth: 'check',
  });

  caseTest('rekey started by tssh client after authentication keeps the channel and session id: tssh client -> OpenSSH sshd', {
    algorithms: {},
    hostKey: 'ed25519',
    expect: DEFAULT_EXPECT,
    afterAuth: 'rekey-by-client',
  });

  caseTest('rekey started by OpenSSH sshd (RekeyLimit 1K) is answered: tssh client -> OpenSSH sshd', {
    algorithms: { cipher: ['aes256-ctr'], mac: ['hmac-sha2-512-etm@openssh.com'], compression: ['zlib@openssh.com'] },
    sshdExtra: ['RekeyLimit 1K', 'Compression yes'],
    hostKey: 'ed25519',
    expect: { ...DEFAULT_EXPECT, cipher: 'aes256-ctr', mac: 'hmac-sha2-512-etm@openssh.com', compression: 'zlib@openssh.com' },
    afterAuth: 'rekey-by-sshd',
  });

  caseTest('strict kex agreed with the default algorithms: tssh client -> OpenSSH sshd', {
    algorithms: {},
    hostKey: 'ed25519',
    expect: DEFAULT_EXPECT,
  });
});
