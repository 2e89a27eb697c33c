/**
 * Turning a finished key exchange into the packet protection of each direction (RFC 4253 §7.2):
 * IVs 'A'/'B', encryption keys 'C'/'D', integrity keys 'E'/'F', client-to-server first.
 */
import type { CompressionAlgorithm, HashName, PacketOpener, PacketSealer } from '../algorithms/types.js';
import { cipherAlgorithms, compressionAlgorithms, macAlgorithms } from '../algorithms/registry.js';
import type { NegotiatedAlgorithms } from './negotiate.js';
import { deriveKey, type KexOutcome, type Role } from './kex.js';

export interface KeySet {
  readonly outgoing: { readonly sealer: PacketSealer; readonly compression: CompressionAlgorithm };
  readonly incoming: { readonly opener: PacketOpener; readonly compression: CompressionAlgorithm };
}

interface DirectionMaterial {
  cipher: string;
  mac: string | undefined;
  compression: string;
  letters: [iv: string, key: string, mac: string];
}

export function createKeySet(
  role: Role,
  algorithms: NegotiatedAlgorithms,
  hash: HashName,
  outcome: KexOutcome,
  sessionId: Buffer,
): KeySet {
  const clientToServer: DirectionMaterial = {
    cipher: algorithms.cipherClientToServer,
    mac: algorithms.macClientToServer,
    compression: algorithms.compressionClientToServer,
    letters: ['A', 'C', 'E'],
  };
  const serverToClient: DirectionMaterial = {
    cipher: algorithms.cipherServerToClient,
    mac: algorithms.macServerToClient,
    compression: algorithms.compressionServerToClient,
    letters: ['B', 'D', 'F'],
  };
  const derive = (letter: string, length: number): Buffer =>
    deriveKey(hash, outcome.sharedSecret, outcome.exchangeHash, letter, sessionId, length);
  const material = (d: DirectionMaterial) => {
    const cipher = cipherAlgorithms.all.get(d.cipher)!;
    const iv = derive(d.letters[0], cipher.ivLength);
    const key = derive(d.letters[1], cipher.keyLength);
    const macAlgorithm = d.mac === undefined ? undefined : macAlgorithms.all.get(d.mac)!;
    const mac = macAlgorithm ? { algorithm: macAlgorithm, key: derive(d.letters[2], macAlgorithm.keyLength) } : undefined;
    return { cipher, iv, key, mac, compression: compressionAlgorithms.all.get(d.compression)! };
  };
  const out = material(role === 'client' ? clientToServer : serverToClient);
  const inc = material(role === 'client' ? serverToClient : clientToServer);
  return {
    outgoing: { sealer: out.cipher.createSealer(out.key, out.iv, out.mac), compression: out.compression },
    incoming: { opener: inc.cipher.createOpener(inc.key, inc.iv, inc.mac), compression: inc.compression },
  };
}
