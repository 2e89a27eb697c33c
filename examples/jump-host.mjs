/**
 * Reach a server through a jump host, like `ssh -J jump.example.org internal-host command`: the
 * second SSH connection runs inside a direct-tcpip channel of the first, end to end encrypted (the
 * jump host only relays bytes and never sees the inner session's keys).
 *
 *   JUMP_HOST=jump.example.org SSH_HOST=internal-host node examples/jump-host.mjs 'uname -a'
 *
 *   JUMP_HOST, JUMP_PORT (22), JUMP_USER (SSH_USER): the jump host
 *   SSH_HOST, SSH_PORT (22), SSH_USER: the server behind it, as the jump host names it
 *   SSH_KEY, SSH_PASSWORD, SSH_AUTH_SOCK, SSH_KNOWN_HOSTS: used for both, as in run-a-command.mjs
 *
 * Both host keys are checked against known_hosts, each under its own name: the inner connection is
 * given `host` and `port` so that the target's entry is the one looked up.
 */
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { connect } from 'tssh';

async function main() {
  const command = process.argv.slice(2).join(' ') || 'uname -a';
  const user = process.env.SSH_USER ?? userInfo().username;
  const credentials = {
    privateKeyFiles: [process.env.SSH_KEY ?? join(homedir(), '.ssh', 'id_ed25519')],
    agent: process.env.SSH_AUTH_SOCK,
    password: process.env.SSH_PASSWORD,
    knownHosts: { files: [process.env.SSH_KNOWN_HOSTS ?? join(homedir(), '.ssh', 'known_hosts')] },
  };
  const targetHost = process.env.SSH_HOST ?? 'localhost';
  const targetPort = Number(process.env.SSH_PORT ?? 22);

  const jump = await connect({
    host: process.env.JUMP_HOST ?? 'localhost',
    port: Number(process.env.JUMP_PORT ?? 22),
    username: process.env.JUMP_USER ?? user,
    ...credentials,
  });
  try {
    // A byte stream to targetHost:targetPort, opened by the jump host.
    const tunnel = await jump.forwardOut(targetHost, targetPort);
    const target = await connect({ sock: tunnel, host: targetHost, port: targetPort, username: user, ...credentials });
    try {
      const { stdout, stderr, code } = await target.exec(command);
      process.stdout.write(stdout);
      process.stderr.write(stderr);
      return code ?? 255;
    } finally {
      await target.end();
    }
  } finally {
    await jump.end();
  }
}

main().then(
  (status) => (process.exitCode = status),
  (error) => {
    console.error(`jump-host: ${error.message}`);
    process.exitCode = 255;
  },
);
