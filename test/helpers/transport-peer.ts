/**
 * Our transport as an SSH SERVER over stdin/stdout, for `ssh -o ProxyCommand=…` in interop tests
 * (compiled to dist/test/helpers/transport-peer.js, run with `node`). There is no auth layer yet:
 * it accepts the ssh-userauth service and answers every USERAUTH_REQUEST with USERAUTH_FAILURE
 * (methods publickey, no partial success), so a client gets as far as "Permission denied
 * (publickey)" — which proves the encrypted channel works in both directions.
 *
 *   node transport-peer.js --log FILE [--host-keys ed25519,ecdsa-p256,ecdsa-p384,ecdsa-p521,rsa]
 *        [--all] [--kex LIST] [--host-key-algorithms LIST] [--ciphers LIST] [--macs LIST]
 *        [--compression LIST] [--strict-kex-check]
 *
 * LISTs are comma-separated wire names. Without a list, the registry defaults are offered (and
 * compression none,zlib@openssh.com); with --all, everything the registry implements (so
 * opt-in algorithms such as ssh-rsa or diffie-hellman-group1-sha1 can be negotiated). Host keys
 * are generated in process (RSA at 2048 bits); without --host-keys, one key of each type the
 * host key algorithm list needs. The same settings can come from the environment:
 * TSSH_PEER_LOG, TSSH_PEER_HOST_KEYS, TSSH_PEER_ALL=1, TSSH_PEER_KEX, TSSH_PEER_HOST_KEY_ALGORITHMS,
 * TSSH_PEER_CIPHERS, TSSH_PEER_MACS, TSSH_PEER_COMPRESSION (arguments win).
 *
 * Log lines (never on stdout, which is the SSH stream) are the transport's debug lines plus:
 *   host key: <type> SHA256:<fingerprint>      one per host key, before the identification
 *   kex complete: <kex> <host key alg> <c2s cipher>/<mac> <s2c cipher>/<mac> <comp> strict=<bool> initial=<bool>
 *   userauth request: user=<u> service=<s> method=<m> -> failure publickey
 *   closed: clean | closed: <code> <message>
 *   fatal: …                                   only for a failure on our side (transport or program)
 * The program exits when the stream ends.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Transport, type AlgorithmLists } from '../../src/transport/transport.js';
import { pumpInto, streamSender } from '../../src/transport-io.js';
import {
  cipherAlgorithms,
  compressionAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
  type AlgorithmFamily,
} from '../../src/algorithms/registry.js';
import { generatePrivateKey, type GeneratedKeyType } from '../../src/keys/private-key.js';
import type { SshPrivateKey } from '../../src/algorithms/types.js';
import { MSG, UserauthFailure, UserauthRequest } from '../../src/wire/messages.js';
import { ConnectionLostError, DisconnectError } from '../../src/errors.js';

const KEY_TYPES: readonly GeneratedKeyType[] = ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'ecdsa-p521', 'rsa'];
/** The generated key type that gives each SSH public key type. */
const KEY_TYPE_FOR: ReadonlyMap<string, GeneratedKeyType> = new Map([
  ['ssh-ed25519', 'ed25519'],
  ['ecdsa-sha2-nistp256', 'ecdsa-p256'],
  ['ecdsa-sha2-nistp384', 'ecdsa-p384'],
  ['ecdsa-sha2-nistp521', 'ecdsa-p521'],
  ['ssh-rsa', 'rsa'],
]);

const { values } = parseArgs({
  options: {
    log: { type: 'string' },
    'host-keys': { type: 'string' },
    all: { type: 'boolean' },
    kex: { type: 'string' },
    'host-key-algorithms': { type: 'string' },
    ciphers: { type: 'string' },
    macs: { type: 'string' },
    compression: { type: 'string' },
  },
  strict: true,
  allowPositionals: false,
});

const env = process.env;
const logPath = values.log ?? env.TSSH_PEER_LOG;
const logFd = logPath ? openSync(logPath, 'a') : undefined;

/** One line to the log file, written at once (the process may be killed any moment by ssh). */
function log(line: string): void {
  if (logFd !== undefined) writeSync(logFd, `${line}\n`);
}

function fail(message: string): never {
  log(`fatal: ${message}`);
  process.stderr.write(`transport-peer: ${message}\n`);
  process.exit(2);
}

function list<T extends { readonly name: string }>(
  fam: AlgorithmFamily<T>,
  setting: string | undefined,
  fallback: readonly string[],
): string[] {
  if (setting === undefined || setting === '') return [...fallback];
  const names = setting.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = names.filter((name) => !fam.all.has(name));
  if (unknown.length > 0) fail(`unsupported ${fam.category}: ${unknown.join(', ')}`);
  return names;
}

const all = values.all ?? env.TSSH_PEER_ALL === '1';
const pick = <T extends { readonly name: string }>(fam: AlgorithmFamily<T>, setting: string | undefined, defaults = fam.defaults) =>
  list(fam, setting, all ? [...fam.all.keys()] : defaults);

