/**
 * Connect the way `ssh myalias command` does: the host name, port, user, keys, jump hosts and
 * host key policy all come from your ~/.ssh/config (then /etc/ssh/ssh_config), as for ssh.
 *
 *   node examples/ssh-config-alias.mjs myalias 'uname -a'
 *
 *   SSH_CONFIG      read this file instead of ~/.ssh/config and /etc/ssh/ssh_config
 *   SSH_PASSWORD    a password, if the server wants one
 *
 * With StrictHostKeyChecking ask (ssh's default), a host whose key is not in known_hosts is shown
 * and you are asked on the terminal whether to trust it, as ssh asks; yes records the key in your
 * known_hosts. BatchMode yes in the config turns the question off (the host is refused).
 */
import { createInterface } from 'node:readline/promises';
import { connect } from 'tssh';

/** @param {import('tssh').HostKeyQuestion} question */
async function askOnTerminal(question) {
  const where = question.address === undefined ? 'through a proxy' : question.address;
  const prompt =
    `The authenticity of host '${question.name}' (${where}) can't be established.\n` +
    `${question.keyType} key fingerprint is ${question.fingerprint}.\n` +
    'Are you sure you want to continue connecting (yes/no/[fingerprint])? ';
  const terminal = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await terminal.question(prompt)).trim();
    return answer === 'yes' || answer === question.fingerprint;
  } catch {
    return false; // stdin closed: no answer is a no
  } finally {
    terminal.close();
  }
}

async function main() {
  const [alias, ...words] = process.argv.slice(2);
  if (alias === undefined) {
    console.error('usage: node examples/ssh-config-alias.mjs ALIAS [command]');
    return 2;
  }
  const client = await connect({
    host: alias,
    // true: ~/.ssh/config then /etc/ssh/ssh_config; a path: that file alone.
    sshConfig: process.env.SSH_CONFIG ?? true,
    password: process.env.SSH_PASSWORD,
    knownHosts: { ask: askOnTerminal, onWarning: (message) => console.error(`Warning: ${message}`) },
  });
  try {
    const { stdout, stderr, code } = await client.exec(words.join(' ') || 'uname -a');
    process.stdout.write(stdout);
    process.stderr.write(stderr);
    return code ?? 255;
  } finally {
    await client.end();
  }
}

main().then(
  (status) => (process.exitCode = status),
  (error) => {
    console.error(`ssh-config-alias: ${error.message}`);
    process.exitCode = 255;
  },
);
