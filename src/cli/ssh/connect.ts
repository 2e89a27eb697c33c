/**
 * tssh's part in connecting: what ssh asks and says on the terminal. The passphrase, password and
 * keyboard-interactive prompts, StrictHostKeyChecking=ask's host key confirmation (in ssh's
 * words), and known_hosts warnings by LogLevel. Everything else (the way in, ProxyJump,
 * ProxyCommand, known_hosts, identities, algorithms) is the library's connectWithSshOptions().
 */
import { homedir } from 'node:os';
import { connectWithSshOptions, type SshClient } from '../../client.js';
import type { SshConfig, SshOptions } from '../../config/ssh-config.js';
import type { HostKeyQuestion } from '../../keys/host-key-verifier.js';
import { ask } from './prompt.js';

export interface ClientLog {
  (level: 1 | 2 | 3, line: string): void;
}

/** Connect to the host `options` describe, through its ProxyJump hops (resolved through `configs`) or ProxyCommand. */
export function connectWithOptions(options: SshOptions, configs: readonly SshConfig[], log: ClientLog): Promise<SshClient> {
  const batchMode = options.batchMode;
  return connectWithSshOptions(options, {
    jumpConfigs: configs,
    passphrase: async (path) => (await ask(`Enter passphrase for key '${path}': `, { echo: false, batchMode })) ?? '',
    password: async (attempt, context) => {
      if (attempt > 1) process.stderr.write('Permission denied, please try again.\n');
      return ask(`${context.username}@${context.host}'s password: `, { echo: false, batchMode });
    },
    keyboardInteractive: async (request) => {
      if (batchMode) return undefined;
      if (request.name) process.stderr.write(`${request.name}\n`);
      if (request.instruction) process.stderr.write(`${request.instruction}\n`);
      const answers: string[] = [];
      for (const prompt of request.prompts) {
        const answer = await ask(prompt.prompt, { echo: prompt.echo, batchMode });
        if (answer === undefined) return undefined;
        answers.push(answer);
      }
      return answers;
    },
    knownHosts: {
      ask: (question) => confirmHostKey(question, batchMode),
      // As ssh: warnings are INFO-level messages, silent at LogLevel QUIET, FATAL or ERROR (and -q).
      onWarning: (message) => {
        if (!['QUIET', 'FATAL', 'ERROR'].includes(options.logLevel.toUpperCase())) process.stderr.write(`Warning: ${message}\n`);
      },
    },
    // Long enough for a person to answer the prompts.
    readyTimeout: 120_000,
    debug: (line) => log(1, line),
  });
}

/** `[host]:port` unless the port is 22, as ssh's put_host_port(). */
function hostPort(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** A path under the home folder written with `~`, as ssh's try_tilde_unexpand(). */
function tildeUnexpand(path: string): string {
  const home = homedir();
  return path.startsWith(`${home}/`) ? `~/${path.slice(home.length + 1)}` : path;
}

/** At most this many other names are listed (ssh's MAX_DISPLAY_OTHERNAMES). */
const MAX_OTHER_NAMES = 8;

/**
 * The question ssh(1) asks under StrictHostKeyChecking=ask (sshconnect.c check_host_key() and
 * other_hostkeys_message()), word for word.
 */
export function hostKeyQuestionText(question: HostKeyQuestion): string {
  const ip = question.address === undefined ? '<no hostip for proxy command>' : hostPort(question.address, question.port);
  let others: string;
  if (question.otherNames.length === 0) others = 'This key is not known by any other names.\n';
  else {
    others = 'This host key is known by the following other names/addresses:\n';
    for (const entry of question.otherNames.slice(0, MAX_OTHER_NAMES)) {
      others += `    ${tildeUnexpand(entry.file)}:${entry.line}: ${entry.hashed ? '[hashed name]' : entry.hosts}\n`;
    }
    if (question.otherNames.length > MAX_OTHER_NAMES) others += `    (${question.otherNames.length - MAX_OTHER_NAMES} additional names omitted)\n`;
  }
  return (
    `The authenticity of host '${question.name} (${ip})' can't be established.\n` +
    `${question.keyType} key fingerprint is ${question.fingerprint}.\n` +
    others +
    'Are you sure you want to continue connecting (yes/no/[fingerprint])? '
  );
}

/**
 * ssh's confirm(): yes, no, or the fingerprint pasted back; anything else asks again. An empty
 * answer, no answer (no terminal, askpass failed) and BatchMode are a no.
 */
async function confirmHostKey(question: HostKeyQuestion, batchMode: boolean): Promise<boolean> {
  if (batchMode) return false;
  let prompt = hostKeyQuestionText(question);
  for (;;) {
    const answer = await ask(prompt, { echo: true, batchMode });
    if (answer === undefined) return false;
    const word = answer.replace(/^[ \t]+/, '').split(/[ \t\n]/)[0] ?? '';
    if (word === '' || word.toLowerCase() === 'no') return false;
    if (word.toLowerCase() === 'yes' || word === question.fingerprint) return true;
    prompt = "Please type 'yes', 'no' or the fingerprint: ";
  }
}
