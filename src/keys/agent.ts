/**
 * The SSH agent protocol (RFC 9987; OpenSSH's additions in PROTOCOL.agent), both ends of it:
 *
 *   SshAgent       the interface an application implements to hold keys and sign with them;
 *   InMemoryAgent  an SshAgent over SshPrivateKey objects held in this process;
 *   AgentClient    an SshAgent that talks to a running agent (ssh-agent) over its Unix socket
 *                  (SSH_AUTH_SOCK) or over any Duplex stream, such as a forwarded agent channel;
 *   AgentServer    serves the agent protocol for any SshAgent over a Duplex stream or a Unix socket,
 *                  so that tssh can be the agent (for tests and for agent forwarding).
 *
 * The protocol (RFC 9987 §3, §5) is request/reply, driven by the client, replies in order: every
 * message is uint32 length || byte type || contents. Both ends cap a message at 256 KiB, as
 * OpenSSH's ssh-agent does, so a peer cannot make us buffer without bound.
 */
import { createECDH, createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmod, unlink } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import { signatureAlgorithms } from '../algorithms/registry.js';
import type { SshPrivateKey, SshPublicKey } from '../algorithms/types.js';
import {
  ConnectionLostError,
  DisconnectReason,
  KeyFormatError,
  ProtocolError,
  SshError,
  TimeoutError,
} from '../errors.js';
import { bytesToBigInt, Reader } from '../wire/reader.js';
import { bigIntToBytes, encodeString, Writer } from '../wire/writer.js';
import { decodeSignatureBlob, ecdsaCurves, parsePublicKeyBlob, publicKeyTypeOf } from './public-key.js';

// ---- Protocol numbers (RFC 9987 §8) -------------------------------------------------------------

/** Message type numbers, RFC 9987 §8.1 (Tables 1 and 2). */
export const AgentMessage = {
  FAILURE: 5,
  SUCCESS: 6,
  REQUEST_IDENTITIES: 11,
  IDENTITIES_ANSWER: 12,
  SIGN_REQUEST: 13,
  SIGN_RESPONSE: 14,
  ADD_IDENTITY: 17,
  REMOVE_IDENTITY: 18,
  REMOVE_ALL_IDENTITIES: 19,
  ADD_ID_CONSTRAINED: 25,
  EXTENSION: 27,
} as const;

/** Signature request flags, RFC 9987 §8.3 (Table 4): which RSA signature an ssh-rsa key makes. */
export const AgentSignFlags = {
  RSA_SHA2_256: 0x02,
  RSA_SHA2_512: 0x04,
} as const;

/** Key constraint identifiers, RFC 9987 §8.2 (Table 3). */
const CONSTRAIN_LIFETIME = 1;
const CONSTRAIN_CONFIRM = 2;

/** The largest message either end accepts: OpenSSH's AGENT_MAX_LEN (256 KiB). */
export const AGENT_MAX_MESSAGE_LENGTH = 256 * 1024;

/** How long AgentClient waits for one reply unless told otherwise; 0 disables the limit. */
export const AGENT_DEFAULT_TIMEOUT_MS = 60_000;

const requestNames = new Map<number, string>([
  [AgentMessage.REQUEST_IDENTITIES, 'SSH_AGENTC_REQUEST_IDENTITIES'],
  [AgentMessage.SIGN_REQUEST, 'SSH_AGENTC_SIGN_REQUEST'],
  [AgentMessage.ADD_IDENTITY, 'SSH_AGENTC_ADD_IDENTITY'],
  [AgentMessage.REMOVE_IDENTITY, 'SSH_AGENTC_REMOVE_IDENTITY'],
  [AgentMessage.REMOVE_ALL_IDENTITIES, 'SSH_AGENTC_REMOVE_ALL_IDENTITIES'],
  [AgentMessage.ADD_ID_CONSTRAINED, 'SSH_AGENTC_ADD_ID_CONSTRAINED'],
  [AgentMessage.EXTENSION, 'SSH_AGENTC_EXTENSION'],
]);

function requestName(type: number): string {
  return requestNames.get(type) ?? `agent request type ${type}`;
}

// ---- Errors -----------------------------------------------------------------------------------

/**
 * Base of the agent's own errors. The agent serves user authentication, hence ERR_SSH_AUTH; the
 * subclasses tell the cases apart. Transport-level trouble uses the library's shared errors:
 * ConnectionLostError (the agent went away), ProtocolError (a malformed or oversized reply),
 * TimeoutError (no reply in time); an abort rejects with the AbortSignal's reason.
 */
export class AgentError extends SshError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_SSH_AUTH', DisconnectReason.BY_APPLICATION, message, options);
  }
}

/**
 * The agent answered SSH_AGENT_FAILURE (RFC 9987 §5.1): it does not hold the key, does not support
 * the request, or declined (a refused confirmation, a locked agent). InMemoryAgent throws it too,
 * so callers see the same error whether the agent is remote or in-process.
 */
export class AgentFailureError extends AgentError {
  constructor(
    /** The request that was refused: `SSH_AGENTC_SIGN_REQUEST`. */
    readonly request: string,
    message: string,
  ) {
    super(message);
  }
}

