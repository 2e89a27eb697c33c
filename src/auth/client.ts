/**
 * The client side of user authentication (RFC 4252, RFC 4256): asks for the methods with
 * `none`, then tries publickey (a query before the signature, unless the key is in this
 * process), keyboard-interactive and password in the configured order, following partial
 * success, until the server says USERAUTH_SUCCESS or nothing is left to try.
 */
import { DisconnectReason, SshError } from '../errors.js';
import type { SshPublicKey } from '../algorithms/types.js';
import { MSG, UserauthBanner, UserauthFailure, UserauthRequest } from '../wire/messages.js';
import {
  METHOD_KEYBOARD_INTERACTIVE,
  METHOD_NONE,
  METHOD_PASSWORD,
  METHOD_PUBLICKEY,
  METHOD_PUBLICKEY_HOSTBOUND,
  SERVICE_CONNECTION,
  UserauthPasswdChangereq,
  UserauthPkOk,
  decodeInfoRequest,
  encodeInfoResponse,
  encodeKeyboardInteractiveFields,
  encodePasswordFields,
  encodePublicKeyFields,
  publicKeySignedData,
  type InfoRequest,
} from './messages.js';

/** A key the client can prove: its public half and a way to sign (a key in memory, an agent). */
export interface ClientIdentity {
  readonly publicKey: SshPublicKey;
  /** Where it came from, for logs (`/home/a/.ssh/id_ed25519`, `agent`). */
  readonly source: string;
  /** Sign `data` with `algorithm` (e.g. rsa-sha2-512); returns the signature blob. */
  sign(data: Buffer, algorithm: string): Promise<Buffer>;
  /**
   * The private key is in this process, so signing asks no one (no agent to confirm, no token to
   * touch): the signed request goes at once, without first asking whether the server would take
   * the key (RFC 4252 §7 makes that query optional). Saves a round trip, and the server's second
   * look at its authorized keys, for every login. Default: false (query first, as OpenSSH).
   */
  readonly local?: boolean;
  /**
   * Sign at once, for a key in this process: the first signed request then leaves in the same
   * write as the service request before it (one segment, one wake-up of the server). Optional;
   * sign() is used without it.
   */
  signNow?(data: Buffer, algorithm: string): Buffer;
}

export interface ClientAuthOptions {
  readonly user: string;
  readonly sessionId: Buffer;
  /** Methods in preference order (default as OpenSSH: publickey, keyboard-interactive, password). */
  readonly methods?: readonly string[];
  /** Identities, tried in order. May be a function so keys load only when publickey is tried. */
  readonly identities?: readonly ClientIdentity[] | (() => Promise<readonly ClientIdentity[]>);
  /** Called for each password attempt; undefined means give up on password. */
  readonly password?: (attempt: number) => string | undefined | Promise<string | undefined>;
  /** Called when the server asks for a new password (RFC 4252 §8). */
  readonly changePassword?: (prompt: string) => { oldPassword: string; newPassword: string } | undefined | Promise<{ oldPassword: string; newPassword: string } | undefined>;
  /** Answers keyboard-interactive rounds; undefined means give up on the method. */
  readonly keyboardInteractive?: (request: InfoRequest) => string[] | undefined | Promise<string[] | undefined>;
  /** Password / keyboard-interactive attempts (OpenSSH's NumberOfPasswordPrompts, default 3). */
  readonly attempts?: number;
  /**
   * The server's server-sig-algs extension (RFC 8308 §3.1), if it sent one. Started before the
   * server's EXT_INFO could be read (pipelined behind the service request), the client learns it
   * and the next option later, through serverExtensions().
   */
  readonly serverSigAlgs?: readonly string[];
  /** The server's host key blob if it supports publickey-hostbound-v00@openssh.com. */
  readonly hostboundKey?: Buffer;
  /** Signature algorithms we are willing to use for our keys (default: the registry defaults). */
  readonly acceptedAlgorithms?: readonly string[];
}

export interface ClientAuthEvents {
  send(payload: Buffer): void;
  /** Called synchronously on USERAUTH_SUCCESS (the transport must learn it at once). */
  success(): void;
  /** Authentication cannot succeed: `Permission denied (publickey,password).` */
  fail(error: SshError): void;
  banner?(message: string): void;
  debug?(message: string): void;
}

