/**
 * Run one command on a server and print what it printed, like `ssh host command`.
 *
 *   node examples/run-a-command.mjs 'uname -a'
 *   node examples/run-a-command.mjs --stream 'journalctl -f'     # output as it comes
 *
 * The server and the credentials come from the environment:
 *
 *   SSH_HOST         default localhost
 *   SSH_PORT         default 22
 *   SSH_USER         default your local user name
 *   SSH_KEY          a private key file, default ~/.ssh/id_ed25519 (skipped if it does not exist)
 *   SSH_PASSWORD     tried after the keys, if set
 *   SSH_AUTH_SOCK    an ssh-agent, whose keys are tried first
 *   SSH_KNOWN_HOSTS  the known_hosts file the server's host key must be in, default ~/.ssh/known_hosts
 *
 * The exit status is the command's, as with ssh (255 when it died of a signal or we failed).
 */
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect } from 'tssh';

async function main() {
  const args = process.argv.slice(2);
  const streaming = args[0] === '--stream';
  const command = (streaming ? args.slice(1) : args).join(' ') || 'uname -a';

  const client = await connect({
    host: process.env.SSH_HOST ?? 'localhost',
    port: Number(process.env.SSH_PORT ?? 22),
    username: process.env.SSH_USER ?? userInfo().username,
    privateKeyFiles: [process.env.SSH_KEY ?? join(homedir(), '.ssh', 'id_ed25519')],
    agent: process.env.SSH_AUTH_SOCK,
    password: process.env.SSH_PASSWORD,
    // The host key is always checked: here against this known_hosts file, refusing unknown hosts.
    knownHosts: { files: [process.env.SSH_KNOWN_HOSTS ?? join(homedir(), '.ssh', 'known_hosts')] },
  });

  try {
    if (!streaming) {
      // Buffered: resolves when the command has exited, with everything it wrote.
      const { stdout, stderr, code, signal } = await client.exec(command);
      process.stdout.write(stdout);
      process.stderr.write(stderr);
      if (signal) console.error(`[killed by signal ${signal.signal}]`);
      return code ?? 255;
    }
    // Streaming: the session is a Duplex (stdin/stdout) with a `.stderr` Readable; back-pressure
    // works end to end, so a slow reader slows the command down instead of filling memory.
    const session = await client.execStream(command);
    session.pipe(process.stdout, { end: false });
    session.stderr.pipe(process.stderr, { end: false });
    // Both outputs read to their end, and the channel closed: the exit status has arrived by then
    // (servers send it before they close the channel, but not always before the end of output).
    const done = Promise.all([once(session, 'end'), once(session.stderr, 'end'), once(session, 'close')]);
    session.end(); // no stdin for the command
    await done;
    const exit = session.exit;
    if (exit?.signal) console.error(`[killed by signal ${exit.signal.signal}]`);
    return exit?.code ?? 255;
  } finally {
    await client.end();
  }
}

main().then(
  (status) => (process.exitCode = status),
  (error) => {
    console.error(`run-a-command: ${error.message}`);
    process.exitCode = 255;
  },
);
