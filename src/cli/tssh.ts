#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * tssh: the SSH client program, with ssh's command line and ~/.ssh/config.
 *
 *   tssh [options] [user@]host [command [argument ...]]
 *
 * The remote command's exit status is tssh's (255 for a connection error).
 */
import { joinStreams } from '../forwarding/join.js';
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { createServer as createNetServer } from 'node:net';
import { appendFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseSshArgs, SshUsageError, SSH_USAGE, type SshArgs } from './ssh/args.js';
import { connectWithOptions, type ClientLog } from './ssh/connect.js';
import { attachSession } from './ssh/interactive.js';
import { localTerminalModes } from './ssh/terminal-modes.js';
import { resolveHost, formatSshConfig, type SshOptions, type Forward } from '../config/ssh-config.js';
import { loadSshConfigs } from '../client-config.js';
import { ConfigError } from '../config/tokens.js';
import { VERSION, type SshClient } from '../client.js';
import { matchPattern } from '../keys/patterns.js';

function makeLog(args: SshArgs): ClientLog {
  return (level, line) => {
    if (args.verbose < level || args.quiet) return;
    const text = `debug${level}: ${line}\n`;
    if (args.logFile) appendFileSync(args.logFile, text);
    else process.stderr.write(text);
  };
}

async function main(argv: string[]): Promise<number> {
  const args = parseSshArgs(argv);
  if (args.version) {
    process.stderr.write(`tssh_${VERSION}, Node.js ${process.version}, OpenSSL ${process.versions.openssl}\n`);
    return 0;
  }
  // -F FILE, or ~/.ssh/config then /etc/ssh/ssh_config.
  const configs = loadSshConfigs(args.configFile ?? true);
  const options = resolveHost(configs, args.destination, {
    user: args.user ?? undefined,
    port: args.port ?? undefined,
    identityFiles: args.identityFiles.length > 0 ? args.identityFiles : undefined,
    overrides: args.overrides,
    localUser: userInfo().username,
  });
  if (args.printConfig) {
    process.stdout.write(formatSshConfig(options));
    return 0;
  }
  const log = makeLog(args);
  for (const note of options.notes) log(1, note);

  if (args.background && process.env.TSSH_BACKGROUND_CHILD !== '1') return goBackground(argv);

  let client: SshClient;
  try {
    client = await connectWithOptions(options, configs, log);
  } catch (error) {
    if (!args.quiet) process.stderr.write(`tssh: ${(error as Error).message}\n`);
    return 255;
  }
  const lost = new Promise<number>((resolveLost) =>
    client.once('close', (error) => {
      if (error && !args.quiet) process.stderr.write(`Connection to ${options.hostName} closed: ${error.message}\n`);
      resolveLost(255);
    }),
  );
  if (options.forwardAgent !== false) {
    const agent = typeof options.forwardAgent === 'string' ? options.forwardAgent.replace(/^\$(\w+)$/, (_m, v: string) => process.env[v] ?? '') : process.env.SSH_AUTH_SOCK;
    if (agent) client.forwardAgent(agent);
  }

  const forwardsOk = await startForwards(client, options, log);
  if (!forwardsOk && options.exitOnForwardFailure) {
    await client.end();
    return 255;
  }

  if (args.stdioForward) {
    const colon = args.stdioForward.lastIndexOf(':');
    const stream = await client.forwardOut(args.stdioForward.slice(0, colon).replace(/^\[|\]$/g, ''), Number(args.stdioForward.slice(colon + 1)));
    process.stdin.pipe(stream).pipe(process.stdout);
    await new Promise<void>((r) => stream.once('close', () => r()));
    await client.end();
    return 0;
  }

  signalBackgroundReady();
  if (args.noCommand) return lost;

  const command = args.command.length > 0 ? args.command.join(' ') : (options.remoteCommand ?? undefined);
  const stdinTty = process.stdin.isTTY === true;
  let wantTty: boolean;
  const requestTTY = args.tty === 2 ? 'force' : args.tty === 1 ? 'yes' : args.tty === -1 ? 'no' : options.requestTTY;
  if (requestTTY === 'force') wantTty = true;
  else if (requestTTY === 'yes') wantTty = stdinTty;
  else if (requestTTY === 'no') wantTty = false;
  else wantTty = command === undefined && stdinTty;
  if (requestTTY === 'yes' && !stdinTty && !args.quiet) {
    process.stderr.write('Pseudo-terminal will not be allocated because stdin is not a terminal.\n');
  }
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && options.sendEnv.some((p) => matchPattern(name, p))) env[name] = value;
  }
  for (const { name, value } of options.setEnv) env[name] = value;

  const session = await client.openSession();
  const pty = wantTty
    ? { term: process.env.TERM ?? 'xterm', columns: process.stdout.columns ?? 80, rows: process.stdout.rows ?? 24, modes: localTerminalModes() }
    : undefined;
  try {
    if (command === undefined) await session.start('shell', undefined, { pty, env });
    else if (args.subsystem) await session.start('subsystem', command, { env });
    else await session.start('exec', command, { pty, env });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    await client.end();
    return 255;
  }
  const escapeChar = args.escapeChar === 'none' ? undefined : (args.escapeChar ?? '~');
  const status = await Promise.race([
    attachSession(session, { terminal: wantTty, escapeChar, disconnect: () => void client.end() }),
    lost,
  ]);
  await client.end();
  return status;
}