/** The error when every method failed; lists what the server would still accept, as ssh does. */
export class AuthenticationFailedError extends SshError {
  constructor(readonly methods: readonly string[]) {
    super(
      'ERR_SSH_AUTH',
      DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE,
      `Permission denied (${methods.join(',')}).`,
    );
  }
}

type Step =
  | { kind: 'none' }
  | { kind: 'publickey-query'; identity: ClientIdentity; algorithm: string }
  | { kind: 'publickey-signed'; identity: ClientIdentity; algorithm: string }
  | { kind: 'password' }
  | { kind: 'keyboard-interactive' };

export class AuthClient {
  private readonly order: readonly string[];
  private serverMethods: string[] = [];
  private step: Step | undefined;
  private identities: ClientIdentity[] | undefined;
  private identityIndex = 0;
  private passwordAttempts = 0;
  private kbdintAttempts = 0;
  private finished = false;
  /** The `none` skipped at the start (a local key went first): 'due' before failing, then 'sent'. */
  private noneLast: 'no' | 'due' | 'sent' = 'no';
  /** Incoming messages are handled one at a time (signing and prompts are async). */
  private chain: Promise<void> = Promise.resolve();
  private serverSigAlgs: readonly string[] | undefined;
  private hostboundKey: Buffer | undefined;

  constructor(
    private readonly options: ClientAuthOptions,
    private readonly events: ClientAuthEvents,
  ) {
    this.order = options.methods ?? [METHOD_PUBLICKEY, METHOD_KEYBOARD_INTERACTIVE, METHOD_PASSWORD];
    this.serverSigAlgs = options.serverSigAlgs;
    this.hostboundKey = options.hostboundKey;
  }

  /**
   * Whether start() would send a signed request at once, with nothing learnt from the server: the
   * test for sending it behind the service request. An RSA key is left out, since its algorithm
   * (rsa-sha2-512 or -256) is chosen from server-sig-algs.
   */
  static startsWithLocalKey(methods: readonly string[] | undefined, identities: ClientAuthOptions['identities']): boolean {
    const first = Array.isArray(identities) ? identities[0] : undefined;
    return (methods?.[0] ?? METHOD_PUBLICKEY) === METHOD_PUBLICKEY && first?.local === true && first.publicKey.type !== 'ssh-rsa';
  }

  /** What the server's EXT_INFO said, when it arrives after start(): used for the requests still to come. */
  serverExtensions(serverSigAlgs: readonly string[] | undefined, hostboundKey: Buffer | undefined): void {
    this.serverSigAlgs = serverSigAlgs;
    this.hostboundKey = hostboundKey;
  }

  /**
   * Start with `none`, which tells us the methods the server accepts (RFC 4252 §5.2); or, when
   * publickey comes first and the identities are given as a list (not a loader that might read
   * files and ask for passphrases), with the first key at once: signed if it is in this process,
   * else (an agent's) the query whether the server would take it. A failure lists the methods
   * just as `none` would, and a success saves a round trip and the server a request. `none` is
   * then tried last, once, before giving up (a server may accept it when no key does).
   */
  start(): void {
    const source = this.options.identities;
    const first = Array.isArray(source) ? source[0] : undefined;
    if (this.order[0] !== METHOD_PUBLICKEY || !first || !this.chooseAlgorithm(first.publicKey)) {
      this.sendNone();
      return;
    }
    this.serverMethods = [METHOD_PUBLICKEY];
    this.noneLast = 'due';
    if (this.sendSignedNow(first)) return;
    this.chain = this.chain.then(() => this.tryPublicKey()).then(() => undefined, this.failWith);
  }

  /**
   * The first key's signed request, sent before start() returns when the key can sign at once
   * (signNow). False when it cannot: the usual path (tryPublicKey) then offers it, and handles a
   * signing failure.
   */
  private sendSignedNow(identity: ClientIdentity): boolean {
    if (!identity.local || !identity.signNow) return false;
    const algorithm = this.chooseAlgorithm(identity.publicKey);
    if (!algorithm) return false;
    let signature: Buffer;
    try {
      signature = identity.signNow(this.signedData(identity, algorithm), algorithm);
    } catch {
      return false;
    }
    this.events.debug?.(`Offering public key: ${identity.source} ${algorithm}`);
    this.sendSignedRequest(identity, algorithm, signature);
    return true;
  }

