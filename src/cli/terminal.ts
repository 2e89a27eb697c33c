/**
 * Reading secrets as ssh does: from the terminal without echo, or, when stdin is not a terminal,
 * one line from stdin (for scripts and tests).
 */
import { createInterface } from 'node:readline';

export async function readSecret(prompt: string, confirm = false): Promise<string | undefined> {
  if (!process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin });
    for await (const line of rl) {
      rl.close();
      return line;
    }
    return undefined;
  }
  const first = await readNoEcho(prompt);
  if (!confirm || first === undefined) return first;
  const second = await readNoEcho('Retype: ');
  if (first !== second) {
    process.stderr.write('passwords do not match\n');
    return undefined;
  }
  return first;
}

/** Raw mode, no echo; Ctrl-C or Ctrl-D cancels; the terminal is restored on every way out. */
function readNoEcho(prompt: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const done = (result: string | undefined): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return done(value);
        if (char === '\u0003' || char === '\u0004') return done(undefined);
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    stdin.on('data', onData);
  });
}
