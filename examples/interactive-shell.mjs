/**
 * An interactive shell, like `ssh host`: a pseudo-terminal of your terminal's size, raw keystrokes
 * in, screen output out, resizes passed on, and the shell's exit status as ours.
 *
 *   node examples/interactive-shell.mjs          # a terminal when stdin is one (as ssh)
 *   node examples/interactive-shell.mjs -t       # ask for a terminal anyway (as ssh -tt)
 *   printf 'uname -a\nexit\n' | node examples/interactive-shell.mjs
 *
 * Servers may refuse a terminal (sshd without a pty device, a tssh server that does not accept
 * 'pty' requests): the shell then runs without one, as ssh does, with a note on stderr.
 *
 * Target and credentials: SSH_HOST, SSH_PORT, SSH_USER, SSH_KEY, SSH_PASSWORD, SSH_AUTH_SOCK and
 * SSH_KNOWN_HOSTS, as in run-a-command.mjs.
 */
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect, SshError } from 'tssh';

async function main() {
  const wantTerminal = process.argv.includes('-t') || process.stdin.isTTY === true;

  const client = await connect({
    host: process.env.SSH_HOST ?? 'localhost',
    port: Number(process.env.SSH_PORT ?? 22),
    username: process.env.SSH_USER ?? userInfo().username,
    privateKeyFiles: [process.env.SSH_KEY ?? join(homedir(), '.ssh', 'id_ed25519')],
    agent: process.env.SSH_AUTH_SOCK,
    password: process.env.SSH_PASSWORD,
    knownHosts: { files: [process.env.SSH_KNOWN_HOSTS ?? join(homedir(), '.ssh', 'known_hosts')] },
  });
  client.on('banner', (message) => process.stderr.write(message));

  try {
    const pty = {
      term: process.env.TERM ?? 'xterm-256color',
      columns: process.stdout.columns ?? 80,
      rows: process.stdout.rows ?? 24,
    };
    let session;
    let haveTerminal = wantTerminal;
    try {
      session = await client.shell({ pty: wantTerminal ? pty : false });
    } catch (error) {
      // A refused request closes its session; ask again, for a shell without a terminal.
      if (!(error instanceof SshError) || !wantTerminal) throw error;
      console.error(`[${error.message}: continuing without a terminal]`);
      haveTerminal = false;
      session = await client.shell({ pty: false });
    }

    // Our terminal goes raw (no local echo or line editing: the remote side does that now).
    const raw = haveTerminal && process.stdin.isTTY === true;
    if (raw) process.stdin.setRawMode(true);
    const onResize = () => session.setWindow(process.stdout.columns, process.stdout.rows);
    process.stdout.on('resize', onResize);

    process.stdin.pipe(session);
    session.pipe(process.stdout, { end: false });
    session.stderr.pipe(process.stderr, { end: false });
    if (!session.destroyed) await once(session, 'close');

    process.stdin.unpipe(session);
    process.stdin.pause();
    if (raw) process.stdin.setRawMode(false);
    process.stdout.off('resize', onResize);
    const exit = session.exit;
    if (exit?.signal) console.error(`[shell killed by signal ${exit.signal.signal}]`);
    return exit?.code ?? 255;
  } finally {
    await client.end();
  }
}

main().then(
  (status) => (process.exitCode = status),
  (error) => {
    console.error(`interactive-shell: ${error.message}`);
    process.exitCode = 255;
  },
);
