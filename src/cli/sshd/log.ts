/**
 * tsshd's log, in sshd's words and levels (QUIET, FATAL, ERROR, INFO, VERBOSE, DEBUG1-3), sent
 * where sshd sends it (sshd.c's log_init calls):
 *  - until the host keys are loaded, to stderr (so that -t, a bad config or an unreadable key is
 *    seen by whoever started tsshd), except in inetd mode (-i) without -e or -d;
 *  - from then on to syslog, unless -e was given or -d without -i: then to stderr.
 *
 * Syslog: Node has no Unix datagram sockets, so one long-lived util-linux `logger` child is fed
 * our lines, each with its own `<PRI>` prefix (`--prio-prefix`: SyslogFacility and the line's
 * level), and tags them `tsshd[PID]` with tsshd's PID (`--id`), as openlog(LOG_PID) would. When
 * there is no logger program, no /dev/log, or logger exits, tsshd says so once on stderr and logs
 * to stderr from then on: a log line is never silently lost on a machine without syslog.
 *
 * Test hook: TSSH_SYSLOG_SOCKET=PATH makes logger send to that Unix socket instead of /dev/log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { LogLevel, SyslogFacility } from '../../config/tokens.js';

const ORDER: readonly string[] = ['QUIET', 'FATAL', 'ERROR', 'INFO', 'VERBOSE', 'DEBUG1', 'DEBUG2', 'DEBUG3'];

export type Severity = 'FATAL' | 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG1';

export interface Logger {
  fatal(line: string): void;
  error(line: string): void;
  info(line: string): void;
  verbose(line: string): void;
  debug(line: string): void;
  /** Whether lines of this severity are written at the current level (to skip building costly ones). */
  enabled(severity: Severity): boolean;
}

/** Where lines go: stderr or syslog. */
export type LogSink = (severity: Severity, line: string) => void;

export const stderrSink: LogSink = (_severity, line) => void process.stderr.write(`${line}\n`);

/** A logger whose destination (stderr until the host keys are loaded) and level can change (SIGHUP). */
export interface SwitchableLogger extends Logger {
  use(sink: LogSink): void;
  setLevel(level: LogLevel | string): void;
}

export function createLogger(level: LogLevel | string, sink: LogSink = stderrSink): SwitchableLogger {
  // sshd reads DEBUG as DEBUG1.
  const thresholdOf = (name: string): number => ORDER.indexOf(name.toUpperCase() === 'DEBUG' ? 'DEBUG1' : name.toUpperCase());
  let threshold = thresholdOf(level);
  let current = sink;
  const enabled = (name: Severity): boolean => ORDER.indexOf(name) <= threshold;
  const at = (name: Severity) => (line: string) => {
    if (enabled(name)) current(name, line);
  };
  return {
    enabled,
    fatal: at('FATAL'),
    error: at('ERROR'),
    info: at('INFO'),
    verbose: at('VERBOSE'),
    debug: at('DEBUG1'),
    use: (next) => {
      current = next;
    },
    setLevel: (next) => {
      threshold = thresholdOf(next);
    },
  };
}

/** sshd's rule for the log after start-up: stderr with -e, or with -d unless in inetd mode. */
export function logsToStderr(flags: { stderr: boolean; debug: number; inetd: boolean }): boolean {
  return flags.stderr || (flags.debug > 0 && !flags.inetd);
}

/** Before the host keys are loaded: stderr unless inetd mode without -e or -d. */
export function startupLogsToStderr(flags: { stderr: boolean; debug: number; inetd: boolean }): boolean {
  return flags.stderr || !flags.inetd || flags.debug > 0;
}

/** syslog(3)'s facility numbers (<syslog.h>), for the sshd_config names. */
const FACILITY: Record<SyslogFacility, number> = {
  DAEMON: 3,
  USER: 1,
  AUTH: 4,
  AUTHPRIV: 10,
  LOCAL0: 16,
  LOCAL1: 17,
  LOCAL2: 18,
  LOCAL3: 19,
  LOCAL4: 20,
  LOCAL5: 21,
  LOCAL6: 22,
  LOCAL7: 23,
};

/** sshd's level → syslog priority (log.c): fatal LOG_CRIT, error LOG_ERR, info and verbose LOG_INFO, debug LOG_DEBUG. */
const PRIORITY: Record<Severity, number> = { FATAL: 2, ERROR: 3, INFO: 6, VERBOSE: 6, DEBUG1: 7 };

/** The `<PRI>` a line gets: facility * 8 + priority (RFC 5424 §6.2.1). */
export function syslogPriority(facility: SyslogFacility, severity: Severity): number {
  return FACILITY[facility] * 8 + PRIORITY[severity];
}

/**
 * One line as syslog gets it: control characters shown as \ooo (a newline would otherwise split
 * it, and logger would read a `<` at the start of the next part as a priority), at most 500
 * characters, as sshd's syslog("%.500s").
 */
export function syslogText(line: string): string {
  const visible = line.replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return visible.length > 500 ? visible.slice(0, 500) : visible;
}

const LOGGER_CANDIDATES = ['/usr/bin/logger', '/bin/logger'];

export interface SyslogOptions {
  readonly facility: SyslogFacility;
  /** The Unix socket; default /dev/log (or TSSH_SYSLOG_SOCKET). */
  readonly socket?: string;
  /** The PID in the tag; default ours. */
  readonly pid?: number;
  /** Where the one-time fallback warning and later lines go. Default: stderr. */
  readonly fallback?: LogSink;
}

/**
 * A sink that feeds a `logger` child; it falls back to stderr (after one warning) when logger or
 * the socket is missing or logger goes away. `close()` ends logger's input so it can finish.
 */
export function createSyslogSink(options: SyslogOptions): { sink: LogSink; close(): Promise<void> } {
  const fallback = options.fallback ?? stderrSink;
  const socket = options.socket ?? process.env.TSSH_SYSLOG_SOCKET ?? '/dev/log';
  const program = LOGGER_CANDIDATES.find((path) => existsSync(path));
  let warned = false;
  let child: ChildProcess | undefined;
  const fallBack = (why: string): void => {
    child = undefined;
    if (warned) return;
    warned = true;
    fallback('ERROR', `tsshd: cannot log to syslog (${why}); logging to stderr instead`);
  };
  if (!program) fallBack('the logger program (util-linux, Debian package bsdutils) is missing');
  else if (!existsSync(socket)) fallBack(`no syslog socket at ${socket}`);
  else {
    const defaultPriority = `${options.facility.toLowerCase()}.info`;
    child = spawn(
      program,
      ['--id=' + String(options.pid ?? process.pid), '-t', 'tsshd', '--prio-prefix', '-p', defaultPriority, '-u', socket, '--socket-errors=on'],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let errors = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => (errors = (errors + text).slice(-500)));
    child.stdin!.on('error', () => {});
    child.once('error', (error) => fallBack(`${program}: ${error.message}`));
    child.once('exit', (code, signal) => {
      if (child) fallBack(`${program} exited (${signal ?? code})${errors ? `: ${errors.trim()}` : ''}`);
    });
    // logger must not keep tsshd alive, nor die with a terminal's ^C before tsshd has logged its end.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
  }
  const sink: LogSink = (severity, line) => {
    if (child?.stdin?.writable) {
      child.stdin.write(`<${syslogPriority(options.facility, severity)}>${syslogText(line)}\n`);
      return;
    }
    fallback(severity, line);
  };
  return {
    sink,
    /** Ends logger's input and waits (at most a second) until it has sent everything. */
    close: () => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        c.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        c.stdin?.end();
      });
    },
  };
}
