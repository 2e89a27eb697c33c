import { ProtocolError } from '../errors.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** Message numbers, RFC 4250 §4.1 and the extensions we speak. */
export const MSG = {
  DISCONNECT: 1,
  IGNORE: 2,
  UNIMPLEMENTED: 3,
  DEBUG: 4,
  SERVICE_REQUEST: 5,
  SERVICE_ACCEPT: 6,
  EXT_INFO: 7, // RFC 8308
  NEWCOMPRESS: 8, // RFC 8308 (unused by OpenSSH)
  KEXINIT: 20,
  NEWKEYS: 21,
  // 30-49: key exchange method specific
  KEX_ECDH_INIT: 30, // also KEXDH_INIT, KEX_HYBRID_INIT
  KEX_ECDH_REPLY: 31, // also KEXDH_REPLY, KEX_HYBRID_REPLY
  KEX_DH_GEX_REQUEST_OLD: 30,
  KEX_DH_GEX_GROUP: 31,
  KEX_DH_GEX_INIT: 32,
  KEX_DH_GEX_REPLY: 33,
  KEX_DH_GEX_REQUEST: 34,
  USERAUTH_REQUEST: 50,
  USERAUTH_FAILURE: 51,
  USERAUTH_SUCCESS: 52,
  USERAUTH_BANNER: 53,
  // 60-79: method specific
  USERAUTH_PK_OK: 60,
  USERAUTH_PASSWD_CHANGEREQ: 60,
  USERAUTH_INFO_REQUEST: 60,
  USERAUTH_INFO_RESPONSE: 61,
  GLOBAL_REQUEST: 80,
  REQUEST_SUCCESS: 81,
  REQUEST_FAILURE: 82,
  CHANNEL_OPEN: 90,
  CHANNEL_OPEN_CONFIRMATION: 91,
  CHANNEL_OPEN_FAILURE: 92,
  CHANNEL_WINDOW_ADJUST: 93,
  CHANNEL_DATA: 94,
  CHANNEL_EXTENDED_DATA: 95,
  CHANNEL_EOF: 96,
  CHANNEL_CLOSE: 97,
  CHANNEL_REQUEST: 98,
  CHANNEL_SUCCESS: 99,
  CHANNEL_FAILURE: 100,
  PING: 192, // ping@openssh.com (OpenSSH PROTOCOL §1.9)
  PONG: 193,
} as const;

/** The wire types a message field can have (RFC 4251 §5). */
export type FieldType = 'byte' | 'boolean' | 'uint32' | 'uint64' | 'string' | 'utf8' | 'nameList' | 'mpint' | 'cookie' | 'rest';

type FieldValue<T extends FieldType> = T extends 'byte' | 'uint32'
  ? number
  : T extends 'boolean'
    ? boolean
    : T extends 'uint64'
      ? bigint
      : T extends 'utf8'
        ? string
        : T extends 'nameList'
          ? string[]
          : Buffer;

type FieldList = readonly (readonly [string, FieldType])[];

/** The decoded shape of a message: one property per declared field. */
export type MessageFields<F extends FieldList> = { [E in F[number] as E[0]]: FieldValue<E[1]> };

/**
 * One message type, declared once (number, name, ordered fields) and used by both roles to
 * encode and to decode. Decoding checks the message number, bounds-checks every field and
 * rejects trailing bytes. `rest` (only as the last field) takes the remaining bytes, for
 * messages whose tail depends on an earlier field (a channel request's type, an auth method).
 */
export class MessageCodec<F extends FieldList> {
  constructor(
    readonly number: number,
    readonly name: string,
    readonly fields: F,
  ) {}

  encode(values: MessageFields<F>): Buffer {
    const writer = new Writer(64);
    writer.byte(this.number);
    const record = values as Record<string, unknown>;
    for (const [field, type] of this.fields) {
      const value = record[field];
      switch (type) {
        case 'byte':
          writer.byte(value as number);
          break;
        case 'boolean':
          writer.boolean(value as boolean);
          break;
        case 'uint32':
          writer.uint32(value as number);
          break;
        case 'uint64':
          writer.uint64(value as bigint);
          break;
        case 'string':
          writer.string(value as Buffer);
          break;
        case 'utf8':
          writer.string(value as string);
          break;
        case 'nameList':
          writer.nameList(value as string[]);
          break;
        case 'mpint':
          writer.mpintUnsigned(value as Buffer);
          break;
        case 'cookie':
        case 'rest':
          writer.bytes(value as Buffer);
          break;
      }
    }
    return writer.finish();
  }

  decode(payload: Buffer): MessageFields<F> {
    const reader = new Reader(payload, 0, payload.length, `SSH_MSG_${this.name}`);
    const number = reader.byte();
    if (number !== this.number) {
      throw new ProtocolError(`expected SSH_MSG_${this.name} (${this.number}), got message ${number}`);
    }
    const out: Record<string, unknown> = {};
    for (const [field, type] of this.fields) {
      switch (type) {
        case 'byte':
          out[field] = reader.byte();
          break;
        case 'boolean':
          out[field] = reader.boolean();
          break;
        case 'uint32':
          out[field] = reader.uint32();
          break;
        case 'uint64':
          out[field] = reader.uint64();
          break;
        case 'string':
          out[field] = reader.string();
          break;
        case 'utf8':
          out[field] = reader.utf8();
          break;
        case 'nameList':
          out[field] = reader.nameList();
          break;
        case 'mpint':
          out[field] = reader.mpintUnsigned();
          break;
        case 'cookie':
          out[field] = reader.bytes(16);
          break;
        case 'rest':
          out[field] = reader.rest();
          break;
      }
    }
    reader.done();
    return out as MessageFields<F>;
  }
}

