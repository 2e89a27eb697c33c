/**
 * One run of a key exchange (RFC 4253 §7-8, RFC 4419, RFC 5656 §4, RFC 8731, the ML-KEM hybrid
 * draft): the method's messages, the exchange hash H, the host key signature over H, and the
 * session keys derived from K and H (RFC 4253 §7.2). The transport owns the surrounding
 * KEXINIT/NEWKEYS handshake; this class owns what happens between them.
 */
import { createHash } from 'node:crypto';
import { KexError, ProtocolError } from '../errors.js';
import type { DhGroup, KexAlgorithm, KexClientExchange, SignatureAlgorithm, SshPrivateKey, SshPublicKey } from '../algorithms/types.js';
import { Writer } from '../wire/writer.js';
import {
  KexDhGexGroup,
  KexDhGexInit,
  KexDhGexReply,
  KexDhGexRequest,
  KexEcdhInit,
  KexEcdhReply,
  MSG,
} from '../wire/messages.js';
import { parsePublicKeyBlob } from '../keys/public-key.js';
import { chooseGexGroup } from '../algorithms/kex/groups.js';

export type Role = 'client' | 'server';

/** What the exchange hash covers besides the method's own values (RFC 4253 §8). */
export interface KexTranscript {
  readonly clientIdentification: string;
  readonly serverIdentification: string;
  readonly clientKexInit: Buffer;
  readonly serverKexInit: Buffer;
}

/** RFC 4419 §3 sizes the client asks for; RFC 8270 raised the minimum to 2048 bits. */
export interface GexRange {
  readonly min: number;
  readonly preferred: number;
  readonly max: number;
}

export interface KexOutcome {
  readonly exchangeHash: Buffer;
  /** K, encoded as it enters the hash (mpint or string, with its length prefix). */
  readonly sharedSecret: Buffer;
  /** The server's host key (the client must still decide whether to trust it). */
  readonly hostKey: SshPublicKey;
}

export interface KexStep {
  /** Payloads to send now, in order. */
  readonly send: Buffer[];
  /** Set when the exchange is complete on this side. */
  readonly outcome?: KexOutcome;
}

export class KeyExchange {
  /** The message number this exchange accepts next from the peer, or undefined when it expects none. */
  expected: number | undefined;
  private clientExchange: KexClientExchange | undefined;
  private group: DhGroup | undefined;
  private gexRequest: { min: number; preferred: number; max: number } | undefined;

  constructor(
    private readonly role: Role,
    private readonly method: KexAlgorithm,
    private readonly signature: SignatureAlgorithm,
    private readonly transcript: KexTranscript,
    private readonly hostKey: SshPrivateKey | undefined,
    private readonly gexRange: GexRange,
  ) {
    if (role === 'server' && !hostKey) throw new KexError(`no host key for ${signature.name}`);
    if (role === 'client') {
      this.expected = method.groupExchange ? MSG.KEX_DH_GEX_GROUP : MSG.KEX_ECDH_REPLY;
    } else {
      this.expected = method.groupExchange ? MSG.KEX_DH_GEX_REQUEST : MSG.KEX_ECDH_INIT;
    }
  }

  /** The client's opening message(s); the server opens with nothing. */
  start(): Buffer[] {
    if (this.role === 'server') return [];
    if (this.method.groupExchange) {
      const { min, preferred, max } = this.gexRange;
      this.gexRequest = { min, preferred, max };
      return [KexDhGexRequest.encode({ min, preferred, max })];
    }
    this.clientExchange = this.method.startClient();
    return [KexEcdhInit.encode({ clientValue: this.clientExchange.clientValue })];
  }

  /**
   * Client: the exchange was opened before the server's KEXINIT arrived (a guess that proved
   * right): its message is already sent, so this only takes its ephemeral value.
   */
  startWith(exchange: KexClientExchange): void {
    if (this.role !== 'client' || this.method.groupExchange) throw new KexError(`${this.method.name} cannot start from a guess`);
    this.clientExchange = exchange;
  }