/** LocalForward, RemoteForward and DynamicForward; false if any could not be set up. */
async function startForwards(client: SshClient, options: SshOptions, log: ClientLog): Promise<boolean> {
  let ok = true;
  const bind = (forward: Forward): { host: string; port: number } | undefined =>
    'path' in forward.listen ? undefined : { host: forward.listen.host ?? (options.gatewayPorts ? '0.0.0.0' : '127.0.0.1'), port: forward.listen.port };
  for (const forward of options.localForward) {
    const target = forward.connect;
    if (!target) continue;
    // Either end may be a Unix socket: a local socket path to listen on, a remote socket to reach.
    const open = (): Promise<Duplex> =>
      'path' in target ? client.forwardOutStreamLocal(target.path) : client.forwardOut(target.host ?? 'localhost', target.port);
    const where = 'path' in forward.listen ? forward.listen.path : `${bind(forward)!.host}:${bind(forward)!.port}`;
    const server = createNetServer({ allowHalfOpen: true }, (socket) => {
      open().then((stream) => joinStreams(socket, stream), () => socket.destroy());
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        if ('path' in forward.listen) server.listen(forward.listen.path, () => resolve());
        else server.listen(bind(forward)!.port, bind(forward)!.host, () => resolve());
      });
      client.once('close', () => server.close());
      log(1, `Local connections to ${where} forwarded to remote ${'path' in target ? target.path : `address ${target.host}:${target.port}`}`);
    } catch (error) {
      process.stderr.write(`bind ${where}: ${(error as Error).message}\nCould not request local forwarding.\n`);
      ok = false;
    }
  }
  for (const forward of options.dynamicForward) {
    const listen = bind(forward);
    if (!listen) continue;
    try {
      await client.openSocksProxy(listen.port, listen.host);
      log(1, `Local forwarding listening on ${listen.host} port ${listen.port}.`);
    } catch (error) {
      process.stderr.write(`bind [${listen.host}]:${listen.port}: ${(error as Error).message}\n`);
      ok = false;
    }
  }
  for (const forward of options.remoteForward) {
    const target = forward.connect;
    if (!target) continue;
    const connectLocal = (stream: Duplex): void => {
      import('node:net').then(({ connect }) => {
        const socket = 'path' in target ? connect({ path: target.path, allowHalfOpen: true }) : connect({ host: target.host ?? 'localhost', port: target.port, allowHalfOpen: true });
        joinStreams(socket, stream);
      }, () => stream.destroy());
    };
    if ('path' in forward.listen) {
      try {
        await client.forwardInStreamLocal(forward.listen.path, connectLocal);
      } catch {
        process.stderr.write(`Warning: remote port forwarding failed for listen path ${forward.listen.path}\n`);
        ok = false;
      }
      continue;
    }
    const listenPort = forward.listen.port;
    const describe = 'path' in target ? target.path : `${target.host}:${target.port}`;
    try {
      const result = await client.forwardIn(forward.listen.host ?? '', listenPort, connectLocal);
      if (listenPort === 0) process.stderr.write(`Allocated port ${result.port} for remote forward to ${describe}\n`);
    } catch {
      process.stderr.write(`Warning: remote port forwarding failed for listen port ${listenPort}\n`);
      ok = false;
    }
  }
  return ok;
}

/** -f: run again detached, wait until it is connected, then return (as ssh's fork after auth). */
function goBackground(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [process.argv[1]!, ...argv], {
      detached: true,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, TSSH_BACKGROUND_CHILD: '1' },
    });
    child.once('message', () => {
      child.disconnect();
      child.unref();
      resolve(0);
    });
    child.once('exit', (code) => resolve(code ?? 255));
  });
}

function signalBackgroundReady(): void {
  if (process.env.TSSH_BACKGROUND_CHILD === '1' && process.send) {
    process.send('ready');
    process.disconnect?.();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof SshUsageError) process.stderr.write(`tssh: ${error.message}\n${SSH_USAGE}`);
    else if (error instanceof ConfigError) process.stderr.write(`${error.message}\n`);
    else process.stderr.write(`tssh: ${(error as Error).message}\n`);
    process.exit(255);
  },
);

