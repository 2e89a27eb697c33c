/**
 * Turning resolved ssh_config options into a connected, authenticated client: the way in
 * (TCP with ConnectTimeout and ConnectionAttempts, ProxyCommand, ProxyJump hops), host key
 * checking by StrictHostKeyChecking and the known_hosts files, and the identities, agent and
 * prompts of ssh.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect, type ConnectOptions, type SshClient } from '../../client.js';
import type { SshOptions } from '../../config/ssh-config.js';
import { expandClientPath, clientTokens } from '../../config/ssh-config.js';
import { ask } from './prompt.js';
import { SshError, DisconnectReason } from '../../errors.js';
import type { StrictHostKeyChecking } from '../../keys/host-key-verifier.js';
import { KnownHosts, appendKnownHost, knownHostsName } from '../../keys/known-hosts.js';
import type { SshPublicKey } from '../../algorithms/types.js';

export interface ClientLog {
  (level: 1 | 2 | 3, line: string): void;
}

const POLICY: Record<SshOptions['strictHostKeyChecking'], StrictHostKeyChecking> = {
  yes: 'strict',
  ask: 'strict',
  'accept-new': 'accept-new',
  no: 'off',
};

/** Connect to the host `options` describe, through its ProxyJump hops or ProxyCommand. */
export async function connectWithOptions(
  options: SshOptions,
  resolveJump: (host: string, user: string | null, port: number | null) => SshOptions,
  log: ClientLog,
): Promise<SshClient> {
  let sock: Duplex | undefined;
  const hops: SshClient[] = [];
  if (options.proxyJump && options.proxyJump.length > 0) {
    // Each hop is reached through the previous one (ssh -J a,b,c host).
    let previous: SshClient | undefined;
    for (const hop of options.proxyJump) {
      const hopOptions = resolveJump(hop.host, hop.user, hop.port);
      const hopSock: Duplex | undefined = previous ? await previous.forwardOut(hopOptions.hostName, hopOptions.port) : undefined;
      log(1, `Connecting to jump host ${hopOptions.hostName} port ${hopOptions.port}.`);
      previous = await authenticate(hopOptions, hopSock ?? (await openTcp(hopOptions, log)), log);
      hops.push(previous);
    }
    sock = await previous!.forwardOut(options.hostName, options.port);
  } else if (options.proxyCommand && options.proxyCommand !== 'none') {
    sock = proxyCommand(options, log);
  } else {
    sock = await openTcp(options, log);
  }
  const client = await authenticate(options, sock, log);
  client.once('close', () => {
    for (const hop of hops) void hop.end();
  });
  return client;
}

/** TCP connect with ConnectTimeout, retried ConnectionAttempts times (one second apart, as ssh). */
async function openTcp(options: SshOptions, log: ClientLog): Promise<Socket> {
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= Math.max(1, options.connectionAttempts); attempt++) {
    if (attempt > 1) await new Promise((r) => setTimeout(r, 1000));
    log(1, `Connecting to ${options.hostName} [${options.hostName}] port ${options.port}.`);
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = netConnect({ host: options.hostName, port: options.port });
        const timer = options.connectTimeout ? setTimeout(() => socket.destroy(new Error('Connection timed out')), options.connectTimeout * 1000) : undefined;
        socket.once('connect', () => {
          clearTimeout(timer);
          socket.setNoDelay(true);
          log(1, 'Connection established.');
          resolve(socket);
        });
        socket.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
    } catch (error) {
      lastError = error as Error;
    }
  }
  const code = (lastError as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, `Could not resolve hostname ${options.hostName}: Name or service not known`);
  }
  const message = code === 'ECONNREFUSED' ? 'Connection refused' : lastError?.message;
  throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, `connect to host ${options.hostName} port ${options.port}: ${message}`);
}

