/**
 * For the tests of connect() through ssh_config and of StrictHostKeyChecking=ask: a temporary
 * folder with a user key file, and our own server in this process that records who logged in
 * (and how), which direct-tcpip channels it was asked for, and runs `whoami`, `echo …` and
 * `hostname` (its name), so a test can tell which of several servers a command reached.
 *
 *   const lab = await configLab(t);                 // lab.dir, lab.userKeyFile, lab.keys
 *   const box = await lab.startServer('box');       // box.port, box.logins, box.forwards
 *   lab.writeFile('config', 'Host x\n  Port …');    // a path in the folder
 *   lab.knownHostsLine(box.port)                    // "[127.0.0.1]:PORT ssh-ed25519 AAAA…"
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createServer, type SshServer } from '../../src/server.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { formatPrivateKeyFile } from '../../src/keys/private-key-file.js';
import { formatOpenSshPublicKey } from '../../src/keys/public-key-text.js';
import type { SshPrivateKey } from '../../src/algorithms/types.js';

export interface LabKeys {
  /** The host key of every server the lab starts. */
  readonly host: SshPrivateKey;
  /** The user key, authorized for `alice`; also in lab.userKeyFile. */
  readonly user: SshPrivateKey;
}

export interface LabServer {
  readonly server: SshServer;
  readonly name: string;
  readonly port: number;
  /** Each successful login: the user and the methods it took. */
  readonly logins: { user: string; methods: readonly string[] }[];
  /** Each direct-tcpip request, as "host:port". */
  readonly forwards: string[];
  /** Connections still open. */
  open(): number;
}

export interface ConfigLab {
  readonly dir: string;
  readonly keys: LabKeys;
  /** The user key as an OpenSSH private key file (0600), with its .pub beside it. */
  readonly userKeyFile: string;
  /** Writes a file in the folder and returns its path. */
  writeFile(name: string, text: string, mode?: number): string;
  /** The known_hosts line for the lab's host key at [127.0.0.1]:port. */
  knownHostsLine(port: number): string;
  /** Our server: user alice by the user key or password `secret`. */
  startServer(name: string): Promise<LabServer>;
}

let keysPromise: Promise<LabKeys> | undefined;
function labKeys(): Promise<LabKeys> {
  keysPromise ??= (async () => ({ host: await generatePrivateKey('ed25519'), user: await generatePrivateKey('ed25519') }))();
  return keysPromise;
}

export async function configLab(t: TestContext): Promise<ConfigLab> {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keys = await labKeys();
  const writeFile = (name: string, text: string, mode = 0o644): string => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode });
    return path;
  };
  const userKeyFile = writeFile('id_ed25519', await formatPrivateKeyFile(keys.user, { format: 'openssh', comment: 'lab' }), 0o600);
  writeFile('id_ed25519.pub', `${formatOpenSshPublicKey(keys.user.publicKey, 'lab')}\n`);
  return {
    dir,
    keys,
    userKeyFile,
    writeFile,
    knownHostsLine: (port) => `[127.0.0.1]:${port} ${formatOpenSshPublicKey(keys.host.publicKey)}`,
    startServer: async (name) => {
      const logins: LabServer['logins'] = [];
      const forwards: string[] = [];
      let open = 0;
      const server = createServer({
        hostKeys: [keys.host],
        auth: {
          publicKeyAllowed: ({ user, key }) => user === 'alice' && key.blob.equals(keys.user.publicKey.blob),
          password: ({ user, password }) => (user === 'alice' && password === 'secret' ? 'success' : 'failure'),
        },
      });
      server.on('connection', (connection) => {
        open++;
        connection.once('close', () => open--);
        connection.on('authenticated', (user, methods) => logins.push({ user, methods }));
        connection.on('session', (session) => {
          session.on('exec', (request) => {
            request.accept();
            const command = request.details.command;
            if (command === 'whoami') session.write(`${connection.user ?? ''}\n`);
            else if (command === 'hostname') session.write(`${name}\n`);
            else if (command.startsWith('echo ')) session.write(`${command.slice(5)}\n`);
            else {
              session.stderr.write(`unknown command ${command}\n`, () => session.exit(127));
              return;
            }
            session.exit(0);
          });
        });
        connection.on('direct-tcpip', (request, accept, reject) => {
          forwards.push(`${request.host}:${request.port}`);
          const socket = netConnect({ host: request.host, port: request.port });
          socket.once('connect', () => {
            const stream = accept();
            socket.pipe(stream).pipe(socket);
            stream.on('error', () => socket.destroy());
            socket.on('error', () => stream.destroy());
          });
          socket.once('error', () => reject());
        });
      });
      const address = await server.listen(0, '127.0.0.1');
      t.after(() => server.close());
      return { server, name, port: address.port, logins, forwards, open: () => open };
    },
  };
}
