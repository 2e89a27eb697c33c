/**
 * Two transports (our client and our server) joined in process by an asynchronous byte pipe
 * that splits chunks at random points, so framing sees every kind of boundary.
 */
import { Transport, type AlgorithmLists, type KexInfo, type TransportOptions } from '../../src/transport/transport.js';
import type { SshError } from '../../src/errors.js';
import type { SshPrivateKey } from '../../src/algorithms/types.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import {
  cipherAlgorithms,
  compressionAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
} from '../../src/algorithms/registry.js';

export interface Side {
  transport: Transport;
  messages: Buffer[];
  kex: KexInfo[];
  closed: SshError | undefined | 'open';
  services: string[];
  debug: string[];
  /** Every byte this side wrote, for tests that look at the wire. */
  wire: Buffer[];
}

export interface PairOptions {
  client?: Partial<AlgorithmLists>;
  server?: Partial<AlgorithmLists>;
  hostKeys: SshPrivateKey[];
  /** Transform client-to-server bytes (after kex, for corruption tests). */
  tamperClientToServer?: (chunk: Buffer) => Buffer;
  rekeyBytes?: number;
  rekeyIntervalMs?: number;
  now?: () => number;
  splitChunks?: boolean;
  verifyHostKey?: TransportOptions['verifyHostKey'];
}

export const allAlgorithms = (): AlgorithmLists => ({
  kex: [...kexAlgorithms.all.keys()],
  hostKey: [...signatureAlgorithms.all.keys()],
  cipher: [...cipherAlgorithms.all.keys()],
  mac: [...macAlgorithms.all.keys()],
  compression: [...compressionAlgorithms.all.keys()],
});

export const defaultAlgorithms = (): AlgorithmLists => ({
  kex: [...kexAlgorithms.defaults],
  hostKey: [...signatureAlgorithms.defaults],
  cipher: [...cipherAlgorithms.defaults],
  mac: [...macAlgorithms.defaults],
  compression: ['none'],
});

let hostKeyCache: Promise<SshPrivateKey[]> | undefined;
/** One host key of every type (RSA at 2048 bits to keep tests quick). */
export function testHostKeys(): Promise<SshPrivateKey[]> {
  hostKeyCache ??= Promise.all([
    generatePrivateKey('ed25519'),
    generatePrivateKey('ecdsa-p256'),
    generatePrivateKey('ecdsa-p384'),
    generatePrivateKey('ecdsa-p521'),
    generatePrivateKey('rsa', 2048),
  ]);
  return hostKeyCache;
}

function randomSplit(chunk: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < chunk.length) {
    const size = 1 + Math.floor(Math.random() * Math.min(chunk.length - offset, 1 + Math.floor(Math.random() * 4096)));
    parts.push(chunk.subarray(offset, offset + size));
    offset += size;
  }
  return parts;
}

export function createPair(options: PairOptions): { client: Side; server: Side; settled: () => Promise<void> } {
  let inFlight = 0;
  const waiters: (() => void)[] = [];
  const deliver = (to: () => Side, chunk: Buffer) => {
    inFlight++;
    setImmediate(() => {
      const side = to();
      const parts = options.splitChunks === false ? [chunk] : randomSplit(chunk);
      for (const part of parts) side.transport.receive(Buffer.from(part));
      inFlight--;
      if (inFlight === 0) for (const w of waiters.splice(0)) setImmediate(w);
    });
  };
  const makeSide = (role: 'client' | 'server', peer: () => Side): Side => {
    const lists = { ...defaultAlgorithms(), ...(role === 'client' ? options.client : options.server) };
    const side: Side = {
      transport: undefined as unknown as Transport,
      messages: [],
      kex: [],
      closed: 'open',
      services: [],
      debug: [],
      wire: [],
    };
    side.transport = new Transport(
      {
        role,
        algorithms: lists,
        identification: `SSH-2.0-tssh_test_${role}`,
        hostKeys: role === 'server' ? options.hostKeys : undefined,
        verifyHostKey: role === 'client' ? (options.verifyHostKey ?? (() => true)) : undefined,
        rekeyBytes: options.rekeyBytes,
        rekeyIntervalMs: options.rekeyIntervalMs,
        now: options.now,
        services: ['ssh-userauth'],
      },
      {
        send(chunks) {
          for (const c of chunks) {
            const copy = Buffer.from(c);
            side.wire.push(copy);
            const out = role === 'client' && options.tamperClientToServer ? options.tamperClientToServer(copy) : copy;
            deliver(peer, out);
          }
        },
        message(payload) {
          side.messages.push(Buffer.from(payload));
        },
        close(error) {
          side.closed = error;
        },
        kexComplete(info) {
          side.kex.push(info);
        },
        serviceAccepted(service) {
          side.services.push(service);
        },
        serviceStarted(service) {
          side.services.push(service);
        },
        debug(message) {
          side.debug.push(message);
        },
      },
    );
    return side;
  };
  // eslint-disable-next-line prefer-const
  let client: Side;
  // eslint-disable-next-line prefer-const
  let server: Side;
  client = makeSide('client', () => server);
  server = makeSide('server', () => client);
  client.transport.start();
  server.transport.start();
  const settled = () =>
    new Promise<void>((resolve) => {
      const check = () => (inFlight === 0 ? setImmediate(() => (inFlight === 0 ? resolve() : waiters.push(check))) : waiters.push(check));
      check();
    });
  return { client, server, settled };
}

/** A connection-layer-numbered test message (CHANNEL_DATA's number, arbitrary body). */
export function dataMessage(index: number, size: number): Buffer {
  const body = Buffer.alloc(1 + 4 + size);
  body[0] = 94;
  body.writeUInt32BE(index, 1);
  // xorshift32 seeded by the index: incompressible, yet reproducible for comparison.
  let x = (index * 2654435761) ^ 0x9e3779b9 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    body[5 + i] = x & 0xff;
  }
  return body;
}
