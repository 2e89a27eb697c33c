// Interop of OUR server transport with OpenSSH's ssh client (9.2, and 10 for ML-KEM): `ssh -vvv`
// reaches our server through `-o ProxyCommand=node …/transport-peer.js …` (a Transport in server
// role over stdin/stdout, see ../helpers/transport-peer.ts). Each algorithm we share with ssh gets its
// own subtest, picked on ssh's side with -o KexAlgorithms=… etc. while our server offers everything
// it implements. There is no auth layer yet: the peer answers every USERAUTH_REQUEST with
// USERAUTH_FAILURE(publickey), so ssh ends with "Permission denied (publickey)" — after the key
// exchange, the service request and its userauth requests went through the encrypted channel.
//
// Not tested here: a re-exchange. OpenSSH neither starts nor accepts one before authentication
// (see transport-client.test.ts, which re-keys after a hand-made publickey login).
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cipherAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
} from '../../src/algorithms/registry.js';
import { openSshFixture, parseSshDebug, shellQuote } from '../helpers/openssh.js';
import { havePeers, needOpenSsh10 } from '../helpers/peers.js';

const PEER = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'transport-peer.js');
const CASE_TIMEOUT_MS = 60_000;
const MLKEM = 'mlkem768x25519-sha256';
const ALL_HOST_KEYS = 'ed25519,ecdsa-p256,ecdsa-p384,ecdsa-p521,rsa';

interface Expected {
  kex: string;
  hostKey: string;
  cipher: string;
  /** undefined for an AEAD cipher (ssh logs "<implicit>"). */
  mac: string | undefined;
  compression: string;
}

interface ServerCase {
  /** ssh -o values that pick the algorithm. */
  sshOptions: readonly string[];
  /** transport-peer.js arguments (after --log). */
  peerArgs: readonly string[];
  expect: Expected;
  /** Another ssh program (OpenSSH 10). */
  ssh?: string;
}

async function runServerCase(t: TestContext, c: ServerCase): Promise<void> {
  if (!havePeers(t, 'ssh', 'ssh-keygen')) return;
  const fx = await openSshFixture(t);
  const logFile = fx.path('transport-peer.log');
  writeFileSync(logFile, '');
  const words = [process.execPath, PEER, '--log', logFile, ...c.peerArgs];
  // ssh expands %-tokens in ProxyCommand: a literal % is %%.
  const proxyCommand = words.map(shellQuote).join(' ').replace(/%/g, '%%');
  const result = await fx.runSsh(['tssh-peer'], {
    ssh: c.ssh,
    proxyCommand,
    verbose: true,
    strictHostKeyChecking: 'no',
    options: c.sshOptions,
  });
  const peerLog = readFileSync(logFile, 'utf8');
  const context = `\n--- ssh ${result.args.join(' ')} (exit ${result.code}) ---\n${result.stderr}\n--- transport-peer log ---\n${peerLog}`;

  // Our server: no failure on our side, the same algorithms, strict kex, the requests it answered.
  assert.doesNotMatch(peerLog, /^fatal:/m, `our server failed${context}`);
  const e = c.expect;
  const mac = e.mac ?? '<implicit>';
  const kexLine =
    `kex complete: ${e.kex} ${e.hostKey} ${e.cipher}/${mac} ${e.cipher}/${mac} ` + `${e.compression},${e.compression} strict=true initial=true`;
  assert.ok(peerLog.includes(`${kexLine}\n`), `our server logged "${kexLine}"${context}`);
  assert.match(peerLog, /^service started: ssh-userauth$/m, `our server accepted ssh-userauth${context}`);
  assert.ok(
    peerLog.includes(`userauth request: user=${fx.user} service=ssh-connection method=publickey -> failure publickey\n`),
    `our server refused ssh's publickey request${context}`,
  );

  // ssh: the same algorithms, our host key, SERVICE_ACCEPT, publickey offered, permission denied.
  const debug = parseSshDebug(result.stderr);
  const direction = { cipher: e.cipher, mac, compression: e.compression };
  assert.equal(debug.kex, e.kex, `ssh's kex${context}`);
  assert.equal(debug.hostKeyAlgorithm, e.hostKey, `ssh's host key algorithm${context}`);
  assert.deepEqual(debug.clientToServer, direction, `ssh's client->server algorithms${context}`);
  assert.deepEqual(debug.serverToClient, direction, `ssh's server->client algorithms${context}`);
  assert.equal(debug.kexCount, 1);
  assert.equal(debug.remoteSoftware, 'tssh_transport_peer');
  assert.match(result.stderr, /will use strict KEX ordering/, `ssh agreed on strict kex${context}`);
  const keyType = signatureAlgorithms.all.get(e.hostKey)!.keyType;
  assert.match(debug.serverHostKey ?? '', new RegExp(`^${keyType} SHA256:`), `ssh saw a ${keyType} host key${context}`);
  assert.ok(peerLog.includes(`host key: ${debug.serverHostKey}\n`), `the host key ssh verified is our server's${context}`);
  assert.equal(debug.serviceAccepted, true, `SSH2_MSG_SERVICE_ACCEPT received${context}`);
  assert.deepEqual(debug.authMethodsOffered, ['publickey'], `our server offered publickey${context}`);
  assert.equal(debug.authenticated, false);
  assert.equal(debug.permissionDenied, true, `ssh ended with permission denied${context}`);
  assert.match(result.stderr, /Permission denied \(publickey\)/);
  assert.equal(result.code, 255, `ssh's exit code${context}`);
}

