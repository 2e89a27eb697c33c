/**
 * Local port forwarding, like `ssh -L 8080:intranet.example:80 gateway`: connections to a local
 * port are carried through the SSH server, which connects to the target for us.
 *
 *   node examples/port-forward.mjs 8080 intranet.example:80
 *   curl http://127.0.0.1:8080/
 *
 * Local port 0 picks a free port; the line `forwarding 127.0.0.1:PORT -> HOST:PORT` says which.
 * Runs until Ctrl-C (SIGINT) or SIGTERM, then closes the listener and the connection.
 *
 * Target and credentials: SSH_HOST, SSH_PORT, SSH_USER, SSH_KEY, SSH_PASSWORD, SSH_AUTH_SOCK and
 * SSH_KNOWN_HOSTS, as in run-a-command.mjs.
 */
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect } from 'tssh';

async function main() {
  const [localPortText = '8080', target = 'localhost:80'] = process.argv.slice(2);
  const separator = target.lastIndexOf(':');
  const targetHost = target.slice(0, separator);
  const targetPort = Number(target.slice(separator + 1));
  if (separator <= 0 || !Number.isInteger(targetPort)) throw new Error(`target must be HOST:PORT, not ${JSON.stringify(target)}`);

  const client = await connect({
    host: process.env.SSH_HOST ?? 'localhost',
    port: Number(process.env.SSH_PORT ?? 22),
    username: process.env.SSH_USER ?? userInfo().username,
    privateKeyFiles: [process.env.SSH_KEY ?? join(homedir(), '.ssh', 'id_ed25519')],
    agent: process.env.SSH_AUTH_SOCK,
    password: process.env.SSH_PASSWORD,
    knownHosts: { files: [process.env.SSH_KNOWN_HOSTS ?? join(homedir(), '.ssh', 'known_hosts')] },
    // Notice a dead server or network within ~45 s rather than at the next TCP timeout.
    keepaliveInterval: 15_000,
  });

  // A net.Server on 127.0.0.1: each connection becomes a direct-tcpip channel (client.forwardOut)
  // to targetHost:targetPort, opened by the server. Refused channels close the local socket.
  const listener = await client.forwardLocal(Number(localPortText), targetHost, targetPort);
  const address = listener.address();
  const port = typeof address === 'object' && address !== null ? address.port : localPortText;
  console.log(`forwarding 127.0.0.1:${port} -> ${targetHost}:${targetPort}`);

  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  // The SSH connection can also end under us (server gone, keepalives unanswered).
  const lost = once(client, 'close').then(([error]) => {
    if (error) console.error(`connection closed: ${error.message}`);
  });
  await Promise.race([once(stop.signal, 'abort'), lost]);

  listener.close();
  await client.end();
  console.log('closed');
}

main().catch((error) => {
  console.error(`port-forward: ${error.message}`);
  process.exitCode = 255;
});
