/**
 * tsshd's spawn helper (src/cli/sshd/spawn-helper.ts) starts commands without a terminal: the
 * command is the helper's child; exit statuses and signals come back; stdin reaches it byte-exact
 * and its EOF arrives (also when the client sent everything before the command had started); its
 * stdout and stderr are pipes it can open by name, and reopening its stdin (a socket) fails at once
 * as under sshd; a channel closed under it hangs it up; and a helper that died is replaced for
 * the next command. Each for both helpers, the C one (src/cli/sshd/spawner.c) and the Perl one.
 * Run as whoever runs the tests (as root: root serving root).
 */
import { test, describe, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingPeers, havePeers, peersRequired } from '../helpers/peers.js';
import { spawnHelperProgram } from '../../src/cli/sshd/spawn-helper.js';
import { createLab, startTsshd, type Tsshd } from '../helpers/auth-lab.js';
import type { OpenSshFixture } from '../helpers/openssh.js';
import { connect, type SshClient } from '../../src/client.js';
import { parsePrivateKeyFile } from '../../src/keys/private-key-file.js';

/** Every process below `pid` (from /proc/PID/task/TID/children). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${next}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      let text = '';
      try {
        text = readFileSync(`/proc/${next}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const child of text.trim().split(/\s+/).filter(Boolean).map(Number)) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

function commandName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

const HELPERS = [
  { kind: 'native', name: 'the C one (the default when built)', env: {} },
  { kind: 'perl', name: 'the Perl one (TSSH_SPAWN_HELPER=perl)', env: { TSSH_SPAWN_HELPER: 'perl' } },
] as const;

const NEEDS = {
  native: 'needs dist/libexec/tsshd-spawner, which scripts/build-spawner.mjs builds with a C compiler (Debian package gcc)',
  perl: 'needs perl (Debian package perl-base)',
} as const;

for (const mode of HELPERS) describe(`commands through tsshd's spawn helper, ${mode.name}`, () => {
  let lab: OpenSshFixture | undefined;
  let tsshd: Tsshd | undefined;
  let client: SshClient | undefined;
  const program = spawnHelperProgram(mode.kind);

  /** ssh-keygen (for the lab's keys) and this helper, or a skip that names what is missing. */
  const available = (t: TestContext): boolean => {
    if (!havePeers(t, 'ssh-keygen')) return false;
    if (program) return true;
    assert.ok(!peersRequired(), `${NEEDS[mode.kind]}, and TSSH_REQUIRE_PEERS=1`);
    t.skip(NEEDS[mode.kind]);
    return false;
  };

  // Hooks and tests have time limits, so that a hang fails with a name instead of stopping the suite.
  before(async () => {
    // createLab makes its keys with OpenSSH's ssh-keygen.
    if (missingPeers('ssh-keygen') !== undefined || !program) return;
    lab = await createLab();
    tsshd = await startTsshd(lab, [], [], [], { env: mode.env });
    const { key } = await parsePrivateKeyFile(readFileSync(lab.userKey.privateKey));
    client = await connect({ host: '127.0.0.1', port: tsshd.port, username: lab.user, privateKeys: [key], verifyHostKey: () => true });
  }, { timeout: 60_000 });
  after(async () => {
    await client?.end();
    await tsshd?.stop();
    await lab?.cleanup();
  }, { timeout: 30_000 });

  const helpers = (): number[] => descendants(tsshd!.pid).filter((pid) => commandName(pid) === 'tsshd-spawner');

  test('the command is the helper\'s child; exit statuses and signals come back', { timeout: 30_000 }, async (t) => {
    if (!available(t)) return;
    const parent = await client!.exec('cat /proc/$PPID/comm');
    assert.equal(parent.stdout.toString(), 'tsshd-spawner\n');
    assert.equal(helpers().length, 1);
    assert.equal(realpathSync(`/proc/${helpers()[0]}/exe`), realpathSync(program!.file), `the ${mode.kind} helper runs`);
    assert.equal((await client!.exec('exit 3')).code, 3);
    const killed = await client!.exec('kill -TERM $$');
    assert.equal(killed.code, undefined);
    assert.equal(killed.signal?.signal, 'TERM');
  });

  test('stdin arrives byte-exact with its EOF, also when all of it was sent before the command started', { timeout: 30_000 }, async (t) => {
    if (!available(t)) return;
    const input = randomBytes(3 * 1024 * 1024 + 11);
    const round = await client!.exec('cat', { stdin: input });
    assert.equal(round.code, 0);
    assert.ok(round.stdout.equals(input), `${round.stdout.length} bytes back of ${input.length}`);
    const digest = await client!.exec('sha256sum', { stdin: input });
    assert.equal(digest.stdout.toString().split(' ')[0], createHash('sha256').update(input).digest('hex'));
    // Nothing at all: EOF at once.
    assert.equal((await client!.exec('wc -c', { stdin: Buffer.alloc(0) })).stdout.toString().trim(), '0');
  });

  test('stdout and stderr are pipes it can open by name; reopening stdin (a socket, as under sshd) fails at once, and so does writing to it', { timeout: 30_000 }, async (t) => {
    if (!available(t)) return;
    const result = await client!.exec('read line; echo "got $line" > /dev/stdout; echo oops > /dev/stderr', { stdin: Buffer.from('hello\n') });
    assert.equal(result.code, 0, result.stderr.toString());
    assert.equal(result.stdout.toString(), 'got hello\n');
    assert.equal(result.stderr.toString(), 'oops\n');
    // After the client's EOF: an error, not a wait for a writer that never comes.
    const reopened = await client!.exec('cat /dev/stdin', { stdin: Buffer.from('x') });
    assert.notEqual(reopened.code, 0);
    assert.match(reopened.stderr.toString(), /No such device or address/);
    // Its stdin is for reading only: writing to it fails at once instead of filling a buffer nobody reads.
    const written = await client!.exec('head -c 1000000 /dev/zero >&0; echo "status $?"');
    assert.match(written.stdout.toString(), /^status [1-9]\d*\n$/);
  });

  test('a channel closed under a running command hangs it up', { timeout: 30_000 }, async (t) => {
    if (!available(t)) return;
    const marker = `tssh-hup-${randomBytes(4).toString('hex')}`;
    const session = await client!.openSession();
    await session.start('exec', `exec -a ${marker} sleep 30`, {});
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      await sleep(20);
      pid = descendants(tsshd!.pid).find((p) => commandLine(p).startsWith(marker));
    }
    assert.ok(pid, 'the command runs');
    session.close();
    for (let i = 0; i < 100 && descendants(tsshd!.pid).includes(pid); i++) await sleep(20);
    assert.equal(descendants(tsshd!.pid).includes(pid), false, 'the command is gone');
  });

  test('many commands at once, of every kind, each get their own input, output and status', { timeout: 60_000 }, async (t) => {
    if (!available(t)) return;
    // Requests, starts, stdin connections and exits of different commands interleave in the helper
    // and in tsshd; each must still be matched to its own session.
    const one = async (i: number): Promise<void> => {
      switch (i % 5) {
        case 0: {
          const input = randomBytes(1 + ((i * 7919) % 200_000));
          const echoed = await client!.exec('cat', { stdin: input });
          assert.ok(echoed.stdout.equals(input), `#${i}: ${echoed.stdout.length} of ${input.length} bytes, ${echoed.stderr.toString()}`);
          break;
        }
        case 1:
          assert.equal((await client!.exec(`exit ${i % 100}`)).code, i % 100, `#${i}`);
          break;
        case 2:
          assert.equal((await client!.exec('kill -TERM $$')).signal?.signal, 'TERM', `#${i}`);
          break;
        case 3: {
          const answer = await client!.exec(`read line; echo "$line ${i}"; echo ${i} >&2`, { stdin: Buffer.from(`line\n`) });
          assert.equal(answer.stdout.toString(), `line ${i}\n`);
          assert.equal(answer.stderr.toString(), `${i}\n`);
          break;
        }
        default:
          assert.equal((await client!.exec('wc -c', { stdin: Buffer.alloc(0) })).stdout.toString().trim(), '0', `#${i}`);
      }
    };
    let next = 0;
    // Eight at a time: under the ten sessions a connection may have open (MaxSessions).
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 300) await one(next++);
    }));
    assert.equal(helpers().length, 1);
  });

  test('a signal sent right behind the command reaches it, even before the helper has read the request', { timeout: 30_000 }, async (t) => {
    if (!available(t)) return;
    for (let i = 0; i < 5; i++) {
      const session = await client!.openSession();
      const exited = new Promise<unknown>((resolve) => session.once('exit', resolve));
      // The exec request and the signal leave in the same write: tsshd reads them together.
      const started = session.start('exec', 'sleep 30', {});
      session.signal('TERM');
      await started;
      assert.deepEqual(await exited, { code: undefined, signal: { signal: 'TERM', coreDumped: false, message: '' } });
      session.close();
    }
  });

  test('a command\'s end is not held up by a command started after it', { timeout: 30_000 }, async (t) => {
    if (!available(t)) return;
    // The helper keeps copies of each command's outputs until it has reaped it: a command it
    // starts later must not inherit them, or the first one's output would stay open as long.
    const started = Date.now();
    const first = client!.exec('sleep 0.5; echo first');
    await sleep(100);
    const second = await client!.openSession();
    await second.start('exec', 'sleep 20', {});
    const result = await first;
    assert.equal(result.stdout.toString(), 'first\n');
    assert.ok(Date.now() - started < 10_000, `the first command's session ended after ${Date.now() - started} ms`);
    second.close();
  });

  test('a helper that died is replaced for the next command', { timeout: 30_000 }, async (t) => {
    if (!available(t)) return;
    await client!.exec('true');
    const [first] = helpers();
    assert.ok(first);
    process.kill(first, 'SIGKILL');
    for (let i = 0; i < 100 && helpers().includes(first); i++) await sleep(20);
    // This command starts another way while the new helper gets ready; the next ones go to it.
    assert.equal((await client!.exec('echo again')).stdout.toString(), 'again\n');
    let parent = '';
    for (let i = 0; i < 100 && parent !== 'tsshd-spawner\n'; i++) {
      await sleep(20);
      parent = (await client!.exec('cat /proc/$PPID/comm')).stdout.toString();
    }
    assert.equal(parent, 'tsshd-spawner\n');
    assert.equal(helpers().length, 1);
    assert.notEqual(helpers()[0], first);
  });
});

