/**
 * The server side of user authentication (RFC 4252, RFC 4256), as a state machine driven by the
 * transport's messages. Every decision goes to the application through async hooks; the
 * protocol rules and policies (method order, MaxAuthTries, equal treatment of unknown users,
 * the banner) are enforced here.
 *
 * The publickey hooks cannot be confused (Go's CVE-2024-45337): `publicKeyAllowed` answers "may
 * this key be used by this user" and is never a login by itself; `publicKeyVerified` is told,
 * only after the signature over the session id verified, which key the client proved.
 */
import { createHash } from 'node:crypto';
import { DisconnectReason, ProtocolError, SshError, type DisconnectReasonCode } from '../errors.js';
import type { SshPublicKey } from '../algorithms/types.js';
import { signatureAlgorithms } from '../algorithms/registry.js';
import { parsePublicKeyBlob } from '../keys/public-key.js';
import { MSG, UserauthBanner, UserauthFailure, UserauthRequest, UserauthSuccess } from '../wire/messages.js';
import {
  MAX_KBDINT_PROMPTS,
  METHOD_KEYBOARD_INTERACTIVE,
  METHOD_NONE,
  METHOD_PASSWORD,
  METHOD_PUBLICKEY,
  METHOD_PUBLICKEY_HOSTBOUND,
  SERVICE_CONNECTION,
  UserauthPasswdChangereq,
  UserauthPkOk,
  decodeInfoResponse,
  decodeKeyboardInteractiveFields,
  decodePasswordFields,
  decodePublicKeyFields,
  encodeInfoRequest,
  publicKeySignedData,
  type InfoRequest,
} from './messages.js';
import { MethodPolicy } from './policy.js';

/** What a hook decides: success, partial success (another method must follow), or failure. */
export type AuthOutcome = 'success' | 'partial' | 'failure';

export interface AuthRequestBase {
  readonly user: string;
  /** The method as the client named it (publickey-hostbound-v00@openssh.com counts as publickey). */
  readonly method: string;
}

export interface PublicKeyRequest extends AuthRequestBase {
  readonly key: SshPublicKey;
  readonly algorithm: string;
}

export interface PasswordRequest extends AuthRequestBase {
  readonly password: string;
}

export interface PasswordChangeRequest extends AuthRequestBase {
  readonly oldPassword: string;
  readonly newPassword: string;
}

/** A password hook may ask the client to change an expired password (RFC 4252 §8). */
export type PasswordOutcome = AuthOutcome | { readonly changePassword: string };

export interface KeyboardInteractiveRequest extends AuthRequestBase {
  readonly submethods: string;
}

/** Ask the client one round of questions; resolves with its answers in order. */
export type KeyboardInteractivePrompt = (request: InfoRequest) => Promise<string[]>;

export interface ServerAuthHooks {
  /** `none`: refused unless this hook says otherwise. */
  none?(request: AuthRequestBase): AuthOutcome | Promise<AuthOutcome>;
  /** May this key be used by this user? Asked for a query and again before a signed attempt counts. */
  publicKeyAllowed?(request: PublicKeyRequest): boolean | Promise<boolean>;
  /** The client proved it holds this allowed key. Default: success. */
  publicKeyVerified?(request: PublicKeyRequest): AuthOutcome | Promise<AuthOutcome>;
  password?(request: PasswordRequest): PasswordOutcome | Promise<PasswordOutcome>;
  /** Without this hook a password change request is refused. */
  changePassword?(request: PasswordChangeRequest): PasswordOutcome | Promise<PasswordOutcome>;
  /** Run any number of rounds with `prompt`, then decide. */
  keyboardInteractive?(request: KeyboardInteractiveRequest, prompt: KeyboardInteractivePrompt): AuthOutcome | Promise<AuthOutcome>;
}

export interface AuthServerOptions {
  readonly sessionId: Buffer;
  /** The host key the server proved, for publickey-hostbound (OpenSSH PROTOCOL §2.5). */
  readonly hostKeyBlob: Buffer | undefined;
  readonly hooks: ServerAuthHooks;
  /** Methods offered (default: those with hooks, publickey first). */
  readonly methods?: readonly string[];
  /** OpenSSH's AuthenticationMethods; default: any single enabled method. */
  readonly authenticationMethods?: MethodPolicy;
  /** Failed attempts before disconnecting (OpenSSH's MaxAuthTries, default 6). */
  readonly maxAuthTries?: number;
  /** USERAUTH_BANNER text sent before the first reply. */
  readonly banner?: string;
  /** Signature algorithms accepted for user keys (default: the registry's defaults). */
  readonly acceptedAlgorithms?: readonly string[];
  /**
   * A refused attempt (any method but `none`) is answered no sooner than this many ms (default 5)
   * plus a per-user fraction of it, so timing tells nothing about the user; 0 turns this off.
   */
  readonly minimumFailureDelayMs?: number;
  /** How the wait is made (default: a timer); tests pass their own. */
  readonly delay?: (ms: number) => Promise<void>;
}

