/**
 * Session channel requests (RFC 4254 §6, RFC 4335, OpenSSH PROTOCOL §2) and terminal modes
 * (RFC 4254 §8): typed encoders and decoders used by both roles.
 */
import { ProtocolError } from '../errors.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';

export interface PtyRequest {
  readonly term: string;
  readonly columns: number;
  readonly rows: number;
  readonly widthPixels: number;
  readonly heightPixels: number;
  /** Terminal modes by opcode name (`ECHO`, `ICANON`, `VINTR`, `TTY_OP_ISPEED`…). */
  readonly modes: Readonly<Record<string, number>>;
}

export interface WindowChange {
  readonly columns: number;
  readonly rows: number;
  readonly widthPixels: number;
  readonly heightPixels: number;
}

/** RFC 4254 §8 opcodes; RFC 8160 adds IUTF8 (42). */
export const TERMINAL_MODES: Readonly<Record<string, number>> = {
  VINTR: 1, VQUIT: 2, VERASE: 3, VKILL: 4, VEOF: 5, VEOL: 6, VEOL2: 7, VSTART: 8, VSTOP: 9,
  VSUSP: 10, VDSUSP: 11, VREPRINT: 12, VWERASE: 13, VLNEXT: 14, VFLUSH: 15, VSWTCH: 16,
  VSTATUS: 17, VDISCARD: 18, IGNPAR: 30, PARMRK: 31, INPCK: 32, ISTRIP: 33, INLCR: 34,
  IGNCR: 35, ICRNL: 36, IUCLC: 37, IXON: 38, IXANY: 39, IXOFF: 40, IMAXBEL: 41, IUTF8: 42,
  ISIG: 50, ICANON: 51, XCASE: 52, ECHO: 53, ECHOE: 54, ECHOK: 55, ECHONL: 56, NOFLSH: 57,
  TOSTOP: 58, IEXTEN: 59, ECHOCTL: 60, ECHOKE: 61, PENDIN: 62, OPOST: 70, OLCUC: 71, ONLCR: 72,
  OCRNL: 73, ONOCR: 74, ONLRET: 75, CS7: 90, CS8: 91, PARENB: 92, PARODD: 93,
  TTY_OP_ISPEED: 128, TTY_OP_OSPEED: 129,
};
const MODE_NAMES = new Map(Object.entries(TERMINAL_MODES).map(([name, code]) => [code, name]));

/** RFC 4254 §8: opcode byte, uint32 argument, ... TTY_OP_END (0). */
export function encodeTerminalModes(modes: Readonly<Record<string, number>>): Buffer {
  const w = new Writer(64);
  for (const [name, value] of Object.entries(modes)) {
    const code = TERMINAL_MODES[name];
    if (code === undefined) throw new RangeError(`unknown terminal mode ${name}`);
    w.byte(code).uint32(value);
  }
  return w.byte(0).finish();
}

/**
 * Decode terminal modes. Opcodes 160-255 have undefined arguments and stop parsing (RFC 4254
 * §8); unknown opcodes below are skipped with their uint32.
 */
export function decodeTerminalModes(encoded: Buffer): Record<string, number> {
  const modes: Record<string, number> = {};
  const r = new Reader(encoded, 0, encoded.length, 'terminal modes');
  while (r.remaining > 0) {
    const opcode = r.byte();
    if (opcode === 0 || opcode >= 160) break;
    const value = r.uint32();
    const name = MODE_NAMES.get(opcode);
    if (name) modes[name] = value;
  }
  return modes;
}

export function encodePtyRequest(pty: PtyRequest): Buffer {
  return new Writer(128)
    .string(pty.term)
    .uint32(pty.columns)
    .uint32(pty.rows)
    .uint32(pty.widthPixels)
    .uint32(pty.heightPixels)
    .string(encodeTerminalModes(pty.modes))
    .finish();
}

export function decodePtyRequest(data: Buffer): PtyRequest {
  const r = new Reader(data, 0, data.length, 'pty-req');
  const pty = {
    term: r.utf8(),
    columns: r.uint32(),
    rows: r.uint32(),
    widthPixels: r.uint32(),
    heightPixels: r.uint32(),
    modes: decodeTerminalModes(r.string()),
  };
  r.done();
  return pty;
}

export function encodeWindowChange(size: WindowChange): Buffer {
  return new Writer(16).uint32(size.columns).uint32(size.rows).uint32(size.widthPixels).uint32(size.heightPixels).finish();
}

export function decodeWindowChange(data: Buffer): WindowChange {
  const r = new Reader(data, 0, data.length, 'window-change');
  const size = { columns: r.uint32(), rows: r.uint32(), widthPixels: r.uint32(), heightPixels: r.uint32() };
  r.done();
  return size;
}

/** One `string` (exec's command, subsystem's name, signal's name). */
export function encodeStringRequest(value: string): Buffer {
  return new Writer(value.length + 8).string(value).finish();
}

export function decodeStringRequest(data: Buffer, what: string): string {
  const r = new Reader(data, 0, data.length, what);
  const value = r.utf8();
  r.done();
  return value;
}

export function encodeEnv(name: string, value: string): Buffer {
  return new Writer(64).string(name).string(value).finish();
}

export function decodeEnv(data: Buffer): { name: string; value: string } {
  const r = new Reader(data, 0, data.length, 'env');
  const env = { name: r.utf8(), value: r.utf8() };
  r.done();
  return env;
}

export function encodeExitStatus(status: number): Buffer {
  return new Writer(4).uint32(status).finish();
}

export function decodeExitStatus(data: Buffer): number {
  const r = new Reader(data, 0, data.length, 'exit-status');
  const status = r.uint32();
  r.done();
  return status;
}

export interface ExitSignal {
  /** Without the SIG prefix (`TERM`), RFC 4254 §6.10. */
  readonly signal: string;
  readonly coreDumped: boolean;
  readonly message: string;
}

export function encodeExitSignal(exit: ExitSignal): Buffer {
  return new Writer(64).string(exit.signal).boolean(exit.coreDumped).string(exit.message).string('').finish();
}

export function decodeExitSignal(data: Buffer): ExitSignal {
  const r = new Reader(data, 0, data.length, 'exit-signal');
  const exit = { signal: r.utf8(), coreDumped: r.boolean(), message: r.utf8() };
  r.string(); // language tag
  r.done();
  return exit;
}

/** RFC 4335: break-length in milliseconds. */
export function encodeBreak(milliseconds: number): Buffer {
  return new Writer(4).uint32(milliseconds).finish();
}

export function decodeBreak(data: Buffer): number {
  const r = new Reader(data, 0, data.length, 'break');
  const length = r.uint32();
  r.done();
  return length;
}

/** Requests whose data must be empty (shell, eow@openssh.com, auth-agent-req@openssh.com). */
export function expectEmpty(data: Buffer, what: string): void {
  if (data.length !== 0) throw new ProtocolError(`${what} request with ${data.length} unexpected bytes`);
}

/** The signal names RFC 4254 §6.10 defines. */
export const SIGNALS = ['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2'] as const;
