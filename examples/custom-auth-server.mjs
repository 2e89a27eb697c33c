/**
 * An SSH server with its own user database: passwords checked against salted scrypt hashes, public
 * keys against an authorized_keys file, and commands run with /bin/sh like sshd runs them.
 *
 *   AUTHORIZED_KEYS=~/.ssh/id_ed25519.pub PORT=2222 node examples/custom-auth-server.mjs
 *   ssh -p 2222 alice@127.0.0.1 'echo hello from $(hostname)'     # password: wonderland
 *
 *   HOST, PORT          where to listen (default 127.0.0.1:2222; port 0 picks a free one)
 *   HOST_KEY            a private key file; without it a new ed25519 key is made at each start
 *   ALICE_PASSWORD      alice's password (default wonderland)
 *   AUTHORIZED_KEYS     a file of public keys (one `type base64 comment` line each) alice may use
 *
 * Prints `listening on HOST:PORT`, the host key (its fingerprint, and the line for known_hosts), and
 * one line per login attempt.
 * Commands run as the user that started this server: keep it on 127.0.0.1 while you try it.
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { createServer, fingerprint, formatOpenSshPublicKey, generatePrivateKey, parsePrivateKeyFile, parsePublicKeyText } from 'tssh';

/** What a real server would keep in its user store: a salt and a scrypt hash, never the password. */
function hashPassword(password) {
  const salt = randomBytes(16);
  return { salt, hash: scryptSync(password, salt, 32) };
}
function passwordMatches(stored, password) {
  return timingSafeEqual(scryptSync(password, stored.salt, 32), stored.hash);
}

const users = new Map([
  [
    'alice',
    {
      password: hashPassword(process.env.ALICE_PASSWORD ?? 'wonderland'),
      keys: process.env.AUTHORIZED_KEYS
        ? readFileSync(process.env.AUTHORIZED_KEYS, 'utf8')
            .split('\n')
            .filter((line) => line.trim() !== '' && !line.startsWith('#'))
            .map((line) => parsePublicKeyText(line).key)
        : [],
    },
  ],
]);
// Unknown users are checked against this, so they cost the same time as known ones.
const nobody = { password: hashPassword(randomBytes(16).toString('hex')), keys: [] };

const hostKey = process.env.HOST_KEY
  ? (await parsePrivateKeyFile(readFileSync(process.env.HOST_KEY))).key
  : await generatePrivateKey('ed25519');

const server = createServer({
  hostKeys: [hostKey],
  // Every decision is an async hook. Methods without a hook are not offered.
  auth: {
    // A query ("would you accept this key?") or the first half of a login: never a login by itself.
    publicKeyAllowed: ({ user, key }) => (users.get(user)?.keys ?? []).some((allowed) => allowed.blob.equals(key.blob)),
    // Called only once the client has proved it holds that key; 'success' is also the default.
    publicKeyVerified: () => 'success',
    password: ({ user, password }) => (passwordMatches((users.get(user) ?? nobody).password, password) && users.has(user) ? 'success' : 'failure'),
  },
  maxAuthTries: 3,
  banner: 'Authorized users only.\n',
  authLog: (event, connection) =>
    console.log(
      `${event.outcome === 'failed' ? 'Failed' : 'Accepted'} ${event.method} for ${event.user} from ${connection.remoteAddress} port ${connection.remotePort}` +
        (event.key ? ` ${event.key.type} ${fingerprint(event.key)}` : ''),
    ),
});

server.on('connection', (connection) => {
  connection.on('session', (session) => {
    // Environment the client sends: only the locale, as sshd's default AcceptEnv.
    session.on('env', (request) => (/^(LANG|LC_\w+)$/.test(request.details.name) ? request.accept() : request.reject()));
    // No 'pty' or 'shell' listeners: those requests are refused, and only commands run.
    session.on('exec', (request) => {
      request.accept();
      const child = spawn('/bin/sh', ['-c', request.details.command], {
        cwd: homedir(),
        env: { PATH: process.env.PATH, HOME: homedir(), USER: connection.user, ...session.env },
      });
      child.stdin.on('error', () => {}); // the command may exit without reading its input
      session.pipe(child.stdin); // the client's stdin; its EOF closes the command's stdin
      child.stdout.pipe(session, { end: false });
      child.stderr.pipe(session.stderr);
      session.on('signal', (name) => {
        try {
          child.kill(/** @type {NodeJS.Signals} */ (`SIG${name}`));
        } catch {
          // a signal name this system does not know: ignored, as sshd does
        }
      });
      session.on('close', () => child.exitCode === null && child.signalCode === null && child.kill());
      child.on('error', (error) => {
        session.stderr.write(`${error.message}\n`);
        session.exit(127);
      });
      // exit() and exitSignal() send what was written to stdout and stderr first, then the
      // status, EOF and CLOSE.
      child.on('close', (code, signal) => {
        if (signal) session.exitSignal(signal);
        else session.exit(code ?? 0);
      });
    });
  });
});

const address = await server.listen(Number(process.env.PORT ?? 2222), process.env.HOST ?? '127.0.0.1');
console.log(`listening on ${address.address}:${address.port}`);
console.log(`host key ${hostKey.publicKey.type} ${fingerprint(hostKey.publicKey)}`);
// The line a client's known_hosts needs (ssh writes [host]:port for ports other than 22).
console.log(`known_hosts line: [${address.address}]:${address.port} ${formatOpenSshPublicKey(hostKey.publicKey)}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    void server.close().then(() => console.log('stopped'));
  });
}