  private sendNone(): void {
    this.step = { kind: 'none' };
    this.sendRequest(METHOD_NONE, Buffer.alloc(0));
  }

  receive(payload: Buffer): void {
    if (this.finished) return;
    const type = payload[0];
    if (type === MSG.USERAUTH_SUCCESS) {
      this.finished = true;
      const kind = this.step?.kind ?? 'none';
      this.events.debug?.(`Authenticated using "${kind.startsWith('publickey') ? 'publickey' : kind}"`);
      this.events.success();
      return;
    }
    if (type === MSG.USERAUTH_BANNER) {
      this.events.banner?.(UserauthBanner.decode(payload).message);
      return;
    }
    const copy = Buffer.from(payload);
    this.chain = this.chain
      .then(() => this.handle(copy))
      .catch(this.failWith);
  }

  private async handle(payload: Buffer): Promise<void> {
    if (this.finished) return;
    const type = payload[0];
    const step = this.step;
    if (type === MSG.USERAUTH_FAILURE) {
      const { methods, partialSuccess } = UserauthFailure.decode(payload);
      this.serverMethods = methods;
      this.events.debug?.(`Authentications that can continue: ${methods.join(',')}${partialSuccess ? ' (partial success)' : ''}`);
      if (step?.kind === 'publickey-query' || step?.kind === 'publickey-signed') this.identityIndex++;
      // The last resort failed too: nothing is left (and no prompt is repeated).
      if (step?.kind === 'none' && this.noneLast === 'sent') return this.fail(new AuthenticationFailedError(methods));
      if (partialSuccess) {
        // A new stage: identities may be tried again for another required publickey step.
        this.identityIndex = 0;
      }
      return this.next();
    }
    if (type === 60 && step?.kind === 'publickey-query') {
      const { algorithm } = UserauthPkOk.decode(payload);
      this.events.debug?.(`Server accepts key: ${step.identity.source} ${algorithm}`);
      return this.sendSigned(step.identity, step.algorithm);
    }
    if (type === 60 && step?.kind === 'password') {
      const { prompt } = UserauthPasswdChangereq.decode(payload);
      const change = await this.options.changePassword?.(prompt);
      if (!change) return this.next();
      this.sendRequest(METHOD_PASSWORD, encodePasswordFields({ change: true, password: change.oldPassword, newPassword: change.newPassword }));
      return;
    }
    if (type === 60 && step?.kind === 'keyboard-interactive') {
      const request = decodeInfoRequest(payload);
      const answers = await this.options.keyboardInteractive?.(request);
      if (!answers || answers.length !== request.prompts.length) {
        // RFC 4256 §3.4 has no "cancel": an empty answer set for each prompt ends the round.
        this.events.send(encodeInfoResponse(request.prompts.map(() => '')));
        return;
      }
      this.events.send(encodeInfoResponse(answers));
      return;
    }
    throw new SshError('ERR_SSH_PROTOCOL', DisconnectReason.PROTOCOL_ERROR, `unexpected message ${type} during authentication`);
  }

  private async next(): Promise<void> {
    for (const method of this.order) {
      if (!this.serverMethods.includes(method)) continue;
      if (method === METHOD_PUBLICKEY && (await this.tryPublicKey())) return;
      if (method === METHOD_KEYBOARD_INTERACTIVE && this.options.keyboardInteractive) {
        if (this.kbdintAttempts < (this.options.attempts ?? 3)) {
          this.kbdintAttempts++;
          this.step = { kind: 'keyboard-interactive' };
          this.sendRequest(METHOD_KEYBOARD_INTERACTIVE, encodeKeyboardInteractiveFields());
          return;
        }
      }
      if (method === METHOD_PASSWORD && this.options.password) {
        if (this.passwordAttempts < (this.options.attempts ?? 3)) {
          const password = await this.options.password(++this.passwordAttempts);
          if (password !== undefined) {
            this.step = { kind: 'password' };
            this.sendRequest(METHOD_PASSWORD, encodePasswordFields({ change: false, password, newPassword: undefined }));
            return;
          }
        }
      }
    }
    if (this.noneLast === 'due') {
      this.noneLast = 'sent';
      this.sendNone();
      return;
    }
    this.fail(new AuthenticationFailedError(this.serverMethods));
  }

