/**
 * tssh: SSH-2 for Node.js, client and server.
 *
 *   import { connect, createServer } from 'tssh';
 */
export { connect, connectWithSshOptions, SshClient, VERSION, resolveAlgorithms } from './client.js';
export type {
  ConnectOptions,
  CommonConnectOptions,
  SshConfigConnectOptions,
  SshConfigSource,
  ResolvedConnectOptions,
  PasswordContext,
  KnownHostsCommon,
  KnownHostsOptions,
  HostKeyContext,
  AlgorithmSettings,
  ClientEvents,
  ForwardedConnection,
  ExecOptions,
} from './client.js';
export { loadSshConfigs } from './client-config.js';
export { parseSshConfig, loadSshConfig, resolveHost, expandClientPath } from './config/ssh-config.js';
export type {
  SshConfig,
  SshConfigInput,
  SshOptions,
  ParseSshConfigOptions,
  ResolveHostOptions,
  JumpHost,
  Forward,
  ForwardEndpoint,
  LocalContext,
  AddKeysToAgent,
  RequestTTY,
  PubkeyAuthentication,
  StrictHostKeyChecking as SshConfigStrictHostKeyChecking,
} from './config/ssh-config.js';
export { ConfigError } from './config/tokens.js';
export type { EnvironmentSetting, LogLevel, RekeyLimit } from './config/tokens.js';
export type { HostKeyQuestion, HostKeyAsk, KnownHostsOtherName, HostKeyVerifyContext } from './keys/host-key-verifier.js';
export type { KexInfo } from './transport/transport.js';
export type { NegotiatedAlgorithms } from './transport/negotiate.js';
export type { StrictHostKeyChecking } from './keys/host-key-verifier.js';
export type { ChannelStreamEvents } from './channel.js';
export type { ClientSessionEvents } from './client-session.js';
export type { ParsedPrivateKeyFile, ParsePrivateKeyFileOptions, FormatPrivateKeyFileOptions } from './keys/private-key-file.js';
export type { GeneratedKeyType } from './keys/private-key.js';
export type { FingerprintHash } from './keys/fingerprint.js';
export type { ChannelOpenFailureCode } from './connection/messages.js';
export type { AgentClientOptions, AgentRequestOptions, AgentKeyConstraints } from './keys/agent.js';
export { ClientSession } from './client-session.js';
export type { ExecResult, ExitInfo, PtyOptions } from './client-session.js';
export { createServer, SshServer, ServerConnection } from './server.js';
export type {
  ServerOptions,
  ServerConnectionEvents,
  SshServerEvents,
  DirectTcpipRequest,
  RemoteForwardRequest,
} from './server.js';
export { ServerSession } from './server-session.js';
export type { ServerSessionEvents, SessionRequest } from './server-session.js';
export { ChannelStream } from './channel.js';
export type {
  ServerAuthHooks,
  AuthOutcome,
  AuthRequestBase,
  PublicKeyRequest,
  PasswordRequest,
  PasswordChangeRequest,
  PasswordOutcome,
  KeyboardInteractiveRequest,
  KeyboardInteractivePrompt,
  AuthLogEvent,
} from './auth/server.js';
export { MethodPolicy } from './auth/policy.js';
export type { ClientIdentity } from './auth/client.js';
export { AuthenticationFailedError } from './auth/client.js';
export type { InfoRequest, Prompt } from './auth/messages.js';
export type { PtyRequest, WindowChange, ExitSignal } from './connection/session.js';
export { ChannelOpenError } from './connection/mux.js';
export { ChannelOpenFailure } from './connection/messages.js';
export type { SshPublicKey, SshPrivateKey } from './algorithms/types.js';
export { generatePrivateKey } from './keys/private-key.js';
export { parsePrivateKeyFile, formatPrivateKeyFile } from './keys/private-key-file.js';
export { parsePublicKeyText, formatOpenSshPublicKey } from './keys/public-key-text.js';
export { fingerprint } from './keys/fingerprint.js';
export { AgentClient, AgentServer, InMemoryAgent } from './keys/agent.js';
export type { SshAgent, AgentIdentity } from './keys/agent.js';
export { HostKeyVerifier } from './keys/host-key-verifier.js';
export {
  SshError,
  ProtocolError,
  VersionError,
  NegotiationError,
  KexError,
  MacError,
  CompressionError,
  HostKeyError,
  DisconnectError,
  ConnectionLostError,
  TimeoutError,
  KeyFormatError,
  DisconnectReason,
  disconnectReasonName,
} from './errors.js';
export type { SshErrorCode, DisconnectReasonCode } from './errors.js';
// Types the public API refers to (option objects, callbacks' arguments, the objects behind a
// channel stream), exported so that applications can name them.
export type { InMemoryAgentKey, InMemoryAgentOptions, AgentServeOptions, AgentListener } from './keys/agent.js';
export type { HostKeyVerifierOptions, HostKeyVerdict } from './keys/host-key-verifier.js';
export type { Passphrase } from './keys/passphrase.js';
export type { PrivateKeyFileFormat, PassphraseSource } from './keys/private-key-file.js';
export type { OpenSshPublicKey, PublicKeyTextFormat } from './keys/public-key-text.js';
export type { ChannelStreamOptions } from './channel.js';
export type { AlgorithmLists } from './transport/transport.js';
export type { ChannelEvents } from './connection/mux.js';
export type { HostKeyLookup, KnownHostsBadLine } from './keys/known-hosts.js';