export interface AuthServerEvents {
  send(payload: Buffer): void;
  /** Authentication completed: the transport must be told synchronously (setAuthenticated). */
  success(user: string, methods: readonly string[]): void;
  /** A fatal condition (too many failures, protocol violation): disconnect with this error. */
  fail(error: SshError): void;
  /** For logs, in OpenSSH's words: `Accepted publickey for alice`, `Failed password for alice`. */
  log?(event: AuthLogEvent): void;
  /**
   * Requests are being decided: what is sent may wait for the reply and go out with it (a
   * SERVICE_ACCEPT written just before a pipelined request is then one write with the answer).
   * Each hold is followed by one release, at the latest when no request is left or before the
   * client is asked a question it must answer.
   */
  hold?(): void;
  release?(): void;
}

export interface AuthLogEvent {
  readonly outcome: 'accepted' | 'partial' | 'failed';
  readonly method: string;
  readonly user: string;
  readonly key?: SshPublicKey;
}

const DEFAULT_MAX_AUTH_TRIES = 6;

export class AuthServer {
  private user: string | undefined;
  private service: string | undefined;
  private readonly policy: MethodPolicy;
  private readonly offered: readonly string[];
  private failures = 0;
  private bannerSent = false;
  private done = false;
  private readonly completedMethods: string[] = [];
  /** Requests are handled one at a time; later ones wait here. */
  private chain: Promise<void> = Promise.resolve();
  /** Requests received and not yet decided. */
  private undecided = 0;
  /** The output is held (events.hold) while requests are undecided. */
  private holding = false;
  /** The key of the publickey attempt being handled, for the log line. */
  private attemptKey: SshPublicKey | undefined;
  /** The key last offered, decoded: a query and the signed request that follows carry the same blob. */
  private offeredKey: SshPublicKey | undefined;
  private pendingInfo: { expected: number; resolve: (answers: string[]) => void; reject: (e: Error) => void } | undefined;

  constructor(
    private readonly options: AuthServerOptions,
    private readonly events: AuthServerEvents,
  ) {
    const hooks = options.hooks;
    this.offered =
      options.methods ??
      [
        hooks.publicKeyAllowed ? METHOD_PUBLICKEY : undefined,
        hooks.keyboardInteractive ? METHOD_KEYBOARD_INTERACTIVE : undefined,
        hooks.password ? METHOD_PASSWORD : undefined,
      ].filter((m): m is string => m !== undefined);
    this.policy = options.authenticationMethods?.clone() ?? new MethodPolicy(this.offered.map((m) => [m]));
  }

  get authenticated(): boolean {
    return this.done;
  }

  /** A userauth message from the transport (50-79). The payload is copied before any await. */
  receive(payload: Buffer): void {
    if (this.done) return;
    const type = payload[0];
    if (type === MSG.USERAUTH_INFO_RESPONSE) {
      const pending = this.pendingInfo;
      if (!pending) return this.fatal(new ProtocolError('unexpected SSH_MSG_USERAUTH_INFO_RESPONSE'));
      this.pendingInfo = undefined;
      try {
        pending.resolve(decodeInfoResponse(payload, pending.expected));
      } catch (error) {
        pending.reject(error as Error);
        this.fatal(error as SshError);
      }
      return;
    }
    if (type !== MSG.USERAUTH_REQUEST) {
      return this.fatal(new ProtocolError(`unexpected message ${type} during authentication`));
    }
    const copy = Buffer.from(payload);
    // RFC 4256 §3.1: a new request abandons a keyboard-interactive exchange in progress.
    if (this.pendingInfo) {
      const pending = this.pendingInfo;
      this.pendingInfo = undefined;
      pending.reject(new Error('keyboard-interactive abandoned by a new request'));
    }
    if (!this.holding) {
      this.holding = true;
      this.events.hold?.();
    }
    this.undecided++;
    this.chain = this.chain.then(() => this.handle(copy)).then(this.decided, this.failed);
  }

