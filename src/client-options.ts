/**
 * The options of `connect()`, on their own so that the client (./client.ts) and the ssh_config
 * mapping (./client-config.ts) share them without importing each other. Types only.
 */
import type { Duplex } from 'node:stream';
import type { ClientIdentity } from './auth/client.js';
import type { InfoRequest } from './auth/messages.js';
import type { SshPrivateKey, SshPublicKey } from './algorithms/types.js';
import type { HostKeyAsk, StrictHostKeyChecking } from './keys/host-key-verifier.js';
import type { SshAgent } from './keys/agent.js';
import type { SshConfig } from './config/ssh-config.js';

/** Algorithm settings: a list, or OpenSSH's `+alg`, `-alg`, `^alg` edits of the defaults. */
export interface AlgorithmSettings {
  readonly kex?: string | readonly string[];
  readonly hostKey?: string | readonly string[];
  readonly cipher?: string | readonly string[];
  readonly mac?: string | readonly string[];
  readonly compression?: string | readonly string[];
}

/** What a `password` function is told: the account a password is asked for (through a jump host, each hop's own). */
export interface PasswordContext {
  readonly username: string;
  readonly host: string;
  readonly port: number;
}

/** What `verifyHostKey` is told about the key it decides on. */
export interface HostKeyContext {
  readonly host: string;
  readonly port: number;
  readonly algorithm: string;
}

/** The known_hosts options every policy shares (see KnownHostsOptions). */
export interface KnownHostsCommon {
  /** UserKnownHostsFile list; new keys are written to the first (default ~/.ssh/known_hosts, ~/.ssh/known_hosts2). */
  readonly files?: readonly string[];
  /** GlobalKnownHostsFile list (default /etc/ssh/ssh_known_hosts, /etc/ssh/ssh_known_hosts2). */
  readonly globalFiles?: readonly string[];
  /** HashKnownHosts for entries we write. */
  readonly hash?: boolean;
  /** HostKeyAlias: look the key up (and record it) under this name instead of the host's. */
  readonly hostKeyAlias?: string;
  /**
   * OpenSSH's UpdateHostKeys: once logged in, record the other host keys the server announces
   * (hostkeys-00@openssh.com) and proves it holds, if the key this connection was verified with
   * is itself in known_hosts. Default false; true when connecting through ssh_config unless
   * StrictHostKeyChecking is no.
   */
  readonly updateHostKeys?: boolean;
  /** Warnings such as "Permanently added '[host]:2222' (ED25519) to the list of known hosts." */
  readonly onWarning?: (message: string) => void;
}

/**
 * known_hosts checking. `policy` is StrictHostKeyChecking: 'strict' (default) refuses unknown
 * keys, 'ask' asks the `ask` callback about them, 'accept-new' records them, 'off' accepts
 * anything. A changed or revoked key is refused by every policy but 'off'.
 */
export type KnownHostsOptions = KnownHostsCommon &
  (
    | {
        readonly policy?: 'strict' | 'accept-new' | 'off';
        /** Used when an ssh_config says StrictHostKeyChecking ask (see `sshConfig`). */
        readonly ask?: HostKeyAsk;
      }
    | {
        readonly policy: 'ask';
        /** Decides on a host whose key is not in known_hosts; an accepted key is recorded in the first file. */
        readonly ask: HostKeyAsk;
      }
  );

/** KnownHostsOptions without the pairing of 'ask' with its callback (without one, 'ask' refuses unknown hosts). */
export type KnownHostsSettings = KnownHostsCommon & { readonly policy?: StrictHostKeyChecking; readonly ask?: HostKeyAsk };

/** Where connect() reads ssh_config(5) from: see `sshConfig`. */
export type SshConfigSource = true | string | SshConfig | readonly (string | SshConfig)[];

