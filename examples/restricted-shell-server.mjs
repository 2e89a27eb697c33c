/**
 * A server that serves a small command language instead of a shell, like the CLI of a network
 * switch. Logged-in users get a `switch>` prompt, or run one line with `ssh switch 'show version'`;
 * nothing of the host is reachable: no shell, no programs, no port forwarding, no subsystems.
 *
 *   SWITCH_PASSWORD=secret PORT=2222 node examples/restricted-shell-server.mjs
 *   ssh -p 2222 admin@127.0.0.1                       # then: show interfaces, configure, help
 *   ssh -p 2222 admin@127.0.0.1 'configure; hostname core1; show running-config'
 *
 *   HOST, PORT          where to listen (default 127.0.0.1:2222; port 0 picks a free one)
 *   HOST_KEY            a private key file; without it a new ed25519 key is made at each start
 *   SWITCH_PASSWORD     the password, for any user name (default: a random one, printed)
 *   AUTHORIZED_KEYS     a file of public keys (one `type base64 comment` line each), for any user
 *
 * Prints `listening on HOST:PORT` and the host key (its fingerprint, and the line for known_hosts).
 * Commands may be shortened while they stay unambiguous (`sh int` is `show interfaces`).
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, fingerprint, formatOpenSshPublicKey, generatePrivateKey, parsePrivateKeyFile, parsePublicKeyText } from 'tssh';

// ---- The device: state shared by every session, as on a real switch ---------------------------

const started = Date.now();
const device = {
  hostname: 'switch',
  interfaces: [
    { name: 'eth0', description: 'uplink', enabled: true },
    { name: 'eth1', description: '', enabled: true },
    { name: 'eth2', description: '', enabled: false },
  ],
  /** Who is logged in: one entry per open session, `user from address port N`. */
  sessions: new Set(),
};

/** Find an interface by its name, or say why not. */
function findInterface(name) {
  const found = device.interfaces.find((i) => i.name === name);
  if (!found) throw new CliError(`% Invalid interface ${JSON.stringify(name ?? '')}`);
  return found;
}

class CliError extends Error {}

/**
 * The commands of each mode: words to type, what they do. A handler returns its output (or
 * nothing), and may change the mode of the session (`cli`).
 */
const modes = {
  exec: {
    'show version': () => `tssh-switch 1.0 (an example of tssh's server API)\nuptime ${Math.round((Date.now() - started) / 1000)} s`,
    'show interfaces': () =>
      ['Interface  Status  Description', ...device.interfaces.map((i) => `${i.name.padEnd(11)}${(i.enabled ? 'up' : 'down').padEnd(8)}${i.description}`)].join('\n'),
    'show running-config': () =>
      [
        `hostname ${device.hostname}`,
        ...device.interfaces.flatMap((i) => [`interface ${i.name}`, ...(i.description ? [` description ${i.description}`] : []), ` ${i.enabled ? 'no ' : ''}shutdown`]),
      ].join('\n'),
    'show users': () => [...device.sessions].map((s) => s.who).join('\n'),
    configure: (cli) => {
      cli.mode = 'config';
      return 'Enter configuration commands, one per line. End with `end`.';
    },
    help: (cli) => help(cli),
    exit: (cli) => void (cli.done = true),
    logout: (cli) => void (cli.done = true),
  },
  config: {
    hostname: (_cli, args) => {
      if (!/^[A-Za-z][\w-]{0,62}$/.test(args[0] ?? '')) throw new CliError('% Usage: hostname NAME (a letter, then letters, digits, - or _)');
      device.hostname = args[0];
    },
    description: (_cli, args) => {
      findInterface(args[0]).description = args.slice(1).join(' ');
    },
    shutdown: (_cli, args) => void (findInterface(args[0]).enabled = false),
    'no shutdown': (_cli, args) => void (findInterface(args[0]).enabled = true),
    help: (cli) => help(cli),
    end: (cli) => void (cli.mode = 'exec'),
    exit: (cli) => void (cli.mode = 'exec'),
  },
};

function help(cli) {
  return Object.keys(modes[cli.mode]).sort().join('\n');
}

/** Run one line in `cli` (mode and output). Returns the line's status: 0, or 1 for an error. */
function runLine(cli, line) {
  const words = line.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return 0;
  if (words[0] === '?') words[0] = 'help';
  // Each command's words, each typed word a prefix of the command's word: `sh int`.
  const commands = Object.entries(modes[cli.mode]).map(([name, run]) => ({ name, keywords: name.split(' '), run }));
  const matching = (c) => c.keywords.length <= words.length && c.keywords.every((k, i) => k.startsWith(words[i]));
  let candidates = commands.filter(matching);
  // An exact word wins over longer ones it is a prefix of (`no shutdown` vs `no shutdownx`).
  if (candidates.length > 1) candidates = candidates.filter((c) => c.keywords.every((k, i) => k === words[i]));
  try {
    if (candidates.length === 1) {
      const [command] = candidates;
      const output = command.run(cli, words.slice(command.keywords.length));
      if (output) cli.print(output);
      return 0;
    }
    if (candidates.length > 1) throw new CliError(`% Ambiguous command: ${line.trim()}`);
    const incomplete = commands.some((c) => words.length < c.keywords.length && words.every((w, i) => c.keywords[i].startsWith(w)));
    throw new CliError(incomplete ? `% Incomplete command: ${line.trim()}` : `% Unknown command: ${line.trim()} (try help)`);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    cli.print(error.message);
    return 1;
  }
}

