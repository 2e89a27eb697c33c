/**
 * One error hierarchy for the whole library. Every error carries a stable `code`; errors that end a
 * connection also carry the SSH disconnect reason code (RFC 4253 §11.1) that goes on the wire.
 */

/** Disconnect reason codes, RFC 4253 §11.1 / RFC 4250 §4.2.2. */
export const DisconnectReason = {
  HOST_NOT_ALLOWED_TO_CONNECT: 1,
  PROTOCOL_ERROR: 2,
  KEY_EXCHANGE_FAILED: 3,
  RESERVED: 4,
  MAC_ERROR: 5,
  COMPRESSION_ERROR: 6,
  SERVICE_NOT_AVAILABLE: 7,
  PROTOCOL_VERSION_NOT_SUPPORTED: 8,
  HOST_KEY_NOT_VERIFIABLE: 9,
  CONNECTION_LOST: 10,
  BY_APPLICATION: 11,
  TOO_MANY_CONNECTIONS: 12,
  AUTH_CANCELLED_BY_USER: 13,
  NO_MORE_AUTH_METHODS_AVAILABLE: 14,
  ILLEGAL_USER_NAME: 15,
} as const;
export type DisconnectReasonCode = (typeof DisconnectReason)[keyof typeof DisconnectReason];

const reasonNames = new Map<number, string>(
  Object.entries(DisconnectReason).map(([name, code]) => [code, name]),
);

/** The symbolic name of a disconnect reason code (`PROTOCOL_ERROR`), or `UNKNOWN(n)`. */
export function disconnectReasonName(code: number): string {
  return reasonNames.get(code) ?? `UNKNOWN(${code})`;
}

export type SshErrorCode =
  | 'ERR_SSH_PROTOCOL'
  | 'ERR_SSH_VERSION'
  | 'ERR_SSH_KEX'
  | 'ERR_SSH_NEGOTIATION'
  | 'ERR_SSH_MAC'
  | 'ERR_SSH_COMPRESSION'
  | 'ERR_SSH_HOST_KEY'
  | 'ERR_SSH_DISCONNECTED'
  | 'ERR_SSH_CONNECTION_LOST'
  | 'ERR_SSH_TIMEOUT'
  | 'ERR_SSH_AUTH'
  | 'ERR_SSH_KEY_FORMAT'
  | 'ERR_SSH_CHANNEL_OPEN';

/** Base class of every error tssh throws or emits. */
export class SshError extends Error {
  readonly code: SshErrorCode;
  /** The reason code sent (or to send) in SSH_MSG_DISCONNECT when this error ends a connection. */
  readonly reason: DisconnectReasonCode;
  constructor(code: SshErrorCode, reason: DisconnectReasonCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
  }
}

/** The peer broke the protocol: malformed, truncated or out-of-place data. */
export class ProtocolError extends SshError {
  constructor(message: string, reason: DisconnectReasonCode = DisconnectReason.PROTOCOL_ERROR, options?: ErrorOptions) {
    super('ERR_SSH_PROTOCOL', reason, message, options);
  }
}

/** The peer speaks a protocol version we do not (SSH-1), or sent no valid identification. */
export class VersionError extends SshError {
  constructor(message: string) {
    super('ERR_SSH_VERSION', DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED, message);
  }
}

/** No algorithm in common for one category of KEXINIT. */
export class NegotiationError extends SshError {
  constructor(
    readonly category: string,
    readonly clientList: readonly string[],
    readonly serverList: readonly string[],
  ) {
    super(
      'ERR_SSH_NEGOTIATION',
      DisconnectReason.KEY_EXCHANGE_FAILED,
      `no matching ${category}: client offers [${clientList.join(',')}], server offers [${serverList.join(',')}]`,
    );
  }
}

/** The key exchange failed: an invalid public value, a bad signature, an impossible group. */
export class KexError extends SshError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_SSH_KEX', DisconnectReason.KEY_EXCHANGE_FAILED, message, options);
  }
}

/** A packet's MAC or AEAD tag did not verify: the stream was corrupted or tampered with. */
export class MacError extends SshError {
  constructor(message = 'message authentication code incorrect: the stream was corrupted or tampered with') {
    super('ERR_SSH_MAC', DisconnectReason.MAC_ERROR, message);
  }
}

/** Compressed data that does not inflate, or inflates beyond the cap. */
export class CompressionError extends SshError {
  constructor(message: string) {
    super('ERR_SSH_COMPRESSION', DisconnectReason.COMPRESSION_ERROR, message);
  }
}

/** The server's host key was refused (unknown with a strict policy, changed, revoked, or a bad signature). */
export class HostKeyError extends SshError {
  constructor(message: string) {
    super('ERR_SSH_HOST_KEY', DisconnectReason.HOST_KEY_NOT_VERIFIABLE, message);
  }
}

/** The peer sent SSH_MSG_DISCONNECT. */
export class DisconnectError extends SshError {
  constructor(
    readonly peerReason: number,
    readonly description: string,
  ) {
    super(
      'ERR_SSH_DISCONNECTED',
      DisconnectReason.BY_APPLICATION,
      `peer disconnected: ${disconnectReasonName(peerReason)}${description ? `: ${description}` : ''}`,
    );
  }
}

/** The connection ended without a DISCONNECT (socket closed or reset). */
export class ConnectionLostError extends SshError {
  constructor(message = 'connection lost: the peer closed the connection without a DISCONNECT', options?: ErrorOptions) {
    super('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, message, options);
  }
}

/** Something took longer than allowed. */
export class TimeoutError extends SshError {
  constructor(message: string) {
    super('ERR_SSH_TIMEOUT', DisconnectReason.BY_APPLICATION, message);
  }
}

/** A key file or key blob that cannot be read. */
export class KeyFormatError extends SshError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_SSH_KEY_FORMAT', DisconnectReason.PROTOCOL_ERROR, message, options);
  }
}
