/**
 * Protocol version exchange, RFC 4253 §4.2: each side sends one line
 * `SSH-protoversion-softwareversion SP comments CR LF` before any packet. A server may send other
 * lines first (a client shows or ignores them); the client's identification is its first line.
 * `SSH-1.99` means "2.0 as well" (RFC 4253 §5.1); any other version is refused.
 */
import { VersionError } from '../errors.js';

/** RFC 4253 §4.2: at most 255 characters including CR LF. */
export const MAX_IDENTIFICATION_LINE = 255;
/** A server may send lines before its identification; we read at most this many bytes of them. */
export const MAX_PRE_IDENTIFICATION_BYTES = 8192;

export interface Identification {
  /** The whole line without CR LF, as it enters the exchange hash (V_C / V_S). */
  readonly line: string;
  readonly protoVersion: string;
  readonly softwareVersion: string;
  readonly comments: string;
}

export function parseIdentificationLine(line: string): Identification {
  const match = /^SSH-([^-\s]+)-([^\s]*)(?: (.*))?$/.exec(line);
  if (!match) {
    throw new VersionError(`invalid SSH identification from peer: ${JSON.stringify(line)}`);
  }
  const [, protoVersion = '', softwareVersion = '', comments = ''] = match;
  if (protoVersion !== '2.0' && protoVersion !== '1.99') {
    throw new VersionError(
      protoVersion.startsWith('1.')
        ? `peer speaks only SSH-1 (${JSON.stringify(line)}), which is insecure and not supported: use SSH-2`
        : `unsupported SSH protocol version ${protoVersion} in peer identification ${JSON.stringify(line)}`,
    );
  }
  if (softwareVersion.length === 0) {
    throw new VersionError(`invalid SSH identification from peer (no software version): ${JSON.stringify(line)}`);
  }
  return { line, protoVersion, softwareVersion, comments };
}

/**
 * Reads the peer's identification from the start of the byte stream. `push` returns undefined
 * until the line is complete, then the identification and the bytes after it (the first packets).
 */
export class IdentificationReader {
  private buffered: Buffer = Buffer.alloc(0);
  private skipped = 0;
  /** Lines the server sent before its identification (RFC 4253 §4.2), for a client to show. */
  readonly preamble: string[] = [];

  constructor(private readonly peerIsServer: boolean) {}

  push(chunk: Buffer): { identification: Identification; rest: Buffer } | undefined {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const newline = this.buffered.indexOf(0x0a);
      if (newline < 0) {
        if (this.buffered.length > MAX_IDENTIFICATION_LINE) this.tooLong();
        return undefined;
      }
      if (newline + 1 > MAX_IDENTIFICATION_LINE) this.tooLong();
      // CR LF per the RFC; a bare LF is accepted from old peers.
      const end = newline > 0 && this.buffered[newline - 1] === 0x0d ? newline - 1 : newline;
      const raw = this.buffered.subarray(0, end);
      const rest = this.buffered.subarray(newline + 1);
      if (raw.includes(0)) throw new VersionError('peer identification contains a NUL byte');
      const line = raw.toString('latin1');
      if (line.startsWith('SSH-')) {
        this.buffered = Buffer.alloc(0);
        return { identification: parseIdentificationLine(line), rest };
      }
      if (!this.peerIsServer) {
        throw new VersionError(`client did not start with an SSH identification: ${JSON.stringify(line.slice(0, 80))}`);
      }
      this.skipped += newline + 1;
      if (this.skipped > MAX_PRE_IDENTIFICATION_BYTES) {
        throw new VersionError(`server sent more than ${MAX_PRE_IDENTIFICATION_BYTES} bytes before its SSH identification`);
      }
      this.preamble.push(line);
      this.buffered = rest;
    }
  }

  private tooLong(): never {
    const start = this.buffered.subarray(0, 60).toString('latin1');
    throw new VersionError(
      `peer identification line longer than ${MAX_IDENTIFICATION_LINE} bytes (is this an SSH server?): ${JSON.stringify(start)}`,
    );
  }
}
