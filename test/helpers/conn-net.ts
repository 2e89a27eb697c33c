/**
 * Bytes and sockets for the connection tests (test/api/connection.test.ts,
 * test/interop/connection.test.ts): deterministic pseudo-random data with SHA-256 on both ends, a
 * TCP echo server and a small HTTP server on 127.0.0.1:0, a SOCKS5 client, and memory samples.
 *
 *   const source = new PatternSource('down', 200 * MiB);   // next(64 KiB) until null; source.digest()
 *   const sink = new HashSink();                            // sink.update(chunk); sink.bytes; sink.digest()
 *   const echo = await startEchoServer(t);                  // echo.port; closed when the test ends
 *   const back = await roundTrip(port, payload);            // connect, send, half-close, read all
 *   const socket = await socks5Connect(proxyPort, '127.0.0.1', echo.port);
 */
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** `length` pseudo-random bytes determined by `seed` (AES-128-CTR keystream). */
export function patternBytes(seed: string | number, length: number): Buffer {
  return new PatternSource(seed, length).next(length) ?? Buffer.alloc(0);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A deterministic byte stream of `total` bytes, hashed as it is handed out. */
export class PatternSource {
  private readonly cipher: ReturnType<typeof createCipheriv>;
  private readonly hash: Hash = createHash('sha256');
  produced = 0;

  constructor(
    seed: string | number,
    readonly total: number,
  ) {
    const key = createHash('sha256').update(String(seed)).digest().subarray(0, 16);
    this.cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  }

  /** The next chunk of at most `max` bytes, or null at the end. */
  next(max: number): Buffer | null {
    const length = Math.min(max, this.total - this.produced);
    if (length <= 0) return null;
    const chunk = this.cipher.update(Buffer.alloc(length));
    this.hash.update(chunk);
    this.produced += length;
    return chunk;
  }

  /** SHA-256 (hex) of everything handed out; call once, at the end. */
  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Counts and hashes what arrives. */
export class HashSink {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

interface After {
  after(fn: () => unknown): void;
}

function listen(server: Server, t: After | undefined): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      t?.after(close);
      resolve({ port: (server.address() as AddressInfo).port, close });
    });
  });
}

export interface EchoServer {
  port: number;
  /** Connections accepted so far. */
  readonly accepted: () => number;
  close(): Promise<void>;
}

/**
 * A TCP echo server on 127.0.0.1: every byte comes back; the peer's half-close is answered by ours.
 * With `afterEnd`, nothing comes back until the peer has half-closed (then all of it, then FIN):
 * the whole reply then depends on the forwarding keeping the connection half-open.
 */
export async function startEchoServer(t?: After, options: { afterEnd?: boolean } = {}): Promise<EchoServer> {
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted++;
    socket.on('error', () => socket.destroy());
    if (!options.afterEnd) {
      socket.pipe(socket);
      return;
    }
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => socket.end(Buffer.concat(chunks)));
  });
  const { port, close } = await listen(server, t);
  return { port, accepted: () => accepted, close };
}

/**
 * An HTTP server on 127.0.0.1 that answers GET /data with `body` (and its SHA-256 in the
 * x-sha256 header), anything else with 404.
 */
export async function startHttpServer(body: Buffer, t?: After): Promise<{ port: number; close(): Promise<void> }> {
  const server = createHttpServer((request, response) => {
    if (request.url === '/data') {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'x-sha256': sha256(body) });
      response.end(body);
    } else {
      response.writeHead(404).end('not found\n');
    }
  });
  return listen(server, t);
}

/** Connects to 127.0.0.1:port, sends `payload`, half-closes, and resolves with everything read back. */
export function roundTrip(port: number, payload: Buffer, host = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.on('connect', () => socket.end(payload));
  });
}

/** Sends `payload` over an already connected stream (socket or channel), half-closes, resolves with everything read back. */
export function roundTripOver(socket: Duplex, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.resume(); // a 'data' listener does not restart a stream that was paused explicitly
    socket.end(payload);
  });
}

/**
 * Connects to 127.0.0.1:port, sends `payload` without half-closing, reads until as many bytes came
 * back, then closes: for an echo behind a forwarding, independent of half-close handling.
 */
export function exchange(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    exchangeOver(socket, payload).then(resolve, reject);
  });
}

