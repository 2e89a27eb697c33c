#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.arena_max=2 node --max-semi-space-size=2 --no-incremental-marking
/**
 * tsshd: the SSH server program, with sshd's command line and sshd_config.
 *
 *   tsshd [-DdeiTtV] [-f config] [-h host_key] [-o option] [-p port]
 *   tsshd passwd [-f file] add USER | remove USER | list
 *
 * Without -f it runs with embedded defaults: 127.0.0.1:2222, host keys in ~/.tssh, the running
 * user's authorized_keys and ~/.ssh/*.pub, or else a one-time password it prints.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { loadSshdConfig, parseSshdConfig, formatSshdConfig, listenEndpoints, type SshdConfig } from '../config/sshd-config.js';
import { ConfigError } from '../config/tokens.js';
import { createLogger, createSyslogSink, logsToStderr, startupLogsToStderr, stderrSink, type SwitchableLogger } from './sshd/log.js';
import { loadOrCreateHostKeys } from './sshd/host-keys.js';
import { createTsshdServer, readPublicKeyFiles } from './sshd/serve.js';
import { prepareSpawnHelper } from './sshd/spawn-helper.js';
import { currentUser, runningAsRoot } from './sshd/users.js';
import { passwdCommand } from './sshd/passwd-command.js';
import { loadPam } from './sshd/pam.js';
import { fingerprint } from '../keys/fingerprint.js';
import { parseOpenSshPublicKey } from '../keys/public-key-text.js';
import { VERSION } from '../client.js';
import { SERVER_MALLOC_TUNABLES, takeOwnMallocTunables } from './malloc-tuning.js';

// The malloc setting of our `#!` line (malloc-tuning.ts) is for this process, not its helpers.
takeOwnMallocTunables(SERVER_MALLOC_TUNABLES);

interface Flags {
  configFile: string | undefined;
  ports: number[];
  hostKeys: string[];
  options: string[];
  foreground: boolean;
  stderr: boolean;
  debug: number;
  test: boolean;
  print: boolean;
  inetd: boolean;
  version: boolean;
}

const STATE_DIR = join(homedir(), '.tssh');
const USAGE = 'usage: tsshd [-DdeiTtV] [-f config_file] [-h host_key_file] [-o option] [-p port]\n       tsshd passwd [-f file] add USER | remove USER | list\n';

function parseFlags(argv: string[]): Flags {
  const flags: Flags = { configFile: undefined, ports: [], hostKeys: [], options: [], foreground: false, stderr: false, debug: 0, test: false, print: false, inetd: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') throw new UsageError(`unexpected argument ${arg}`);
    for (let j = 1; j < arg.length; j++) {
      const flag = arg[j]!;
      const value = (): string => {
        const rest = arg.slice(j + 1);
        j = arg.length;
        if (rest) return rest;
        const next = argv[++i];
        if (next === undefined) throw new UsageError(`option -${flag} needs an argument`);
        return next;
      };
      switch (flag) {
        case 'f': flags.configFile = value(); break;
        case 'p': {
          const port = Number(value());
          if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`Bad port number`);
          flags.ports.push(port);
          break;
        }
        case 'h': flags.hostKeys.push(value()); break;
        case 'o': flags.options.push(value()); break;
        case 'D': flags.foreground = true; break;
        case 'e': flags.stderr = true; break;
        case 'd': flags.debug++; flags.foreground = true; flags.stderr = true; break;
        case 't': flags.test = true; break;
        case 'T': flags.print = true; break;
        case 'i': flags.inetd = true; break;
        case 'V': flags.version = true; break;
        default: throw new UsageError(`unknown option -- ${flag}`);
      }
    }
  }
  return flags;
}

class UsageError extends Error {}

const EMBEDDED_CONFIG = (state: string): string => `# tsshd embedded defaults
Port 2222
ListenAddress 127.0.0.1
HostKey ${state}/ssh_host_ed25519_key
HostKey ${state}/ssh_host_ecdsa_key
HostKey ${state}/ssh_host_rsa_key
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication yes
KbdInteractiveAuthentication yes
`;

function loadConfig(flags: Flags): SshdConfig {
  const overrides = [...flags.options, ...flags.hostKeys.map((h) => `HostKey ${h}`)];
  const options = { overrides, ports: flags.ports.length > 0 ? flags.ports : undefined };
  if (flags.configFile) return loadSshdConfig(flags.configFile, options);
  return parseSshdConfig({ text: EMBEDDED_CONFIG(STATE_DIR), path: '(embedded defaults)' }, options);
}

/** The log once main() has one; a fatal error after start-up goes there too (syslog or stderr). */
let activeLog: { log: SwitchableLogger; syslog: ReturnType<typeof createSyslogSink> | undefined } | undefined;

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'passwd') return passwdCommand(argv.slice(1), join(STATE_DIR, 'passwd'));
  const flags = parseFlags(argv);
  if (flags.version) {
    // As sshd -V: the version on stderr, nothing else done.
    process.stderr.write(`tsshd_${VERSION}, Node.js ${process.version}, OpenSSL ${process.versions.openssl}\n`);
    return 0;
  }
  let config = loadConfig(flags);
  const settings = config.settings;
  // As sshd: the start-up log (config warnings, host keys) goes to stderr unless in inetd mode;
  // then to syslog unless -e (or -d without -i).
  let facility = settings.syslogFacility;
  const syslogFor = (): ReturnType<typeof createSyslogSink> => createSyslogSink({ facility });
  const startupSyslog = startupLogsToStderr(flags) ? undefined : syslogFor();
  const log = createLogger(flags.debug > 0 ? `DEBUG${Math.min(flags.debug, 3)}` : settings.logLevel, startupSyslog?.sink ?? stderrSink);
  activeLog = { log, syslog: startupSyslog };
  for (const warning of config.warnings) log.info(warning);
  if (flags.print) {
    process.stdout.write(formatSshdConfig(settings));
    return 0;
  }
  const hostKeys = await loadOrCreateHostKeys(settings.hostKey, (line) => log.info(line));
  if (hostKeys.length === 0) throw new Error('sshd: no hostkeys available -- exiting.');
  if (flags.test) return 0;
  if (!logsToStderr(flags) && !startupSyslog) {
    const syslog = syslogFor();
    log.use(syslog.sink);
    activeLog = { log, syslog };
  } else if (logsToStderr(flags) && startupSyslog) {
    log.use(stderrSink);
  }

  const root = runningAsRoot();
  const me = currentUser();
  const embedded = flags.configFile === undefined;
  // Without root we can only run sessions as ourselves, so only we (and password-file users) log in.
  const onlyUser = root ? undefined : me;
  let oneTimePassword: { user: string; password: string } | undefined;
  const sshDir = join(me.home, '.ssh');
  const pubFiles = existsSync(sshDir) ? readdirSync(sshDir).filter((f) => f.endsWith('.pub')).map((f) => join(sshDir, f)) : [];
  if (embedded && !existsSync(join(sshDir, 'authorized_keys')) && pubFiles.length === 0) {
    oneTimePassword = { user: me.name, password: randomBytes(9).toString('base64url') };
  }
  // PAM checks system users' passwords when we are root and UsePAM is on.
  let pam: ((user: string, password: string) => Promise<boolean>) | undefined;
  if (root && settings.usePAM) {
    const loaded = loadPam();
    if ('check' in loaded) pam = (user, password) => loaded.check(user, password, '');
    else log.info(`UsePAM yes, but PAM is unavailable: ${loaded.unavailable}`);
  }
  let banner: string | undefined;
  if (settings.banner) {
    try {
      banner = await readFile(settings.banner, 'utf8');
    } catch (error) {
      log.error(`Banner ${settings.banner}: ${(error as Error).message}`);
    }
  }
  const server = createTsshdServer({
    banner,
    pam,
    config: () => config,
    hostKeys,
    log,
    onlyUser,
    switchUser: root,
    oneTimePassword,
    extraAuthorizedKeys: embedded
      ? (user) => (user.name === me.name ? readPublicKeyFiles(pubFiles, (text) => parseOpenSshPublicKey(text.trim()).key) : Promise.resolve([]))
      : undefined,
  });

  if (flags.inetd) {
    const stream = Duplex.from({ readable: process.stdin, writable: process.stdout });
    const connection = server.handle(stream, process.env.SSH_CLIENT?.split(' ')[0], Number(process.env.SSH_CLIENT?.split(' ')[1] ?? 0));
    await new Promise<void>((resolve) => connection.once('close', () => resolve()));
    return 0;
  }

  // Commands without a terminal start from a small helper (spawn-helper.ts), started now so that
  // the first command finds it ready; an inetd-mode tsshd, one connection long, does without.
  prepareSpawnHelper();

  // SIGHUP: re-read the configuration for new connections. Installed before listening: a SIGHUP
  // that comes early must not end tsshd (Node's default for it).
  process.on('SIGHUP', () => {
    try {
      config = loadConfig(flags);
      // sshd re-executes itself on SIGHUP: LogLevel and SyslogFacility take effect too.
      const reloaded = config.settings;
      if (flags.debug === 0) log.setLevel(reloaded.logLevel);
      if (activeLog?.syslog && reloaded.syslogFacility !== facility) {
        const previous = activeLog.syslog;
        facility = reloaded.syslogFacility;
        const next = createSyslogSink({ facility });
        log.use(next.sink);
        activeLog = { log, syslog: next };
        void previous.close();
      }
      log.info('Received SIGHUP; configuration reloaded for new connections.');
    } catch (error) {
      log.error(`SIGHUP: configuration not reloaded: ${(error as Error).message}`);
    }
  });
  const endpoints = listenEndpoints(settings);
  for (const { host, port } of endpoints) {
    try {
      const address = await server.listen(port, host);
      log.info(`Server listening on ${address.address} port ${address.port}.`);
    } catch (error) {
      throw new Error(`Bind to port ${port} on ${host} failed: ${(error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'Address already in use' : (error as Error).message}.`);
    }
  }
  if (settings.pidFile) await writeFile(settings.pidFile, `${process.pid}\n`);
  if (embedded) {
    const port = endpoints[0]?.port ?? 2222;
    process.stderr.write(`\ntsshd is running. Connect with:\n\n    ssh -p ${port} ${me.name}@127.0.0.1\n\nHost key fingerprints:\n`);
    for (const key of hostKeys) process.stderr.write(`    ${key.type} ${fingerprint(key.publicKey)}\n`);
    if (oneTimePassword) {
      process.stderr.write(`\nNo ~/.ssh/authorized_keys or ~/.ssh/*.pub found: log in with the one-time password\n    ${oneTimePassword.password}\n`);
    }
    process.stderr.write('\n');
  }

  // SIGTERM/SIGINT: stop listening, give sessions a bounded time to finish.
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info(`Received signal ${signal}; terminating.`);
      const timer = setTimeout(() => resolve(), 10_000);
      timer.unref();
      void server.close().then(() => resolve());
    };
    process.once('SIGTERM', () => stop('15'));
    process.once('SIGINT', () => stop('2'));
  });
  return 0;
}

main(process.argv.slice(2)).then(
  async (code) => {
    await activeLog?.syslog?.close();
    process.exit(code);
  },
  async (error: unknown) => {
    if (error instanceof UsageError) process.stderr.write(`tsshd: ${error.message}\n${USAGE}`);
    else if (error instanceof ConfigError) process.stderr.write(`${error.message}\n`);
    else if (activeLog?.syslog) {
      // Logging to syslog: the reason goes there, as sshd's fatal() sends it.
      activeLog.log.fatal(`fatal: ${(error as Error).message}`);
      await activeLog.syslog.close();
    } else process.stderr.write(`tsshd: ${(error as Error).message}\n`);
    process.exit(255);
  },
);