  /** Handle the peer's next kex-method message (the transport checked it is `expected`). */
  handle(payload: Buffer): KexStep {
    const type = payload[0];
    switch (type) {
      case MSG.KEX_ECDH_INIT:
        return this.role === 'server' && !this.method.groupExchange
          ? this.serverReply(KexEcdhInit.decode(payload).clientValue, KexEcdhReply.encode.bind(KexEcdhReply))
          : this.unexpected(payload);
      case MSG.KEX_ECDH_REPLY: // also KEX_DH_GEX_GROUP (31)
        if (this.role !== 'client') return this.unexpected(payload);
        return this.method.groupExchange ? this.clientGexGroup(payload) : this.clientFinish(KexEcdhReply.decode(payload));
      case MSG.KEX_DH_GEX_REQUEST:
        return this.role === 'server' && this.method.groupExchange ? this.serverGexGroup(payload) : this.unexpected(payload);
      case MSG.KEX_DH_GEX_INIT:
        return this.role === 'server' && this.method.groupExchange
          ? this.serverReply(KexDhGexInit.decode(payload).clientValue, KexDhGexReply.encode.bind(KexDhGexReply))
          : this.unexpected(payload);
      case MSG.KEX_DH_GEX_REPLY:
        return this.role === 'client' && this.method.groupExchange
          ? this.clientFinish(KexDhGexReply.decode(payload))
          : this.unexpected(payload);
      default:
        return this.unexpected(payload);
    }
  }

  private unexpected(payload: Buffer): never {
    throw new ProtocolError(`unexpected key exchange message ${payload[0]} for ${this.method.name}`);
  }

  // ---- diffie-hellman-group-exchange (RFC 4419) ----

  private serverGexGroup(payload: Buffer): KexStep {
    const request = KexDhGexRequest.decode(payload);
    if (request.min > request.preferred || request.preferred > request.max) {
      throw new KexError(`invalid group exchange request: min ${request.min}, preferred ${request.preferred}, max ${request.max}`);
    }
    const group = chooseGexGroup(request.min, request.preferred, request.max);
    if (!group) {
      throw new KexError(`no DH group between ${request.min} and ${request.max} bits (at least 2048, RFC 8270)`);
    }
    this.gexRequest = request;
    this.group = group;
    this.expected = MSG.KEX_DH_GEX_INIT;
    return { send: [KexDhGexGroup.encode({ prime: group.prime, generator: group.generator })] };
  }

  private clientGexGroup(payload: Buffer): KexStep {
    const { prime, generator } = KexDhGexGroup.decode(payload);
    const bits = bitLength(prime);
    const range = this.gexRange;
    // RFC 4419 §3 / RFC 8270: refuse a group outside what we asked for, or under 2048 bits.
    if (bits < Math.max(range.min, 2048) || bits > range.max) {
      throw new KexError(`server offered a ${bits}-bit DH group, outside the requested ${range.min}..${range.max}`);
    }
    if (generator.length === 0 || (generator.length === 1 && generator[0]! < 2)) {
      throw new KexError('server offered an invalid DH generator');
    }
    this.group = { prime: Buffer.from(prime), generator: Buffer.from(generator) };
    this.clientExchange = this.method.startClient(this.group);
    this.expected = MSG.KEX_DH_GEX_REPLY;
    return { send: [KexDhGexInit.encode({ clientValue: this.clientExchange.clientValue })] };
  }

  // ---- the common finish ----

  private serverReply(
    clientValue: Buffer,
    encodeReply: (fields: { hostKey: Buffer; serverValue: Buffer; signature: Buffer }) => Buffer,
  ): KexStep {
    const hostKey = this.hostKey!;
    const { serverValue, sharedSecret } = this.method.respondServer(clientValue, this.group);
    const exchangeHash = this.exchangeHash(hostKey.publicKey.blob, clientValue, serverValue, sharedSecret);
    const signature = this.signature.sign(hostKey, exchangeHash);
    this.expected = undefined;
    return {
      send: [encodeReply({ hostKey: hostKey.publicKey.blob, serverValue, signature })],
      outcome: { exchangeHash, sharedSecret, hostKey: hostKey.publicKey },
    };
  }