function message<const F extends FieldList>(number: number, name: string, fields: F): MessageCodec<F> {
  return new MessageCodec(number, name, fields);
}

// ---- Transport layer (RFC 4253) -------------------------------------------------------------

export const Disconnect = message(MSG.DISCONNECT, 'DISCONNECT', [
  ['reason', 'uint32'],
  ['description', 'utf8'],
  ['language', 'utf8'],
]);
export const Ignore = message(MSG.IGNORE, 'IGNORE', [['data', 'string']]);
export const Unimplemented = message(MSG.UNIMPLEMENTED, 'UNIMPLEMENTED', [['sequence', 'uint32']]);
export const Debug = message(MSG.DEBUG, 'DEBUG', [
  ['alwaysDisplay', 'boolean'],
  ['message', 'utf8'],
  ['language', 'utf8'],
]);
export const ServiceRequest = message(MSG.SERVICE_REQUEST, 'SERVICE_REQUEST', [['service', 'utf8']]);
export const ServiceAccept = message(MSG.SERVICE_ACCEPT, 'SERVICE_ACCEPT', [['service', 'utf8']]);
/** RFC 8308 §2.3: the extensions are name/value pairs, decoded by the transport from `extensions`. */
export const ExtInfo = message(MSG.EXT_INFO, 'EXT_INFO', [
  ['count', 'uint32'],
  ['extensions', 'rest'],
]);
export const KexInit = message(MSG.KEXINIT, 'KEXINIT', [
  ['cookie', 'cookie'],
  ['kexAlgorithms', 'nameList'],
  ['serverHostKeyAlgorithms', 'nameList'],
  ['encryptionClientToServer', 'nameList'],
  ['encryptionServerToClient', 'nameList'],
  ['macClientToServer', 'nameList'],
  ['macServerToClient', 'nameList'],
  ['compressionClientToServer', 'nameList'],
  ['compressionServerToClient', 'nameList'],
  ['languagesClientToServer', 'nameList'],
  ['languagesServerToClient', 'nameList'],
  ['firstKexPacketFollows', 'boolean'],
  ['reserved', 'uint32'],
]);
export type KexInitMessage = MessageFields<typeof KexInit.fields>;
export const NewKeys = message(MSG.NEWKEYS, 'NEWKEYS', []);

/** The client's ephemeral value: KEXDH_INIT (e, an mpint), KEX_ECDH_INIT (Q_C), KEX_HYBRID_INIT (C_INIT). */
export const KexEcdhInit = message(MSG.KEX_ECDH_INIT, 'KEX_ECDH_INIT', [['clientValue', 'string']]);
/** The server's reply: host key K_S, its ephemeral value (f / Q_S / S_REPLY), and the signature of H. */
export const KexEcdhReply = message(MSG.KEX_ECDH_REPLY, 'KEX_ECDH_REPLY', [
  ['hostKey', 'string'],
  ['serverValue', 'string'],
  ['signature', 'string'],
]);
/** RFC 4419 §3. */
export const KexDhGexRequest = message(MSG.KEX_DH_GEX_REQUEST, 'KEX_DH_GEX_REQUEST', [
  ['min', 'uint32'],
  ['preferred', 'uint32'],
  ['max', 'uint32'],
]);
export const KexDhGexGroup = message(MSG.KEX_DH_GEX_GROUP, 'KEX_DH_GEX_GROUP', [
  ['prime', 'mpint'],
  ['generator', 'mpint'],
]);
export const KexDhGexInit = message(MSG.KEX_DH_GEX_INIT, 'KEX_DH_GEX_INIT', [['clientValue', 'string']]);
export const KexDhGexReply = message(MSG.KEX_DH_GEX_REPLY, 'KEX_DH_GEX_REPLY', [
  ['hostKey', 'string'],
  ['serverValue', 'string'],
  ['signature', 'string'],
]);

// ---- OpenSSH extensions ---------------------------------------------------------------------

export const Ping = message(MSG.PING, 'PING', [['data', 'string']]);
export const Pong = message(MSG.PONG, 'PONG', [['data', 'string']]);

// ---- Authentication (RFC 4252) --------------------------------------------------------------

export const UserauthRequest = message(MSG.USERAUTH_REQUEST, 'USERAUTH_REQUEST', [
  ['user', 'utf8'],
  ['service', 'utf8'],
  ['method', 'utf8'],
  ['methodFields', 'rest'],
]);
export const UserauthFailure = message(MSG.USERAUTH_FAILURE, 'USERAUTH_FAILURE', [
  ['methods', 'nameList'],
  ['partialSuccess', 'boolean'],
]);
export const UserauthSuccess = message(MSG.USERAUTH_SUCCESS, 'USERAUTH_SUCCESS', []);
export const UserauthBanner = message(MSG.USERAUTH_BANNER, 'USERAUTH_BANNER', [
  ['message', 'utf8'],
  ['language', 'utf8'],
]);

/** Message names for logs and errors. */
const messageNames = new Map<number, string>();
for (const [name, number] of Object.entries(MSG)) if (!messageNames.has(number)) messageNames.set(number, name);

export function messageName(number: number): string {
  return messageNames.has(number) ? `SSH_MSG_${messageNames.get(number)}` : `message ${number}`;
}
