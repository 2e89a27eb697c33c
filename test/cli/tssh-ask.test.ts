/**
 * tssh under StrictHostKeyChecking=ask, answered through SSH_ASKPASS as ssh is: the question in
 * ssh's words (compared with what OpenSSH's own ssh asks about the same server), yes, no, the
 * pasted fingerprint, a wrong answer asked again, the known_hosts line and the "Permanently added"
 * warning; BatchMode never asks.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fingerprint } from '../../src/index.js';
import { run } from '../helpers/auth-lab.js';
import { configLab, type ConfigLab, type LabServer } from '../helpers/config-lab.js';
import { havePeers, peerPath } from '../helpers/peers.js';

const TSSH = resolve('dist/bin/tssh.js');

interface Askpass {
  env: NodeJS.ProcessEnv;
  /** The prompts it was given, in order. */
  prompts(): string[];
}

/** An SSH_ASKPASS program that answers its nth question with answers[n-1] and keeps every prompt. */
function askpass(lab: ConfigLab, name: string, answers: readonly string[]): Askpass {
  const base = `${lab.dir}/askpass-${name}`;
  writeFileSync(`${base}.answers`, `${answers.join('\n')}\n`);
  writeFileSync(`${base}.count`, '0\n');
  writeFileSync(
    `${base}.sh`,
    [
      '#!/bin/sh',
      `n=$(( $(cat '${base}.count') + 1 ))`,
      `echo "$n" > '${base}.count'`,
      `printf '%s' "$1" > '${base}.prompt.'"$n"`,
      `sed -n "\${n}p" '${base}.answers'`,
      '',
    ].join('\n'),
  );
  chmodSync(`${base}.sh`, 0o700);
  const env: NodeJS.ProcessEnv = { ...process.env, SSH_ASKPASS: `${base}.sh`, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
  delete env.SSH_AUTH_SOCK;
  return {
    env,
    prompts: () => {
      const count = Number(readFileSync(`${base}.count`, 'utf8'));
      return Array.from({ length: count }, (_, i) => readFileSync(`${base}.prompt.${i + 1}`, 'utf8'));
    },
  };
}

/** A config whose alias `box` reaches the server, with StrictHostKeyChecking ask and a known_hosts of its own. */
function writeConfig(lab: ConfigLab, box: LabServer, knownHosts: string, extra: readonly string[] = []): string {
  return lab.writeFile(
    `config.${Math.random().toString(36).slice(2)}`,
    [
      'Host box',
      ...extra.map((line) => `  ${line}`),
      '  HostName 127.0.0.1',
      `  Port ${box.port}`,
      '  User alice',
      `  IdentityFile ${lab.userKeyFile}`,
      '  IdentitiesOnly yes',
      '  IdentityAgent none',
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking ask',
      '  HashKnownHosts no',
      '',
    ].join('\n'),
  );
}

/** What ssh asks about the lab's host key at [127.0.0.1]:port, reached over TCP. */
function expectedQuestion(lab: ConfigLab, port: number): string {
  return (
    `The authenticity of host '[127.0.0.1]:${port} ([127.0.0.1]:${port})' can't be established.\n` +
    `ED25519 key fingerprint is ${fingerprint(lab.keys.host.publicKey)}.\n` +
    'This key is not known by any other names.\n' +
    'Are you sure you want to continue connecting (yes/no/[fingerprint])? '
  );
}

describe('tssh with StrictHostKeyChecking=ask', () => {
  test('yes: the question in ssh\'s words, the key recorded, the warning printed, and no question the next time', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = `${lab.dir}/known_hosts`;
    const config = writeConfig(lab, box, knownHosts);
    const yes = askpass(lab, 'yes', ['yes']);
    const first = await run(process.execPath, [TSSH, '-F', config, 'box', 'whoami'], { env: yes.env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'alice\n');
    assert.deepEqual(yes.prompts(), [expectedQuestion(lab, box.port)]);
    assert.equal(first.stderr, `Warning: Permanently added '[127.0.0.1]:${box.port}' (ED25519) to the list of known hosts.\n`);
    assert.equal(readFileSync(knownHosts, 'utf8'), `${lab.knownHostsLine(box.port)}\n`);

    const second = await run(process.execPath, [TSSH, '-F', config, 'box', 'hostname'], { env: yes.env });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'box\n');
    assert.equal(second.stderr, '');
    assert.equal(yes.prompts().length, 1, 'a known host is not asked about');
  });

  test('no: exit 255, nothing recorded, no login', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = lab.writeFile('known_hosts', '');
    const no = askpass(lab, 'no', ['no']);
    const result = await run(process.execPath, [TSSH, '-F', writeConfig(lab, box, knownHosts), 'box', 'whoami'], { env: no.env });
    assert.equal(result.code, 255);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, `tssh: host key verification failed: the ssh-ed25519 ${fingerprint(lab.keys.host.publicKey)} key of [127.0.0.1]:${box.port} was not accepted\n`);
    assert.deepEqual(no.prompts(), [expectedQuestion(lab, box.port)]);
    assert.equal(readFileSync(knownHosts, 'utf8'), '');
    assert.equal(box.logins.length, 0);
  });

  test('an answer that is neither is asked again; the pasted fingerprint accepts; HashKnownHosts hashes the entry', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = lab.writeFile('known_hosts', '');
    const pasted = askpass(lab, 'fingerprint', ['maybe', `  ${fingerprint(lab.keys.host.publicKey)}  `]);
    const config = writeConfig(lab, box, knownHosts, ['HashKnownHosts yes']);
    const result = await run(process.execPath, [TSSH, '-F', config, 'box', 'echo accepted'], { env: pasted.env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'accepted\n');
    assert.deepEqual(pasted.prompts(), [expectedQuestion(lab, box.port), "Please type 'yes', 'no' or the fingerprint: "]);
    assert.match(readFileSync(knownHosts, 'utf8'), /^\|1\|\S+\|\S+ ssh-ed25519 \S+\n$/);
  });

  test('BatchMode never asks: the unknown host is refused', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = `${lab.dir}/known_hosts`;
    const yes = askpass(lab, 'batch', ['yes']);
    const result = await run(process.execPath, [TSSH, '-F', writeConfig(lab, box, knownHosts), '-o', 'BatchMode yes', 'box', 'whoami'], { env: yes.env });
    assert.equal(result.code, 255);
    assert.match(result.stderr, /StrictHostKeyChecking is ask, but there is no one to ask/);
    assert.deepEqual(yes.prompts(), []);
    assert.equal(existsSync(knownHosts), false);
  });

  test("OpenSSH's ssh asks the same question and writes the same line", async (t) => {
    if (!havePeers(t, 'ssh')) return;
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const sshKnownHosts = lab.writeFile('known_hosts.ssh', '');
    const tsshKnownHosts = lab.writeFile('known_hosts.tssh', '');
    const viaSsh = askpass(lab, 'ssh', ['yes']);
    const viaTssh = askpass(lab, 'tssh', ['yes']);
    const ssh = await run(peerPath('ssh'), ['-F', writeConfig(lab, box, sshKnownHosts), 'box', 'whoami'], { env: viaSsh.env });
    const tssh = await run(process.execPath, [TSSH, '-F', writeConfig(lab, box, tsshKnownHosts), 'box', 'whoami'], { env: viaTssh.env });
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(tssh.code, 0, tssh.stderr);
    assert.equal(viaSsh.prompts().length, 1, ssh.stderr);
    assert.deepEqual(viaTssh.prompts(), viaSsh.prompts());
    assert.equal(readFileSync(tsshKnownHosts, 'utf8'), readFileSync(sshKnownHosts, 'utf8'));
    // ssh ends its log lines with \r\n (for a terminal in raw mode); tssh's lines end with \n.
    const warning = (stderr: string): string | undefined => stderr.split(/\r?\n/).find((line) => line.startsWith('Warning: Permanently added'));
    assert.equal(warning(tssh.stderr), warning(ssh.stderr));
  });
});