/** The options every connection takes, whether or not an ssh_config describes the host. */
export interface CommonConnectOptions {
  readonly host?: string;
  readonly port?: number;
  /** An existing byte stream to speak SSH over (a jump host's channel, a test pipe). */
  readonly sock?: Duplex;
  /** Keys held in memory. */
  readonly privateKeys?: readonly SshPrivateKey[];
  /** Private key files (OpenSSH, PEM, PKCS#8, PuTTY), read when publickey is tried. */
  readonly privateKeyFiles?: readonly string[];
  /** The passphrase for encrypted key files: a string, or asked for each file that needs one. */
  readonly passphrase?: string | ((path: string) => string | Promise<string>);
  /** An SSH agent: a socket path (e.g. process.env.SSH_AUTH_SOCK) or any SshAgent. Its keys are tried first. */
  readonly agent?: string | SshAgent;
  /** Other identities (hardware keys, custom signers): anything that can sign. */
  readonly identities?: readonly ClientIdentity[];
  /**
   * A password, or a function asked for one per attempt (1, 2, …; undefined gives up), told which
   * account it is for: ssh's "alice@server's password:" prompt.
   */
  readonly password?: string | ((attempt: number, context: PasswordContext) => string | undefined | Promise<string | undefined>);
  readonly keyboardInteractive?: (request: InfoRequest) => string[] | undefined | Promise<string[] | undefined>;
  /** The server says the password expired (RFC 4252 §8): return the old and the new one, or undefined to give up. */
  readonly changePassword?: (prompt: string) => { oldPassword: string; newPassword: string } | undefined | Promise<{ oldPassword: string; newPassword: string } | undefined>;
  /** Signature algorithms we may use for our own keys (PubkeyAcceptedAlgorithms); default: all we support. */
  readonly publicKeyAlgorithms?: readonly string[];
  /** Methods in order (default publickey, keyboard-interactive, password). */
  readonly authMethods?: readonly string[];
  /**
   * Send the first key's signed USERAUTH_REQUEST right behind the SERVICE_REQUEST for
   * ssh-userauth, without waiting for the SERVICE_ACCEPT: one round trip less per login. Done only
   * when publickey comes first and the first identity is a key in this process that is not RSA
   * (whose algorithm would wait for server-sig-algs); that request is then plain `publickey`, since
   * whether the server takes publickey-hostbound-v00@openssh.com is only known from its EXT_INFO.
   * A server handles its messages in order, so this is safe with OpenSSH, the ssh2 package and
   * tsshd; set false for a server that cannot take a request before it has accepted the service.
   * Not done when delayed compression (zlib@openssh.com) was negotiated. Default true.
   */
  readonly pipelineAuthentication?: boolean;
  /**
   * Send the first key exchange message with our KEXINIT, guessing that the server's first kex
   * and host key algorithms are our first (RFC 4253 §7): one round trip less per connection when
   * right; when wrong the server drops it and the exchange goes on as without. Default: only with
   * servers known to handle a guess, to share our default first choices and to answer it at once,
   * by their identification (tssh), and not for ten minutes with a destination (host and port)
   * whose server did not take the last guess; true: with any server, for servers you know handle
   * a guess (the ssh2 package's server, 1.17, drops even a right one, and the exchange then stalls
   * until readyTimeout; OpenSSH's sshd takes one, but its reply then waits about 40 ms for our
   * delayed ACK, as it leaves Nagle's algorithm on); false: never. Never for a group exchange
   * method first. The debug log tells how it went.
   */
  readonly guessKex?: boolean;
  /**
   * Decide whether to trust the server's host key yourself. Without it the key is checked
   * against known_hosts (see `knownHosts`): host key checking is never off by default.
   */
  readonly verifyHostKey?: (key: SshPublicKey, context: HostKeyContext) => boolean | Promise<boolean>;
  /** known_hosts checking (default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, policy strict). */
  readonly knownHosts?: KnownHostsOptions;
  readonly algorithms?: AlgorithmSettings;
  /**
   * Milliseconds to wait for the connection to be ready (default 20 s). Time spent in the callbacks
   * that may wait for a person (password, passphrase, keyboardInteractive, changePassword,
   * knownHosts.ask) does not count: the wait starts again after each answer.
   */
  readonly readyTimeout?: number;
  /** ServerAliveInterval in ms (0 = off) and ServerAliveCountMax (default 3). */
  readonly keepaliveInterval?: number;
  readonly keepaliveCountMax?: number;
  readonly rekeyBytes?: number;
  readonly rekeyIntervalMs?: number;
  readonly signal?: AbortSignal;
  /** Protocol-level log lines, like `ssh -vvv`; never contains secrets. */
  readonly debug?: (line: string) => void;
}

/** connect() to a host given by its options alone (no ssh_config is read: see SshConfigConnectOptions). */
export interface ConnectOptions extends CommonConnectOptions {
  readonly username: string;
  /** No ssh_config is read (the default); give a source to read one (SshConfigConnectOptions). */
  readonly sshConfig?: false;
}

/**
 * connect() to a host (an alias) as an ssh_config describes it, like `ssh host`. The options
 * given here win over the files: `host` is the alias the files are read for; `username` and
 * `port` win over User and Port; `privateKeyFiles` are tried before the IdentityFile lines (as
 * `ssh -i`); every other option set here replaces what the files would have set, field by field
 * for `knownHosts` and `algorithms`. ProxyJump hops are configured by the files alone, with the
 * callbacks (passphrase, password, keyboardInteractive, changePassword, verifyHostKey,
 * knownHosts.ask/onWarning), debug, signal and readyTimeout given here.
 */
export interface SshConfigConnectOptions extends CommonConnectOptions {
  /** The destination as you would give it to ssh: an alias or a host name. */
  readonly host: string;
  /** User: default the files' User, else the local user. */
  readonly username?: string;
  /**
   * Which ssh_config to read: `true` for ~/.ssh/config then /etc/ssh/ssh_config (both optional),
   * a file path (which must exist), a parsed config (parseSshConfig()), or a list of these, read
   * in order (the first value obtained for an option wins, as in ssh).
   */
  readonly sshConfig: SshConfigSource;
  /** Options read before any file, as `ssh -o 'Keyword value'`: e.g. `['StrictHostKeyChecking accept-new']`. */
  readonly sshConfigOverrides?: readonly string[];
}

/**
 * connectWithSshOptions(): the options given beside a destination already resolved from ssh_config
 * (resolveHost()); they win over it as in SshConfigConnectOptions.
 */
export interface ResolvedConnectOptions extends Omit<CommonConnectOptions, 'host' | 'port'> {
  /** The configs ProxyJump hops are resolved through (normally the ones the destination came from; default none). */
  readonly jumpConfigs?: readonly SshConfig[];
}
