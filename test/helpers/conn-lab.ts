/**
 * Our client and our server in one process over real TCP on 127.0.0.1:0, for
 * test/api/connection.test.ts. The server's sessions run whatever exec handler the test installs;
 * direct-tcpip is served as tsshd serves it (a TCP connection from the server, CONNECT_FAILED
 * with the reason when it fails). Both ends prefer aes128-gcm@openssh.com: the back-pressure
 * tests move 200 MiB each way through both ends of one process.
 *
 *   const lab = await startConnLab(t, { exec: (session, command) => { … } });
 *   const client = await lab.connect();                  // authenticated SshClient, ended after the test
 *   const { client, socket } = await lab.connectOverOwnSocket(); // …with the TCP socket in the test's hands
 *   lab.connections                                     // the server's ServerConnections, in order
 *   lab.serverChannelCount()                            // channels open on the server's last connection
 */
import { connect as netConnect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect, type ConnectOptions, type SshClient } from '../../src/client.js';
import { createServer, type ServerConnection, type ServerOptions, type SshServer } from '../../src/server.js';
import type { ServerSession } from '../../src/server-session.js';
import { ChannelOpenFailure } from '../../src/connection/messages.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import type { SshPrivateKey } from '../../src/algorithms/types.js';

export const FAST_CIPHER = '^aes128-gcm@openssh.com';

interface After {
  after(fn: () => unknown): void;
}

let keysPromise: Promise<{ host: SshPrivateKey; user: SshPrivateKey }> | undefined;
function labKeys(): Promise<{ host: SshPrivateKey; user: SshPrivateKey }> {
  keysPromise ??= (async () => ({ host: await generatePrivateKey('ed25519'), user: await generatePrivateKey('ed25519') }))();
  return keysPromise;
}

export interface ConnLabOptions {
  /** Runs each accepted exec request (the request is accepted before this is called). */
  exec?: (session: ServerSession, command: string, connection: ServerConnection) => void;
  /** Whether an exec request is accepted at all (default: yes). */
  acceptExec?: (command: string) => boolean;
  /** Serve direct-tcpip by connecting from the server (default true). */
  directTcpip?: boolean;
  server?: Partial<ServerOptions>;
}

export interface ConnLab {
  server: SshServer;
  port: number;
  /** Server-side connections, in the order they arrived. */
  readonly connections: ServerConnection[];
  /** Server-side sessions, in the order they were opened. */
  readonly sessions: ServerSession[];
  connect(extra?: Partial<ConnectOptions>): Promise<SshClient>;
  /** Connects over a TCP socket the test holds (to destroy it mid-transfer). */
  connectOverOwnSocket(extra?: Partial<ConnectOptions>): Promise<{ client: SshClient; socket: Socket }>;
  /** Channels open on the server side of a connection (default: the latest). */
  serverChannelCount(connection?: ServerConnection): number;
  /** Serve one more connection through `server.handle`, over a socket the test holds (the server's end). */
  acceptOnOwnListener(): Promise<{ port: number; serverSocket: () => Socket | undefined; close(): Promise<void> }>;
}

export async function startConnLab(t: After, options: ConnLabOptions = {}): Promise<ConnLab> {
  const keys = await labKeys();
  const connections: ServerConnection[] = [];
  const sessions: ServerSession[] = [];
  const server = createServer({
    hostKeys: [keys.host],
    auth: { publicKeyAllowed: ({ user, key }) => user === 'tester' && key.blob.equals(keys.user.publicKey.blob) },
    algorithms: { cipher: FAST_CIPHER },
    ...options.server,
  });
  server.on('connection', (connection) => {
    connections.push(connection);
    connection.on('session', (session) => {
      sessions.push(session);
      session.on('exec', (request) => {
        const command = request.details.command;
        if (options.acceptExec && !options.acceptExec(command)) {
          request.reject();
          return;
        }
        request.accept();
        options.exec?.(session, command, connection);
      });
    });
    if (options.directTcpip !== false) {
      connection.on('direct-tcpip', (request, accept, reject) => {
        const socket = netConnect({ host: request.host, port: request.port, allowHalfOpen: true });
        socket.once('connect', () => {
          const stream = accept();
          socket.pipe(stream).pipe(socket);
          socket.on('error', () => stream.destroy());
          stream.on('error', () => socket.destroy());
        });
        socket.once('error', (error) => reject(ChannelOpenFailure.CONNECT_FAILED, `connect to ${request.host} port ${request.port}: ${error.message}`));
      });
    }
  });
  const address = await server.listen(0, '127.0.0.1');
  const clients: SshClient[] = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await server.close();
  });
  const base = (): ConnectOptions => ({
    host: '127.0.0.1',
    port: address.port,
    username: 'tester',
    privateKeys: [keys.user],
    verifyHostKey: (key) => key.blob.equals(keys.host.publicKey.blob),
    algorithms: { cipher: FAST_CIPHER },
    readyTimeout: 30_000,
  });
  const lab: ConnLab = {
    server,
    port: address.port,
    connections,
    sessions,
    async connect(extra = {}) {
      const client = await connect({ ...base(), ...extra });
      clients.push(client);
      return client;
    },
    async connectOverOwnSocket(extra = {}) {
      const socket = netConnect({ host: '127.0.0.1', port: address.port });
      socket.on('error', () => {}); // the client reports it as ConnectionLostError
      const client = await connect({ ...base(), sock: socket, ...extra });
      clients.push(client);
      return { client, socket };
    },
    serverChannelCount(connection = connections[connections.length - 1]) {
      return connection?.endpoint.mux?.channelCount ?? 0;
    },
    async acceptOnOwnListener() {
      let last: Socket | undefined;
      const listener: NetServer = createNetServer((socket) => {
        last = socket;
        socket.on('error', () => {});
        server.handle(socket, socket.remoteAddress, socket.remotePort);
      });
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
      const close = (): Promise<void> => new Promise((resolve) => listener.close(() => resolve()));
      t.after(close);
      return { port: (listener.address() as AddressInfo).port, serverSocket: () => last, close };
    },
  };
  return lab;
}