// ---- The SSH server ----------------------------------------------------------------------------

const password = process.env.SWITCH_PASSWORD ?? randomBytes(9).toString('base64url');
const digest = (text) => createHash('sha256').update(text).digest();
const authorizedKeys = process.env.AUTHORIZED_KEYS
  ? readFileSync(process.env.AUTHORIZED_KEYS, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('#'))
      .map((line) => parsePublicKeyText(line).key)
  : [];
const hostKey = process.env.HOST_KEY
  ? (await parsePrivateKeyFile(readFileSync(process.env.HOST_KEY))).key
  : await generatePrivateKey('ed25519');

const server = createServer({
  hostKeys: [hostKey],
  auth: {
    password: (request) => (timingSafeEqual(digest(request.password), digest(password)) ? 'success' : 'failure'),
    publicKeyAllowed: ({ key }) => authorizedKeys.some((allowed) => allowed.blob.equals(key.blob)),
  },
  authLog: (event, connection) => console.log(`${event.outcome} ${event.method} for ${event.user} from ${connection.remoteAddress}`),
});

server.on('connection', (connection) => {
  // No 'direct-tcpip', 'tcpip-forward' or 'direct-streamlocal' listeners: forwarding is refused.
  connection.on('session', (session) => {
    let terminal = false;
    // With a pty the client's terminal is raw: we echo and edit lines ourselves.
    session.on('pty', (request) => {
      terminal = true;
      request.accept();
    });
    const entry = { who: `${connection.user} from ${connection.remoteAddress} port ${connection.remotePort}` };
    const cli = {
      mode: 'exec',
      done: false,
      print: (text) => session.write(`${text}\n`.replace(/\n/g, terminal ? '\r\n' : '\n')),
    };
    let finished = false;
    const finish = (status) => {
      if (finished) return;
      finished = true;
      device.sessions.delete(entry);
      session.exit(status);
    };
    session.on('close', () => device.sessions.delete(entry));

    // `ssh switch 'show version; show users'`: lines separated by ; or newlines, status of the last.
    session.on('exec', (request) => {
      request.accept();
      device.sessions.add(entry);
      let status = 0;
      for (const line of request.details.command.split(/[;\n]/)) {
        status = runLine(cli, line);
        if (cli.done) break;
      }
      finish(status);
    });

    session.on('shell', (request) => {
      request.accept();
      device.sessions.add(entry);
      const prompt = () => session.write(cli.mode === 'config' ? `${device.hostname}(config)# ` : `${device.hostname}> `);
      cli.print(`Welcome to ${device.hostname}. Type help for the commands.`);
      prompt();
      let line = '';
      let escape = ''; // an escape sequence (arrow keys…) being skipped
      let lastWasCr = false;
      session.on('data', (chunk) => {
        if (finished) return;
        for (const ch of chunk.toString('utf8')) {
          if (escape) {
            escape += ch;
            if (escape.length > 2 && /[A-Za-z~]/.test(ch)) escape = '';
            else if (escape === '\x1b' + ch && ch !== '[' && ch !== 'O') escape = '';
            continue;
          }
          const crlf = lastWasCr && ch === '\n';
          lastWasCr = ch === '\r';
          if (crlf) continue;
          if (ch === '\r' || ch === '\n') {
            if (terminal) session.write('\r\n');
            runLine(cli, line);
            line = '';
            if (cli.done) return finish(0);
            prompt();
          } else if (ch === '\x7f' || ch === '\b') {
            if (line) {
              line = line.slice(0, -1);
              if (terminal) session.write('\b \b');
            }
          } else if (ch === '\x03') {
            line = '';
            session.write(terminal ? '^C\r\n' : '\n');
            prompt();
          } else if (ch === '\x04') {
            if (!line) return finish(0);
          } else if (ch === '\x1b') {
            escape = ch;
          } else if (ch >= ' ') {
            line += ch;
            if (terminal) session.write(ch);
          }
        }
      });
      session.on('end', () => finish(0)); // the client closed its input
    });
  });
});

const address = await server.listen(Number(process.env.PORT ?? 2222), process.env.HOST ?? '127.0.0.1');
console.log(`listening on ${address.address}:${address.port}`);
console.log(`host key ${hostKey.publicKey.type} ${fingerprint(hostKey.publicKey)}`);
// The line a client's known_hosts needs (ssh writes [host]:port for ports other than 22).
console.log(`known_hosts line: [${address.address}]:${address.port} ${formatOpenSshPublicKey(hostKey.publicKey)}`);
if (process.env.SWITCH_PASSWORD === undefined) console.log(`password (any user name): ${password}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    void server.close().then(() => console.log('stopped'));
  });
}