/** ProxyCommand: run through /bin/sh with %h %p %r %n expanded; its stdio is the connection. */
function proxyCommand(options: SshOptions, log: ClientLog): Duplex {
  const tokens = clientTokens(options);
  const command = options.proxyCommand!.replace(/%(.)/g, (_m, c: string) => (c === '%' ? '%' : (tokens[c] ?? `%${c}`)));
  log(1, `Executing proxy command: exec ${command}`);
  const child = spawn('/bin/sh', ['-c', `exec ${command}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  stream.on('close', () => child.kill());
  return stream;
}

async function authenticate(options: SshOptions, sock: Duplex, log: ClientLog): Promise<SshClient> {
  const batch = options.batchMode;
  const host = options.hostKeyAlias ?? options.hostName;
  const methods = options.preferredAuthentications.filter((m) => {
    if (m === 'password') return options.passwordAuthentication;
    if (m === 'keyboard-interactive') return options.kbdInteractiveAuthentication;
    if (m === 'publickey') return options.pubkeyAuthentication !== 'no';
    return true;
  });
  const identityFiles = options.identityFile.map((f) => expandClientPath(f, options)).filter((path) => {
    if (existsSync(path)) return true;
    log(1, `identity file ${path} type -1`);
    return false;
  });
  const agentPath = options.identityAgent === 'none' ? undefined : options.identityAgent ? expandClientPath(options.identityAgent, options) : process.env.SSH_AUTH_SOCK;
  const connectOptions: ConnectOptions = {
    host,
    port: options.port,
    sock,
    username: options.user,
    authMethods: methods,
    publicKeyAlgorithms: options.pubkeyAcceptedAlgorithms,
    privateKeyFiles: identityFiles,
    agent: options.identitiesOnly ? undefined : agentPath,
    passphrase: async (path) => (await ask(`Enter passphrase for key '${path}': `, { echo: false, batchMode: batch })) ?? '',
    password: async (attempt) => {
      if (attempt > options.numberOfPasswordPrompts) return undefined;
      if (attempt > 1) process.stderr.write('Permission denied, please try again.\n');
      return ask(`${options.user}@${options.hostName}'s password: `, { echo: false, batchMode: batch });
    },
    keyboardInteractive: async (request) => {
      if (batch) return undefined;
      if (request.name) process.stderr.write(`${request.name}\n`);
      if (request.instruction) process.stderr.write(`${request.instruction}\n`);
      const answers: string[] = [];
      for (const prompt of request.prompts) {
        const answer = await ask(prompt.prompt, { echo: prompt.echo, batchMode: batch });
        if (answer === undefined) return undefined;
        answers.push(answer);
      }
      return answers;
    },
    knownHosts: {
      files: options.userKnownHostsFile.map((f) => expandClientPath(f, options)),
      globalFiles: options.globalKnownHostsFile.map((f) => expandClientPath(f, options)),
      policy: POLICY[options.strictHostKeyChecking],
      hash: options.hashKnownHosts,
      // As ssh: warnings are INFO-level messages, silent at LogLevel QUIET, FATAL or ERROR (and -q).
      onWarning: (message) => {
        if (!['QUIET', 'FATAL', 'ERROR'].includes(options.logLevel.toUpperCase())) process.stderr.write(`Warning: ${message}\n`);
      },
    },
    algorithms: {
      kex: options.kexAlgorithms,
      hostKey: options.hostKeyAlgorithms,
      cipher: options.ciphers,
      mac: options.macs,
      compression: options.compression ? ['zlib@openssh.com', 'none'] : ['none'],
    },
    keepaliveInterval: options.serverAliveInterval * 1000,
    keepaliveCountMax: options.serverAliveCountMax,
    readyTimeout: 120_000,
    rekeyBytes: options.rekeyLimit.bytes > 0 ? options.rekeyLimit.bytes : undefined,
    rekeyIntervalMs: options.rekeyLimit.seconds > 0 ? options.rekeyLimit.seconds * 1000 : undefined,
    debug: (line) => log(1, line),
  };
  const client = await connect(connectOptions);
  log(1, `Authenticated to ${options.hostName} ([${options.hostName}]:${options.port}).`);
  if (options.strictHostKeyChecking !== 'no') learnHostKeys(client, host, options, log);
  return client;
}

/**
 * OpenSSH's UpdateHostKeys: the server announces all its host keys (hostkeys-00@openssh.com);
 * keys not yet in known_hosts are recorded once the server proves it holds them, but only when
 * the key this connection was verified with is itself in known_hosts.
 */
function learnHostKeys(client: SshClient, host: string, options: SshOptions, log: ClientLog): void {
  // The announcement follows USERAUTH_SUCCESS at once: it may have arrived already.
  const whenAnnounced = (handler: (keys: SshPublicKey[]) => void): void => {
    if (client.announcedHostKeys) handler(client.announcedHostKeys);
    else client.once('hostkeys', handler);
  };
  whenAnnounced((announced) => {
    void (async () => {
      const files = options.userKnownHostsFile.map((f) => expandClientPath(f, options));
      const known = await KnownHosts.load([...files, ...options.globalKnownHostsFile.map((f) => expandClientPath(f, options))]);
      const current = client.serverHostKey;
      if (!current || known.lookup(host, options.port, current).status !== 'match') {
        log(2, 'update host keys: the connection\'s host key is not in known_hosts; not learning others');
        return;
      }
      // "mismatch" here only means the host has other keys on file (the one we verified with).
      const unknown = announced.filter((key) => {
        const status = known.lookup(host, options.port, key).status;
        return status === 'unknown' || status === 'mismatch';
      });
      log(2, `update host keys: server announced ${announced.length} keys, ${unknown.length} new`);
      if (unknown.length === 0 || files[0] === undefined) return;
      const proven = await client.proveHostKeys(unknown);
      for (const key of proven) {
        await appendKnownHost(files[0], knownHostsName(host, options.port), key, { hash: options.hashKnownHosts });
        log(1, `client_global_hostkeys_prove_confirm: learned new ${key.type} host key`);
      }
    })().catch((error: unknown) => log(1, `update host keys: ${(error as Error).message}`));
  });
}