function caseTest(name: string, c: ServerCase | ((t: TestContext) => Promise<ServerCase | undefined>)): void {
  test(name, { timeout: CASE_TIMEOUT_MS }, async (t) => {
    const resolved = typeof c === 'function' ? await c(t) : c;
    if (resolved) await runServerCase(t, resolved);
  });
}

/** ssh 9.2's choice when only one category is pinned (its defaults, intersected with ours). */
const DEFAULT_EXPECT: Expected = {
  kex: 'curve25519-sha256',
  hostKey: 'ssh-ed25519',
  cipher: 'chacha20-poly1305@openssh.com',
  mac: undefined,
  compression: 'none',
};
/** Our server offers every algorithm it implements, so ssh's -o setting alone decides. */
const OFFER_ALL = ['--all', '--host-keys', 'ed25519'];

// Two cores: ssh, node and the test runner share them; three cases at a time keeps them busy.
describe('transport interop: OpenSSH ssh -> tssh server', { concurrency: 3 }, () => {
  for (const kex of kexAlgorithms.all.keys()) {
    if (kex === MLKEM) continue; // OpenSSH 10 only, below
    caseTest(`kex ${kex}: OpenSSH ssh -> tssh server`, {
      sshOptions: [`KexAlgorithms=${kex}`],
      peerArgs: OFFER_ALL,
      expect: { ...DEFAULT_EXPECT, kex },
    });
  }

  caseTest(`kex ${MLKEM}: OpenSSH 10 ssh -> tssh server`, async (t) => {
    if (!havePeers(t, 'ssh', 'ssh-keygen')) return undefined;
    const openssh10 = await needOpenSsh10(t);
    if (!openssh10) return undefined;
    return {
      sshOptions: [`KexAlgorithms=${MLKEM}`],
      peerArgs: OFFER_ALL,
      expect: { ...DEFAULT_EXPECT, kex: MLKEM },
      ssh: openssh10.ssh,
    };
  });

  for (const hostKey of signatureAlgorithms.all.keys()) {
    caseTest(`host key ${hostKey}: OpenSSH ssh -> tssh server`, {
      sshOptions: [`HostKeyAlgorithms=${hostKey}`],
      // A key of every type, so the server has to pick the one the algorithm needs.
      peerArgs: ['--all', '--host-keys', ALL_HOST_KEYS],
      expect: { ...DEFAULT_EXPECT, hostKey },
    });
  }

  for (const [cipher, impl] of cipherAlgorithms.all) {
    caseTest(`cipher ${cipher}: OpenSSH ssh -> tssh server`, {
      sshOptions: [`Ciphers=${cipher}`],
      peerArgs: OFFER_ALL,
      // ssh's first MAC that we implement, for the non-AEAD ciphers.
      expect: { ...DEFAULT_EXPECT, cipher, mac: impl.aead ? undefined : 'hmac-sha2-256-etm@openssh.com' },
    });
  }

  for (const mac of macAlgorithms.all.keys()) {
    caseTest(`MAC ${mac} (with aes128-ctr): OpenSSH ssh -> tssh server`, {
      sshOptions: ['Ciphers=aes128-ctr', `MACs=${mac}`],
      peerArgs: OFFER_ALL,
      expect: { ...DEFAULT_EXPECT, cipher: 'aes128-ctr', mac },
    });
  }

  caseTest('compression zlib@openssh.com (negotiated; starts after authentication): OpenSSH ssh -> tssh server', {
    // ssh's Compression=yes offers zlib@openssh.com,zlib,none.
    sshOptions: ['Compression=yes'],
    peerArgs: OFFER_ALL,
    expect: { ...DEFAULT_EXPECT, compression: 'zlib@openssh.com' },
  });

  caseTest('compression zlib, compressing both ways from NEWKEYS: OpenSSH ssh -> tssh server', {
    sshOptions: ['Compression=yes'],
    peerArgs: [...OFFER_ALL, '--compression', 'zlib'],
    expect: { ...DEFAULT_EXPECT, compression: 'zlib' },
  });

  caseTest('strict kex agreed with the default algorithms: OpenSSH ssh -> tssh server', {
    sshOptions: [],
    peerArgs: ['--host-keys', 'ed25519'],
    expect: DEFAULT_EXPECT,
  });
});