  /** A request was answered (or dropped): let the output go once none is left. */
  private readonly decided = (): void => {
    if (--this.undecided === 0) this.releaseOutput();
  };

  private readonly failed = (error: unknown): void => {
    this.decided();
    this.fatal(error as SshError);
  };

  private releaseOutput(): void {
    if (!this.holding) return;
    this.holding = false;
    this.events.release?.();
  }

  private async handle(payload: Buffer): Promise<void> {
    if (this.done) return;
    const started = Date.now();
    const request = UserauthRequest.decode(payload);
    const { user, service, method } = request;
    // RFC 4252 §5: the user and service may not change midway (OpenSSH disconnects too).
    if (this.user === undefined) {
      this.user = user;
      this.service = service;
    } else if (this.user !== user || this.service !== service) {
      throw new ProtocolError(
        `change of username or service not allowed: (${this.user},${this.service}) -> (${user},${service})`,
      );
    }
    if (service !== SERVICE_CONNECTION) {
      throw new ProtocolError(`authentication for unknown service ${JSON.stringify(service)}`, DisconnectReason.SERVICE_NOT_AVAILABLE);
    }
    if (!this.bannerSent) {
      this.bannerSent = true;
      if (this.options.banner) this.events.send(UserauthBanner.encode({ message: this.options.banner, language: '' }));
    }
    const baseMethod = method === METHOD_PUBLICKEY_HOSTBOUND ? METHOD_PUBLICKEY : method;
    this.attemptKey = undefined;
    let outcome: AuthOutcome | 'postponed';
    if (method === METHOD_NONE) {
      outcome = this.options.hooks.none ? await this.options.hooks.none({ user, method }) : 'failure';
    } else if (!this.policy.allowed.includes(baseMethod)) {
      outcome = 'failure';
    } else if (baseMethod === METHOD_PUBLICKEY) {
      outcome = await this.publicKey(user, method, request.methodFields);
    } else if (method === METHOD_PASSWORD) {
      outcome = await this.password(user, request.methodFields);
    } else if (method === METHOD_KEYBOARD_INTERACTIVE) {
      outcome = await this.keyboardInteractive(user, request.methodFields);
    } else {
      outcome = 'failure';
    }
    if (outcome === 'postponed') return;
    if (outcome === 'failure') {
      // As in OpenSSH (auth2.c), `none` is answered at once: every client sends it first, only to
      // learn the methods, and its refusal costs the same for every user, so there is nothing
      // to hide by waiting; a wait here would add 5-10 ms to every login.
      if (method !== METHOD_NONE) {
        await this.equalizeTiming(user, started);
        this.failures++;
        this.events.log?.({ outcome: 'failed', method: baseMethod, user, key: this.attemptKey });
      }
      if (this.failures >= (this.options.maxAuthTries ?? DEFAULT_MAX_AUTH_TRIES)) {
        throw new SshError('ERR_SSH_AUTH', DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, 'Too many authentication failures');
      }
      this.sendFailure(false);
      return;
    }
    // success or partial: the method counts towards AuthenticationMethods.
    const complete = this.policy.succeeded(baseMethod) && outcome === 'success';
    this.completedMethods.push(baseMethod);
    // Logged once the outcome is known: the first factor of several is partial, not accepted.
    this.events.log?.({ outcome: complete ? 'accepted' : 'partial', method: baseMethod, user, key: this.attemptKey });
    if (!complete) {
      this.sendFailure(true);
      return;
    }
    this.done = true;
    this.events.send(UserauthSuccess.encode({}));
    this.events.success(user, this.completedMethods);
  }

  private sendFailure(partialSuccess: boolean): void {
    this.events.send(UserauthFailure.encode({ methods: this.policy.allowed.filter((m) => this.offered.includes(m)), partialSuccess }));
  }