/** Like exchange() over a connected stream: write, read back payload.length bytes, end. */
export function exchangeOver(socket: Duplex, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= payload.length) {
        socket.end();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on('end', () => reject(new Error(`the stream ended after ${length} of ${payload.length} bytes`)));
    socket.on('error', reject);
    socket.resume();
    socket.write(payload);
  });
}

export interface GreeterServer {
  port: number;
  /** What each connection sent, once it ended (resolves in connection order). */
  nextUpload(): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * A server that writes `greeting`, shuts down its sending side at once (half-close), and then
 * reads everything the peer sends: a forwarding must keep carrying the peer's data after the
 * target's FIN.
 */
export async function startGreeterServer(greeting: Buffer, t?: After): Promise<GreeterServer> {
  const uploads: Promise<Buffer>[] = [];
  const waiting: ((upload: Promise<Buffer>) => void)[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const upload = new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => {
        resolve(Buffer.concat(chunks));
        socket.destroy();
      });
      socket.on('error', reject);
    });
    upload.catch(() => {});
    const waiter = waiting.shift();
    if (waiter) waiter(upload);
    else uploads.push(upload);
    socket.end(greeting);
  });
  const { port, close } = await listen(server, t);
  return {
    port,
    nextUpload: () => {
      const ready = uploads.shift();
      return ready ?? new Promise<Buffer>((resolve, reject) => waiting.push((upload) => upload.then(resolve, reject)));
    },
    close,
  };
}

/**
 * Against a greeter: connects (directly, or over `socket`), reads the greeting to its end, then
 * sends `upload` and half-closes. Resolves with the greeting.
 */
export function readGreetingThenUpload(socketOrPort: Duplex | number, upload: Buffer): Promise<Buffer> {
  const socket = typeof socketOrPort === 'number' ? connect({ host: '127.0.0.1', port: socketOrPort, allowHalfOpen: true }) : socketOrPort;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      socket.end(upload);
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.resume();
  });
}

/** Reads exactly `length` bytes from a socket (no more are consumed). */
function readExactly(socket: Socket, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= length) {
        socket.off('data', onData);
        socket.off('error', reject);
        socket.off('end', onEnd);
        socket.pause();
        if (buffered.length > length) socket.unshift(buffered.subarray(length));
        resolve(buffered.subarray(0, length));
      }
    };
    const onEnd = (): void => reject(new Error(`SOCKS proxy closed the connection after ${buffered.length} of ${length} bytes`));
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('end', onEnd);
    socket.resume();
  });
}

/**
 * A SOCKS5 CONNECT (RFC 1928, no authentication) through the proxy at 127.0.0.1:proxyPort to
 * host:port (an IPv4 address or a name, sent as ATYP 3); resolves with the socket once the proxy
 * reports success, rejects with the reply code otherwise.
 */
export async function socks5Connect(proxyPort: number, host: string, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(Buffer.from([5, 1, 0]));
  const method = await readExactly(socket, 2);
  if (method[0] !== 5 || method[1] !== 0) throw new Error(`SOCKS5 proxy refused the no-authentication method: ${method.toString('hex')}`);
  const ipv4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
  const address = ipv4
    ? Buffer.from([1, ...ipv4.slice(1).map(Number)])
    : Buffer.concat([Buffer.from([3, Buffer.byteLength(host)]), Buffer.from(host, 'latin1')]);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  socket.write(Buffer.concat([Buffer.from([5, 1, 0]), address, portBytes]));
  const head = await readExactly(socket, 4);
  if (head[1] !== 0) {
    socket.destroy();
    throw new Error(`SOCKS5 CONNECT to ${host}:${port} failed with reply code ${head[1]}`);
  }
  const rest = head[3] === 1 ? 6 : head[3] === 4 ? 18 : (await readExactly(socket, 1))[0]! + 2;
  await readExactly(socket, rest);
  return socket;
}

/** A TCP port on 127.0.0.1 with nothing listening (bound, read, closed). */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` every 20 ms until it returns true; fails naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface MemorySample {
  rss: number;
  arrayBuffers: number;
  heapUsed: number;
  external: number;
}

export function memorySample(): MemorySample {
  const m = process.memoryUsage();
  return { rss: m.rss, arrayBuffers: m.arrayBuffers, heapUsed: m.heapUsed, external: m.external };
}

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}
