/**
 * A SOCKS proxy for ssh -D: SOCKS4, SOCKS4a and SOCKS5 (RFC 1928, no authentication, CONNECT
 * only), each accepted connection handed to `open(host, port)` (a direct-tcpip channel). Every
 * length a client sends is bounded before it is buffered.
 */
import { joinStreams } from './join.js';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export type OpenTarget = (host: string, port: number, origin: { address: string; port: number }) => Promise<Duplex>;

/** A request header is never longer than this (SOCKS5 domain names are at most 255 bytes). */
const MAX_REQUEST = 1024;

export function createSocksServer(open: OpenTarget, onError?: (message: string) => void): Server {
  // allowHalfOpen: a client that shuts down its sending side still gets the whole reply.
  return createServer({ allowHalfOpen: true }, (socket) => {
    socket.setNoDelay(true);
    handleSocks(socket, open).catch((error: unknown) => {
      onError?.(`socks: ${(error as Error).message}`);
      socket.destroy();
    });
  });
}

async function handleSocks(socket: Socket, open: OpenTarget): Promise<void> {
  const reader = new ByteReader(socket);
  const version = await reader.read(1);
  let host: string;
  let port: number;
  let reply: (ok: boolean) => Buffer;
  if (version[0] === 4) {
    const head = await reader.read(7); // command, port, IPv4
    if (head[0] !== 1) throw new Error(`SOCKS4 command ${head[0]} not supported`);
    port = head.readUInt16BE(1);
    await reader.readUntilNul(); // user id
    if (head[3] === 0 && head[4] === 0 && head[5] === 0 && head[6] !== 0) {
      host = (await reader.readUntilNul()).toString('latin1'); // SOCKS4a: 0.0.0.x then a name
    } else {
      host = `${head[3]}.${head[4]}.${head[5]}.${head[6]}`;
    }
    reply = (ok) => Buffer.from([0, ok ? 90 : 91, 0, 0, 0, 0, 0, 0]);
  } else if (version[0] === 5) {
    const methods = await reader.read((await reader.read(1))[0]!);
    if (!methods.includes(0)) {
      socket.end(Buffer.from([5, 0xff]));
      return;
    }
    socket.write(Buffer.from([5, 0]));
    const head = await reader.read(4);
    if (head[1] !== 1) {
      socket.end(Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]));
      return;
    }
    switch (head[3]) {
      case 1:
        host = [...(await reader.read(4))].join('.');
        break;
      case 3:
        host = (await reader.read((await reader.read(1))[0]!)).toString('latin1');
        break;
      case 4: {
        const raw = await reader.read(16);
        host = Array.from({ length: 8 }, (_, i) => raw.readUInt16BE(i * 2).toString(16)).join(':');
        break;
      }
      default:
        throw new Error(`SOCKS5 address type ${head[3]} not supported`);
    }
    port = (await reader.read(2)).readUInt16BE(0);
    reply = (ok) => Buffer.from([5, ok ? 0 : 5, 0, 1, 0, 0, 0, 0, 0, 0]);
  } else {
    throw new Error(`not a SOCKS request (version byte ${version[0]})`);
  }
  let stream: Duplex;
  try {
    stream = await open(host, port, { address: socket.remoteAddress ?? '127.0.0.1', port: socket.remotePort ?? 0 });
  } catch (error) {
    socket.end(reply(false));
    throw error;
  }
  socket.write(reply(true));
  const rest = reader.release();
  if (rest.length > 0) stream.write(rest);
  joinStreams(socket, stream);
}

/** Reads exact byte counts from a socket during the handshake, then hands the rest back. */
class ByteReader {
  private buffered = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    if (this.buffered.length > MAX_REQUEST) this.socket.destroy(new Error('SOCKS request too long'));
    this.waiter?.();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.waiter?.();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  async read(n: number): Promise<Buffer> {
    while (this.buffered.length < n) await this.wait();
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  async readUntilNul(): Promise<Buffer> {
    for (;;) {
      const nul = this.buffered.indexOf(0);
      if (nul >= 0) {
        const out = this.buffered.subarray(0, nul);
        this.buffered = this.buffered.subarray(nul + 1);
        return out;
      }
      await this.wait();
    }
  }

  private wait(): Promise<void> {
    if (this.ended) return Promise.reject(new Error('client closed during the SOCKS handshake'));
    return new Promise((resolve) => (this.waiter = () => ((this.waiter = undefined), resolve())));
  }

  /** Stop reading; whatever arrived after the request belongs to the tunnelled stream. */
  release(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.pause();
    return this.buffered;
  }
}