  private async loadIdentities(): Promise<ClientIdentity[]> {
    if (!this.identities) {
      const source = this.options.identities;
      this.identities = source === undefined ? [] : typeof source === 'function' ? [...(await source())] : [...source];
    }
    return this.identities;
  }

  private async tryPublicKey(): Promise<boolean> {
    const identities = await this.loadIdentities();
    while (this.identityIndex < identities.length) {
      const identity = identities[this.identityIndex]!;
      const algorithm = this.chooseAlgorithm(identity.publicKey);
      if (!algorithm) {
        this.identityIndex++;
        continue;
      }
      this.events.debug?.(`Offering public key: ${identity.source} ${algorithm}`);
      if (identity.local) {
        // Signed at once; on a signing failure sendSigned goes on to what is next itself.
        await this.sendSigned(identity, algorithm);
        return true;
      }
      this.step = { kind: 'publickey-query', identity, algorithm };
      this.sendRequest(
        this.publicKeyMethod(),
        encodePublicKeyFields({ signed: false, algorithm, publicKey: identity.publicKey.blob, hostKey: this.hostboundKey, signature: undefined }),
      );
      return true;
    }
    return false;
  }

  private async sendSigned(identity: ClientIdentity, algorithm: string): Promise<void> {
    let signature: Buffer;
    try {
      signature = await identity.sign(this.signedData(identity, algorithm), algorithm);
    } catch (error) {
      this.events.debug?.(`signing with ${identity.source} failed: ${(error as Error).message}`);
      this.identityIndex++;
      return this.next();
    }
    this.sendSignedRequest(identity, algorithm, signature);
  }

  /** What a publickey request signs (RFC 4252 §7), for the method the next request uses. */
  private signedData(identity: ClientIdentity, algorithm: string): Buffer {
    return publicKeySignedData(
      this.options.sessionId,
      this.options.user,
      SERVICE_CONNECTION,
      this.publicKeyMethod(),
      algorithm,
      identity.publicKey.blob,
      this.hostboundKey,
    );
  }

  private sendSignedRequest(identity: ClientIdentity, algorithm: string, signature: Buffer): void {
    this.step = { kind: 'publickey-signed', identity, algorithm };
    this.sendRequest(
      this.publicKeyMethod(),
      encodePublicKeyFields({ signed: true, algorithm, publicKey: identity.publicKey.blob, hostKey: this.hostboundKey, signature }),
    );
  }

  private publicKeyMethod(): string {
    return this.hostboundKey ? METHOD_PUBLICKEY_HOSTBOUND : METHOD_PUBLICKEY;
  }

  /** RFC 8332 §3.1: for RSA keys pick rsa-sha2-512/256 from server-sig-algs; other types name themselves. */
  private chooseAlgorithm(key: SshPublicKey): string | undefined {
    const accepted = this.options.acceptedAlgorithms;
    const ok = (name: string) => accepted === undefined || accepted.includes(name);
    if (key.type !== 'ssh-rsa') return ok(key.type) ? key.type : undefined;
    const serverAlgs = this.serverSigAlgs;
    for (const name of ['rsa-sha2-512', 'rsa-sha2-256']) {
      if (ok(name) && (serverAlgs === undefined || serverAlgs.includes(name))) return name;
    }
    return ok('ssh-rsa') && accepted !== undefined ? 'ssh-rsa' : undefined;
  }

  private sendRequest(method: string, fields: Buffer): void {
    this.events.send(UserauthRequest.encode({ user: this.options.user, service: SERVICE_CONNECTION, method, methodFields: fields }));
  }

  /** A failure in our own steps (a prompt, a signature, loading keys) ends the authentication. */
  private readonly failWith = (error: unknown): void => {
    this.fail(error instanceof SshError ? error : new SshError('ERR_SSH_AUTH', DisconnectReason.AUTH_CANCELLED_BY_USER, (error as Error).message));
  };

  private fail(error: SshError): void {
    if (this.finished) return;
    this.finished = true;
    this.events.fail(error);
  }
}
