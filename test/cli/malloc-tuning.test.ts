/**
 * tssh's and tsshd's glibc malloc settings (src/cli/malloc-tuning.ts): each program's `#!` line
 * gives its own to the process, and the commands it starts do not inherit it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLIENT_MALLOC_TUNABLES, SERVER_MALLOC_TUNABLES, takeOwnMallocTunables } from '../../src/cli/malloc-tuning.js';
import { createLab, run } from '../helpers/auth-lab.js';
import { freePort } from '../helpers/openssh.js';

const TSSH = resolve('dist/bin/tssh.js');
const TSSHD = resolve('dist/bin/tsshd.js');

/** How the kernel runs a script's #! line: the interpreter, then the rest of the line as one argument. */
function hashbang(script: string): { line: string; interpreter: string; argument: string } {
  const line = readFileSync(script, 'utf8').split('\n', 1)[0]!;
  return { line, interpreter: line.slice(2, line.indexOf(' ')), argument: line.slice(line.indexOf(' ') + 1) };
}

test('takeOwnMallocTunables removes our value only', () => {
  const ours: NodeJS.ProcessEnv = { GLIBC_TUNABLES: CLIENT_MALLOC_TUNABLES, HOME: '/h' };
  assert.equal(takeOwnMallocTunables(CLIENT_MALLOC_TUNABLES, ours), CLIENT_MALLOC_TUNABLES);
  assert.deepEqual(ours, { HOME: '/h' });
  const users: NodeJS.ProcessEnv = { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' };
  assert.equal(takeOwnMallocTunables(CLIENT_MALLOC_TUNABLES, users), undefined);
  assert.deepEqual(users, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
  assert.equal(takeOwnMallocTunables(CLIENT_MALLOC_TUNABLES, {}), undefined);
});

test("tssh started through its #! line has the setting, and a command it starts (Match exec) does not", async () => {
  const { line, interpreter, argument } = hashbang(TSSH);
  assert.equal(line, `#!/usr/bin/env -S GLIBC_TUNABLES=${CLIENT_MALLOC_TUNABLES} node --max-semi-space-size=1`);
  const dir = mkdtempSync(join(tmpdir(), 'tssh-malloc-'));
  try {
    // Exit 0 when this script lacks the variable and an ancestor (tssh, before any shell between)
    // was started with it: /proc/PID/environ is a process's environment as it started.
    const check = join(dir, 'check.sh');
    writeFileSync(
      check,
      [
        '#!/bin/sh',
        '[ -z "${GLIBC_TUNABLES+set}" ] || exit 1',
        'p=$PPID',
        'for i in 1 2 3; do',
        `  tr '\\0' '\\n' < /proc/$p/environ | grep -qx 'GLIBC_TUNABLES=${CLIENT_MALLOC_TUNABLES}' && exit 0`,
        "  p=$(cut -d ' ' -f 4 /proc/$p/stat)",
        'done',
        'exit 1',
        '',
      ].join('\n'),
    );
    chmodSync(check, 0o755);
    const config = join(dir, 'config');
    writeFileSync(config, `Match exec ${check}\n  Port 2201\nHost *\n  Port 2202\n`);
    const env = { ...process.env };
    delete env.GLIBC_TUNABLES;
    const started = await run(interpreter, [argument, TSSH, '-F', config, '-G', 'example.test'], { env });
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^port 2201$/m);
    // A value the user set is the user's: tssh's commands see it (and the check fails).
    const users = await run(process.execPath, [TSSH, '-F', config, '-G', 'example.test'], {
      env: { ...env, GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' },
    });
    assert.equal(users.code, 0, users.stderr);
    assert.match(users.stdout, /^port 2202$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tsshd started through its #! line has its setting, and the helpers it runs with its environment do not', async () => {
  const { line, interpreter, argument } = hashbang(TSSHD);
  assert.equal(line, `#!/usr/bin/env -S GLIBC_TUNABLES=${SERVER_MALLOC_TUNABLES} node --max-semi-space-size=2 --no-incremental-marking`);
  const lab = await createLab();
  try {
    // tsshd runs mkfifo (session-pipes.ts) with its own environment as soon as it starts: a
    // mkfifo first in PATH records what it was given, and what its parent was started with.
    const bin = lab.path('bin');
    mkdirSync(bin);
    const record = lab.path('record');
    const realMkfifo = ['/usr/bin/mkfifo', '/bin/mkfifo'].find((path) => existsSync(path)) ?? 'mkfifo';
    writeFileSync(
      join(bin, 'mkfifo'),
      [
        '#!/bin/sh',
        '{',
        '  if [ -z "${GLIBC_TUNABLES+set}" ]; then echo inherited=no; else echo inherited=yes; fi',
        `  if tr '\\0' '\\n' < /proc/$PPID/environ | grep -qx 'GLIBC_TUNABLES=${SERVER_MALLOC_TUNABLES}'; then echo parent=yes; else echo parent=no; fi`,
        `} > ${record}.tmp && mv ${record}.tmp ${record}`,
        `exec ${realMkfifo} "$@"`,
        '',
      ].join('\n'),
    );
    chmodSync(join(bin, 'mkfifo'), 0o755);
    const config = lab.path('tsshd_config');
    const port = await freePort();
    writeFileSync(config, [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${lab.hostKeys.ed25519.privateKey}`, `AuthorizedKeysFile ${lab.authorizedKeys}`, ''].join('\n'));
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    delete env.GLIBC_TUNABLES;
    const tsshd = spawn(interpreter, [argument, TSSHD, '-f', config, '-D', '-e'], { env, stdio: 'ignore' });
    try {
      for (let waited = 0; !existsSync(record) && waited < 15_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      assert.ok(existsSync(record), 'tsshd ran no mkfifo within 15 s');
      assert.equal(readFileSync(record, 'utf8'), 'inherited=no\nparent=yes\n');
    } finally {
      tsshd.kill('SIGTERM');
    }
  } finally {
    lab.cleanup();
  }
});
