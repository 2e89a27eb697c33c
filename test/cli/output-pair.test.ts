/**
 * tsshd's session output pairs (src/cli/sshd/output-pair.ts): the two ends are connected and the
 * reading end's onread gets what the other end writes; the private folder is removed when the
 * process exits, and one left by a killed tsshd is removed by the next.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// Set before the module makes its listener: os.tmpdir() reads TMPDIR when it is called.
const systemTmp = tmpdir();
const base = mkdtempSync(join(systemTmp, 'tssh-output-pair-test-'));
process.env.TMPDIR = base;
const { outputPair } = await import('../../src/cli/sshd/output-pair.js');

test('a pair carries what the writer end sends to the reader end\'s onread, in order, then EOF', async (t) => {
  t.after(() => rmSync(base, { recursive: true, force: true }));
  // A folder left by a tsshd that is no longer running (a finished child's PID).
  const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
  const stale = join(base, `tsshd-output-${deadPid}-abcdef`);
  mkdirSync(stale, { mode: 0o700 });
  writeFileSync(join(stale, 'socket'), '');
  const received: Buffer[] = [];
  const pair = await outputPair({
    buffer: Buffer.alloc(4096),
    callback: (bytes: number, buffer: Uint8Array) => {
      received.push(Buffer.from(buffer.subarray(0, bytes)));
      return true;
    },
  });
  assert.ok(pair, 'a pair was made');
  assert.ok(!existsSync(stale), 'the stale folder of a process that no longer runs is gone');
  assert.deepEqual(
    readdirSync(base).filter((n) => n.startsWith('tsshd-output-')).map((n) => n.split('-')[2]),
    [String(process.pid)],
    'our own folder, named with our PID',
  );
  const ended = new Promise<void>((r) => pair.reader.once('end', () => r()));
  pair.reader.resume();
  const data = Buffer.alloc(100_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  pair.writer.end(data);
  await ended;
  assert.ok(Buffer.concat(received).equals(data));
  // A second pair from the same listener.
  const second = await outputPair({ buffer: Buffer.alloc(64), callback: () => true });
  assert.ok(second);
  second.reader.destroy();
  second.writer.destroy();
});

test('the folder is removed when the process exits', () => {
  const dir = mkdtempSync(join(systemTmp, 'tssh-output-pair-exit-'));
  try {
    const module = resolve('dist/src/cli/sshd/output-pair.js');
    const script = `import(${JSON.stringify(module)}).then(async ({ outputPair }) => { const p = await outputPair({ buffer: Buffer.alloc(64), callback: () => true }); console.log(p ? 'made' : 'none'); p.reader.destroy(); p.writer.destroy(); process.exit(0); });`;
    const run = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, TMPDIR: dir }, encoding: 'utf8' });
    assert.equal(run.stdout.trim(), 'made', run.stderr);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
