/**
 * Method-specific userauth messages (RFC 4252 §7-8, RFC 4256 §3) and the data a publickey
 * signature covers. Message number 60 means PK_OK, PASSWD_CHANGEREQ or INFO_REQUEST depending
 * on the method in progress; each has its own codec here.
 */
import { MessageCodec, MSG } from '../wire/messages.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { ProtocolError } from '../errors.js';

export const SERVICE_CONNECTION = 'ssh-connection';
export const METHOD_PUBLICKEY = 'publickey';
/** OpenSSH's PROTOCOL §2.5: publickey with the server's host key bound into the signature. */
export const METHOD_PUBLICKEY_HOSTBOUND = 'publickey-hostbound-v00@openssh.com';
export const METHOD_PASSWORD = 'password';
export const METHOD_KEYBOARD_INTERACTIVE = 'keyboard-interactive';
export const METHOD_NONE = 'none';

/** RFC 4256 §3.2 leaves the prompt count open; OpenSSH caps what it accepts at 100. */
export const MAX_KBDINT_PROMPTS = 100;

export const UserauthPkOk = new MessageCodec(MSG.USERAUTH_PK_OK, 'USERAUTH_PK_OK', [
  ['algorithm', 'utf8'],
  ['publicKey', 'string'],
] as const);

export const UserauthPasswdChangereq = new MessageCodec(MSG.USERAUTH_PASSWD_CHANGEREQ, 'USERAUTH_PASSWD_CHANGEREQ', [
  ['prompt', 'utf8'],
  ['language', 'utf8'],
] as const);

export interface Prompt {
  readonly prompt: string;
  readonly echo: boolean;
}

export interface InfoRequest {
  readonly name: string;
  readonly instruction: string;
  readonly prompts: readonly Prompt[];
}

export function encodeInfoRequest(request: InfoRequest): Buffer {
  const w = new Writer(256).byte(MSG.USERAUTH_INFO_REQUEST).string(request.name).string(request.instruction).string('');
  w.uint32(request.prompts.length);
  for (const p of request.prompts) w.string(p.prompt).boolean(p.echo);
  return w.finish();
}

export function decodeInfoRequest(payload: Buffer): InfoRequest {
  const r = new Reader(payload, 1, payload.length, 'SSH_MSG_USERAUTH_INFO_REQUEST');
  const name = r.utf8();
  const instruction = r.utf8();
  r.string(); // language tag (deprecated, RFC 4256 §3.2)
  const count = r.uint32();
  // Each prompt takes at least 5 bytes: check the count against the bytes before looping.
  if (count > MAX_KBDINT_PROMPTS || count * 5 > r.remaining) {
    throw new ProtocolError(`SSH_MSG_USERAUTH_INFO_REQUEST with an impossible prompt count ${count}`);
  }
  const prompts: Prompt[] = [];
  for (let i = 0; i < count; i++) prompts.push({ prompt: r.utf8(), echo: r.boolean() });
  r.done();
  return { name, instruction, prompts };
}

export function encodeInfoResponse(responses: readonly string[]): Buffer {
  const w = new Writer(128).byte(MSG.USERAUTH_INFO_RESPONSE).uint32(responses.length);
  for (const response of responses) w.string(response);
  return w.finish();
}

/** Decode an INFO_RESPONSE; the count must equal the number of prompts sent (RFC 4256 §3.4). */
export function decodeInfoResponse(payload: Buffer, expected: number): string[] {
  const r = new Reader(payload, 1, payload.length, 'SSH_MSG_USERAUTH_INFO_RESPONSE');
  const count = r.uint32();
  if (count !== expected) {
    throw new ProtocolError(`SSH_MSG_USERAUTH_INFO_RESPONSE has ${count} responses for ${expected} prompts`);
  }
  const responses: string[] = [];
  for (let i = 0; i < count; i++) responses.push(r.utf8());
  r.done();
  return responses;
}

/** The method-specific fields of a publickey request (RFC 4252 §7). */
export interface PublicKeyFields {
  readonly signed: boolean;
  readonly algorithm: string;
  readonly publicKey: Buffer;
  /** Only for publickey-hostbound-v00@openssh.com. */
  readonly hostKey: Buffer | undefined;
  readonly signature: Buffer | undefined;
}

export function decodePublicKeyFields(fields: Buffer, hostbound: boolean): PublicKeyFields {
  const r = new Reader(fields, 0, fields.length, 'publickey request');
  const signed = r.boolean();
  const algorithm = r.string().toString('latin1');
  const publicKey = r.string();
  const hostKey = hostbound ? r.string() : undefined;
  const signature = signed ? r.string() : undefined;
  r.done();
  return { signed, algorithm, publicKey, hostKey, signature };
}

export function encodePublicKeyFields(fields: PublicKeyFields): Buffer {
  const w = new Writer(512).boolean(fields.signed).string(fields.algorithm).string(fields.publicKey);
  if (fields.hostKey) w.string(fields.hostKey);
  if (fields.signature) w.string(fields.signature);
  return w.finish();
}

/**
 * RFC 4252 §7: the signature covers string(session id) || byte USERAUTH_REQUEST || string user
 * || string service || string method || TRUE || string algorithm || string key blob, and for the
 * hostbound variant the server's host key blob too (OpenSSH PROTOCOL §2.5).
 */
export function publicKeySignedData(
  sessionId: Buffer,
  user: string,
  service: string,
  method: string,
  algorithm: string,
  publicKey: Buffer,
  hostKey: Buffer | undefined,
): Buffer {
  const w = new Writer(512)
    .string(sessionId)
    .byte(MSG.USERAUTH_REQUEST)
    .string(user)
    .string(service)
    .string(method)
    .boolean(true)
    .string(algorithm)
    .string(publicKey);
  if (hostKey) w.string(hostKey);
  return w.finish();
}

/** Password request fields (RFC 4252 §8): change flag, password, and the new one when changing. */
export interface PasswordFields {
  readonly change: boolean;
  readonly password: string;
  readonly newPassword: string | undefined;
}

export function decodePasswordFields(fields: Buffer): PasswordFields {
  const r = new Reader(fields, 0, fields.length, 'password request');
  const change = r.boolean();
  const password = r.utf8();
  const newPassword = change ? r.utf8() : undefined;
  r.done();
  return { change, password, newPassword };
}

export function encodePasswordFields(fields: PasswordFields): Buffer {
  const w = new Writer(64).boolean(fields.change).string(fields.password);
  if (fields.change) w.string(fields.newPassword ?? '');
  return w.finish();
}

/** Keyboard-interactive request fields (RFC 4256 §3.1): language (deprecated) and submethods. */
export function decodeKeyboardInteractiveFields(fields: Buffer): { submethods: string } {
  const r = new Reader(fields, 0, fields.length, 'keyboard-interactive request');
  r.string();
  const submethods = r.utf8();
  r.done();
  return { submethods };
}

export function encodeKeyboardInteractiveFields(submethods = ''): Buffer {
  return new Writer(16).string('').string(submethods).finish();
}
