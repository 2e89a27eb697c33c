/**
 * tsshd's log, in sshd's words and levels (QUIET, FATAL, ERROR, INFO, VERBOSE, DEBUG1-3): lines
 * go to stderr with -e or -d, else to stderr as well (a service manager collects them).
 */
import type { LogLevel } from '../../config/tokens.js';

const ORDER: readonly string[] = ['QUIET', 'FATAL', 'ERROR', 'INFO', 'VERBOSE', 'DEBUG1', 'DEBUG2', 'DEBUG3'];

export interface Logger {
  error(line: string): void;
  info(line: string): void;
  verbose(line: string): void;
  debug(line: string): void;
}

export function createLogger(level: LogLevel | string, write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Logger {
  // sshd reads DEBUG as DEBUG1.
  const normalized = level.toUpperCase() === 'DEBUG' ? 'DEBUG1' : level.toUpperCase();
  const threshold = ORDER.indexOf(normalized);
  const at = (name: string) => (line: string) => {
    if (ORDER.indexOf(name) <= threshold) write(line);
  };
  return { error: at('ERROR'), info: at('INFO'), verbose: at('VERBOSE'), debug: at('DEBUG1') };
}
