/**
 * A real terminal for tests: one tmux session on a private socket in the test's folder (never the
 * user's tmux), read back with capture-pane and typed into with send-keys, and stopped through
 * that socket. Used by the pty interop tests and by tssh's escape-sequence tests.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerPath } from './peers.js';

/** How long waitFor and typeUntil wait by default. */
export const TERMINAL_WAIT_MS = 15_000;

export class TmuxPane {
  private readonly socket: string;
  private readonly config: string;
  private readonly env: NodeJS.ProcessEnv;

  /** `name` is the tmux session's name (and the socket's): one pane per instance. */
  constructor(dir: string, readonly name: string) {
    this.socket = join(dir, `tmux-${name}.sock`);
    this.config = join(dir, `tmux-${name}.conf`);
    // No status line (the pane gets every row), /bin/sh in panes, the pane kept after its program ends.
    writeFileSync(
      this.config,
      ['set -g status off', 'set -g default-shell /bin/sh', 'set -g default-terminal screen', 'set -g remain-on-exit on', 'set -g history-limit 5000', ''].join('\n'),
    );
    this.env = { ...process.env };
    delete this.env.TMUX;
    delete this.env.TMUX_PANE;
  }

  /** Runs a tmux command on this pane's server; resolves with its output. */
  run(...args: string[]): Promise<string> {
    return new Promise((done, fail) => {
      execFile(peerPath('tmux'), ['-S', this.socket, '-f', this.config, ...args], { env: this.env, timeout: 10_000, encoding: 'utf8' }, (error, stdout, stderr) => {
        if (error) fail(new Error(`tmux ${args.join(' ')}: ${error.message} ${stderr}`));
        else done(stdout);
      });
    });
  }

  /** Starts the session running `command` in a terminal of `columns` x `rows`. */
  async start(command: string, columns: number, rows: number): Promise<void> {
    await this.run('new-session', '-d', '-s', this.name, '-x', String(columns), '-y', String(rows), command);
  }

  /** Sends named keys (tmux key names: Enter, C-c, BSpace, ...). */
  async press(...keys: string[]): Promise<void> {
    await this.run('send-keys', '-t', this.name, ...keys);
  }

  /**
   * The pane's text, scrollback included, wrapped lines joined, without the blank rows below the
   * cursor (so that it only grows, and a length taken now marks what comes after).
   */
  async screen(): Promise<string> {
    return (await this.run('capture-pane', '-p', '-J', '-S', '-1000', '-t', this.name)).replace(/\s+$/, '');
  }

  /** Types `text` literally, without Enter. */
  async keys(text: string): Promise<void> {
    await this.run('send-keys', '-t', this.name, '-l', '--', text);
  }

  /** Types `text` literally, then Enter. */
  async type(text: string): Promise<void> {
    await this.keys(text);
    await this.press('Enter');
  }

  /** Polls the screen until `pattern` matches in the text after its first `since` characters. */
  async waitFor(pattern: RegExp, what: string, options: { since?: number; timeoutMs?: number } = {}): Promise<RegExpExecArray> {
    const { since = 0, timeoutMs = TERMINAL_WAIT_MS } = options;
    const started = Date.now();
    for (;;) {
      const screen = await this.screen();
      const match = pattern.exec(screen.slice(since));
      if (match) return match;
      if (Date.now() - started > timeoutMs) {
        throw new Error(`the terminal did not show ${what} (${pattern}) within ${timeoutMs} ms; it shows:\n${screen}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Types `text` and waits for `pattern`; types it again (after `retryMs`) while it does not appear,
   * for a state that arrives asynchronously (the shell being ready, a window size propagating).
   */
  async typeUntil(text: string, pattern: RegExp, what: string, options: { retryMs?: number; timeoutMs?: number } = {}): Promise<RegExpExecArray> {
    const { retryMs = 1000, timeoutMs = TERMINAL_WAIT_MS } = options;
    const started = Date.now();
    for (;;) {
      await this.type(text);
      try {
        return await this.waitFor(pattern, what, { timeoutMs: retryMs });
      } catch (error) {
        if (Date.now() - started > timeoutMs) throw error;
      }
    }
  }

  /** Stops this pane's tmux server (errors ignored: it may be gone already). */
  async stop(): Promise<void> {
    await this.run('kill-server').catch(() => undefined);
  }
}