  private clientFinish(reply: { hostKey: Buffer; serverValue: Buffer; signature: Buffer }): KexStep {
    const exchange = this.clientExchange;
    if (!exchange) throw new ProtocolError('key exchange reply before the exchange started');
    let hostKey: SshPublicKey;
    try {
      hostKey = parsePublicKeyBlob(Buffer.from(reply.hostKey));
    } catch (error) {
      throw new KexError(`server sent an unreadable host key: ${(error as Error).message}`, { cause: error });
    }
    if (hostKey.type !== this.signature.keyType) {
      throw new KexError(`server sent a ${hostKey.type} host key for negotiated algorithm ${this.signature.name}`);
    }
    const sharedSecret = exchange.finish(reply.serverValue);
    const exchangeHash = this.exchangeHash(reply.hostKey, exchange.clientValue, reply.serverValue, sharedSecret);
    if (!this.signature.verify(hostKey, exchangeHash, reply.signature)) {
      throw new KexError(`server's ${this.signature.name} signature of the exchange hash does not verify`);
    }
    this.expected = undefined;
    return { send: [], outcome: { exchangeHash, sharedSecret, hostKey } };
  }

  /** H = HASH(V_C || V_S || I_C || I_S || K_S || [gex: min || n || max || p || g] || e/Q_C || f/Q_S || K). */
  private exchangeHash(hostKeyBlob: Buffer, clientValue: Buffer, serverValue: Buffer, sharedSecret: Buffer): Buffer {
    const t = this.transcript;
    const w = new Writer(2048)
      .string(t.clientIdentification)
      .string(t.serverIdentification)
      .string(t.clientKexInit)
      .string(t.serverKexInit)
      .string(hostKeyBlob);
    if (this.method.groupExchange) {
      const request = this.gexRequest!;
      const group = this.group!;
      w.uint32(request.min).uint32(request.preferred).uint32(request.max).mpintUnsigned(group.prime).mpintUnsigned(group.generator);
    }
    w.string(clientValue).string(serverValue).bytes(sharedSecret);
    return createHash(this.method.hash).update(w.finish()).digest();
  }
}

function bitLength(magnitude: Buffer): number {
  if (magnitude.length === 0) return 0;
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0]!));
}

/**
 * RFC 4253 §7.2: key material for one purpose letter ('A'..'F'), extended to `length` bytes:
 * K1 = HASH(K || H || X || session_id), Kn = HASH(K || H || K1 || ... || Kn-1).
 */
export function deriveKey(
  hash: KexAlgorithm['hash'],
  sharedSecret: Buffer,
  exchangeHash: Buffer,
  letter: string,
  sessionId: Buffer,
  length: number,
): Buffer {
  if (length === 0) return Buffer.alloc(0);
  const first = createHash(hash).update(sharedSecret).update(exchangeHash).update(letter, 'latin1').update(sessionId).digest();
  const parts = [first];
  let total = first.length;
  while (total < length) {
    const h = createHash(hash).update(sharedSecret).update(exchangeHash);
    for (const part of parts) h.update(part);
    const next = h.digest();
    parts.push(next);
    total += next.length;
  }
  return Buffer.concat(parts, total).subarray(0, length);
}

/**
 * OpenSSH sizes the group it asks for to the cipher strength (dh_estimate): 2048 bits up to 112
 * bits of key, 3072 up to 128, 7680 up to 192, else 8192.
 */
export function gexRangeFor(keyBits: number): GexRange {
  const preferred = keyBits <= 112 ? 2048 : keyBits <= 128 ? 3072 : keyBits <= 192 ? 7680 : 8192;
  return { min: 2048, preferred, max: 8192 };
}
