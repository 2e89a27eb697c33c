/**
 * ssh's command line: `tssh [options] [user@]host [command [argument ...]]`, with the flags of
 * ssh(1) that tssh implements. Options that map to config keywords become `-o` overrides, so
 * the command line wins over the config files exactly as in ssh.
 */
export interface SshArgs {
  destination: string;
  user: string | undefined;
  port: number | undefined;
  command: string[];
  configFile: string | undefined;
  identityFiles: string[];
  overrides: string[];
  verbose: number;
  quiet: boolean;
  noCommand: boolean; // -N
  tty: 0 | 1 | 2 | -1; // -T = -1, -t = 1, -tt = 2, default 0
  background: boolean; // -f
  stdioForward: string | undefined; // -W host:port
  logFile: string | undefined; // -E
  printConfig: boolean; // -G
  version: boolean; // -V
  escapeChar: string | undefined; // -e
  subsystem: boolean; // -s
}

export class SshUsageError extends Error {}

export const SSH_USAGE = `usage: tssh [-46AaCfGgNqTtVv] [-c cipher_spec] [-D [bind_address:]port]
            [-E log_file] [-e escape_char] [-F configfile] [-i identity_file]
            [-J destination] [-L address] [-l login_name] [-m mac_spec]
            [-o option] [-p port] [-R address] [-W host:port]
            destination [command [argument ...]]
`;

/** Flags that take an argument. */
const WITH_ARGUMENT = new Set(['b', 'c', 'D', 'E', 'e', 'F', 'I', 'i', 'J', 'L', 'l', 'm', 'O', 'o', 'p', 'Q', 'R', 'S', 'W', 'w', 'B']);

export function parseSshArgs(argv: readonly string[]): SshArgs {
  const args: SshArgs = {
    destination: '',
    user: undefined,
    port: undefined,
    command: [],
    configFile: undefined,
    identityFiles: [],
    overrides: [],
    verbose: 0,
    quiet: false,
    noCommand: false,
    tty: 0,
    background: false,
    stdioForward: undefined,
    logFile: undefined,
    printConfig: false,
    version: false,
    escapeChar: undefined,
    subsystem: false,
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    for (let j = 1; j < arg.length; j++) {
      const flag = arg[j]!;
      let value = '';
      if (WITH_ARGUMENT.has(flag)) {
        value = arg.slice(j + 1);
        if (value === '') {
          const next = argv[++i];
          if (next === undefined) throw new SshUsageError(`option requires an argument -- ${flag}`);
          value = next;
        }
        j = arg.length;
      }
      applyFlag(args, flag, value);
    }
  }
  if (args.version || (args.printConfig && i >= argv.length)) {
    if (!args.version) throw new SshUsageError('missing destination');
    return args;
  }
  const destination = argv[i];
  if (destination === undefined) throw new SshUsageError('missing destination');
  args.command = argv.slice(i + 1) as string[];
  parseDestination(args, destination);
  return args;
}

function applyFlag(args: SshArgs, flag: string, value: string): void {
  const override = (keyword: string, v: string): void => void args.overrides.push(`${keyword} ${v}`);
  switch (flag) {
    case '4': return override('AddressFamily', 'inet');
    case '6': return override('AddressFamily', 'inet6');
    case 'A': return override('ForwardAgent', 'yes');
    case 'a': return override('ForwardAgent', 'no');
    case 'C': return override('Compression', 'yes');
    case 'c': return override('Ciphers', value);
    case 'm': return override('MACs', value);
    case 'D': return override('DynamicForward', value);
    case 'L': return override('LocalForward', value);
    case 'R': return override('RemoteForward', value);
    case 'J': return override('ProxyJump', value);
    case 'l': args.user = value; return;
    case 'p': {
      const port = Number(value);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new SshUsageError(`Bad port '${value}'`);
      args.port = port;
      return;
    }
    case 'i': args.identityFiles.push(value); return;
    case 'F': args.configFile = value; return;
    case 'o': args.overrides.push(value.replace(/^([A-Za-z0-9]+)\s*=\s*/, '$1 ')); return;
    case 'v': args.verbose++; return;
    case 'q': args.quiet = true; return override('LogLevel', 'QUIET');
    case 'N': args.noCommand = true; return;
    case 'T': args.tty = -1; return;
    case 't': args.tty = args.tty === 1 ? 2 : 1; return;
    case 'f': args.background = true; return;
    case 'W': args.stdioForward = value; return;
    case 'E': args.logFile = value; return;
    case 'G': args.printConfig = true; return;
    case 'V': args.version = true; return;
    case 'e': args.escapeChar = value; return;
    case 'g': return override('GatewayPorts', 'yes');
    case 'x': case 'X': case 'Y': case 'k': case 'K': case 'M': case 'n': case 's':
      // Accepted for compatibility: X11, GSSAPI and multiplexing are not implemented.
      if (flag === 's') args.subsystem = true;
      return;
    default:
      throw new SshUsageError(`unknown option -- ${flag}`);
  }
}

/** `[user@]host[:port]` or `ssh://[user@]host[:port]`. */
function parseDestination(args: SshArgs, destination: string): void {
  let rest = destination;
  if (rest.startsWith('ssh://')) {
    rest = rest.slice(6);
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf(']') && colon > rest.lastIndexOf('@')) {
      args.port ??= Number(rest.slice(colon + 1));
      rest = rest.slice(0, colon);
    }
  }
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    args.user ??= rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  args.destination = rest.replace(/^\[(.*)\]$/, '$1');
  if (args.destination === '') throw new SshUsageError('missing destination');
}