/** No connection to the agent could be made (no SSH_AUTH_SOCK, a missing or stale socket). */
export class AgentConnectError extends AgentError {
  constructor(
    /** The socket path tried, if any. */
    readonly path: string | undefined,
    /** The system error code (`ENOENT`, `ECONNREFUSED`, `EACCES`), if there was one. */
    readonly systemCode: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

// ---- The agent interface ----------------------------------------------------------------------

/** One key an agent offers (RFC 9987 §5.5). */
export interface AgentIdentity {
  /** The public key blob (RFC 4253 §6.6), as the agent sent it. */
  readonly blob: Buffer;
  readonly comment: string;
  readonly publicKey: SshPublicKey;
}

/** Options every agent call takes; implementations may ignore them. */
export interface AgentRequestOptions {
  /** Abandon the request; it rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Milliseconds to wait for the reply (AgentClient; default its own timeout). 0: no limit. */
  readonly timeout?: number;
}

/** Constraints on an added key (RFC 9987 §5.2.7). */
export interface AgentKeyConstraints {
  /** Delete the key this many seconds after it is added (SSH_AGENT_CONSTRAIN_LIFETIME). */
  readonly lifetimeSeconds?: number;
  /** Ask the user before each use of the key (SSH_AGENT_CONSTRAIN_CONFIRM). */
  readonly confirm?: boolean;
}

/**
 * What an agent does: list its keys and sign with them. This is what authentication uses, and what
 * an application implements to keep keys elsewhere (a vault, a hardware token). To refuse, throw
 * (preferably AgentFailureError); AgentServer turns any throw into SSH_AGENT_FAILURE.
 *
 * The key-management methods are optional: an agent without them answers SSH_AGENT_FAILURE to
 * add/remove requests when served by AgentServer.
 */
export interface SshAgent {
  /** The keys the agent offers, in its order (RFC 9987 §5.5). */
  listIdentities(options?: AgentRequestOptions): Promise<AgentIdentity[]>;
  /**
   * Sign `data` with the key whose public blob is `publicKeyBlob` (RFC 9987 §5.6). `algorithm` is
   * the signature algorithm wanted, as the signature blob will name it: `ssh-ed25519`,
   * `ecdsa-sha2-nistp256`, `rsa-sha2-512`, `rsa-sha2-256` or `ssh-rsa`. Returns the signature blob,
   * string(algorithm) || string(signature) (RFC 4253 §6.6).
   */
  sign(publicKeyBlob: Buffer, data: Buffer, algorithm: string, options?: AgentRequestOptions): Promise<Buffer>;
  /** Add (or replace) a private key (RFC 9987 §5.2). */
  addIdentity?(key: SshPrivateKey, comment: string, constraints?: AgentKeyConstraints, options?: AgentRequestOptions): Promise<void>;
  /** Remove one key by its public blob (RFC 9987 §5.4); fails when the key is not held. */
  removeIdentity?(publicKeyBlob: Buffer, options?: AgentRequestOptions): Promise<void>;
  /** Remove every key (RFC 9987 §5.4). */
  removeAllIdentities?(options?: AgentRequestOptions): Promise<void>;
}

// ---- Helpers shared by both ends --------------------------------------------------------------

const CERT_SUFFIX = '-cert-v01@openssh.com';

/**
 * The plain algorithm or key type behind a certificate one (`rsa-sha2-256-cert-v01@openssh.com`
 * → `rsa-sha2-256`): a certificate's signature is made, and named, by its plain algorithm
 * (PROTOCOL.certkeys), and the agent's flags are chosen the same way.
 */
function withoutCertSuffix(name: string): string {
  return name.endsWith(CERT_SUFFIX) ? name.slice(0, -CERT_SUFFIX.length) : name;
}

/** The SSH_AGENTC_SIGN_REQUEST flags that ask for `algorithm` (RFC 9987 §5.6.1). */
export function agentSignFlags(algorithm: string): number {
  switch (withoutCertSuffix(algorithm)) {
    case 'rsa-sha2-256':
      return AgentSignFlags.RSA_SHA2_256;
    case 'rsa-sha2-512':
      return AgentSignFlags.RSA_SHA2_512;
    default:
      return 0;
  }
}

/**
 * The signature algorithm a sign request asks for, from the key's type and the flags; undefined
 * when the flags hold a bit we do not know (RFC 9987 §5.6: "If the agent does not support the
 * requested flags ... it MUST reply with an SSH_AGENT_FAILURE message"). The RSA flags only mean
 * something for ssh-rsa keys (§5.6.1) and are ignored for others, as OpenSSH's agent does.
 */
export function agentSignAlgorithm(keyType: string, flags: number): string | undefined {
  if ((flags & ~(AgentSignFlags.RSA_SHA2_256 | AgentSignFlags.RSA_SHA2_512)) !== 0) return undefined;
  const base = withoutCertSuffix(keyType);
  if (base !== 'ssh-rsa') return base;
  // Both bits set is not meaningful; take the stronger hash rather than refuse.
  if (flags & AgentSignFlags.RSA_SHA2_512) return 'rsa-sha2-512';
  if (flags & AgentSignFlags.RSA_SHA2_256) return 'rsa-sha2-256';
  return 'ssh-rsa';
}

/** `ssh-ed25519 SHA256:…`: how a key is named in messages, as ssh-add -l names it. */
function describeKey(blob: Buffer): string {
  let type: string;
  try {
    type = publicKeyTypeOf(blob);
  } catch {
    type = 'malformed key';
  }
  return `${type} SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Splits a byte stream into agent messages (uint32 length || body). The length is checked as soon
 * as its 4 bytes arrive, before the body is waited for, so an oversized message is refused
 * without being buffered. Returns bodies (type byte first) that the caller owns.
 */
class MessageDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly what: string) {}

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: Buffer[] = [];
    let offset = 0;
    while (this.pending.length - offset >= 4) {
      const length = this.pending.readUInt32BE(offset);
      if (length === 0) throw new ProtocolError(`empty ${this.what}: a message needs at least its type byte (RFC 9987 §5)`);
      if (length > AGENT_MAX_MESSAGE_LENGTH) {
        throw new ProtocolError(`${this.what} of ${length} bytes refused: more than the ${AGENT_MAX_MESSAGE_LENGTH} allowed`);
      }
      if (this.pending.length - offset - 4 < length) break;
      messages.push(Buffer.from(this.pending.subarray(offset + 4, offset + 4 + length)));
      offset += 4 + length;
    }
    this.pending = this.pending.subarray(offset);
    return messages;
  }
}

/** One message on the wire: uint32 length || body — exactly an SSH `string` of the body. */
function frame(body: Buffer): Buffer {
  if (body.length > AGENT_MAX_MESSAGE_LENGTH) {
    throw new RangeError(`agent message of ${body.length} bytes is larger than the ${AGENT_MAX_MESSAGE_LENGTH} an agent accepts`);
  }
  return encodeString(body);
}

// ---- Private keys as SSH_AGENTC_ADD_IDENTITY carries them (RFC 9987 §5.2.2-§5.2.4) ---------------

interface Jwk {
  readonly [member: string]: unknown;
}

function jwkBytes(jwk: Jwk, member: string): Buffer {
  const value = jwk[member];
  if (typeof value !== 'string') throw new KeyFormatError(`private key has no JWK member ${member}`);
  return Buffer.from(value, 'base64url');
}

/** Left-pad to `length` bytes (an mpint arrives without leading zeros; JWK wants fixed sizes). */
function padTo(value: Buffer, length: number, what: string): Buffer {
  if (value.length > length) throw new KeyFormatError(`${what} is longer than ${length} bytes`);
  if (value.length === length) return value;
  const out = Buffer.alloc(length);
  value.copy(out, length - value.length);
  return out;
}

/**
 * Write key type || key data for an add request: the public parts are taken from the key's own
 * blob (so the agent lists exactly the blob we hold), the private ones from a JWK export (safe for
 * keys from generatePrivateKey or a key file; see NODE-CRYPTO.md about generateKeyPairSync).
 */
function writeAgentPrivateKey(writer: Writer, key: SshPrivateKey): void {
  if (key.keyObject.type !== 'private') throw new KeyFormatError('an agent can only be given a private key');
  const jwk = key.keyObject.export({ format: 'jwk' }) as Jwk;
  const blob = new Reader(key.publicKey.blob, 0, key.publicKey.blob.length, 'public key blob');
  const type = blob.string().toString('latin1');
  if (type !== key.type) throw new KeyFormatError(`key says ${key.type} but its blob says ${type}`);
  if (type === 'ssh-ed25519') {
    // §5.2.3: string ENC(A), string k || ENC(A).
    const a = blob.string();
    writer.string(type).string(a).string(Buffer.concat([jwkBytes(jwk, 'd'), a]));
  } else if (ecdsaCurves.has(type)) {
    // §5.2.2: string curve name, string Q, mpint d.
    writer.string(type).string(blob.string()).string(blob.string()).mpintUnsigned(jwkBytes(jwk, 'd'));
  } else if (type === 'ssh-rsa') {
    // §5.2.4: mpint n, e, d, iqmp, p, q (the blob holds e before n, RFC 4253 §6.6).
    const e = blob.mpintUnsigned();
    const n = blob.mpintUnsigned();
    writer
      .string(type)
      .mpintUnsigned(n)
      .mpintUnsigned(e)
      .mpintUnsigned(jwkBytes(jwk, 'd'))
      .mpintUnsigned(jwkBytes(jwk, 'qi'))
      .mpintUnsigned(jwkBytes(jwk, 'p'))
      .mpintUnsigned(jwkBytes(jwk, 'q'));
  } else {
    throw new KeyFormatError(`cannot give a ${type} key to an agent`);
  }
}

function importPrivateJwk(jwk: { [member: string]: string }): KeyObject {
  return createPrivateKey({ key: jwk, format: 'jwk' });
}

function b64(value: Buffer): string {
  return value.toString('base64url');
}

/**
 * Read key type || key data of an add request into an SshPrivateKey. The public half is checked
 * like any public key (parsePublicKeyBlob), and the private half against it: node does not check
 * that an imported private key matches the public values given with it, and a key that does not
 * would sign with signatures nobody can verify.
 */
function readAgentPrivateKey(reader: Reader): SshPrivateKey {
  const type = reader.string().toString('latin1');
  if (type === 'ssh-ed25519') {
    const a = reader.string();
    const ka = reader.string();
    if (a.length !== 32 || ka.length !== 64 || !ka.subarray(32).equals(a)) {
      throw new KeyFormatError('ssh-ed25519 private key is not k || ENC(A) with the ENC(A) given (RFC 9987 §5.2.3)');
    }
    const publicKey = parsePublicKeyBlob(new Writer(64).string(type).string(a).finish());
    const keyObject = importPrivateJwk({ kty: 'OKP', crv: 'Ed25519', d: b64(ka.subarray(0, 32)), x: b64(a) });
    // node derives the public key from k alone; it must be the A we were given.
    const derived = jwkBytes(createPublicKey(keyObject).export({ format: 'jwk' }) as Jwk, 'x');
    if (!derived.equals(a)) throw new KeyFormatError('ssh-ed25519 private key does not match its public key');
    return { type, publicKey, keyObject };
  }
  const curve = ecdsaCurves.get(type);
  if (curve !== undefined) {
    const identifier = reader.string();
    const q = reader.string();
    const d = padTo(reader.mpintUnsigned(curve.fieldLength), curve.fieldLength, `${type} private scalar`);
    const publicKey = parsePublicKeyBlob(new Writer(q.length + 48).string(type).string(identifier).string(q).finish());
    // Q must be d·G: derive it without KeyObjects (createECDH also refuses d = 0 or d ≥ n).
    const ecdh = createECDH(curve.opensslName);
    ecdh.setPrivateKey(d);
    if (!ecdh.getPublicKey().equals(q)) throw new KeyFormatError(`${type} private key does not match its public key`);
    const keyObject = importPrivateJwk({
      kty: 'EC',
      crv: curve.jwkCurve,
      x: b64(q.subarray(1, 1 + curve.fieldLength)),
      y: b64(q.subarray(1 + curve.fieldLength)),
      d: b64(d),
    });
    return { type, publicKey, keyObject };
  }
  if (type === 'ssh-rsa') {
    const n = reader.mpintUnsigned();
    const e = reader.mpintUnsigned();
    const d = reader.mpintUnsigned();
    const iqmp = reader.mpintUnsigned();
    const p = reader.mpintUnsigned();
    const q = reader.mpintUnsigned();
    const publicKey = parsePublicKeyBlob(new Writer(n.length + e.length + 32).string(type).mpintUnsigned(e).mpintUnsigned(n).finish());
    const [N, E, D, IQMP, P, Q] = [n, e, d, iqmp, p, q].map(bytesToBigInt) as [bigint, bigint, bigint, bigint, bigint, bigint];
    // The factors must make n, iqmp must invert q mod p, and d must invert e mod p-1 and q-1;
    // otherwise the "key" would produce signatures that no one can verify.
    if (P < 3n || Q < 3n || P * Q !== N || (IQMP * Q) % P !== 1n || (D * E) % (P - 1n) !== 1n || (D * E) % (Q - 1n) !== 1n) {
      throw new KeyFormatError('ssh-rsa private key values are inconsistent (RFC 9987 §5.2.4)');
    }
    const keyObject = importPrivateJwk({
      kty: 'RSA',
      n: b64(n),
      e: b64(e),
      d: b64(d),
      p: b64(p),
      q: b64(q),
      dp: b64(bigIntToBytes(D % (P - 1n))),
      dq: b64(bigIntToBytes(D % (Q - 1n))),
      qi: b64(iqmp),
    });
    return { type, publicKey, keyObject };
  }
  throw new KeyFormatError(`unsupported private key type ${JSON.stringify(type)}`);
}

// ---- InMemoryAgent ----------------------------------------------------------------------------

/** A key for InMemoryAgent, optionally with its comment. */
export type InMemoryAgentKey = SshPrivateKey | { readonly key: SshPrivateKey; readonly comment?: string };

export interface InMemoryAgentOptions {
  /**
   * Asked before each use of a key added with the confirm constraint; resolve true to allow. Without
   * it such keys cannot be added (RFC 9987 §5.2.7: a constraint the agent cannot honour is refused).
   */
  readonly confirm?: (identity: AgentIdentity, algorithm: string) => boolean | Promise<boolean>;
}

interface HeldKey {
  readonly key: SshPrivateKey;
  readonly identity: AgentIdentity;
  readonly confirm: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * An agent holding SshPrivateKey objects in this process, signing with the registry's signature
 * algorithms. Serve it with AgentServer to let OpenSSH (or a forwarded connection) use the keys.
 */
export class InMemoryAgent implements SshAgent {
  /** Keyed by the blob in hex; a Map keeps the order keys were added in. */
  private readonly keys = new Map<string, HeldKey>();

  constructor(
    keys: Iterable<InMemoryAgentKey> = [],
    private readonly options: InMemoryAgentOptions = {},
  ) {
    for (const entry of keys) {
      if ('key' in entry) this.add(entry.key, entry.comment ?? '');
      else this.add(entry, '');
    }
  }

  /** Add (or replace) a key synchronously. */
  add(key: SshPrivateKey, comment = '', constraints: AgentKeyConstraints = {}): void {
    if (key.keyObject.type !== 'private') throw new KeyFormatError('InMemoryAgent needs private keys');
    if (constraints.confirm && this.options.confirm === undefined) {
      throw new AgentFailureError('SSH_AGENTC_ADD_ID_CONSTRAINED', 'this agent cannot ask for confirmation (no confirm callback)');
    }
    const lifetime = constraints.lifetimeSeconds;
    if (lifetime !== undefined && (!Number.isInteger(lifetime) || lifetime < 0 || lifetime > 0xffffffff)) {
      throw new RangeError(`key lifetime must be a whole number of seconds, got ${lifetime}`);
    }
    const id = key.publicKey.blob.toString('hex');
    this.forget(id);
    const held: HeldKey = {
      key,
      identity: { blob: Buffer.from(key.publicKey.blob), comment, publicKey: key.publicKey },
      confirm: constraints.confirm === true,
    };
    if (lifetime !== undefined) {
      // unref: a key's expiry alone should not keep the process alive.
      held.timer = setTimeout(() => {
        if (this.keys.get(id) === held) this.keys.delete(id);
      }, lifetime * 1000).unref();
    }
    this.keys.set(id, held);
  }

  private forget(id: string): boolean {
    const held = this.keys.get(id);
    if (held === undefined) return false;
    if (held.timer !== undefined) clearTimeout(held.timer);
    return this.keys.delete(id);
  }

  async listIdentities(): Promise<AgentIdentity[]> {
    return [...this.keys.values()].map((held) => held.identity);
  }

  async sign(publicKeyBlob: Buffer, data: Buffer, algorithm: string): Promise<Buffer> {
    const held = this.keys.get(publicKeyBlob.toString('hex'));
    if (held === undefined) {
      throw new AgentFailureError('SSH_AGENTC_SIGN_REQUEST', `the agent does not hold ${describeKey(publicKeyBlob)}`);
    }
    const signer = signatureAlgorithms.all.get(algorithm);
    if (signer === undefined || signer.keyType !== held.key.type) {
      throw new AgentFailureError('SSH_AGENTC_SIGN_REQUEST', `cannot make a ${algorithm} signature with ${describeKey(publicKeyBlob)}`);
    }
    if (held.confirm && !(await this.options.confirm?.(held.identity, algorithm))) {
      throw new AgentFailureError('SSH_AGENTC_SIGN_REQUEST', `use of ${describeKey(publicKeyBlob)} was not confirmed`);
    }
    return signer.sign(held.key, data);
  }

  async addIdentity(key: SshPrivateKey, comment: string, constraints?: AgentKeyConstraints): Promise<void> {
    this.add(key, comment, constraints);
  }

  async removeIdentity(publicKeyBlob: Buffer): Promise<void> {
    if (!this.forget(publicKeyBlob.toString('hex'))) {
      throw new AgentFailureError('SSH_AGENTC_REMOVE_IDENTITY', `the agent does not hold ${describeKey(publicKeyBlob)}`);
    }
  }

  async removeAllIdentities(): Promise<void> {
    for (const id of [...this.keys.keys()]) this.forget(id);
  }
}

// ---- AgentClient ------------------------------------------------------------------------------

export interface AgentClientOptions {
  /** The agent's Unix socket. Default: the SSH_AUTH_SOCK environment variable (RFC 9987 §6). */
  readonly socketPath?: string;
  /**
   * An already connected stream to an agent, instead of a socket path: a forwarded agent channel,
   * a test's socket. The client uses it until it ends and does not reconnect.
   */
  readonly stream?: Duplex;
  /** Milliseconds to wait for each reply, queueing and connecting included; 0 for no limit. Default 60 s. */
  readonly timeout?: number;
}

/** A request waiting for its reply. */
interface Waiter {
  resolve(message: Buffer): void;
  reject(error: Error): void;
}

/**
 * One connection to an agent: writes requests, hands the single reply to the single waiter. The
 * protocol has no request ids (RFC 9987 §3: replies come in order), so once a request has been
 * abandoned (timeout, abort) its late reply could be taken for the next one's: the connection is
 * then closed rather than reused.
 */
class AgentConnection {
  private readonly decoder = new MessageDecoder('agent reply');
  private waiter: Waiter | undefined;
  /** Why the connection is unusable, once it is. */
  failure: Error | undefined;

  constructor(
    private readonly stream: Duplex,
    /** A socket we opened ourselves: unref it while idle so it does not keep the process alive. */
    private readonly ownSocket: Socket | undefined,
  ) {
    stream.on('data', (chunk: Buffer | string) => this.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    stream.on('end', () => this.fail(new ConnectionLostError('the agent closed the connection')));
    stream.on('close', () => this.fail(new ConnectionLostError('the agent connection was closed')));
    stream.on('error', (error: Error) => this.fail(new ConnectionLostError(`agent connection failed: ${error.message}`, { cause: error })));
    ownSocket?.unref();
  }

  private onData(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    let messages: Buffer[];
    try {
      messages = this.decoder.push(chunk);
    } catch (error) {
      this.fail(error instanceof Error ? error : new ProtocolError(String(error)));
      return;
    }
    for (const message of messages) {
      const waiter = this.waiter;
      if (waiter === undefined) {
        // RFC 9987 §3: "At no time does the agent send messages except in response to a client request."
        this.fail(new ProtocolError('the agent sent a message that answers no request'));
        return;
      }
      this.waiter = undefined;
      this.ownSocket?.unref();
      waiter.resolve(message);
    }
  }

  /** Make the connection unusable: the waiting request (if any) rejects with `error`, the stream is destroyed. */
  fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
    this.stream.destroy();
  }

  /** Send one request and wait for its reply. The caller guarantees one request at a time. */
  exchange(request: Buffer, signal: AbortSignal): Promise<Buffer> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<Buffer>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiter = undefined;
        reject(signal.reason);
        this.fail(new ConnectionLostError('the agent connection was dropped after a request was abandoned'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiter = {
        resolve: (message) => {
          signal.removeEventListener('abort', onAbort);
          resolve(message);
        },
        reject: (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      this.ownSocket?.ref();
      this.stream.write(request);
    });
  }

  /** End the connection politely: the waiting request rejects, our side ends, then the stream goes. */
  async close(): Promise<void> {
    if (this.failure === undefined) {
      this.failure = new ConnectionLostError('the agent client was closed');
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.reject(this.failure);
    }
    const stream = this.stream;
    if (!stream.destroyed) {
      const done = finished(stream).catch(() => undefined);
      stream.end(() => stream.destroy());
      await done;
    }
  }
}

/** An AbortSignal that fires on the caller's signal or after `timeout` ms, whichever comes first. */
class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    timeout: number,
    private readonly outer: AbortSignal | undefined,
    message: () => string,
  ) {
    if (!Number.isFinite(timeout) && timeout !== Infinity) throw new RangeError(`invalid agent timeout ${timeout}`);
    if (timeout < 0) throw new RangeError(`invalid agent timeout ${timeout}`);
    if (outer?.aborted) {
      this.controller.abort(outer.reason);
    } else if (outer !== undefined) {
      this.onAbort = () => this.controller.abort(outer.reason);
      outer.addEventListener('abort', this.onAbort, { once: true });
    }
    if (timeout > 0 && timeout !== Infinity) {
      this.timer = setTimeout(() => this.controller.abort(new TimeoutError(message())), timeout);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.outer?.removeEventListener('abort', this.onAbort);
  }
}

/** Wait for `promise` (which never rejects) unless `signal` fires first. */
function waitUnlessAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/**
 * The client end of the agent protocol, over a Unix socket (SSH_AUTH_SOCK by default) or a given
 * stream. Requests from concurrent callers are queued and sent one at a time on one connection
 * (RFC 9987 §3: the protocol has no request ids, replies come in order). The socket is opened on
 * first use, reopened if the agent dropped it, and does not keep the process alive while idle.
 */
export class AgentClient implements SshAgent {
  private readonly socketPath: string | undefined;
  /** Where socketPath came from, for error messages. */
  private readonly pathSource: string;
  private readonly fixedStream: boolean;
  private readonly timeout: number;
  private connection: AgentConnection | undefined;
  /** Settles when the last queued request is done: the next one waits for it. Never rejects. */
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: AgentClientOptions = {}) {
    if (options.stream !== undefined && options.socketPath !== undefined) {
      throw new TypeError('AgentClient takes a socketPath or a stream, not both');
    }
    this.timeout = options.timeout ?? AGENT_DEFAULT_TIMEOUT_MS;
    if (!(this.timeout >= 0)) throw new RangeError(`invalid agent timeout ${options.timeout}`);
    this.fixedStream = options.stream !== undefined;
    if (options.stream !== undefined) {
      this.connection = new AgentConnection(options.stream, undefined);
      this.socketPath = undefined;
      this.pathSource = 'stream';
    } else if (options.socketPath !== undefined) {
      this.socketPath = options.socketPath;
      this.pathSource = 'socketPath option';
    } else {
      const fromEnvironment = process.env.SSH_AUTH_SOCK;
      this.socketPath = fromEnvironment === '' ? undefined : fromEnvironment;
      this.pathSource = 'SSH_AUTH_SOCK';
    }
  }

  /** Connect now (rather than on the first request), to report a missing agent early. */
  async connect(options?: AgentRequestOptions): Promise<void> {
    await this.run('connect', options, async () => undefined);
  }

  /** Every key the agent lists, including those tssh cannot use (certificates, security keys, DSA). */
  async listRawIdentities(options?: AgentRequestOptions): Promise<Array<{ blob: Buffer; comment: string }>> {
    const reader = await this.call(Buffer.from([AgentMessage.REQUEST_IDENTITIES]), AgentMessage.IDENTITIES_ANSWER, options);
    // RFC 9987 §5.5: uint32 nkeys, then nkeys × (string key blob, string comment).
    const count = reader.uint32();
    if (count > reader.remaining / 8) {
      throw new ProtocolError(`the agent announced ${count} keys in a ${reader.remaining}-byte answer`);
    }
    const identities: Array<{ blob: Buffer; comment: string }> = [];
    for (let i = 0; i < count; i++) {
      const blob = Buffer.from(reader.string());
      const comment = reader.utf8();
      identities.push({ blob, comment });
    }
    reader.done();
    return identities;
  }

  /**
   * The keys the agent offers that tssh can sign with (Ed25519, ECDSA, RSA). Others (certificates,
   * FIDO keys, DSA) are left out: listRawIdentities has them all.
   */
  async listIdentities(options?: AgentRequestOptions): Promise<AgentIdentity[]> {
    const identities: AgentIdentity[] = [];
    for (const { blob, comment } of await this.listRawIdentities(options)) {
      let publicKey: SshPublicKey;
      try {
        publicKey = parsePublicKeyBlob(blob);
      } catch {
        continue;
      }
      identities.push({ blob, comment, publicKey });
    }
    return identities;
  }

  async sign(publicKeyBlob: Buffer, data: Buffer, algorithm: string, options?: AgentRequestOptions): Promise<Buffer> {
    const expected = withoutCertSuffix(algorithm);
    const keyType = withoutCertSuffix(publicKeyTypeOf(publicKeyBlob));
    const known = signatureAlgorithms.all.get(expected);
    if (known !== undefined && known.keyType !== keyType) {
      throw new RangeError(`cannot ask for a ${algorithm} signature from a ${keyType} key`);
    }
    // RFC 9987 §5.6: string key blob, string data, uint32 flags.
    const request = new Writer(publicKeyBlob.length + data.length + 16)
      .byte(AgentMessage.SIGN_REQUEST)
      .string(publicKeyBlob)
      .string(data)
      .uint32(agentSignFlags(algorithm))
      .finish();
    const reader = await this.call(request, AgentMessage.SIGN_RESPONSE, options, () =>
      `the agent refused to sign with ${describeKey(publicKeyBlob)} (${algorithm}): it does not hold that key, or declined to use it`,
    );
    const signature = Buffer.from(reader.string());
    reader.done();
    const decoded = decodeSignatureBlob(signature);
    if (decoded === undefined) throw new ProtocolError('the agent returned a malformed signature blob');
    if (decoded.algorithm !== expected) {
      // An agent that ignores the RSA flags answers ssh-rsa (SHA-1), which a server that asked for
      // rsa-sha2-* must reject (RFC 8332 §3): say so here rather than fail authentication later.
      throw new AgentError(`the agent made a ${decoded.algorithm} signature when ${expected} was asked for`);
    }
    return signature;
  }

  /**
   * Give the agent a private key (RFC 9987 §5.2): SSH_AGENTC_ADD_IDENTITY, or
   * SSH_AGENTC_ADD_ID_CONSTRAINED when constraints are given (§5.2 prefers the plain message when
   * there are none). Ed25519, ECDSA and RSA keys.
   */
  async addIdentity(key: SshPrivateKey, comment = '', constraints: AgentKeyConstraints = {}, options?: AgentRequestOptions): Promise<void> {
    const lifetime = constraints.lifetimeSeconds;
    if (lifetime !== undefined && (!Number.isInteger(lifetime) || lifetime < 0 || lifetime > 0xffffffff)) {
      throw new RangeError(`key lifetime must be a whole number of seconds, got ${lifetime}`);
    }
    const constrained = lifetime !== undefined || constraints.confirm === true;
    const writer = new Writer(1024).byte(constrained ? AgentMessage.ADD_ID_CONSTRAINED : AgentMessage.ADD_IDENTITY);
    writeAgentPrivateKey(writer, key);
    writer.string(comment);
    // §5.2.7: constraints follow one another, each a type byte and its data.
    if (lifetime !== undefined) writer.byte(CONSTRAIN_LIFETIME).uint32(lifetime);
    if (constraints.confirm === true) writer.byte(CONSTRAIN_CONFIRM);
    const reader = await this.call(writer.finish(), AgentMessage.SUCCESS, options, () =>
      `the agent refused to add ${describeKey(key.publicKey.blob)}${constrained ? ' with its constraints' : ''}`,
    );
    reader.done();
  }

  /** Remove one key (RFC 9987 §5.4); AgentFailureError when the agent does not hold it. */
  async removeIdentity(publicKeyBlob: Buffer, options?: AgentRequestOptions): Promise<void> {
    const request = new Writer(publicKeyBlob.length + 8).byte(AgentMessage.REMOVE_IDENTITY).string(publicKeyBlob).finish();
    const reader = await this.call(request, AgentMessage.SUCCESS, options, () =>
      `the agent did not remove ${describeKey(publicKeyBlob)}: it does not hold that key, or refused`,
    );
    reader.done();
  }

  /** Remove every key (RFC 9987 §5.4). */
  async removeAllIdentities(options?: AgentRequestOptions): Promise<void> {
    const reader = await this.call(Buffer.from([AgentMessage.REMOVE_ALL_IDENTITIES]), AgentMessage.SUCCESS, options);
    reader.done();
  }

  /**
   * Close the connection: a request in flight rejects with ConnectionLostError, queued ones and
   * later calls too. Resolves once the stream is closed.
   */
  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    await connection?.close();
  }

  /**
   * Send one request and check the reply's type: `success` gives a reader positioned after the
   * type byte; SSH_AGENT_FAILURE becomes AgentFailureError; anything else is a protocol error.
   */
  private async call(request: Buffer, success: number, options: AgentRequestOptions | undefined, refused?: () => string): Promise<Reader> {
    const name = requestName(request[0]!);
    const message = frame(request);
    const reply = await this.run(name, options, (connection, signal) => connection.exchange(message, signal));
    const reader = new Reader(reply, 0, reply.length, `reply to ${name}`);
    const type = reader.byte();
    if (type === success) return reader;
    if (type === AgentMessage.FAILURE) {
      throw new AgentFailureError(name, refused?.() ?? `the agent refused ${name} (SSH_AGENT_FAILURE)`);
    }
    throw new ProtocolError(`the agent answered ${name} with message type ${type}`);
  }

  /** Under the deadline (timeout and the caller's signal) and in turn: connect if needed, then `task`. */
  private async run<T>(
    name: string,
    options: AgentRequestOptions | undefined,
    task: (connection: AgentConnection, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const timeout = options?.timeout ?? this.timeout;
    const deadline = new Deadline(timeout, options?.signal, () => `the agent did not answer ${name} within ${timeout} ms`);
    try {
      return await this.inTurn(deadline.signal, async () => task(await this.connected(deadline.signal), deadline.signal));
    } finally {
      deadline.dispose();
    }
  }

  /** Run `task` after every earlier request has finished; a caller that gives up while queued leaves the queue intact. */
  private async inTurn<T>(signal: AbortSignal, task: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release: () => void = () => undefined;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await waitUnlessAborted(previous, signal);
    } catch (error) {
      // Our turn is skipped, but the next caller must still wait for the one before us.
      void previous.then(release);
      throw error;
    }
    try {
      return await task();
    } finally {
      release();
    }
  }

  private async connected(signal: AbortSignal): Promise<AgentConnection> {
    if (this.closed) throw new ConnectionLostError('the agent client was closed');
    const current = this.connection;
    if (current !== undefined && current.failure === undefined) return current;
    if (this.fixedStream) throw current?.failure ?? new ConnectionLostError('the agent connection is closed');
    const path = this.socketPath;
    if (path === undefined) {
      throw new AgentConnectError(undefined, undefined, 'no agent to connect to: SSH_AUTH_SOCK is not set; is ssh-agent running?');
    }
    const socket = await openSocket(path, this.pathSource, signal);
    if (this.closed) {
      socket.destroy();
      throw new ConnectionLostError('the agent client was closed');
    }
    this.connection = new AgentConnection(socket, socket);
    return this.connection;
  }
}

function openSocket(path: string, source: string, signal: AbortSignal): Promise<Socket> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<Socket>((resolve, reject) => {
    const socket = createConnection({ path });
    const cleanup = (): void => {
      signal.removeEventListener('abort', onAbort);
      socket.off('connect', onConnect);
      socket.off('error', onError);
    };
    const onAbort = (): void => {
      cleanup();
      socket.destroy();
      reject(signal.reason);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: NodeJS.ErrnoException): void => {
      cleanup();
      socket.destroy();
      const code = typeof error.code === 'string' ? error.code : undefined;
      reject(
        new AgentConnectError(path, code, `could not connect to the agent at ${path}: ${code ?? error.message}; is ssh-agent running? (${source})`, {
          cause: error,
        }),
      );
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

// ---- AgentServer ------------------------------------------------------------------------------

export interface AgentServeOptions {
  /**
   * Told about each request answered with SSH_AGENT_FAILURE (the agent's error, a malformed or
   * unsupported request) and about the error that ended a connection: for logs and tests.
   */
  readonly onError?: (error: unknown, request: string) => void;
}

/** A Unix socket AgentServer listens on. */
export interface AgentListener {
  readonly path: string;
  /** Stop listening, drop open connections, remove the socket file. */
  close(): Promise<void>;
}

const FAILURE_REPLY = Buffer.from([AgentMessage.FAILURE]);
const SUCCESS_REPLY = Buffer.from([AgentMessage.SUCCESS]);

/**
 * Serves the agent protocol for an SshAgent: any connection (a Unix socket, a forwarded agent
 * channel) gets the keys `agent` holds. Requests on one connection are answered one at a time, in
 * order (RFC 9987 §3); anything unknown or refused is answered with SSH_AGENT_FAILURE (§5.1).
 */
export class AgentServer {
  constructor(
    readonly agent: SshAgent,
    private readonly options: AgentServeOptions = {},
  ) {}

  /**
   * Serve one connection until it ends. Never rejects: a connection that breaks the framing (an
   * oversized or empty message) or fails is closed, and the error goes to onError.
   */
  async serve(stream: Duplex): Promise<void> {
    const decoder = new MessageDecoder('agent request');
    try {
      // Reading through the async iterator means no more is read while a request is being
      // answered, so a client that floods requests is held back by the socket, not buffered here.
      for await (const chunk of stream as AsyncIterable<Buffer | string>) {
        for (const message of decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) {
          const reply = await this.answer(message);
          await writeAll(stream, frame(reply));
        }
      }
      await new Promise<void>((resolve) => stream.end(resolve));
    } catch (error) {
      this.options.onError?.(error, 'connection');
      stream.destroy();
    }
  }

  /**
   * Listen on a Unix socket at `path` and serve every connection. Put the socket in a directory
   * only its user can enter (as ssh-agent does: RFC 9987 §10): the socket file itself is made
   * 0600, but only after it exists.
   */
  async listen(path: string): Promise<AgentListener> {
    const connections = new Set<Socket>();
    // allowHalfOpen: a client that sends its requests and then shuts down its side still gets the
    // answers; serve() ends our side once they are written.
    const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
      connections.add(socket);
      socket.once('close', () => connections.delete(socket));
      void this.serve(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(path, 0o600);
    return {
      path,
      close: async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of connections) socket.destroy();
        await closed;
        await unlink(path).catch(() => undefined);
      },
    };
  }

  /** The reply to one request (a message body: type byte first). */
  private async answer(message: Buffer): Promise<Buffer> {
    const type = message[0]!;
    const name = requestName(type);
    try {
      const reply = await this.dispatch(type, new Reader(message, 1, message.length, name));
      if (reply === undefined) this.options.onError?.(new AgentFailureError(name, `unsupported agent request ${name}`), name);
      return reply ?? FAILURE_REPLY;
    } catch (error) {
      this.options.onError?.(error, name);
      return FAILURE_REPLY;
    }
  }

  /** undefined: a request this agent does not support. */
  private async dispatch(type: number, reader: Reader): Promise<Buffer | undefined> {
    const agent = this.agent;
    switch (type) {
      case AgentMessage.REQUEST_IDENTITIES: {
        reader.done();
        const identities = await agent.listIdentities();
        // RFC 9987 §5.5: uint32 nkeys, then (string key blob, string comment) for each.
        const writer = new Writer(256).byte(AgentMessage.IDENTITIES_ANSWER).uint32(identities.length);
        for (const identity of identities) writer.string(identity.blob).string(identity.comment);
        return writer.finish();
      }
      case AgentMessage.SIGN_REQUEST: {
        const blob = Buffer.from(reader.string());
        const data = Buffer.from(reader.string());
        const flags = reader.uint32();
        reader.done();
        const algorithm = agentSignAlgorithm(publicKeyTypeOf(blob), flags);
        if (algorithm === undefined) throw new AgentFailureError('SSH_AGENTC_SIGN_REQUEST', `unsupported sign flags 0x${flags.toString(16)}`);
        const signature = await agent.sign(blob, data, algorithm);
        return new Writer(signature.length + 8).byte(AgentMessage.SIGN_RESPONSE).string(signature).finish();
      }
      case AgentMessage.ADD_IDENTITY:
      case AgentMessage.ADD_ID_CONSTRAINED: {
        if (agent.addIdentity === undefined) return undefined;
        const key = readAgentPrivateKey(reader);
        const comment = reader.utf8();
        const constraints = type === AgentMessage.ADD_ID_CONSTRAINED ? readConstraints(reader) : {};
        reader.done();
        await agent.addIdentity(key, comment, constraints);
        return SUCCESS_REPLY;
      }
      case AgentMessage.REMOVE_IDENTITY: {
        if (agent.removeIdentity === undefined) return undefined;
        const blob = Buffer.from(reader.string());
        reader.done();
        await agent.removeIdentity(blob);
        return SUCCESS_REPLY;
      }
      case AgentMessage.REMOVE_ALL_IDENTITIES: {
        if (agent.removeAllIdentities === undefined) return undefined;
        reader.done();
        await agent.removeAllIdentities();
        return SUCCESS_REPLY;
      }
      default:
        // Locking, smartcards and extensions (including OpenSSH's session-bind@openssh.com, which
        // ssh sends and tolerates a failure to) are not implemented: §5.1 and §5.8 say FAILURE.
        return undefined;
    }
  }
}

/**
 * The constraints of SSH_AGENTC_ADD_ID_CONSTRAINED (RFC 9987 §5.2.7). An unknown one cannot be
 * skipped (its length is unknown) and must not be ignored: the whole request is refused.
 */
function readConstraints(reader: Reader): AgentKeyConstraints {
  let lifetimeSeconds: number | undefined;
  let confirm = false;
  while (reader.remaining > 0) {
    const constraint = reader.byte();
    if (constraint === CONSTRAIN_LIFETIME) lifetimeSeconds = reader.uint32();
    else if (constraint === CONSTRAIN_CONFIRM) confirm = true;
    else throw new AgentFailureError('SSH_AGENTC_ADD_ID_CONSTRAINED', `unsupported key constraint ${constraint}`);
  }
  return { lifetimeSeconds, confirm };
}

/** Write and wait until the stream has taken the bytes (so a client that never reads cannot grow our buffers). */
function writeAll(stream: Duplex, data: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    stream.write(data, (error) => (error ? reject(error) : resolve()));
  });
}