describe('a C helper that cannot start', () => {
  test('tsshd runs the Perl helper instead from the next command on (TSSH_SPAWNER naming a file that is no program)', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    if (!spawnHelperProgram('perl')) {
      assert.ok(!peersRequired(), `${NEEDS.perl}, and TSSH_REQUIRE_PEERS=1`);
      t.skip(NEEDS.perl);
      return;
    }
    const lab = await createLab();
    const broken = lab.path('not-a-program');
    writeFileSync(broken, 'exit 3\n', { mode: 0o755 });
    const tsshd = await startTsshd(lab, [], [], [], { env: { TSSH_SPAWNER: broken } });
    const { key } = await parsePrivateKeyFile(readFileSync(lab.userKey.privateKey));
    const client = await connect({ host: '127.0.0.1', port: tsshd.port, username: lab.user, privateKeys: [key], verifyHostKey: () => true });
    t.after(async () => {
      await client.end();
      await tsshd.stop();
      await lab.cleanup();
    });
    let parent = '';
    for (let i = 0; i < 100 && parent !== 'tsshd-spawner'; i++) {
      await sleep(20);
      const result = await client.exec('echo ok; cat /proc/$PPID/comm');
      assert.equal(result.stdout.toString().split('\n')[0], 'ok', 'every command runs, whichever way it starts');
      parent = result.stdout.toString().split('\n')[1] ?? '';
    }
    assert.equal(parent, 'tsshd-spawner');
    const helper = descendants(tsshd.pid).find((pid) => commandName(pid) === 'tsshd-spawner');
    assert.ok(helper, 'a helper runs');
    assert.equal(realpathSync(`/proc/${helper}/exe`), realpathSync(spawnHelperProgram('perl')!.file));
  });
});
