/**
 * The client's host key decision, ssh_config(5) StrictHostKeyChecking over the known_hosts files
 * (./known-hosts.ts), following what ssh(1) does in sshconnect.c's check_host_key():
 *
 *              | known, same key | unknown host          | changed key        | revoked key
 *   strict     | accept          | refuse                | refuse             | refuse
 *   ask        | accept          | ask; record, accept   | refuse             | refuse
 *   accept-new | accept          | record, accept        | refuse             | refuse
 *   off        | accept          | record, accept        | accept, untrusted  | accept, untrusted
 *
 * `ask` puts the question to the `ask` callback (ssh(1) prompts "Are you sure you want to continue
 * connecting (yes/no/[fingerprint])?"); without a callback, or when it says no, the key is refused
 * as under strict. A changed or revoked key is never asked about.
 *
 * "untrusted" means accepted with a warning only because the policy is off: ssh(1) then turns off
 * password and keyboard-interactive authentication, agent/X11/port forwarding and tunnels, as a
 * man in the middle could be listening. The verdict says so; the connection layer enforces it.
 *
 * New keys go to the first UserKnownHostsFile, hashed when HashKnownHosts is set. A host on a
 * port other than 22 that is unknown as `[host]:port` is also looked up as plain `host`, and
 * accepted if its key is there (ssh(1) "checking without port identifier"). A host name holding
 * any of `@?*#[]|'"\` is never recorded, since it would read back as a pattern or a hashed name.
 */
import { HostKeyError } from '../errors.js';
import type { SshPublicKey } from '../algorithms/types.js';
import { asciiLowercase } from './patterns.js';
import { sha256Fingerprint } from './public-key-text.js';
import { describeKey } from './fingerprint.js';
import { appendKnownHost, DEFAULT_SSH_PORT, KnownHosts, knownHostsName } from './known-hosts.js';
import type { HostKeyLookup, KnownHostEntry, KnownHostsBadLine } from './known-hosts.js';

/**
 * StrictHostKeyChecking: yes → 'strict', ask → 'ask' (a callback decides on unknown hosts),
 * accept-new → 'accept-new', no/off → 'off'.
 */
export type StrictHostKeyChecking = 'strict' | 'ask' | 'accept-new' | 'off';

/** A known_hosts line that holds the key a server offered, under another name. */
export interface KnownHostsOtherName {
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /** The hosts field as written (a pattern list, or `|1|…` when hashed). */
  readonly hosts: string;
  readonly hashed: boolean;
}

/**
 * What StrictHostKeyChecking=ask asks about a host whose name is not in known_hosts: everything
 * ssh(1) shows in its "The authenticity of host … can't be established" prompt.
 */
export interface HostKeyQuestion {
  /** The name the key is recorded under if accepted: `host`, `[host]:port`, or the HostKeyAlias. */
  readonly name: string;
  /** The host name connected to (lower-cased) and its port. */
  readonly host: string;
  readonly port: number;
  /**
   * The server's address when the client reached it over TCP itself (`127.0.0.1`); undefined
   * through a ProxyCommand, a jump host or a given stream (ssh says "no hostip for proxy command").
   */
  readonly address: string | undefined;
  readonly key: SshPublicKey;
  /** ssh's short name for the key type: `ED25519`, `ECDSA`, `RSA`. */
  readonly keyType: string;
  /** `SHA256:…`, as ssh shows it (and as a user may paste it back to accept). */
  readonly fingerprint: string;
  /** Entries that already hold this very key under other names (ssh lists them). */
  readonly otherNames: readonly KnownHostsOtherName[];
}

/** Answers a HostKeyQuestion: true accepts the key (it is then recorded), false refuses the connection. */
export type HostKeyAsk = (question: HostKeyQuestion) => boolean | Promise<boolean>;

/** Where the connection came from, for the question asked under StrictHostKeyChecking=ask. */
export interface HostKeyVerifyContext {
  /** The server's IP address when connected over TCP directly. */
  readonly address?: string;
}

export interface HostKeyVerifierOptions {
  /** UserKnownHostsFile, in order (paths already expanded); new keys are written to the first. */
  readonly userKnownHostsFiles: readonly string[];
  /** GlobalKnownHostsFile, read only. */
  readonly globalKnownHostsFiles?: readonly string[];
  readonly policy: StrictHostKeyChecking;
  /** HashKnownHosts: hash the names of entries we write. */
  readonly hashKnownHosts?: boolean;
  /** Messages ssh(1) would print as warnings: a key recorded, a changed or revoked key let through by 'off'. */
  readonly onWarning?: (message: string) => void;
  /** Asked about unknown hosts under policy 'ask'; without it 'ask' refuses them as 'strict' does. */
  readonly ask?: HostKeyAsk;
}

