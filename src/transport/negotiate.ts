/**
 * Algorithm negotiation, RFC 4253 §7.1: for each category the first algorithm on the client's
 * list that the server also lists is chosen. Pseudo-algorithms that only signal extensions
 * (ext-info-c, kex-strict-*) are never chosen.
 */
import { NegotiationError } from '../errors.js';
import type { KexInitMessage } from '../wire/messages.js';

/** RFC 8308 and draft-ietf-sshm-strict-kex: markers in kex_algorithms, not key exchange methods. */
export const EXT_INFO_CLIENT = 'ext-info-c';
export const EXT_INFO_SERVER = 'ext-info-s';
export const STRICT_KEX_CLIENT = ['kex-strict-c-v00@openssh.com', 'kex-strict-c'] as const;
export const STRICT_KEX_SERVER = ['kex-strict-s-v00@openssh.com', 'kex-strict-s'] as const;
const PSEUDO_ALGORITHMS = new Set<string>([
  EXT_INFO_CLIENT,
  EXT_INFO_SERVER,
  ...STRICT_KEX_CLIENT,
  ...STRICT_KEX_SERVER,
  'ext-info-in-auth@openssh.com',
]);

export interface NegotiatedAlgorithms {
  readonly kex: string;
  readonly hostKey: string;
  readonly cipherClientToServer: string;
  readonly cipherServerToClient: string;
  /** Undefined when the cipher in that direction is an AEAD (its tag replaces the MAC). */
  readonly macClientToServer: string | undefined;
  readonly macServerToClient: string | undefined;
  readonly compressionClientToServer: string;
  readonly compressionServerToClient: string;
}

/**
 * The negotiated names are kept for the life of a connection; a name decoded from the peer's
 * KEXINIT is a slice that would keep the peer's whole name-list alive with it. One flat copy per
 * distinct name, for the process (only names on our own lists can be chosen, so this stays small).
 */
const interned = new Map<string, string>();
function intern(name: string): string {
  let flat = interned.get(name);
  if (flat === undefined) {
    flat = Buffer.from(name, 'latin1').toString('latin1');
    interned.set(flat, flat);
  }
  return flat;
}

function choose(category: string, client: readonly string[], server: readonly string[]): string {
  const serverSet = new Set(server);
  for (const name of client) {
    if (serverSet.has(name) && !PSEUDO_ALGORITHMS.has(name)) return intern(name);
  }
  throw new NegotiationError(
    category,
    client.filter((n) => !PSEUDO_ALGORITHMS.has(n)),
    server.filter((n) => !PSEUDO_ALGORITHMS.has(n)),
  );
}

/**
 * Negotiate every category. `isAead(cipher)` tells whether the MAC of that direction is
 * unused: then a MAC mismatch is no failure, as in OpenSSH.
 */
export function negotiate(
  client: KexInitMessage,
  server: KexInitMessage,
  isAead: (cipher: string) => boolean,
): NegotiatedAlgorithms {
  const kex = choose('key exchange algorithm', client.kexAlgorithms, server.kexAlgorithms);
  const hostKey = choose('host key algorithm', client.serverHostKeyAlgorithms, server.serverHostKeyAlgorithms);
  const cipherClientToServer = choose(
    'cipher client to server',
    client.encryptionClientToServer,
    server.encryptionClientToServer,
  );
  const cipherServerToClient = choose(
    'cipher server to client',
    client.encryptionServerToClient,
    server.encryptionServerToClient,
  );
  const macClientToServer = isAead(cipherClientToServer)
    ? undefined
    : choose('MAC client to server', client.macClientToServer, server.macClientToServer);
  const macServerToClient = isAead(cipherServerToClient)
    ? undefined
    : choose('MAC server to client', client.macServerToClient, server.macServerToClient);
  return {
    kex,
    hostKey,
    cipherClientToServer,
    cipherServerToClient,
    macClientToServer,
    macServerToClient,
    compressionClientToServer: choose(
      'compression client to server',
      client.compressionClientToServer,
      server.compressionClientToServer,
    ),
    compressionServerToClient: choose(
      'compression server to client',
      client.compressionServerToClient,
      server.compressionServerToClient,
    ),
  };
}

/**
 * RFC 4253 §7: a guessed first kex packet is right only if both the kex and the host key
 * algorithm are the first on both sides' lists; otherwise the guessed packet is ignored.
 */
export function guessWasRight(client: KexInitMessage, server: KexInitMessage): boolean {
  return (
    client.kexAlgorithms[0] === server.kexAlgorithms[0] &&
    client.serverHostKeyAlgorithms[0] === server.serverHostKeyAlgorithms[0]
  );
}

/** Whether both sides signalled strict kex with the same name (the draft forbids mixing names). */
export function strictKexAgreed(client: KexInitMessage, server: KexInitMessage): boolean {
  return STRICT_KEX_CLIENT.some(
    (name, i) => client.kexAlgorithms.includes(name) && server.kexAlgorithms.includes(STRICT_KEX_SERVER[i]!),
  );
}