  private async publicKey(user: string, method: string, fields: Buffer): Promise<AuthOutcome | 'postponed'> {
    const hooks = this.options.hooks;
    const hostbound = method === METHOD_PUBLICKEY_HOSTBOUND;
    const request = decodePublicKeyFields(fields, hostbound);
    const accepted = this.options.acceptedAlgorithms ?? signatureAlgorithms.defaults;
    const algorithm = signatureAlgorithms.all.get(request.algorithm);
    if (!algorithm || !accepted.includes(request.algorithm)) return 'failure';
    let key: SshPublicKey;
    if (this.offeredKey?.blob.equals(request.publicKey)) key = this.offeredKey;
    else {
      try {
        key = parsePublicKeyBlob(Buffer.from(request.publicKey));
      } catch {
        return 'failure';
      }
      this.offeredKey = key;
    }
    if (key.type !== algorithm.keyType) return 'failure';
    if (hostbound && (!this.options.hostKeyBlob || !request.hostKey?.equals(this.options.hostKeyBlob))) {
      // The client signed for a different server: a relayed or confused login.
      return 'failure';
    }
    const context: PublicKeyRequest = { user, method, key, algorithm: request.algorithm };
    this.attemptKey = key;
    if (!request.signed) {
      // RFC 4252 §7: a query. Answer PK_OK if the key may be used; this is never a login.
      if (!(await hooks.publicKeyAllowed?.(context))) return 'failure';
      this.events.send(UserauthPkOk.encode({ algorithm: request.algorithm, publicKey: key.blob }));
      return 'postponed';
    }
    const signedData = publicKeySignedData(
      this.options.sessionId,
      user,
      SERVICE_CONNECTION,
      method,
      request.algorithm,
      request.publicKey,
      request.hostKey,
    );
    if (!algorithm.verify(key, signedData, request.signature!)) return 'failure';
    if (!(await hooks.publicKeyAllowed?.(context))) return 'failure';
    const outcome = hooks.publicKeyVerified ? await hooks.publicKeyVerified(context) : 'success';
    return outcome;
  }

  private async password(user: string, fields: Buffer): Promise<AuthOutcome | 'postponed'> {
    const hooks = this.options.hooks;
    const request = decodePasswordFields(fields);
    let outcome: PasswordOutcome;
    if (request.change) {
      if (!hooks.changePassword) return 'failure';
      outcome = await hooks.changePassword({
        user,
        method: METHOD_PASSWORD,
        oldPassword: request.password,
        newPassword: request.newPassword ?? '',
      });
    } else {
      if (!hooks.password) return 'failure';
      outcome = await hooks.password({ user, method: METHOD_PASSWORD, password: request.password });
    }
    if (typeof outcome === 'object') {
      if (!hooks.changePassword) return 'failure';
      this.events.send(UserauthPasswdChangereq.encode({ prompt: outcome.changePassword, language: '' }));
      return 'postponed';
    }
    return outcome;
  }

  private async keyboardInteractive(user: string, fields: Buffer): Promise<AuthOutcome> {
    const hook = this.options.hooks.keyboardInteractive;
    if (!hook) return 'failure';
    const { submethods } = decodeKeyboardInteractiveFields(fields);
    const prompt: KeyboardInteractivePrompt = (request) => {
      if (request.prompts.length > MAX_KBDINT_PROMPTS) {
        return Promise.reject(new RangeError(`at most ${MAX_KBDINT_PROMPTS} prompts per round`));
      }
      return new Promise<string[]>((resolve, reject) => {
        this.pendingInfo = { expected: request.prompts.length, resolve, reject };
        // The client can answer only what it has received.
        this.releaseOutput();
        this.events.send(encodeInfoRequest(request));
      });
    };
    try {
      const outcome = await hook({ user, method: METHOD_KEYBOARD_INTERACTIVE, submethods }, prompt);
      return outcome;
    } catch (error) {
      if (error instanceof SshError) throw error;
      return 'failure';
    } finally {
      this.pendingInfo = undefined;
    }
  }

  /**
   * Like OpenSSH's ensure_minimum_time_since: every failure takes at least a minimum time plus a
   * per-user fraction derived from the user name, so a known and an unknown user look the same.
   */
  private async equalizeTiming(user: string, started: number): Promise<void> {
    const base = this.options.minimumFailureDelayMs ?? 5;
    if (base <= 0) return;
    const perUser = createHash('sha256').update(user).digest().readUInt16BE(0) / 65536;
    const target = base * (1 + perUser);
    const elapsed = Date.now() - started;
    if (elapsed < target) await (this.options.delay ?? sleep)(target - elapsed);
  }

  private fatal(error: SshError | Error): void {
    if (this.done) return;
    this.done = true;
    this.releaseOutput();
    const sshError =
      error instanceof SshError ? error : new ProtocolError(`authentication failed: ${error.message}`, DisconnectReason.PROTOCOL_ERROR as DisconnectReasonCode);
    this.events.fail(sshError);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