export interface HostKeyVerdict {
  /** What the files said (after the plain-host retry for non-22 ports). */
  readonly lookup: HostKeyLookup;
  /** False when accepted only because the policy is 'off' although the key changed or is revoked. */
  readonly trusted: boolean;
  /** Where the key was recorded, when it was new and we wrote it. */
  readonly added?: { readonly file: string; readonly line: number };
  /** Lines of the files that did not parse, for the caller's logs. */
  readonly skipped: readonly KnownHostsBadLine[];
}

/** Characters that make a name unfit to record (ssh(1) check_host_key()). */
const UNRECORDABLE = /[@?*#[\]|'"\\]/;

function location(entry: KnownHostEntry): string {
  return `${entry.file}:${entry.line}`;
}

/**
 * The refusal for a changed key, e.g.
 * `host key for [127.0.0.1]:2222 has changed: expected SHA256:…, got SHA256:… (offending key in
 * /home/u/.ssh/known_hosts:3); remove it with: tssh-keygen -R "[127.0.0.1]:2222"`.
 */
export function changedHostKeyMessage(name: string, expected: readonly KnownHostEntry[], key: SshPublicKey | Buffer): string {
  const fingerprints = [...new Set(expected.map((e) => sha256Fingerprint(e.blob)))].join(' or ');
  const several = expected.length > 1;
  const where = expected.map(location).join(', ');
  return (
    `host key for ${name} has changed: expected ${fingerprints}, got ${sha256Fingerprint(key)} ` +
    `(offending key${several ? 's' : ''} in ${where}); remove ${several ? 'them' : 'it'} with: tssh-keygen -R "${name}"`
  );
}

export function revokedHostKeyMessage(name: string, entry: KnownHostEntry): string {
  return `host key for ${name} is revoked: ${entry.keyType} ${sha256Fingerprint(entry.blob)} is marked @revoked in ${location(entry)}`;
}

export class HostKeyVerifier {
  constructor(private readonly options: HostKeyVerifierOptions) {}

  /** Decide on the key a server at host:port proved. Resolves with the verdict or rejects with HostKeyError. */
  async verify(host: string, port: number, key: SshPublicKey, context: HostKeyVerifyContext = {}): Promise<HostKeyVerdict> {
    const name = knownHostsName(host, port);
    const fallback = port === DEFAULT_SSH_PORT || port === 0 ? undefined : knownHostsName(host, DEFAULT_SSH_PORT);
    return this.decide(name, fallback, !UNRECORDABLE.test(host), key, { host: asciiLowercase(host), port, address: context.address });
  }

  /** Decide under an explicit name (HostKeyAlias), which is used as is: no port is added. */
  async verifyAlias(alias: string, key: SshPublicKey, context: HostKeyVerifyContext & { host?: string; port?: number } = {}): Promise<HostKeyVerdict> {
    const name = asciiLowercase(alias);
    return this.decide(name, undefined, !UNRECORDABLE.test(alias), key, { host: asciiLowercase(context.host ?? alias), port: context.port ?? DEFAULT_SSH_PORT, address: context.address });
  }

  /**
   * A `verifyHostKey` callback for a client transport talking to host:port (checked under
   * `alias` instead when given: HostKeyAlias). `address()` tells the 'ask' question where the
   * server is, once connected.
   */
  callback(host: string, port: number, options: { alias?: string; address?: () => string | undefined } = {}): (key: SshPublicKey) => Promise<boolean> {
    return async (key) => {
      const address = options.address?.();
      if (options.alias !== undefined) await this.verifyAlias(options.alias, key, { host, port, address });
      else await this.verify(host, port, key, { address });
      return true;
    };
  }

  private warn(message: string): void {
    this.options.onWarning?.(message);
  }

  private async decide(
    name: string,
    fallback: string | undefined,
    recordable: boolean,
    key: SshPublicKey,
    where: { host: string; port: number; address: string | undefined },
  ): Promise<HostKeyVerdict> {
    const { userKnownHostsFiles, globalKnownHostsFiles = [], policy } = this.options;
    let knownHosts: KnownHosts;
    try {
      knownHosts = await KnownHosts.load([...userKnownHostsFiles, ...globalKnownHostsFiles]);
    } catch (error) {
      // An unreadable file might hold this host's key: refuse rather than treat the host as new.
      throw new HostKeyError(`cannot read known_hosts: ${error instanceof Error ? error.message : String(error)}`);
    }
    const skipped = knownHosts.invalid;
    let lookup = knownHosts.lookupName(name, key);
    if (lookup.status === 'unknown' && fallback !== undefined) {
      const plain = knownHosts.lookupName(fallback, key);
      if (plain.status === 'match') lookup = plain;
    }
    switch (lookup.status) {
      case 'match':
        return { lookup, trusted: true, skipped };
      case 'revoked': {
        const message = revokedHostKeyMessage(name, lookup.entry);
        if (policy !== 'off') throw new HostKeyError(message);
        this.warn(`${message}; accepted because StrictHostKeyChecking is off`);
        return { lookup, trusted: false, skipped };
      }
      case 'mismatch': {
        const message = changedHostKeyMessage(name, lookup.expected, key);
        if (policy !== 'off') throw new HostKeyError(message);
        this.warn(`${message}; accepted because StrictHostKeyChecking is off`);
        return { lookup, trusted: false, skipped };
      }
      case 'unknown':
        if (this.options.policy === 'ask') await this.ask(name, key, where, knownHosts);
        return this.unknown(name, recordable, key, lookup, skipped);
    }
  }

  /** StrictHostKeyChecking=ask: put the question; resolves if the key was accepted, else throws. */
  private async ask(name: string, key: SshPublicKey, where: { host: string; port: number; address: string | undefined }, knownHosts: KnownHosts): Promise<void> {
    const offered = `${key.type} ${sha256Fingerprint(key)}`;
    const ask = this.options.ask;
    if (ask === undefined) {
      throw new HostKeyError(
        `no host key is known for ${name} and StrictHostKeyChecking is ask, but there is no one to ask (the server offered ${offered}); if you trust it, add it to known_hosts`,
      );
    }
    const otherNames = knownHosts.files.flatMap((file) =>
      file.entries
        .filter((entry) => entry.marker === undefined && entry.blob.equals(key.blob))
        .map((entry) => ({ file: entry.file, line: entry.line, hosts: entry.hosts, hashed: entry.hashed !== undefined })),
    );
    const accepted = await ask({
      name,
      host: where.host,
      port: where.port,
      address: where.address,
      key,
      keyType: describeKey(key).label,
      fingerprint: sha256Fingerprint(key),
      otherNames,
    });
    if (accepted !== true) throw new HostKeyError(`host key verification failed: the ${offered} key of ${name} was not accepted`);
  }

  private async unknown(
    name: string,
    recordable: boolean,
    key: SshPublicKey,
    lookup: HostKeyLookup,
    skipped: readonly KnownHostsBadLine[],
  ): Promise<HostKeyVerdict> {
    const offered = `${key.type} ${sha256Fingerprint(key)}`;
    if (this.options.policy === 'strict') {
      throw new HostKeyError(
        `no host key is known for ${name} and StrictHostKeyChecking is strict (the server offered ${offered}); if you trust it, add it to known_hosts or connect once with StrictHostKeyChecking=accept-new`,
      );
    }
    if (!recordable && this.options.policy === 'ask') {
      // Accepted by the user for this connection, but such a name would read back as a pattern.
      this.warn(`${name} is not recorded in known_hosts: a name with any of @?*#[]|'"\\ is never recorded`);
      return { lookup, trusted: true, skipped };
    }
    if (!recordable) {
      throw new HostKeyError(`no host key is known for ${name}, and a name with any of @?*#[]|'"\\ is never recorded (the server offered ${offered})`);
    }
    const file = this.options.userKnownHostsFiles[0];
    if (file === undefined) {
      throw new HostKeyError(`no host key is known for ${name} and there is no UserKnownHostsFile to record it in`);
    }
    try {
      const line = await appendKnownHost(file, name, key, { hash: this.options.hashKnownHosts === true });
      // ssh(1)'s words exactly: "Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts."
      this.warn(`Permanently added '${name}' (${describeKey(key).label}) to the list of known hosts.`);
      return { lookup, trusted: true, added: { file, line }, skipped };
    } catch (error) {
      // ssh(1) goes on when it cannot write the file: the key was accepted by policy either way.
      this.warn(`failed to add ${name} to ${file}: ${error instanceof Error ? error.message : String(error)}`);
      return { lookup, trusted: true, skipped };
    }
  }
}
