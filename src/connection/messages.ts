/**
 * Connection protocol messages (RFC 4254). Most use declared codecs; CHANNEL_DATA and
 * CHANNEL_EXTENDED_DATA, the per-packet hot path, are encoded and decoded by hand without
 * copying the data.
 */
import { MessageCodec, MSG } from '../wire/messages.js';
import { Reader } from '../wire/reader.js';

/** RFC 4254 §5.1 reason codes for SSH_MSG_CHANNEL_OPEN_FAILURE. */
export const ChannelOpenFailure = {
  ADMINISTRATIVELY_PROHIBITED: 1,
  CONNECT_FAILED: 2,
  UNKNOWN_CHANNEL_TYPE: 3,
  RESOURCE_SHORTAGE: 4,
} as const;
export type ChannelOpenFailureCode = (typeof ChannelOpenFailure)[keyof typeof ChannelOpenFailure];

export const GlobalRequest = new MessageCodec(MSG.GLOBAL_REQUEST, 'GLOBAL_REQUEST', [
  ['name', 'utf8'],
  ['wantReply', 'boolean'],
  ['data', 'rest'],
] as const);
export const RequestSuccess = new MessageCodec(MSG.REQUEST_SUCCESS, 'REQUEST_SUCCESS', [['data', 'rest']] as const);
export const RequestFailure = new MessageCodec(MSG.REQUEST_FAILURE, 'REQUEST_FAILURE', [] as const);

export const ChannelOpen = new MessageCodec(MSG.CHANNEL_OPEN, 'CHANNEL_OPEN', [
  ['type', 'utf8'],
  ['senderChannel', 'uint32'],
  ['initialWindow', 'uint32'],
  ['maxPacket', 'uint32'],
  ['data', 'rest'],
] as const);
export const ChannelOpenConfirmation = new MessageCodec(MSG.CHANNEL_OPEN_CONFIRMATION, 'CHANNEL_OPEN_CONFIRMATION', [
  ['recipientChannel', 'uint32'],
  ['senderChannel', 'uint32'],
  ['initialWindow', 'uint32'],
  ['maxPacket', 'uint32'],
  ['data', 'rest'],
] as const);
export const ChannelOpenFailureMessage = new MessageCodec(MSG.CHANNEL_OPEN_FAILURE, 'CHANNEL_OPEN_FAILURE', [
  ['recipientChannel', 'uint32'],
  ['reason', 'uint32'],
  ['description', 'utf8'],
  ['language', 'utf8'],
] as const);
export const ChannelWindowAdjust = new MessageCodec(MSG.CHANNEL_WINDOW_ADJUST, 'CHANNEL_WINDOW_ADJUST', [
  ['recipientChannel', 'uint32'],
  ['bytesToAdd', 'uint32'],
] as const);
export const ChannelEof = new MessageCodec(MSG.CHANNEL_EOF, 'CHANNEL_EOF', [['recipientChannel', 'uint32']] as const);
export const ChannelClose = new MessageCodec(MSG.CHANNEL_CLOSE, 'CHANNEL_CLOSE', [['recipientChannel', 'uint32']] as const);
export const ChannelRequest = new MessageCodec(MSG.CHANNEL_REQUEST, 'CHANNEL_REQUEST', [
  ['recipientChannel', 'uint32'],
  ['type', 'utf8'],
  ['wantReply', 'boolean'],
  ['data', 'rest'],
] as const);
export const ChannelSuccess = new MessageCodec(MSG.CHANNEL_SUCCESS, 'CHANNEL_SUCCESS', [['recipientChannel', 'uint32']] as const);
export const ChannelFailure = new MessageCodec(MSG.CHANNEL_FAILURE, 'CHANNEL_FAILURE', [['recipientChannel', 'uint32']] as const);

/**
 * The header of SSH_MSG_CHANNEL_DATA (byte 94, uint32 recipient, uint32 length) or, for a
 * non-zero `dataType`, SSH_MSG_CHANNEL_EXTENDED_DATA (byte 95, uint32 recipient, uint32 type,
 * uint32 length): the data itself follows it in the packet without being copied here.
 */
export function encodeChannelDataHeader(recipient: number, dataType: number, length: number): Buffer {
  const head = Buffer.allocUnsafe(dataType === 0 ? 9 : 13);
  head[0] = dataType === 0 ? MSG.CHANNEL_DATA : MSG.CHANNEL_EXTENDED_DATA;
  head.writeUInt32BE(recipient, 1);
  if (dataType !== 0) head.writeUInt32BE(dataType, 5);
  head.writeUInt32BE(length, head.length - 4);
  return head;
}

/** A whole SSH_MSG_CHANNEL_DATA message (tests and callers without a zero-copy path). */
export function encodeChannelData(recipient: number, data: Buffer, offset: number, length: number): Buffer {
  return Buffer.concat([encodeChannelDataHeader(recipient, 0, length), data.subarray(offset, offset + length)]);
}

/** A whole SSH_MSG_CHANNEL_EXTENDED_DATA message (type 1 is stderr). */
export function encodeChannelExtendedData(recipient: number, dataType: number, data: Buffer, offset: number, length: number): Buffer {
  return Buffer.concat([encodeChannelDataHeader(recipient, dataType, length), data.subarray(offset, offset + length)]);
}

/** Decode CHANNEL_DATA or CHANNEL_EXTENDED_DATA; the data is a view into the payload. */
export function decodeChannelData(payload: Buffer): { recipient: number; dataType: number; data: Buffer } {
  const extended = payload[0] === MSG.CHANNEL_EXTENDED_DATA;
  const r = new Reader(payload, 1, payload.length, extended ? 'SSH_MSG_CHANNEL_EXTENDED_DATA' : 'SSH_MSG_CHANNEL_DATA');
  const recipient = r.uint32();
  const dataType = extended ? r.uint32() : 0;
  const data = r.string();
  r.done();
  return { recipient, dataType, data };
}
