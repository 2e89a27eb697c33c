/**
 * Asking the user, as ssh does: through SSH_ASKPASS when SSH_ASKPASS_REQUIRE=force (or when
 * there is no terminal and DISPLAY is set), else on the controlling terminal (/dev/tty, never
 * stdin, which may carry the remote command's input) without echo. BatchMode never asks.
 */
import { execFile } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { ReadStream, WriteStream } from 'node:tty';

export interface PromptOptions {
  readonly echo: boolean;
  readonly batchMode: boolean;
}

export async function ask(prompt: string, options: PromptOptions): Promise<string | undefined> {
  if (options.batchMode) return undefined;
  const askpass = process.env.SSH_ASKPASS;
  const require = process.env.SSH_ASKPASS_REQUIRE;
  const haveTty = ttyAvailable();
  if (askpass && require !== 'never' && (require === 'force' || (!haveTty && process.env.DISPLAY))) {
    return runAskpass(askpass, prompt);
  }
  if (!haveTty) return undefined;
  return readTty(prompt, options.echo);
}

function ttyAvailable(): boolean {
  try {
    closeSync(openSync('/dev/tty', 'r+'));
    return true;
  } catch {
    return false;
  }
}

function runAskpass(program: string, prompt: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(program, [prompt], { encoding: 'utf8', timeout: 5 * 60 * 1000 }, (error, stdout) => {
      if (error) resolve(undefined);
      else resolve(stdout.replace(/\r?\n$/, ''));
    });
  });
}

/** Read one line from /dev/tty; the terminal mode is restored on every way out. */
function readTty(prompt: string, echo: boolean): Promise<string | undefined> {
  return new Promise((resolve) => {
    const fd = openSync('/dev/tty', 'r+');
    const input = new ReadStream(fd);
    const output = new WriteStream(fd);
    output.write(prompt);
    input.setRawMode(true);
    let value = '';
    const finish = (result: string | undefined): void => {
      input.setRawMode(false);
      input.removeAllListeners('data');
      output.write('\r\n');
      input.destroy();
      resolve(result);
    };
    input.on('data', (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish(value);
        if (char === '\u0003') return finish(undefined);
        if (char === '\u0004' && value === '') return finish(undefined);
        if (char === '\u007f' || char === '\b') {
          if (value.length > 0 && echo) output.write('\b \b');
          value = value.slice(0, -1);
        } else {
          value += char;
          if (echo) output.write(char);
        }
      }
    });
  });
}
