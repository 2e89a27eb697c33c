#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.top_pad=16777216 node --max-semi-space-size=1
/**
 * tssh: the SSH client program, with ssh's command line and ~/.ssh/config.
 *
 *   tssh [options] [user@]host [command [argument ...]]
 *
 * The remote command's exit status is tssh's (255 for a connection error).
 */
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { isatty } from 'node:tty';
import { parseSshArgs, SshUsageError, SSH_USAGE, type SshArgs } from './ssh/args.js';
import { connectWithOptions, type ClientLog } from './ssh/connect.js';
import { attachSession } from './ssh/interactive.js';
import { ForwardError, ForwardManager } from './ssh/forwards.js';
import { localTerminalModes } from './ssh/terminal-modes.js';
import { resolveHost, formatSshConfig, type SshOptions } from '../config/ssh-config.js';
import { loadSshConfigs } from '../client-config.js';
import { ConfigError } from '../config/tokens.js';
import { VERSION, type SshClient } from '../client.js';
import { matchPattern } from '../keys/patterns.js';
import { CLIENT_MALLOC_TUNABLES, takeOwnMallocTunables } from './malloc-tuning.js';

/** The malloc setting of our `#!` line (malloc-tuning.ts), kept for ourselves and a background copy. */
const mallocTunables = takeOwnMallocTunables(CLIENT_MALLOC_TUNABLES);

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

  const forwards = new ForwardManager(client, options.gatewayPorts, log);
  const forwardsOk = await startForwards(forwards, options);
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
  // isatty, not process.stdin.isTTY: creating process.stdin would claim fd 0 (see attachSession).
  const stdinTty = isatty(0);
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
    attachSession(session, {
      terminal: wantTty,
      escapeChar,
      disconnect: () => void client.end(),
      // ~C as in OpenSSH 9.2 and later: only with EnableEscapeCommandline yes.
      commandLine: options.enableEscapeCommandline ? (line) => forwards.commandLine(line) : undefined,
      listConnections: () => forwards.connectionList(),
      rekey: () => client.rekey(),
    }),
    lost,
  ]);
  await client.end();
  return status;
}

/** LocalForward, RemoteForward and DynamicForward; false if any could not be set up. */
async function startForwards(forwards: ForwardManager, options: SshOptions): Promise<boolean> {
  let ok = true;
  for (const forward of options.localForward) {
    if (!forward.connect) continue;
    try {
      await forwards.addLocal(forward);
    } catch (error) {
      if (!(error instanceof ForwardError)) throw error;
      process.stderr.write(`${error.message}\nCould not request local forwarding.\n`);
      ok = false;
    }
  }
  for (const forward of options.dynamicForward) {
    try {
      await forwards.addDynamic(forward);
    } catch (error) {
      if (!(error instanceof ForwardError)) throw error;
      process.stderr.write(`${error.message}\n`);
      ok = false;
    }
  }
  for (const forward of options.remoteForward) {
    const target = forward.connect;
    if (!target) continue;
    try {
      const port = await forwards.addRemote(forward);
      if (!('path' in forward.listen) && forward.listen.port === 0) {
        process.stderr.write(`Allocated port ${port} for remote forward to ${'path' in target ? target.path : `${target.host}:${target.port}`}\n`);
      }
    } catch (error) {
      if (!(error instanceof ForwardError)) throw error;
      process.stderr.write(`${error.message}\n`);
      ok = false;
    }
  }
  return ok;
}

/** -f: run again detached, wait until it is connected, then return (as ssh's fork after auth). */
function goBackground(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
      detached: true,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, ...(mallocTunables === undefined ? {} : { GLIBC_TUNABLES: mallocTunables }), TSSH_BACKGROUND_CHILD: '1' },
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