const algorithms: AlgorithmLists = {
  kex: pick(kexAlgorithms, values.kex ?? env.TSSH_PEER_KEX),
  hostKey: pick(signatureAlgorithms, values['host-key-algorithms'] ?? env.TSSH_PEER_HOST_KEY_ALGORITHMS),
  cipher: pick(cipherAlgorithms, values.ciphers ?? env.TSSH_PEER_CIPHERS),
  mac: pick(macAlgorithms, values.macs ?? env.TSSH_PEER_MACS),
  compression: pick(compressionAlgorithms, values.compression ?? env.TSSH_PEER_COMPRESSION, ['none', 'zlib@openssh.com']),
};

function hostKeyTypes(): GeneratedKeyType[] {
  const setting = values['host-keys'] ?? env.TSSH_PEER_HOST_KEYS;
  if (setting !== undefined && setting !== '') {
    const types = setting.split(',').map((s) => s.trim());
    for (const type of types) {
      if (!KEY_TYPES.includes(type as GeneratedKeyType)) fail(`unknown host key type ${type} (one of ${KEY_TYPES.join(', ')})`);
    }
    return [...new Set(types as GeneratedKeyType[])];
  }
  const needed = new Set<GeneratedKeyType>();
  for (const name of algorithms.hostKey) {
    const type = KEY_TYPE_FOR.get(signatureAlgorithms.all.get(name)!.keyType);
    if (type) needed.add(type);
  }
  return KEY_TYPES.filter((type) => needed.has(type));
}

function fingerprint(key: SshPrivateKey): string {
  return `SHA256:${createHash('sha256').update(key.publicKey.blob).digest('base64').replace(/=+$/, '')}`;
}

async function main(): Promise<void> {
  const hostKeys = await Promise.all(hostKeyTypes().map((type) => generatePrivateKey(type, type === 'rsa' ? 2048 : undefined)));
  for (const key of hostKeys) log(`host key: ${key.type} ${fingerprint(key)}`);
  log(
    `offering: kex=${algorithms.kex.join(',')} hostkey=${algorithms.hostKey.join(',')} cipher=${algorithms.cipher.join(',')} ` +
      `mac=${algorithms.mac.join(',')} compression=${algorithms.compression.join(',')}`,
  );

  let exiting = false;
  const exit = (code: number): void => {
    if (exiting) return;
    exiting = true;
    process.exitCode = code;
    process.stdout.end();
    // Whatever still holds the event loop (a paused stdin), the process is done.
    setTimeout(() => process.exit(code), 1000);
  };

  let transport: Transport | undefined = undefined;
  transport = new Transport(
    {
      role: 'server',
      algorithms,
      identification: 'SSH-2.0-tssh_transport_peer',
      hostKeys,
      services: ['ssh-userauth'],
    },
    {
      send: streamSender(process.stdout),
      message(payload) {
        if (payload[0] !== MSG.USERAUTH_REQUEST) {
          log(`unexpected message ${payload[0]} (${payload.length} bytes)`);
          return;
        }
        const request = UserauthRequest.decode(payload);
        log(`userauth request: user=${request.user} service=${request.service} method=${request.method} -> failure publickey`);
        transport!.send(UserauthFailure.encode({ methods: ['publickey'], partialSuccess: false }));
      },
      close(error) {
        // A failure on our side was logged by the transport as "fatal: …" already.
        log(error === undefined ? 'closed: clean' : `closed: ${error.code} ${error.message}`);
        const peerEnded = error === undefined || error instanceof ConnectionLostError || error instanceof DisconnectError;
        exit(peerEnded ? 0 : 1);
      },
      kexComplete(info) {
        const a = info.algorithms;
        log(
          `kex complete: ${a.kex} ${a.hostKey} ${a.cipherClientToServer}/${a.macClientToServer ?? '<implicit>'} ` +
            `${a.cipherServerToClient}/${a.macServerToClient ?? '<implicit>'} ${a.compressionClientToServer},${a.compressionServerToClient} ` +
            `strict=${info.strictKex} initial=${info.initial}`,
        );
      },
      serviceStarted(service) {
        log(`service started: ${service}`);
      },
      debug(line) {
        log(line);
      },
    },
  );
  pumpInto(transport, { readable: process.stdin, writable: process.stdout });
  transport.start();
}

process.on('uncaughtException', (error) => fail(`uncaught ${error.stack ?? String(error)}`));
process.on('unhandledRejection', (error) => fail(`unhandled rejection ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`));
process.on('exit', () => {
  if (logFd !== undefined) closeSync(logFd);
});
// ssh stops its ProxyCommand with SIGHUP; a clean ending, not a failure.
process.on('SIGHUP', () => {
  log('closed: SIGHUP from the client');
  process.exit(0);
});
process.stdout.on('error', () => {
  // The reader went away; stdin's end (or SIGHUP) ends the process.
});

main().catch((error: unknown) => fail(`start-up failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`));
